//! Reductions inside an invoice (quotient familial, absence credited, sibling discount) come
//! as negative lines, but a PES line amount (`MtHT`) must be > 0 and the family owes the
//! invoice's total. The negative lines are therefore netted into the invoice's positive
//! lines before the titre is written:
//!
//! 1. each reduction is taken from the positive lines of **its own imputation** (same
//!    `Nature`, `Fonction`, `CodProdLoc`), so the accounts of the budget see the net revenue;
//! 2. what an imputation cannot absorb (its reductions exceed its lines) is then taken from
//!    the invoice's other positive lines.
//!
//! In both steps the line taken from is the one with the **largest remaining amount** (on
//! equal amounts, the first in invoice order), and reductions are applied in invoice order:
//! the result depends only on the invoice, never on a hash or a clock. A line netted to zero
//! is not written. The net lines always add up to the invoice's total, to the cent.

/// One invoice line as the netting sees it: its imputation and its amount in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gross<K> {
    pub imputation: K,
    pub cents: i64,
}

/// The net amount (cents, ≥ 0) of each line of `lines`, in the same order: reductions are 0,
/// positive lines are what remains of them. `None` when the invoice's total is not > 0
/// (nothing can absorb the reductions).
pub(crate) fn net_lines<K: PartialEq>(lines: &[Gross<K>]) -> Option<Vec<i64>> {
    let total = lines
        .iter()
        .try_fold(0i64, |acc, l| acc.checked_add(l.cents))?;
    if total <= 0 {
        return None;
    }
    let mut net: Vec<i64> = lines.iter().map(|l| l.cents.max(0)).collect();
    let mut left: Vec<(usize, i64)> = Vec::new();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.cents < 0) {
        let (owed, _) = take(&mut net, line.cents.unsigned_abs(), |j| {
            lines[j].imputation == line.imputation
        });
        if owed > 0 {
            left.push((i, i64::try_from(owed).ok()?));
        }
    }
    for (_, owed) in left {
        let (still, _) = take(&mut net, owed.unsigned_abs(), |_| true);
        // The total is > 0, so the positive lines always cover the reductions.
        if still > 0 {
            return None;
        }
    }
    Some(net)
}

/// Takes `owed` cents from the lines `eligible` accepts, the largest first (the earliest on
/// equal amounts), lowering `net`; returns what could not be taken and, in order, each
/// `(line, cents)` taken.
pub(crate) fn take(
    net: &mut [i64],
    mut owed: u64,
    eligible: impl Fn(usize) -> bool,
) -> (u64, Vec<(usize, i64)>) {
    let mut taken_from = Vec::new();
    while owed > 0 {
        let mut best: Option<usize> = None;
        for (j, amount) in net.iter().enumerate() {
            if *amount > 0 && eligible(j) && best.is_none_or(|b| *amount > net[b]) {
                best = Some(j);
            }
        }
        let Some(j) = best else { break };
        // At most `net[j]`, an i64 > 0.
        let taken = i64::try_from(owed).unwrap_or(i64::MAX).min(net[j]);
        net[j] -= taken;
        owed -= taken.unsigned_abs();
        taken_from.push((j, taken));
    }
    (owed, taken_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(imputation: &'static str, cents: i64) -> Gross<&'static str> {
        Gross { imputation, cents }
    }

    #[test]
    fn a_reduction_is_taken_from_its_own_imputation_first() {
        // Cantine 40.00, étude 20.00, quotient familial on the cantine −1.50.
        let lines = [g("cant", 4000), g("etud", 2000), g("cant", -150)];
        assert_eq!(net_lines(&lines), Some(vec![3850, 2000, 0]));
    }

    #[test]
    fn the_largest_line_of_the_imputation_absorbs_first_then_the_next() {
        let lines = [g("cant", 300), g("cant", 500), g("cant", -600)];
        assert_eq!(net_lines(&lines), Some(vec![200, 0, 0]));
        // Equal amounts: the earliest line first.
        let lines = [g("cant", 500), g("cant", 500), g("cant", -100)];
        assert_eq!(net_lines(&lines), Some(vec![400, 500, 0]));
    }

    #[test]
    fn what_an_imputation_cannot_absorb_goes_to_the_other_lines() {
        // The étude reduction (−8.00) exceeds the étude line (5.00): 3.00 comes off the
        // largest other line, after the cantine's own reduction was applied.
        let lines = [
            g("cant", 4000),
            g("etud", 500),
            g("acc", 1000),
            g("etud", -800),
            g("cant", -100),
        ];
        let net = net_lines(&lines).unwrap();
        assert_eq!(net, vec![3600, 0, 1000, 0, 0]);
        assert_eq!(net.iter().sum::<i64>(), 4000 + 500 + 1000 - 800 - 100);
    }

    #[test]
    fn an_invoice_without_reductions_is_unchanged() {
        let lines = [g("cant", 4120), g("etud", 0)];
        assert_eq!(net_lines(&lines), Some(vec![4120, 0]));
    }

    #[test]
    fn a_total_of_zero_or_less_cannot_be_netted() {
        assert_eq!(net_lines(&[g("cant", 100), g("cant", -100)]), None);
        assert_eq!(net_lines(&[g("cant", 100), g("etud", -250)]), None);
        assert_eq!(net_lines::<&str>(&[]), None);
    }

    #[test]
    fn the_net_always_equals_the_total() {
        // Every mix of a few lines: net ≥ 0, sum = total, untouched when no reduction.
        let amounts = [-700, -150, 0, 90, 500, 1200];
        let keys = ["a", "b"];
        for a in amounts {
            for b in amounts {
                for c in amounts {
                    for (ka, kb) in [(0, 0), (0, 1), (1, 0)] {
                        let lines = [g(keys[ka], a), g(keys[kb], b), g("a", c)];
                        let total: i64 = lines.iter().map(|l| l.cents).sum();
                        match net_lines(&lines) {
                            Some(net) => {
                                assert!(total > 0);
                                assert!(net.iter().all(|n| *n >= 0), "{lines:?} → {net:?}");
                                assert_eq!(net.iter().sum::<i64>(), total, "{lines:?}");
                            }
                            None => assert!(total <= 0, "{lines:?}"),
                        }
                    }
                }
            }
        }
    }
}
