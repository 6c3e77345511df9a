//! Ledger tables of `polyfac.export` (`ledger/migrations/polyfac_0001.sql`, `_0003`): invoices learnt
//! from `invoice.issued`, payment sightings, REGLEMENTS lines and files. Every function takes
//! a connection of `Ledger::write` / `Ledger::read`.

use encaisse_ledger::LedgerError;
use encaisse_ledger::rusqlite::{Connection, OptionalExtension};
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
/// issues a number twice). Returns the content hash recorded before, when it differs.
pub fn learn_invoice(
    c: &Connection,
    seen: &InvoiceSeen,
    at: &str,
) -> Result<Option<String>, LedgerError> {
    if let Some(known) = invoice(c, &seen.tenant, &seen.invoice_key)? {
        return Ok((known.content_hash != seen.content_hash).then_some(known.content_hash));
    }
    c.prepare_cached(
        "INSERT INTO polyfac_export_invoice (tenant, invoice_key, family_code, total_cents,
             payment_mode, application, content_hash, seen_at, origin_number)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute((
        &seen.tenant,
        &seen.invoice_key,
        &seen.family_code,
        seen.total.cents(),
        &seen.payment_mode,
        &seen.application,
        &seen.content_hash,
        at,
        &seen.origin_number,
    ))?;
    Ok(None)
}

pub fn invoice(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<Option<KnownInvoice>, LedgerError> {
    let row = c
        .query_row(
            "SELECT family_code, total_cents, content_hash, origin_number, application
             FROM polyfac_export_invoice WHERE tenant = ?1 AND invoice_key = ?2",
            (tenant, invoice_key),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ))
            },
        )
        .optional()?;
    row.map(
        |(family_code, cents, content_hash, origin_number, application)| {
            Ok(KnownInvoice {
                family_code,
                total: Money::from_cents(cents).map_err(|_| {
                    corrupt("polyfac_export_invoice.total_cents", &cents.to_string())
                })?,
                content_hash,
                origin_number,
                application,
            })
        },
    )
    .transpose()
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

type RawSighting = (
    String,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
);

fn raw_sighting(
    r: &encaisse_ledger::rusqlite::Row<'_>,
) -> encaisse_ledger::rusqlite::Result<RawSighting> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn sighting_from(raw: RawSighting) -> Result<Sighting, LedgerError> {
    let (
        payment_id,
        invoice_key,
        amount_cents,
        channel,
        source,
        reference,
        confirms,
        confirmed_by,
        reversed,
    ) = raw;
    Ok(Sighting {
        payment_id,
        invoice_key,
        amount_cents,
        channel: channel_from_canal(&channel)?,
        source: source_from_text(&source)?,
        reference,
        confirms,
        confirmed_by,
        reversed,
    })
}

/// The sighting `payment_id`, if seen.
pub fn sighting(
    c: &Connection,
    tenant: &str,
    payment_id: &str,
) -> Result<Option<Sighting>, LedgerError> {
    c.query_row(
        &format!(
            "SELECT {SIGHTING_COLUMNS} FROM polyfac_payment WHERE tenant = ?1 AND payment_id = ?2"
        ),
        (tenant, payment_id),
        raw_sighting,
    )
    .optional()?
    .map(sighting_from)
    .transpose()
}

/// Primary sightings of an invoice not yet confirmed nor reversed, first seen first.
pub fn open_primaries(
    c: &Connection,
    tenant: &str,
    invoice_key: &str,
) -> Result<Vec<Sighting>, LedgerError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {SIGHTING_COLUMNS} FROM polyfac_payment
         WHERE tenant = ?1 AND invoice_key = ?2 AND confirms IS NULL AND confirmed_by IS NULL
           AND reversed_at IS NULL
         ORDER BY seen_at, payment_id"
    ))?;
    let rows = stmt
        .query_map((tenant, invoice_key), raw_sighting)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(sighting_from).collect()
}

/// Records a sighting; `confirms` = the primary it confirms (which is marked confirmed).
pub fn record_sighting(
    c: &Connection,
    tenant: &str,
    s: &Sighting,
    at: &str,
) -> Result<(), LedgerError> {
    c.prepare_cached(
        "INSERT INTO polyfac_payment (tenant, payment_id, invoice_key, amount_cents, channel,
             source, reference, seen_at, confirms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute((
        tenant,
        &s.payment_id,
        &s.invoice_key,
        s.amount_cents,
        canal(s.channel),
        source_text(s.source),
        &s.reference,
        at,
        &s.confirms,
    ))?;
    if let Some(primary) = &s.confirms {
        c.prepare_cached(
            "UPDATE polyfac_payment SET confirmed_by = ?3 WHERE tenant = ?1 AND payment_id = ?2",
        )?
        .execute((tenant, primary, &s.payment_id))?;
    }
    Ok(())
}

/// Marks a primary sighting reversed.
pub fn mark_reversed(
    c: &Connection,
    tenant: &str,
    primary: &str,
    at: &str,
) -> Result<(), LedgerError> {
    c.prepare_cached(
        "UPDATE polyfac_payment SET reversed_at = ?3 WHERE tenant = ?1 AND payment_id = ?2",
    )?
    .execute((tenant, primary, at))?;
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
pub fn record_line(c: &Connection, line: &NewLine<'_>, at: &str) -> Result<bool, LedgerError> {
    let inserted = c.prepare_cached("INSERT INTO polyfac_reglement_line (tenant, event_key, invoice_key, statut, day, bytes, recorded_at, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (tenant, event_key) DO NOTHING")?.execute(
        (
            line.tenant,
            line.event_key,
            line.invoice_key,
            line.statut,
            line.day,
            line.bytes,
            at,
            line.source,
        ),
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
pub fn plan_next_file(
    c: &Connection,
    tenant: &str,
    source: &str,
    name_of: impl Fn(&str, u32) -> Result<String, LedgerError>,
    at: &str,
) -> Result<Option<PlannedFile>, LedgerError> {
    let unwritten = c
        .query_row(
            "SELECT id, tenant, source, day, seq, name, lines FROM polyfac_reglements_file
             WHERE tenant = ?1 AND source = ?2 AND written_at IS NULL ORDER BY id LIMIT 1",
            [tenant, source],
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
        )
        .optional()?;
    if unwritten.is_some() {
        return Ok(unwritten);
    }
    let day: Option<String> = c
        .query_row(
            "SELECT min(day) FROM polyfac_reglement_line
             WHERE tenant = ?1 AND source = ?2 AND file_id IS NULL",
            [tenant, source],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(day) = day else {
        return Ok(None);
    };
    let seq: u32 = c
        .prepare_cached(
            "SELECT coalesce(max(seq), 0) + 1 FROM polyfac_reglements_file
             WHERE tenant = ?1 AND source = ?2 AND day = ?3",
        )?
        .query_row((tenant, source, &day), |r| r.get(0))?;
    let name = name_of(&day, seq)?;
    c.prepare_cached(
        "INSERT INTO polyfac_reglements_file (tenant, source, day, seq, name, lines, planned_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
    )?
    .execute((tenant, source, &day, seq, &name, at))?;
    let id = c.last_insert_rowid();
    let lines = c
        .prepare_cached(
            "UPDATE polyfac_reglement_line SET file_id = ?4
             WHERE tenant = ?1 AND source = ?2 AND day = ?3 AND file_id IS NULL",
        )?
        .execute((tenant, source, &day, id))?;
    let lines = u32::try_from(lines).unwrap_or(u32::MAX);
    c.prepare_cached("UPDATE polyfac_reglements_file SET lines = ?2 WHERE id = ?1")?
        .execute((id, lines))?;
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
pub fn file_rows(c: &Connection, file_id: i64) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
    let mut stmt = c.prepare(
        "SELECT invoice_key, bytes FROM polyfac_reglement_line WHERE file_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([file_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks a planned file written.
pub fn mark_written(c: &Connection, file_id: i64, at: &str) -> Result<(), LedgerError> {
    c.prepare_cached(
        "UPDATE polyfac_reglements_file SET written_at = ?2 WHERE id = ?1 AND written_at IS NULL",
    )?
    .execute((file_id, at))?;
    Ok(())
}
