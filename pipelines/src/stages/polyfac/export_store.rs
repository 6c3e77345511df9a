//! Ledger tables of `polyfac.export` (`ledger/migrations/polyfac_0001.sql`, `_0003`): invoices learnt
//! from `invoice.issued`, payment sightings, REGLEMENTS lines and files. Every function takes
//! the [`Tx`] of `Ledger::transact` / `Ledger::inspect` and runs on SQLite and PostgreSQL.
//!
//! Where SQLite's single writer made a read-then-write safe, PostgreSQL (several daemons, READ
//! COMMITTED) needs the database to decide: inserts are `ON CONFLICT DO NOTHING` and say
//! whether they recorded, a payment's matching locks its invoice's row
//! ([`lock_invoice`]), and a REGLEMENTS file is planned under a lock of its outbox
//! ([`plan_next_file`]).

use encaisse_ledger::sql::Row;
use encaisse_ledger::{LedgerError, Tx};
use encaisse_polyfac::reglements::canal;
use encaisse_schemas::{Channel, Money, PaymentSource};

fn corrupt(field: &str, value: &str) -> LedgerError {
    LedgerError::Corrupt(format!("{field}: unexpected value {value:?}"))
}

/// What the stage knows of an invoice (from its `invoice.issued`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownInvoice {
    pub family_code: String,
    pub total: Money,
    pub content_hash: String,
    /// For a credit note: the number of the invoice it reduces.
    pub origin_number: Option<String>,
    /// The source application that issued it (`source.application`): which outbox its
    /// REGLEMENTS lines go to.
    pub application: String,
}

/// An invoice learnt from `invoice.issued`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSeen {
    pub tenant: String,
    pub invoice_key: String,
    pub family_code: String,
    pub total: Money,
    pub payment_mode: String,
    pub application: String,
    pub content_hash: String,
    /// For a credit note: the number of the invoice it reduces (`total` is then what it
    /// takes off).
    pub origin_number: Option<String>,
}

/// Records an invoice; the first `invoice.issued` of an invoice key wins (the ingest never
/// issues a number twice), also when two transactions learn it at once: the insert decides,
/// and the loser reads the winner's row once it is committed. Returns the content hash
/// recorded before, when it differs.
pub fn learn_invoice(
    tx: &mut Tx<'_>,
    seen: &InvoiceSeen,
    at: &str,
) -> Result<Option<String>, LedgerError> {
    let inserted = tx.execute(
        "INSERT INTO polyfac_export_invoice (tenant, invoice_key, family_code, total_cents,
             payment_mode, application, content_hash, seen_at, origin_number)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant, invoice_key) DO NOTHING",
        &[
            &seen.tenant,
            &seen.invoice_key,
            &seen.family_code,
            &seen.total.cents(),
            &seen.payment_mode,
            &seen.application,
            &seen.content_hash,
            &at,
            &seen.origin_number,
        ],
    )?;
    if inserted == 1 {
        return Ok(None);
    }
    let known = invoice(tx, &seen.tenant, &seen.invoice_key)?.ok_or_else(|| {
        LedgerError::Corrupt(format!(
            "polyfac_export_invoice {}: neither inserted nor found",
            seen.invoice_key
        ))
    })?;
    Ok((known.content_hash != seen.content_hash).then_some(known.content_hash))
}

const INVOICE_SELECT: &str = "SELECT family_code, total_cents, content_hash, origin_number, \
     application FROM polyfac_export_invoice WHERE tenant = ?1 AND invoice_key = ?2";

fn known_invoice(r: &Row<'_>) -> Result<KnownInvoice, LedgerError> {
    let cents: i64 = r.get(1)?;
    Ok(KnownInvoice {
        family_code: r.get(0)?,
        total: Money::from_cents(cents)
            .map_err(|_| corrupt("polyfac_export_invoice.total_cents", &cents.to_string()))?,
        content_hash: r.get(2)?,
        origin_number: r.get(3)?,
        application: r.get(4)?,
    })
}

pub fn invoice(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<KnownInvoice>, LedgerError> {
    tx.query_opt(INVOICE_SELECT, &[&tenant, &invoice_key], known_invoice)
}

/// [`invoice`], its row locked until the transaction ends on PostgreSQL (`FOR UPDATE`): the
/// payments of one invoice are matched one transaction after the other, so two sightings
/// handled at once by two daemons cannot both become primaries, nor both confirm one
/// primary. SQLite's one writer already orders them.
pub fn lock_invoice(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<KnownInvoice>, LedgerError> {
    if !tx.is_postgres() {
        return invoice(tx, tenant, invoice_key);
    }
    tx.query_opt(
        &format!("{INVOICE_SELECT} FOR UPDATE"),
        &[&tenant, &invoice_key],
        known_invoice,
    )
}

/// One sighting of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub payment_id: String,
    pub invoice_key: String,
    pub amount_cents: i64,
    pub channel: Channel,
    pub source: PaymentSource,
    pub reference: String,
    /// The primary sighting this one confirms.
    pub confirms: Option<String>,
    /// For a primary: the sighting that confirmed it.
    pub confirmed_by: Option<String>,
    pub reversed: bool,
}

pub fn source_text(s: PaymentSource) -> &'static str {
    match s {
        PaymentSource::Payfip => "payfip",
        PaymentSource::Helios => "helios",
        PaymentSource::Bank => "bank",
        PaymentSource::Regie => "regie",
    }
}

fn source_from_text(text: &str) -> Result<PaymentSource, LedgerError> {
    Ok(match text {
        "payfip" => PaymentSource::Payfip,
        "helios" => PaymentSource::Helios,
        "bank" => PaymentSource::Bank,
        "regie" => PaymentSource::Regie,
        other => return Err(corrupt("polyfac_payment.source", other)),
    })
}

fn channel_from_canal(text: &str) -> Result<Channel, LedgerError> {
    Ok(match text {
        "CB" => Channel::Cb,
        "PRELEVEMENT_UNIQUE" => Channel::PrelevementUnique,
        "PRELEVEMENT" => Channel::Prelevement,
        "TIP" => Channel::Tip,
        "GUICHET" => Channel::Guichet,
        "AUTRE" => Channel::Autre,
        other => return Err(corrupt("polyfac_payment.channel", other)),
    })
}

const SIGHTING_COLUMNS: &str = "payment_id, invoice_key, amount_cents, channel, source, reference, \
     confirms, confirmed_by, reversed_at IS NOT NULL";

fn sighting_row(r: &Row<'_>) -> Result<Sighting, LedgerError> {
    let channel: String = r.get(3)?;
    let source: String = r.get(4)?;
    Ok(Sighting {
        payment_id: r.get(0)?,
        invoice_key: r.get(1)?,
        amount_cents: r.get(2)?,
        channel: channel_from_canal(&channel)?,
        source: source_from_text(&source)?,
        reference: r.get(5)?,
        confirms: r.get(6)?,
        confirmed_by: r.get(7)?,
        reversed: r.get(8)?,
    })
}

/// The sighting `payment_id`, if seen.
pub fn sighting(
    tx: &mut Tx<'_>,
    tenant: &str,
    payment_id: &str,
) -> Result<Option<Sighting>, LedgerError> {
    tx.query_opt(
        &format!(
            "SELECT {SIGHTING_COLUMNS} FROM polyfac_payment WHERE tenant = ?1 AND payment_id = ?2"
        ),
        &[&tenant, &payment_id],
        sighting_row,
    )
}

/// Primary sightings of an invoice not yet confirmed nor reversed, first seen first.
pub fn open_primaries(
    tx: &mut Tx<'_>,
    tenant: &str,
    invoice_key: &str,
) -> Result<Vec<Sighting>, LedgerError> {
    tx.query_all(
        &format!(
            "SELECT {SIGHTING_COLUMNS} FROM polyfac_payment
             WHERE tenant = ?1 AND invoice_key = ?2 AND confirms IS NULL AND confirmed_by IS NULL
               AND reversed_at IS NULL
             ORDER BY seen_at, payment_id"
        ),
        &[&tenant, &invoice_key],
        sighting_row,
    )
}

/// Records a sighting; `confirms` = the primary it confirms (which is marked confirmed).
/// `false`, and nothing changed, when this payment was already recorded (by a transaction
/// that committed first, on PostgreSQL).
pub fn record_sighting(
    tx: &mut Tx<'_>,
    tenant: &str,
    s: &Sighting,
    at: &str,
) -> Result<bool, LedgerError> {
    let inserted = tx.execute(
        "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents, channel,
             source, reference, seen_at, confirms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant, payment_id) DO NOTHING",
        &[
            &tenant,
            &s.payment_id,
            &s.invoice_key,
            &s.amount_cents,
            &canal(s.channel),
            &source_text(s.source),
            &s.reference,
            &at,
            &s.confirms,
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    if let Some(primary) = &s.confirms {
        tx.execute(
            "UPDATE polyfac_payment SET confirmed_by = ?3 WHERE tenant = ?1 AND payment_id = ?2",
            &[&tenant, primary, &s.payment_id],
        )?;
    }
    Ok(true)
}

/// Marks a primary sighting reversed.
pub fn mark_reversed(
    tx: &mut Tx<'_>,
    tenant: &str,
    primary: &str,
    at: &str,
) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE polyfac_payment SET reversed_at = ?3 WHERE tenant = ?1 AND payment_id = ?2",
        &[&tenant, &primary, &at],
    )?;
    Ok(())
}

/// A REGLEMENTS line to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine<'a> {
    pub tenant: &'a str,
    /// The outbox: `""` for the tenant's default source, else a further source's name.
    pub source: &'a str,
    /// What makes the line unique: the same key twice keeps one line.
    pub event_key: &'a str,
    pub invoice_key: &'a str,
    pub statut: &'a str,
    /// The day of the file it belongs to (Europe/Paris, ISO).
    pub day: &'a str,
    /// The row, rendered in its source's return dialect.
    pub bytes: &'a [u8],
}

/// Records a line once; `false` when a line with the same key was already recorded.
pub fn record_line(tx: &mut Tx<'_>, line: &NewLine<'_>, at: &str) -> Result<bool, LedgerError> {
    let inserted = tx.execute(
        "INSERT INTO polyfac_reglement_line (tenant, event_key, invoice_key, statut, day, bytes,
             recorded_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant, event_key) DO NOTHING",
        &[
            &line.tenant,
            &line.event_key,
            &line.invoice_key,
            &line.statut,
            &line.day,
            &line.bytes,
            &at,
            &line.source,
        ],
    )?;
    Ok(inserted == 1)
}

/// A REGLEMENTS file planned in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub id: i64,
    pub tenant: String,
    /// The outbox (`""`: the tenant's default source).
    pub source: String,
    pub day: String,
    pub seq: u32,
    pub name: String,
    pub lines: u32,
}

/// The next file to write for the outbox `source` of `tenant`: a planned file not written
/// yet (a crash between planning and writing), else a new file for the earliest day with
/// unassigned lines — its `seq` is the outbox's next that day, and the lines are assigned to
/// it. `None`: nothing to write.
///
/// `seq` is `MAX + 1` of the outbox's day, which SQLite's one writer serialises. On
/// PostgreSQL the whole plan first takes a transaction lock of the outbox
/// (`pg_advisory_xact_lock`, held to commit or rollback): two daemons planning at once
/// follow one another, the second sees the first's file (and its lines assigned), so a day's
/// numbers are gapless (a rolled-back plan gives its number back) and every line is in
/// exactly one file; the unique `(tenant, source, day, seq)` stays as the backstop.
pub fn plan_next_file(
    tx: &mut Tx<'_>,
    tenant: &str,
    source: &str,
    name_of: impl Fn(&str, u32) -> Result<String, LedgerError>,
    at: &str,
) -> Result<Option<PlannedFile>, LedgerError> {
    if tx.is_postgres() {
        let outbox = format!("polyfac_reglements_file/{tenant}/{source}");
        tx.query_one(
            "SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))) AS locked",
            &[&outbox],
            |_| Ok(()),
        )?;
    }
    let unwritten = tx.query_opt(
        "SELECT id, tenant, source, day, seq, name, lines FROM polyfac_reglements_file
         WHERE tenant = ?1 AND source = ?2 AND written_at IS NULL ORDER BY id LIMIT 1",
        &[&tenant, &source],
        |r| {
            Ok(PlannedFile {
                id: r.get(0)?,
                tenant: r.get(1)?,
                source: r.get(2)?,
                day: r.get(3)?,
                seq: r.get(4)?,
                name: r.get(5)?,
                lines: r.get(6)?,
            })
        },
    )?;
    if unwritten.is_some() {
        return Ok(unwritten);
    }
    let day: Option<String> = tx.query_one(
        "SELECT min(day) FROM polyfac_reglement_line
         WHERE tenant = ?1 AND source = ?2 AND file_id IS NULL",
        &[&tenant, &source],
        |r| r.get(0),
    )?;
    let Some(day) = day else {
        return Ok(None);
    };
    let seq: u32 = tx.query_one(
        "SELECT coalesce(max(seq), 0) + 1 FROM polyfac_reglements_file
         WHERE tenant = ?1 AND source = ?2 AND day = ?3",
        &[&tenant, &source, &day],
        |r| r.get(0),
    )?;
    let name = name_of(&day, seq)?;
    let id: i64 = tx.query_one(
        "INSERT INTO polyfac_reglements_file (tenant, source, day, seq, name, lines, planned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
         RETURNING id",
        &[&tenant, &source, &day, &seq, &name, &at],
        |r| r.get(0),
    )?;
    let lines = tx.execute(
        "UPDATE polyfac_reglement_line SET file_id = ?4
         WHERE tenant = ?1 AND source = ?2 AND day = ?3 AND file_id IS NULL",
        &[&tenant, &source, &day, &id],
    )?;
    let lines = u32::try_from(lines).unwrap_or(u32::MAX);
    tx.execute(
        "UPDATE polyfac_reglements_file SET lines = ?2 WHERE id = ?1",
        &[&id, &lines],
    )?;
    Ok(Some(PlannedFile {
        id,
        tenant: tenant.to_string(),
        source: source.to_string(),
        day,
        seq,
        name,
        lines,
    }))
}

/// The rows of a planned file (bytes of each line, in the order they were recorded), with
/// the invoice of each line.
pub fn file_rows(tx: &mut Tx<'_>, file_id: i64) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
    tx.query_all(
        "SELECT invoice_key, bytes FROM polyfac_reglement_line WHERE file_id = ?1 ORDER BY id",
        &[&file_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Marks a planned file written.
pub fn mark_written(tx: &mut Tx<'_>, file_id: i64, at: &str) -> Result<(), LedgerError> {
    tx.execute(
        "UPDATE polyfac_reglements_file SET written_at = ?2 WHERE id = ?1 AND written_at IS NULL",
        &[&file_id, &at],
    )?;
    Ok(())
}
