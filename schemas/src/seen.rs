//! [`SeenFilter`]: "have I met this key before?" over millions of keys in a few bytes each,
//! for the streaming passes that must find a repeat (an invoice whose lines are split in an
//! export, an invoice or `IdPce` twice in a PES file) without holding every key.
//!
//! It is a Bloom filter: "not seen" is certain, "maybe seen" is sometimes wrong (a false
//! positive, well under 1 % of the keys). A caller therefore treats "maybe seen" as a
//! *suspect* and settles it exactly on a later pass, holding only the suspects:
//!
//! ```
//! use encaisse_schemas::seen::SeenFilter;
//! let mut seen = SeenFilter::new();
//! assert!(!seen.check_and_insert(42));
//! assert!(seen.check_and_insert(42));
//! ```
//!
//! It grows with the keys, in slices that double (Almeida et al., "Scalable Bloom
//! Filters"): about 2 bytes per key when a slice has just filled, 4 just after a new one
//! was made — against 17 to 34 bytes per key for a hash set of 64-bit keys. Each slice is a
//! split-block filter (one 64-byte block per key, one bit set in each of its 8 words), so a
//! look-up reads one cache line per slice.

/// Keys the first slice holds; each next slice holds twice the previous one's.
const FIRST_CAPACITY: usize = 4096;
/// Bits per key of a full slice: 16 keeps a slice's false positives near 0.1 %.
const BITS_PER_KEY: usize = 16;
/// Keys per 512-bit block.
const KEYS_PER_BLOCK: usize = 512 / BITS_PER_KEY;
/// Odd multipliers choosing a key's bit in each word of its block (those of Parquet's
/// split-block filter).
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

type Block = [u64; 8];

struct Slice {
    blocks: Vec<Block>,
    capacity: usize,
    len: usize,
}

impl Slice {
    fn new(capacity: usize) -> Self {
        let blocks = capacity.div_ceil(KEYS_PER_BLOCK).max(1);
        Slice {
            blocks: vec![[0; 8]; blocks],
            capacity,
            len: 0,
        }
    }

    fn block(&self, h: u64) -> usize {
        // The high half picks the block (multiply-shift: no modulo, any block count)...
        (((h >> 32) * self.blocks.len() as u64) >> 32) as usize
    }

    fn contains(&self, h: u64) -> bool {
        let block = &self.blocks[self.block(h)];
        block.iter().zip(bits(h)).all(|(word, bit)| word & bit != 0)
    }

    fn insert(&mut self, h: u64) {
        let i = self.block(h);
        for (word, bit) in self.blocks[i].iter_mut().zip(bits(h)) {
            *word |= bit;
        }
        self.len += 1;
    }
}

/// ...and the low half one bit in each of the block's words.
fn bits(h: u64) -> impl Iterator<Item = u64> {
    let low = h as u32;
    SALT.iter()
        .map(move |s| 1u64 << (low.wrapping_mul(*s) >> 26))
}

/// Spreads any key (a small `IdPce` as well as a hash) over the 64 bits the filter uses
/// (SplitMix64's finaliser).
fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A growing Bloom filter of 64-bit keys (see the module documentation).
pub struct SeenFilter {
    slices: Vec<Slice>,
    /// Every look-up answers "maybe seen": for tests of what callers do with suspects.
    always_maybe: bool,
}

impl Default for SeenFilter {
    fn default() -> Self {
        SeenFilter::new()
    }
}

impl std::fmt::Debug for SeenFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenFilter")
            .field("keys", &self.slices.iter().map(|s| s.len).sum::<usize>())
            .field("bytes", &self.heap_bytes())
            .finish()
    }
}

impl SeenFilter {
    /// An empty filter (8 KiB until its first 4,096 keys).
    pub fn new() -> Self {
        SeenFilter {
            slices: Vec::new(),
            always_maybe: false,
        }
    }

    /// A filter whose every answer is "maybe seen", the worst false positives can do: a
    /// caller's exact settling of suspects must still give the exact result with it.
    pub fn always_maybe() -> Self {
        SeenFilter {
            slices: Vec::new(),
            always_maybe: true,
        }
    }

    /// Whether `key` may have been inserted before (`false`: certainly not); inserts it.
    /// Once a key is "maybe seen" it stays so: inserting it again would change nothing
    /// that matters, so it is not.
    pub fn check_and_insert(&mut self, key: u64) -> bool {
        if self.always_maybe {
            return true;
        }
        let h = mix(key);
        if self.slices.iter().any(|s| s.contains(h)) {
            return true;
        }
        let full = self.slices.last().is_none_or(|s| s.len >= s.capacity);
        if full {
            let capacity = self
                .slices
                .last()
                .map_or(FIRST_CAPACITY, |s| s.capacity.saturating_mul(2));
            self.slices.push(Slice::new(capacity));
        }
        if let Some(slice) = self.slices.last_mut() {
            slice.insert(h);
        }
        false
    }

    /// The bytes the filter holds.
    pub fn heap_bytes(&self) -> usize {
        self.slices
            .iter()
            .map(|s| s.blocks.len() * std::mem::size_of::<Block>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_forgets_a_key_and_rarely_imagines_one() {
        let mut seen = SeenFilter::new();
        let n = 300_000u64;
        let mut false_positives = 0;
        for k in 0..n {
            // Keys as the callers give them: hashes, and small consecutive numbers.
            if seen.check_and_insert(k) {
                false_positives += 1;
            }
        }
        for k in 0..n {
            assert!(seen.check_and_insert(k), "{k} forgotten");
        }
        assert!(
            false_positives < n / 200,
            "{false_positives} false positives in {n} keys"
        );
        // 2 to 4 bytes a key (a hash set of u64 holds 17 to 34).
        let bytes = seen.heap_bytes();
        assert!(bytes <= 4 * n as usize, "{bytes} bytes for {n} keys");
    }

    #[test]
    fn always_maybe_says_maybe() {
        let mut seen = SeenFilter::always_maybe();
        assert!(seen.check_and_insert(1));
        assert_eq!(seen.heap_bytes(), 0);
    }
}
