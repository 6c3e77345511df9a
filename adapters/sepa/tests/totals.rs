//! NbOfTxs / CtrlSum at group and block level on random batches (a seeded property test)
//! and on a large file, checked by reading the written bytes back.

mod common;

use std::collections::BTreeMap;

use common::*;
use encaisse_schemas::{Money, SequenceType};
use encaisse_sepa::read::pain008::read_pain008;
use encaisse_sepa::{Collection, Pain008Version, build};

/// xorshift64: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DATES: [(u32, u32); 3] = [(12, 7), (12, 8), (12, 15)];
const SEQUENCES: [SequenceType; 4] = [
    SequenceType::Frst,
    SequenceType::Rcur,
    SequenceType::Fnal,
    SequenceType::Ooff,
];

fn random_batch(rng: &mut Rng, size: usize) -> Vec<Collection> {
    (0..size)
        .map(|i| {
            let cents = match rng.below(10) {
                0 => 99_999_999_999,
                1 => 1,
                _ => 1 + rng.below(500_000) as i64,
            };
            let mut c = collection(&format!("F{i:06}"), cents);
            let (m, day) = DATES[rng.below(3) as usize];
            c.due_date = d(2026, m, day);
            c.sequence = SEQUENCES[rng.below(4) as usize];
            c
        })
        .collect()
}

/// Expected (count, cents) per (date, sequence), computed independently of the writer.
fn expected(batch: &[Collection]) -> BTreeMap<(String, &'static str), (u64, u64)> {
    let mut map = BTreeMap::new();
    for c in batch {
        let entry = map
            .entry((c.due_date.to_string(), c.sequence.as_str()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 += c.amount.cents() as u64;
    }
    map
}

fn check(batch: &[Collection], version: Pain008Version, limit: u64) {
    let message = build(
        settings(version),
        header("PROP-MSG-1"),
        party(),
        creditor(),
        batch,
    )
    .unwrap();
    let bytes = message.to_xml().unwrap();
    let sent = read_pain008("prop.xml", &bytes, limit).unwrap();
    assert!(
        sent.total_mismatches().is_empty(),
        "{:?}",
        sent.total_mismatches()
    );
    let total_cents: u64 = batch.iter().map(|c| c.amount.cents() as u64).sum();
    assert_eq!(sent.declared_count, batch.len() as u64);
    assert_eq!(sent.declared_cents, Some(total_cents));
    let mut by_block = BTreeMap::new();
    for block in &sent.blocks {
        let key = (block.due_date.to_string(), block.sequence.unwrap().as_str());
        assert!(
            by_block
                .insert(
                    key,
                    (block.declared_count.unwrap(), block.declared_cents.unwrap())
                )
                .is_none(),
            "one block per (date, sequence)"
        );
    }
    assert_eq!(by_block, expected(batch));
    // The decimal CtrlSum in the file is exactly the integer sum of cents.
    let text = String::from_utf8(bytes).unwrap();
    let ctrl = Money::from_cents(total_cents as i64)
        .unwrap()
        .to_dot_string();
    assert!(
        text.contains(&format!("<CtrlSum>{ctrl}</CtrlSum>")),
        "{ctrl}"
    );
}

#[test]
fn random_batches_have_exact_counts_and_sums() {
    let mut rng = Rng(0x5E9A_2026_u64.wrapping_mul(0x9E37_79B9));
    for round in 0..150 {
        let size = 1 + rng.below(40) as usize;
        let batch = random_batch(&mut rng, size);
        let version = if round % 2 == 0 {
            Pain008Version::V02
        } else {
            Pain008Version::V08
        };
        check(&batch, version, 1 << 22);
    }
}

#[test]
fn large_file_is_exact_and_schema_valid() {
    let mut rng = Rng(42);
    let batch = random_batch(&mut rng, 5000);
    check(&batch, Pain008Version::V02, 64 << 20);
    let bytes = build(
        settings(Pain008Version::V02),
        header("PROP-MSG-1"),
        party(),
        creditor(),
        &batch,
    )
    .unwrap()
    .to_xml()
    .unwrap();
    encaisse_xml::specs::validate_bytes_or_skip(
        &sepa_spec("pain.008.001.02.xsd"),
        "large.xml",
        &bytes,
    )
    .unwrap();
}
