//! The month's reconciliation of one tenant, per budget and activity: what was invoiced, what
//! was collected through which channel, what PayFiP charged, what the bank rejected, what was
//! reversed, and what is still owed. The console's page, its CSV and `encaisse report
//! reconciliation` all come from [`reconcile`], so they cannot disagree.
//!
//! Months and days are Europe/Paris (the commune's): a payment at 2026-01-31T23:30Z belongs
//! to 1 February. Definitions:
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
//! Invoiced, outstanding and collected are read from the per-hour summaries that triggers keep
//! in the transaction writing the facts (`recon_issued`, `recon_collected`, ledger migration
//! `ops_0003`): a month of a large commune is a few hundred rows instead of every invoice and
//! payment in it. Every Paris month and day starts on a whole UTC hour, so hours cut them
//! exactly. The other figures are few rows a month and are read directly.
//!
//! Amounts are integer cents throughout (sums cast back to `BIGINT`, which PostgreSQL's
//! `sum` of integers is not); totals are sums of the rows. The queries run on either ledger
//! backend, inside [`encaisse_ledger::Ledger::inspect`].

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use encaisse_ledger::sql::Row;
use encaisse_ledger::{LedgerError, Tx};
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
    /// `YYYY-MM-DD`, in Europe/Paris.
    pub day: String,
    pub channel: Channel,
    pub cents: i64,
}

/// What a line of the reconciliation is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Group {
    /// Budget key (`principal`); `?` for payments on an invoice the ledger has no issue row
    /// for.
    pub budget: String,
    /// Activity code (`CANTINE`); `None` when unknown (invoices recorded before the ledger
    /// kept activities, payments on an unknown invoice).
    pub activity: Option<String>,
}

impl Group {
    /// From the summaries' columns, where unknown is ''.
    fn from_columns(budget: String, activity: String) -> Group {
        Group {
            budget: if budget.is_empty() {
                "?".into()
            } else {
                budget
            },
            activity: (!activity.is_empty()).then_some(activity),
        }
    }

    /// From a LEFT JOIN on the invoice (NULL when it is unknown).
    fn from_join(budget: Option<String>, activity: Option<String>) -> Group {
        Group::from_columns(budget.unwrap_or_default(), activity.unwrap_or_default())
    }
}

/// One line: a budget and activity, and its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    #[serde(flatten)]
    pub group: Group,
    pub figures: Figures,
}

/// The month's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub tenant: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Per budget and activity, in that order.
    pub lines: Vec<Line>,
    pub totals: Figures,
    pub daily: Vec<Daily>,
}

impl Reconciliation {
    /// Every line as (budget, activity, figures), then the totals as `TOTAL` without
    /// activity: the rows of the CSV, the CLI's table and the page.
    pub fn rows(&self) -> impl Iterator<Item = (&str, Option<&str>, &Figures)> {
        self.lines
            .iter()
            .map(|l| {
                (
                    l.group.budget.as_str(),
                    l.group.activity.as_deref(),
                    &l.figures,
                )
            })
            .chain(std::iter::once(("TOTAL", None, &self.totals)))
    }
}

/// A month that is not `YYYY-MM`.
#[derive(Debug, thiserror::Error)]
#[error("month {0:?} is not of the form YYYY-MM")]
pub struct BadMonth(pub String);

/// A Europe/Paris month as bounds on the ledger's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    /// `YYYY-MM`.
    pub text: String,
    /// `[start_hour, end_hour)`: the UTC hours (`YYYY-MM-DDTHH`) of the month's first instant
    /// and of the next month's. As a bound on an RFC 3339 UTC time, a 13-character prefix
    /// is right whatever follows it (seconds, fractions, `Z`).
    pub start_hour: String,
    pub end_hour: String,
    /// `[first_day, next_first_day)`: Paris days (`YYYY-MM-DD`), for the columns that hold
    /// days.
    pub first_day: String,
    pub next_first_day: String,
}

/// The UTC hour (`YYYY-MM-DDTHH`) at which a Paris day starts.
fn paris_midnight_utc(day: NaiveDate) -> String {
    let midnight = day.and_time(NaiveTime::MIN);
    // Paris changes time at 02:00 or 03:00, never at midnight: `earliest` always has one.
    let at = Paris
        .from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight));
    at.format("%Y-%m-%dT%H").to_string()
}

/// The Paris day of a summary hour (`YYYY-MM-DDTHH`, UTC); the text's first 10 characters
/// when it is not an hour (a time the ledger did not write).
fn paris_day(hour: &str) -> String {
    match NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M") {
        Ok(t) => Utc
            .from_utc_datetime(&t)
            .with_timezone(&Paris)
            .format("%Y-%m-%d")
            .to_string(),
        Err(_) => hour.chars().take(10).collect(),
    }
}

/// The bounds of `YYYY-MM` in Europe/Paris.
pub fn month_bounds(month: &str) -> Result<Month, BadMonth> {
    let bad = || BadMonth(month.to_string());
    let (y, m) = month.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let first = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
    let next = first.checked_add_months(Months::new(1)).ok_or_else(bad)?;
    Ok(Month {
        text: month.to_string(),
        start_hour: paris_midnight_utc(first),
        end_hour: paris_midnight_utc(next),
        first_day: first.format("%Y-%m-%d").to_string(),
        next_first_day: next.format("%Y-%m-%d").to_string(),
    })
}

/// Invoiced in the month per budget and activity, and what of those invoices is still owed
/// (the summary of their publication hours).
const INVOICED_SQL: &str = "SELECT budget, activity, CAST(sum(invoices) AS BIGINT),
             CAST(sum(invoiced_cents) AS BIGINT), CAST(sum(invoiced_cents - paid_cents) AS BIGINT)
         FROM recon_issued
         WHERE tenant = ?1 AND hour >= ?2 AND hour < ?3
         GROUP BY budget, activity HAVING sum(invoices) <> 0";

/// Collected in the month per budget, activity, channel and hour (primary sightings only);
/// hours are summed into Paris days here.
const COLLECTED_SQL: &str = "SELECT budget, activity, channel, hour, cents
         FROM recon_collected
         WHERE tenant = ?1 AND hour >= ?2 AND hour < ?3 AND payments <> 0";

// The budget of a payment comes from its invoice by a LEFT JOIN (the payment drives: one
// look-up per row).

/// Reversed in the month per budget and activity.
const REVERSED_SQL: &str = "SELECT i.budget, i.activity, CAST(sum(p.amount_cents) AS BIGINT)
         FROM polyfac_payment p
         LEFT JOIN polyfac_issued i ON i.tenant = p.tenant AND i.invoice_key = p.invoice_key
         WHERE p.tenant = ?1 AND p.reversed_at >= ?2 AND p.reversed_at < ?3
           AND p.confirms IS NULL
         GROUP BY 1, 2";

/// PayFiP commissions of the payments resolved as paid in the month, per budget and activity.
const COMMISSIONS_SQL: &str = "SELECT i.budget, i.activity, CAST(sum(o.commission_cents) AS BIGINT)
         FROM payfip_operation o
         LEFT JOIN polyfac_issued i ON i.tenant = o.tenant
             AND i.invoice_key = o.tenant || '/' || o.exercice || '/' || o.number
         WHERE o.tenant = ?1 AND o.resolved_at >= ?2 AND o.resolved_at < ?3
           AND o.outcome IN ('P', 'V') AND o.commission_cents IS NOT NULL
         GROUP BY 1, 2";

/// Direct debits rejected or returned by the bank in the month (a Paris day), per budget and
/// activity.
const REJECTS_SQL: &str = "SELECT i.budget, i.activity, count(*),
             CAST(coalesce(sum(s.amount_cents), 0) AS BIGINT)
         FROM sepa_collection s
         LEFT JOIN polyfac_issued i ON i.tenant = s.tenant AND i.invoice_key = s.invoice_key
         WHERE s.tenant = ?1 AND s.outcome_on >= ?2 AND s.outcome_on < ?3
           AND s.status IN ('rejected', 'returned')
         GROUP BY 1, 2";

/// Which bounds of the month a query takes as `?2` and `?3` (`?1` is the tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounds {
    /// Its UTC hours (`YYYY-MM-DDTHH`), for the columns that hold times.
    Hours,
    /// Its Paris days (`YYYY-MM-DD`), for the columns that hold days.
    Days,
}

/// Every query of [`reconcile`] with the bounds it takes, for the test that checks each one
/// is answered from indexes. Each uses all three parameters (PostgreSQL types a parameter
/// from its use: it refuses one a statement never uses).
pub const QUERIES: [(&str, Bounds); 5] = [
    (INVOICED_SQL, Bounds::Hours),
    (COLLECTED_SQL, Bounds::Hours),
    (REVERSED_SQL, Bounds::Hours),
    (COMMISSIONS_SQL, Bounds::Hours),
    (REJECTS_SQL, Bounds::Days),
];

/// The parameters of a query of [`QUERIES`].
pub fn month_params<'a>(tenant: &'a str, month: &'a Month, bounds: Bounds) -> [&'a str; 3] {
    match bounds {
        Bounds::Hours => [tenant, &month.start_hour, &month.end_hour],
        Bounds::Days => [tenant, &month.first_day, &month.next_first_day],
    }
}

/// Runs a query and hands each row to `each`.
fn each_row(
    tx: &mut Tx<'_>,
    (sql, bounds): (&str, Bounds),
    tenant: &str,
    month: &Month,
    each: impl FnMut(&Row<'_>) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let [a, b, c] = month_params(tenant, month, bounds);
    tx.query_each(sql, &[&a, &b, &c], each)
}

/// The reconciliation of `tenant` for `month`.
pub fn reconcile(
    tx: &mut Tx<'_>,
    tenant: &str,
    month: &Month,
) -> Result<Reconciliation, LedgerError> {
    let mut groups: BTreeMap<Group, Figures> = BTreeMap::new();
    let [invoiced, collected, reversed, commissions, rejects] = QUERIES;

    each_row(tx, invoiced, tenant, month, |r| {
        let f = groups
            .entry(Group::from_columns(r.get(0)?, r.get(1)?))
            .or_default();
        f.invoices += r.get::<i64>(2)?;
        f.invoiced_cents += r.get::<i64>(3)?;
        f.outstanding_cents += r.get::<i64>(4)?;
        Ok(())
    })?;

    let mut daily: BTreeMap<(String, Channel), i64> = BTreeMap::new();
    each_row(tx, collected, tenant, month, |r| {
        let channel = Channel::from_canal(&r.get::<String>(2)?);
        let cents: i64 = r.get(4)?;
        *groups
            .entry(Group::from_columns(r.get(0)?, r.get(1)?))
            .or_default()
            .collected_cents
            .entry(channel)
            .or_default() += cents;
        *daily
            .entry((paris_day(&r.get::<String>(3)?), channel))
            .or_default() += cents;
        Ok(())
    })?;

    each_row(tx, reversed, tenant, month, |r| {
        groups
            .entry(Group::from_join(r.get(0)?, r.get(1)?))
            .or_default()
            .reversed_cents += r.get::<i64>(2)?;
        Ok(())
    })?;

    each_row(tx, commissions, tenant, month, |r| {
        groups
            .entry(Group::from_join(r.get(0)?, r.get(1)?))
            .or_default()
            .commission_cents += r.get::<i64>(2)?;
        Ok(())
    })?;

    each_row(tx, rejects, tenant, month, |r| {
        let f = groups
            .entry(Group::from_join(r.get(0)?, r.get(1)?))
            .or_default();
        f.rejects += r.get::<i64>(2)?;
        f.rejected_cents += r.get::<i64>(3)?;
        Ok(())
    })?;

    Ok(assemble(tenant, &month.text, groups, daily))
}

/// The reconciliation from its lines and the chart's days; the totals are the lines' sums.
fn assemble(
    tenant: &str,
    month: &str,
    groups: BTreeMap<Group, Figures>,
    daily: BTreeMap<(String, Channel), i64>,
) -> Reconciliation {
    let mut totals = Figures::default();
    for f in groups.values() {
        totals.add(f);
    }
    Reconciliation {
        tenant: tenant.to_string(),
        month: month.to_string(),
        lines: groups
            .into_iter()
            .map(|(group, figures)| Line { group, figures })
            .collect(),
        totals,
        daily: daily
            .into_iter()
            .map(|((day, channel), cents)| Daily {
                day,
                channel,
                cents,
            })
            .collect(),
    }
}

/// The reconciliation as CSV (one line per budget and activity, then `TOTAL`; amounts in euros with a
/// dot and two decimals).
pub fn to_csv(r: &Reconciliation) -> String {
    let euros = |cents: i64| rust_decimal::Decimal::new(cents, 2).to_string();
    let mut out = String::from("tenant,month,budget,activity,invoices,invoiced");
    for channel in Channel::ALL {
        out.push_str(",collected_");
        out.push_str(channel.as_str());
    }
    out.push_str(",collected_total,payfip_commissions,rejects,rejected,reversed,outstanding\n");
    for (budget, activity, f) in r.rows() {
        let mut line = vec![
            csv_field(&r.tenant),
            csv_field(&r.month),
            csv_field(budget),
            csv_field(activity.unwrap_or_default()),
        ];
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
mod tests;
