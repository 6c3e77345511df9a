//! The month's reconciliation of one tenant, per budget: what was invoiced, what was
//! collected through which channel, what PayFiP charged, what the bank rejected, what was
//! reversed, and what is still owed. The console's page, its CSV and `encaisse report
//! reconciliation` all come from [`reconcile`], so they cannot disagree.
//!
//! Definitions (times are the ledger's, in UTC; a month is `[YYYY-MM-01, next month)`):
//! - **invoiced**: invoices published from the month's exports (`polyfac_issued.published_at`);
//! - **collected**: payments first seen in the month (`polyfac_payment`, primary sightings
//!   only — a second source confirming a payment is not counted twice), by REGLEMENTS channel;
//! - **reversed**: payments reversed in the month (whenever they were collected);
//! - **commissions**: PayFiP operations resolved as paid in the month, at the commission the
//!   gateway stage computed from the dated tariff on the payment's day;
//! - **rejects**: direct debits the bank rejected or returned, dated in the month;
//! - **outstanding**: of the month's invoices, what is not (or no longer) paid today:
//!   invoiced − payments on them not reversed.
//!
//! Amounts are integer cents throughout; totals are sums of the rows.

use std::collections::BTreeMap;

use encaisse_ledger::LedgerError;
use encaisse_ledger::rusqlite::{self, Connection};
use serde::Serialize;

/// How the family paid, as finance reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Card (PayFiP `CB`).
    Card,
    /// One-off SEPA debit through PayFiP (`PRELEVEMENT_UNIQUE`).
    OneOffDebit,
    /// Recurrent direct debit (`PRELEVEMENT`).
    DirectDebit,
    /// TIP.
    Tip,
    /// At the counter of a régie or the Trésorerie (`GUICHET`).
    Counter,
    /// Anything else (`AUTRE`).
    Other,
}

impl Channel {
    /// Every channel, in the order reports show them.
    pub const ALL: [Channel; 6] = [
        Channel::Card,
        Channel::OneOffDebit,
        Channel::DirectDebit,
        Channel::Tip,
        Channel::Counter,
        Channel::Other,
    ];

    /// From a REGLEMENTS `Canal`.
    pub fn from_canal(canal: &str) -> Channel {
        match canal {
            "CB" => Channel::Card,
            "PRELEVEMENT_UNIQUE" => Channel::OneOffDebit,
            "PRELEVEMENT" => Channel::DirectDebit,
            "TIP" => Channel::Tip,
            "GUICHET" => Channel::Counter,
            _ => Channel::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Card => "card",
            Channel::OneOffDebit => "one_off_debit",
            Channel::DirectDebit => "direct_debit",
            Channel::Tip => "tip",
            Channel::Counter => "counter",
            Channel::Other => "other",
        }
    }
}

/// One budget's figures (or the totals), in cents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub invoices: i64,
    pub invoiced_cents: i64,
    /// Collected in the month, by channel.
    pub collected_cents: BTreeMap<Channel, i64>,
    pub commission_cents: i64,
    pub rejects: i64,
    pub rejected_cents: i64,
    pub reversed_cents: i64,
    pub outstanding_cents: i64,
}

impl Figures {
    /// Collected in the month, every channel.
    pub fn collected_total(&self) -> i64 {
        self.collected_cents.values().sum()
    }

    /// The figures in report order (invoices, invoiced, collected per channel in
    /// [`Channel::ALL`] order, collected total, commissions, rejects, rejected, reversed,
    /// outstanding), amounts written by `euros` from cents.
    pub fn cells(&self, euros: impl Fn(i64) -> String) -> Vec<String> {
        let mut cells = vec![self.invoices.to_string(), euros(self.invoiced_cents)];
        cells.extend(
            Channel::ALL
                .iter()
                .map(|c| euros(self.collected_cents.get(c).copied().unwrap_or_default())),
        );
        cells.extend([
            euros(self.collected_total()),
            euros(self.commission_cents),
            self.rejects.to_string(),
            euros(self.rejected_cents),
            euros(self.reversed_cents),
            euros(self.outstanding_cents),
        ]);
        cells
    }

    fn add(&mut self, other: &Figures) {
        self.invoices += other.invoices;
        self.invoiced_cents += other.invoiced_cents;
        for (channel, cents) in &other.collected_cents {
            *self.collected_cents.entry(*channel).or_default() += cents;
        }
        self.commission_cents += other.commission_cents;
        self.rejects += other.rejects;
        self.rejected_cents += other.rejected_cents;
        self.reversed_cents += other.reversed_cents;
        self.outstanding_cents += other.outstanding_cents;
    }
}

/// Collections of one day through one channel (the chart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Daily {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub channel: Channel,
    pub cents: i64,
}

/// The month's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub tenant: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Per budget key (`principal`); a payment on an invoice the ledger has no issue row for
    /// falls under `?`.
    pub budgets: BTreeMap<String, Figures>,
    pub totals: Figures,
    pub daily: Vec<Daily>,
}

/// A month that is not `YYYY-MM`.
#[derive(Debug, thiserror::Error)]
#[error("month {0:?} is not of the form YYYY-MM")]
pub struct BadMonth(pub String);

/// `[start, end)` of `YYYY-MM` as text bounds.
pub fn month_bounds(month: &str) -> Result<(String, String), BadMonth> {
    let bad = || BadMonth(month.to_string());
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) {
        return Err(bad());
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    Ok((format!("{y:04}-{m:02}-01"), format!("{ny:04}-{nm:02}-01")))
}

fn budget_of(budgets: &mut BTreeMap<String, Figures>, budget: Option<String>) -> &mut Figures {
    budgets
        .entry(budget.unwrap_or_else(|| "?".to_string()))
        .or_default()
}

/// Invoiced in the month per budget, and what of those invoices is still owed. `INDEXED BY`:
/// without statistics SQLite chose the payments' primary key on the tenant alone, reading every
/// payment of the tenant for each invoice (seconds on 20 000 invoices); the index named covers
/// what the subquery reads.
const INVOICED_SQL: &str = "SELECT i.budget, count(*), sum(i.total_cents),
                sum(i.total_cents - coalesce((SELECT sum(p.amount_cents)
                     FROM polyfac_payment p INDEXED BY polyfac_payment_paid
                     WHERE p.tenant = i.tenant AND p.invoice_key = i.invoice_key
                       AND p.confirms IS NULL AND p.reversed_at IS NULL), 0))
         FROM polyfac_issued i
         WHERE i.tenant = ?1 AND i.published_at >= ?2 AND i.published_at < ?3
         GROUP BY i.budget";

// The budget of a payment comes from its invoice by a LEFT JOIN (the payment drives: one
// look-up per row; a scalar subquery in a GROUP BY would be evaluated twice per row).

/// Collected in the month per budget, channel and day (primary sightings only).
const COLLECTED_SQL: &str =
    "SELECT i.budget, p.channel, substr(p.seen_at, 1, 10), sum(p.amount_cents)
         FROM polyfac_payment p
         LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
         WHERE p.tenant = ?1 AND p.seen_at >= ?2 AND p.seen_at < ?3 AND p.confirms IS NULL
         GROUP BY 1, 2, 3";

/// Reversed in the month per budget.
const REVERSED_SQL: &str = "SELECT i.budget, sum(p.amount_cents)
         FROM polyfac_payment p
         LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
         WHERE p.tenant = ?1 AND p.reversed_at >= ?2 AND p.reversed_at < ?3
           AND p.confirms IS NULL
         GROUP BY 1";

/// PayFiP commissions of the payments resolved as paid in the month, per budget.
const COMMISSIONS_SQL: &str = "SELECT i.budget, sum(o.commission_cents)
         FROM payfip_operation o
         LEFT JOIN polyfac_issued i ON i.tenant = o.tenant
             AND i.invoice_key = o.tenant || '/' || o.exercice || '/' || o.number
         WHERE o.tenant = ?1 AND o.resolved_at >= ?2 AND o.resolved_at < ?3
           AND o.outcome IN ('P', 'V') AND o.commission_cents IS NOT NULL
         GROUP BY 1";

/// Direct debits rejected or returned by the bank in the month, per budget.
const REJECTS_SQL: &str = "SELECT i.budget, count(*), coalesce(sum(s.amount_cents), 0)
         FROM sepa_collection s
         LEFT JOIN polyfac_issued i ON i.tenant = s.tenant AND i.invoice_key = s.invoice_key
         WHERE s.tenant = ?1 AND s.outcome_on >= ?2 AND s.outcome_on < ?3
           AND s.status IN ('rejected', 'returned')
         GROUP BY 1";

/// Every query of [`reconcile`] (`?1` tenant, `?2` and `?3` the month's bounds), for the
/// test that checks each one is answered from indexes.
pub const QUERIES: [&str; 5] = [
    INVOICED_SQL,
    COLLECTED_SQL,
    REVERSED_SQL,
    COMMISSIONS_SQL,
    REJECTS_SQL,
];

/// The reconciliation of `tenant` for `month` (`YYYY-MM`, already checked by
/// [`month_bounds`]).
pub fn reconcile(
    c: &Connection,
    tenant: &str,
    month: &str,
    (start, end): (&str, &str),
) -> Result<Reconciliation, LedgerError> {
    let mut budgets: BTreeMap<String, Figures> = BTreeMap::new();
    let p = rusqlite::params![tenant, start, end];

    // Invoiced, and what of it is still owed.
    let mut stmt = c.prepare(INVOICED_SQL)?;
    let mut rows = stmt.query(p)?;
    while let Some(r) = rows.next()? {
        let f = budget_of(&mut budgets, r.get(0)?);
        f.invoices += r.get::<_, i64>(1)?;
        f.invoiced_cents += r.get::<_, i64>(2)?;
        f.outstanding_cents += r.get::<_, i64>(3)?;
    }

    // Collected, by channel and by day.
    let mut daily: BTreeMap<(String, Channel), i64> = BTreeMap::new();
    let mut stmt = c.prepare(COLLECTED_SQL)?;
    let mut rows = stmt.query(p)?;
    while let Some(r) = rows.next()? {
        let channel = Channel::from_canal(&r.get::<_, String>(1)?);
        let cents: i64 = r.get(3)?;
        *budget_of(&mut budgets, r.get(0)?)
            .collected_cents
            .entry(channel)
            .or_default() += cents;
        *daily.entry((r.get(2)?, channel)).or_default() += cents;
    }

    // Reversed in the month.
    let mut stmt = c.prepare(REVERSED_SQL)?;
    let mut rows = stmt.query(p)?;
    while let Some(r) = rows.next()? {
        budget_of(&mut budgets, r.get(0)?).reversed_cents += r.get::<_, i64>(1)?;
    }

    // PayFiP commissions of the payments resolved in the month.
    let mut stmt = c.prepare(COMMISSIONS_SQL)?;
    let mut rows = stmt.query(p)?;
    while let Some(r) = rows.next()? {
        budget_of(&mut budgets, r.get(0)?).commission_cents += r.get::<_, i64>(1)?;
    }

    // Direct debits rejected or returned by the bank in the month.
    let mut stmt = c.prepare(REJECTS_SQL)?;
    let mut rows = stmt.query(p)?;
    while let Some(r) = rows.next()? {
        let f = budget_of(&mut budgets, r.get(0)?);
        f.rejects += r.get::<_, i64>(1)?;
        f.rejected_cents += r.get::<_, i64>(2)?;
    }

    let mut totals = Figures::default();
    for f in budgets.values() {
        totals.add(f);
    }
    Ok(Reconciliation {
        tenant: tenant.to_string(),
        month: month.to_string(),
        budgets,
        totals,
        daily: daily
            .into_iter()
            .map(|((day, channel), cents)| Daily {
                day,
                channel,
                cents,
            })
            .collect(),
    })
}

/// The reconciliation as CSV (one line per budget, then `TOTAL`; amounts in euros with a
/// dot and two decimals).
pub fn to_csv(r: &Reconciliation) -> String {
    let euros = |cents: i64| rust_decimal::Decimal::new(cents, 2).to_string();
    let mut out = String::from("tenant,month,budget,invoices,invoiced");
    for channel in Channel::ALL {
        out.push_str(",collected_");
        out.push_str(channel.as_str());
    }
    out.push_str(",collected_total,payfip_commissions,rejects,rejected,reversed,outstanding\n");
    let rows = r
        .budgets
        .iter()
        .map(|(b, f)| (b.as_str(), f))
        .chain(std::iter::once(("TOTAL", &r.totals)));
    for (budget, f) in rows {
        let mut line = vec![csv_field(&r.tenant), csv_field(&r.month), csv_field(budget)];
        line.extend(f.cells(euros));
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is neutralised so a
/// spreadsheet never runs it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_bound_their_days() {
        assert_eq!(
            month_bounds("2026-12").unwrap(),
            ("2026-12-01".into(), "2027-01-01".into())
        );
        assert_eq!(
            month_bounds("2026-03").unwrap(),
            ("2026-03-01".into(), "2026-04-01".into())
        );
        for bad in ["2026-13", "2026-3", "26-03", "2026/03", "x"] {
            assert!(month_bounds(bad).is_err(), "{bad}");
        }
    }

    fn ledger() -> (tempfile::TempDir, encaisse_ledger::Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = encaisse_ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
        (dir, ledger)
    }

    /// Every query is answered from indexes: no full scan of a table, whatever its size.
    #[test]
    fn every_query_uses_indexes() {
        let (_dir, ledger) = ledger();
        ledger
            .read_blocking(|c| {
                for sql in QUERIES {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let plan: Vec<String> = stmt
                        .query_map(
                            rusqlite::params!["vitry", "2026-03-01", "2026-04-01"],
                            |r| r.get(3),
                        )?
                        .collect::<Result<_, _>>()?;
                    // A full scan, or a search on the tenant alone (all its rows), would grow
                    // with the ledger.
                    assert!(
                        plan.iter()
                            .all(|step| !step.starts_with("SCAN ") && !step.ends_with("(tenant=?)")),
                        "{sql}\n{plan:#?}"
                    );
                    assert!(
                        plan.iter().any(|step| step.contains("USING INDEX")
                            || step.contains("USING COVERING INDEX")
                            || step.contains("USING PRIMARY KEY")),
                        "{sql}\n{plan:#?}"
                    );
                }
                Ok(())
            })
            .unwrap();
    }

    /// Figures per budget and channel, to the cent, from rows of every source; the totals are
    /// the sums of the budgets.
    #[tokio::test]
    async fn figures_come_from_every_source_to_the_cent() {
        let (_dir, ledger) = ledger();
        ledger
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO polyfac_issued (tenant, invoice_key, content_hash, run_id, file,
                         first_line, last_line, budget, collection, total_cents, message_id,
                         published_at) VALUES
                       ('vitry', 'vitry/2026/A1', 'h', 'r', 'f', 2, 2, 'principal', 'titres', 7013, 'm1', '2026-03-05T08:00:00Z'),
                       ('vitry', 'vitry/2026/A2', 'h', 'r', 'f', 3, 3, 'principal', 'titres', 3350, 'm2', '2026-03-31T23:59:59Z'),
                       ('vitry', 'vitry/2026/B1', 'h', 'r', 'f', 4, 4, 'eau', 'regie', 12000, 'm3', '2026-03-10T08:00:00Z'),
                       ('vitry', 'vitry/2026/C1', 'h', 'r', 'f', 5, 5, 'principal', 'titres', 999, 'm4', '2026-04-01T00:00:00Z'),
                       ('ivry', 'ivry/2026/A1', 'h', 'r', 'f', 2, 2, 'principal', 'titres', 5000, 'm5', '2026-03-05T08:00:00Z');
                     INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents,
                         channel, source, reference, seen_at, confirms, reversed_at) VALUES
                       ('vitry', 'payfip:1', 'vitry/2026/A1', 7013, 'CB', 'payfip', 'x', '2026-03-06T10:00:00Z', NULL, NULL),
                       ('vitry', 'helios:1', 'vitry/2026/A1', 7013, 'CB', 'helios', 'x', '2026-03-09T10:00:00Z', 'payfip:1', NULL),
                       ('vitry', 'sepa:1', 'vitry/2026/B1', 12000, 'PRELEVEMENT', 'bank', 'x', '2026-03-15T10:00:00Z', NULL, '2026-03-20T10:00:00Z'),
                       ('vitry', 'regie:1', 'vitry/2026/A2', 1000, 'GUICHET', 'regie', 'x', '2026-03-31T12:00:00Z', NULL, NULL);
                     INSERT INTO payfip_operation (op_id, tenant, exercice, number, channel, state,
                         active, payment_id, numcli, exer, refdet, amount_cents, mode, created_at,
                         outcome, commission_cents, resolved_at) VALUES
                       ('op1', 'vitry', 2026, 'A1', 'ws', 'done', 0, 'payfip:1', '1', 2026, 'A1', 7013, 'test', '2026-03-06T09:59:00Z', 'P', 18, '2026-03-06T10:00:00Z'),
                       ('op2', 'vitry', 2026, 'A2', 'ws', 'done', 0, NULL, '1', 2026, 'A2', 3350, 'test', '2026-03-06T09:59:00Z', 'A', NULL, '2026-03-06T10:00:00Z');
                     INSERT INTO sepa_collection (tenant, invoice_key, attempt, rum_key, due_date,
                         sequence, status, planned_at, amount_cents, outcome_code, outcome_on) VALUES
                       ('vitry', 'vitry/2026/B1', 1, 'R1', '2026-03-15', 'FRST', 'returned', '2026-03-01T00:00:00Z', 12000, 'AM04', '2026-03-20');",
                )?;
                Ok(())
            })
            .await
            .unwrap();
        ledger
            .read_blocking(|c| {
                let (start, end) = month_bounds("2026-03").unwrap();
                let r = reconcile(c, "vitry", "2026-03", (&start, &end))?;
                let principal = &r.budgets["principal"];
                assert_eq!((principal.invoices, principal.invoiced_cents), (2, 10363));
                assert_eq!(
                    principal.collected_cents[&Channel::Card],
                    7013,
                    "confirmation not counted twice"
                );
                assert_eq!(principal.collected_cents[&Channel::Counter], 1000);
                assert_eq!(principal.commission_cents, 18);
                assert_eq!(principal.outstanding_cents, 3350 - 1000);
                let eau = &r.budgets["eau"];
                assert_eq!(eau.collected_cents[&Channel::DirectDebit], 12000);
                assert_eq!(
                    (eau.rejects, eau.rejected_cents, eau.reversed_cents),
                    (1, 12000, 12000)
                );
                assert_eq!(
                    eau.outstanding_cents, 12000,
                    "a reversed payment no longer pays"
                );
                assert_eq!(r.totals.invoiced_cents, 22363);
                assert_eq!(r.totals.collected_total(), 20013);
                assert_eq!(r.totals.outstanding_cents, 14350);
                assert_eq!(r.daily.len(), 3);
                let csv = to_csv(&r);
                assert!(
                    csv.lines()
                        .last()
                        .unwrap()
                        .starts_with("vitry,2026-03,TOTAL,3,223.63,70.13,"),
                    "{csv}"
                );
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("plain"), "plain");
    }
}
