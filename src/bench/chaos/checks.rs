//! The chaos run's end state, checked strictly: every valid invoice in exactly one titre of
//! exactly one PES file, every file valid (XSD and business rules), the ledger agreeing with
//! the files, nothing left in any queue, nothing parked. Each check that fails adds a line
//! naming what is wrong; the counts are returned either way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use encaisse_helios::aller::{Bordereau, Titre, titre_shape};
use encaisse_ledger::files::sha256_hex;
use encaisse_schemas::{PaymentMode, SequenceType};

use super::super::broker::Rabbitmqctl;
use super::super::error::{BenchError, Result};
use super::super::export;
use super::super::ledger::LedgerView;
use crate::config::Config;
use encaisse_helios::sim::{Sent, SentPiece, read_sent};
use encaisse_schemas::Money;

/// What the export should have become, read back outside the daemon.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Invoices the Polyfac rules accept, by number.
    pub valid: BTreeMap<String, ExpectedInvoice>,
    /// Invoices the Polyfac rules reject.
    pub rejected: u64,
}

#[derive(Debug, Clone)]
pub struct ExpectedInvoice {
    pub key: String,
    pub total_cents: i64,
    /// Why Hélios's rules refuse it (`helios.titres` reports it and sends no titre), if so.
    pub refused: Option<String>,
}

impl Expected {
    pub fn titres(&self) -> usize {
        self.valid.values().filter(|i| i.refused.is_none()).count()
    }

    pub fn refused(&self) -> usize {
        self.valid.len() - self.titres()
    }
}

/// Reads the export back and applies Hélios's per-invoice rules (`titre_shape`, the check
/// `helios.titres` runs before numbering).
pub fn expected(export_file: &Path, config: &Config, tenant: &str) -> Result<Expected> {
    let (t, helios) = export::helios_tenant(config, tenant)?;
    let date = export::today();
    let mut expected = Expected::default();
    let tally = export::read_invoices(export_file, config, tenant, |invoice| {
        let refused = match t.budgets.iter().find(|b| b.code == invoice.budget) {
            None => Some(format!("budget {} not configured", invoice.budget)),
            Some(budget) => {
                let bordereau = Bordereau {
                    config: helios,
                    budget,
                    exercice: invoice.invoice.exercice,
                    id_bord: 1,
                    date,
                };
                let titre = Titre {
                    invoice: &invoice,
                    id_pce: 1,
                    sequence: (invoice.payment_mode == PaymentMode::Prelevement)
                        .then_some(SequenceType::Rcur),
                    asap_pdf: None,
                };
                titre_shape(&bordereau, &titre)
                    .err()
                    .map(|e| format!("{}: {}", e.field, e.rule))
            }
        };
        expected.valid.insert(
            invoice.invoice.number.clone(),
            ExpectedInvoice {
                key: invoice.invoice.key(),
                total_cents: invoice.total.cents(),
                refused,
            },
        );
        std::ops::ControlFlow::Continue(())
    })?;
    expected.rejected = tally.rejected;
    Ok(expected)
}

/// The counts the run prints.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub valid_invoices: usize,
    pub rejected_by_ingest: u64,
    pub expected_titres: usize,
    pub expected_refused_by_helios: usize,
    pub pes_files: usize,
    pub bordereaux: usize,
    pub titres_in_files: usize,
    pub distinct_invoices_in_files: usize,
    pub ledger_titres: u64,
    pub ledger_refused: u64,
    pub titre_emitted_facts: u64,
    pub queues_checked: usize,
    pub parked: u64,
}

/// Where the run's outputs are.
pub struct Outputs<'a> {
    pub data_dir: &'a Path,
    pub tenant: &'a str,
    pub export_name: &'a str,
    pub prefix: &'a str,
}

/// Runs every check; returns the counts and the failures (empty: all held).
pub fn check_all(
    outputs: &Outputs<'_>,
    expected: &Expected,
    ledger: &LedgerView,
    ctl: &Rabbitmqctl,
) -> Result<(Counts, Vec<String>)> {
    let mut counts = Counts {
        valid_invoices: expected.valid.len(),
        rejected_by_ingest: expected.rejected,
        expected_titres: expected.titres(),
        expected_refused_by_helios: expected.refused(),
        ..Counts::default()
    };
    let mut failures = Vec::new();
    check_ingest(outputs, expected, ledger, &mut failures)?;
    let files = read_files(outputs, &mut counts, &mut failures)?;
    check_invoices_in_files(expected, &files, &mut counts, &mut failures);
    check_ledger_agrees(
        outputs,
        expected,
        &files,
        ledger,
        &mut counts,
        &mut failures,
    )?;

    let queues = ctl.work_queues(outputs.prefix)?;
    counts.queues_checked = queues.len();
    if queues.is_empty() {
        failures.push(format!(
            "no queue of prefix {} found: wrong broker?",
            outputs.prefix
        ));
    }
    for q in queues.iter().filter(|q| q.total() > 0) {
        failures.push(format!(
            "queue {} still holds {} ready and {} unacked messages",
            q.name, q.messages_ready, q.messages_unacknowledged
        ));
    }
    counts.parked = ledger.parked()?;
    if counts.parked > 0 {
        failures.push(format!(
            "{} parked message(s) in the ledger (encaisse dlq list): nothing should be parked",
            counts.parked
        ));
    }
    Ok((counts, failures))
}

fn check_ingest(
    outputs: &Outputs<'_>,
    expected: &Expected,
    ledger: &LedgerView,
    failures: &mut Vec<String>,
) -> Result<()> {
    let runs: u64 = ledger.tx()?.query_one(
        "SELECT count(*) FROM polyfac_run WHERE tenant = ?1",
        &[&outputs.tenant],
        |r| LedgerView::count(r, 0),
    )?;
    if runs != 1 {
        failures.push(format!(
            "{runs} Polyfac runs recorded for one export (expected 1)"
        ));
    }
    match ledger.ingest_run(outputs.tenant, outputs.export_name)? {
        None => failures.push("the export's run was never closed".into()),
        Some(run) => {
            if run.invoices != expected.valid.len() as u64 {
                failures.push(format!(
                    "the run published {} invoices; the export holds {} valid ones",
                    run.invoices,
                    expected.valid.len()
                ));
            }
            if run.refused != expected.rejected {
                failures.push(format!(
                    "the run rejected {} invoices; the export holds {} invalid ones",
                    run.refused, expected.rejected
                ));
            }
        }
    }
    let issued = ledger.issued(outputs.tenant)?;
    if issued != expected.valid.len() as u64 {
        failures.push(format!(
            "{issued} invoices recorded as issued; expected {}",
            expected.valid.len()
        ));
    }
    let polyfac = outputs.data_dir.join(outputs.tenant).join("polyfac");
    if !polyfac.join("archive").join(outputs.export_name).is_file() {
        failures.push(format!("{} was not archived", outputs.export_name));
    }
    let left = list(&polyfac.join("inbox"))?;
    if !left.is_empty() {
        failures.push(format!("files left in polyfac/inbox: {left:?}"));
    }
    Ok(())
}

/// File names in a directory (sorted).
fn list(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| BenchError::io(dir.display().to_string(), e))? {
        let entry = entry.map_err(|e| BenchError::io(dir.display().to_string(), e))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// A pièce's amount: the sum of its lines' `MtHT`, in cents (`None` if one is unreadable).
fn piece_cents(p: &SentPiece) -> Option<i64> {
    p.lines
        .iter()
        .map(|l| Money::parse(&l.amount).ok().map(|m| m.cents()))
        .sum()
}

/// A file's pièces and total, in cents.
fn file_totals(sent: &Sent) -> (i64, i64) {
    let pieces = sent.pieces().count() as i64;
    let cents = sent.pieces().filter_map(|(_, p)| piece_cents(p)).sum();
    (pieces, cents)
}

/// A PES file read from the outbox, with its bytes' hash.
struct OnDisk {
    name: String,
    sha256: String,
    bytes: u64,
    sent: Sent,
}

fn read_files(
    outputs: &Outputs<'_>,
    counts: &mut Counts,
    failures: &mut Vec<String>,
) -> Result<Vec<OnDisk>> {
    let outbox = outputs
        .data_dir
        .join(outputs.tenant)
        .join("helios")
        .join("outbox");
    let schema = encaisse_helios::schemas::pes_aller();
    // Without the official schema (a bare clone: docs/schemas.md) the files are still
    // checked against the PES rules below; the XSD check is skipped and counted.
    let validate = encaisse_xml::specs::schema_or_skip(
        &schema,
        "the chaos run's PES files against PES_Aller.xsd",
    );
    // The daemon's own files, read whole: a PES of 20,000 titres holds more elements than
    // the cap set for files from outside (about 60 per titre), so only the size is bounded.
    let own_output = encaisse_xml::tree::Limits::new(u64::MAX).with_elements(usize::MAX);
    let mut files = Vec::new();
    for name in list(&outbox)? {
        let path = outbox.join(&name);
        if name.starts_with('.') {
            failures.push(format!("temporary file left in helios/outbox: {name}"));
            continue;
        }
        let bytes =
            std::fs::read(&path).map_err(|e| BenchError::io(path.display().to_string(), e))?;
        if validate && let Err(e) = encaisse_xml::xsd::validate_file(&schema, &path) {
            failures.push(format!("{name}: not valid against PES_Aller.xsd: {e}"));
        }
        match encaisse_helios::read::aller_check::check_pes_aller(&bytes, own_output) {
            Ok(report) if report.is_valid() => {}
            Ok(report) => failures.push(format!(
                "{name}: breaks PES rules: {}",
                report
                    .findings
                    .iter()
                    .take(5)
                    .map(|f| format!("line {} {} {}", f.line, f.path, f.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Err(e) => failures.push(format!("{name}: unreadable: {e}")),
        }
        let sent = match read_sent(&bytes, own_output) {
            Ok(sent) => sent,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if sent.nom_fic != name && sent.nom_fic != name.trim_end_matches(".xml") {
            failures.push(format!("{name}: NomFic is {:?}", sent.nom_fic));
        }
        for b in &sent.bordereaux {
            if b.nbr_pce as usize != b.pieces.len() {
                failures.push(format!(
                    "{name}: bordereau {} declares {} pièces and holds {}",
                    b.id_bord,
                    b.nbr_pce,
                    b.pieces.len()
                ));
            }
        }
        counts.pes_files += 1;
        counts.bordereaux += sent.bordereaux.len();
        files.push(OnDisk {
            name,
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            sent,
        });
    }
    Ok(files)
}

/// The invoice an `ObjPce` names: the word that is one of the export's invoice numbers.
fn named_invoice<'a>(
    object: &str,
    expected: &'a Expected,
) -> Option<(&'a str, &'a ExpectedInvoice)> {
    object
        .split_whitespace()
        .find_map(|word| expected.valid.get_key_value(word))
        .map(|(k, v)| (k.as_str(), v))
}

fn check_invoices_in_files(
    expected: &Expected,
    files: &[OnDisk],
    counts: &mut Counts,
    failures: &mut Vec<String>,
) {
    let mut seen: HashMap<&str, Vec<String>> = HashMap::new();
    let mut pieces = BTreeSet::new();
    for f in files {
        for b in &f.sent.bordereaux {
            for p in &b.pieces {
                counts.titres_in_files += 1;
                let at = format!("{} bordereau {} pièce {}", f.name, b.id_bord, p.id_pce);
                if !pieces.insert((
                    f.sent.cod_col.clone(),
                    f.sent.cod_bud.clone(),
                    b.exercice,
                    p.id_pce,
                )) {
                    failures.push(format!("{at}: IdPce used twice in the budget's exercice"));
                }
                match named_invoice(p.object.as_deref().unwrap_or_default(), expected) {
                    None => failures.push(format!(
                        "{at}: ObjPce {:?} names no invoice of the export",
                        p.object
                    )),
                    Some((number, invoice)) => {
                        if let Some(why) = &invoice.refused {
                            failures.push(format!("{at}: invoice {number} is in a file though Hélios refuses it ({why})"));
                        }
                        if piece_cents(p) != Some(invoice.total_cents) {
                            failures.push(format!(
                                "{at}: invoice {number} for {:?} cents; the export says {}",
                                piece_cents(p),
                                invoice.total_cents
                            ));
                        }
                        seen.entry(number).or_default().push(at);
                    }
                }
            }
        }
    }
    counts.distinct_invoices_in_files = seen.len();
    for (number, places) in seen.iter().filter(|(_, p)| p.len() > 1) {
        failures.push(format!(
            "invoice {number} is in {} titres: {}",
            places.len(),
            places.join(", ")
        ));
    }
    let missing: Vec<&str> = expected
        .valid
        .iter()
        .filter(|(number, i)| i.refused.is_none() && !seen.contains_key(number.as_str()))
        .map(|(number, _)| number.as_str())
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} valid invoice(s) in no PES file, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
}

fn check_ledger_agrees(
    outputs: &Outputs<'_>,
    expected: &Expected,
    files: &[OnDisk],
    ledger: &LedgerView,
    counts: &mut Counts,
    failures: &mut Vec<String>,
) -> Result<()> {
    let mut tx = ledger.tx()?;
    let tenant = outputs.tenant;
    // Files: planned, written, recorded as emitted, with the bytes on disk.
    let planned = tx.query_all(
        "SELECT file_name, CASE WHEN written_at IS NULL THEN 0 ELSE 1 END, sha256, pieces,
             total_cents, bordereaux
         FROM helios_file WHERE tenant = ?1",
        &[&tenant],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<bool>(1)?,
                r.get::<Option<String>>(2)?,
                r.get::<i64>(3)?,
                r.get::<i64>(4)?,
                r.get::<i64>(5)?,
            ))
        },
    )?;
    let outbox = outputs.data_dir.join(tenant).join("helios").join("outbox");
    let mut rows = Vec::with_capacity(planned.len());
    for (name, written, sha, pieces, total, bordereaux) in planned {
        let emitted: Option<(String, i64)> = tx.query_opt(
            "SELECT sha256, bytes FROM emitted_file WHERE path = ?1",
            &[&outbox.join(&name).display().to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (emitted_sha, emitted_bytes) = emitted.unzip();
        rows.push((
            name,
            written,
            sha,
            pieces,
            total,
            bordereaux,
            emitted_sha,
            emitted_bytes,
        ));
    }
    let on_disk: HashMap<&str, &OnDisk> = files.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut recorded = BTreeSet::new();
    for (name, written, sha, pieces, total, bordereaux, emitted_sha, emitted_bytes) in rows {
        recorded.insert(name.clone());
        if !written {
            failures.push(format!("ledger: {name} planned and never written"));
            continue;
        }
        let Some(disk) = on_disk.get(name.as_str()) else {
            failures.push(format!(
                "ledger: {name} recorded as written, not in helios/outbox"
            ));
            continue;
        };
        if sha.as_deref() != Some(disk.sha256.as_str())
            || emitted_sha.as_deref() != Some(disk.sha256.as_str())
            || emitted_bytes != Some(disk.bytes as i64)
        {
            failures.push(format!(
                "ledger: {name}: recorded hash {sha:?} / emitted {emitted_sha:?} ({emitted_bytes:?} bytes) ≠ the file's {} ({} bytes)",
                disk.sha256, disk.bytes
            ));
        }
        let (disk_pieces, disk_cents) = file_totals(&disk.sent);
        if pieces != disk_pieces
            || total != disk_cents
            || bordereaux != disk.sent.bordereaux.len() as i64
        {
            failures.push(format!(
                "ledger: {name}: {pieces} pièces / {total} cents / {bordereaux} bordereaux recorded; the file has {} / {} / {}",
                disk_pieces,
                disk_cents,
                disk.sent.bordereaux.len()
            ));
        }
    }
    for f in files.iter().filter(|f| !recorded.contains(&f.name)) {
        failures.push(format!(
            "{}: in helios/outbox, unknown to the ledger",
            f.name
        ));
    }

    // Titres: the ledger's invoice ↔ pièce mapping is the files'.
    let ledger_titres: HashMap<(String, String, u16, u32), (u32, String)> = tx
        .query_all(
            "SELECT cod_col, cod_bud, exercice, id_pce, id_bord, invoice_key FROM helios_titre WHERE tenant = ?1",
            &[&tenant],
            |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                    (r.get(4)?, r.get(5)?),
                ))
            },
        )?
        .into_iter()
        .collect();
    counts.ledger_titres = ledger_titres.len() as u64;
    if ledger_titres.len() != counts.titres_in_files {
        failures.push(format!(
            "ledger: {} titres recorded; the files hold {}",
            ledger_titres.len(),
            counts.titres_in_files
        ));
    }
    for f in files {
        for b in &f.sent.bordereaux {
            for p in &b.pieces {
                let key = (
                    f.sent.cod_col.clone(),
                    f.sent.cod_bud.clone(),
                    b.exercice,
                    p.id_pce,
                );
                let named = named_invoice(p.object.as_deref().unwrap_or_default(), expected)
                    .map(|(_, i)| i.key.as_str());
                match ledger_titres.get(&key) {
                    None => failures.push(format!(
                        "ledger: no titre for {} pièce {}",
                        f.name, p.id_pce
                    )),
                    Some((id_bord, invoice)) => {
                        if *id_bord != b.id_bord || Some(invoice.as_str()) != named {
                            failures.push(format!(
                                "ledger: {} pièce {} is invoice {invoice} in bordereau {id_bord}; the file says {named:?} in bordereau {}",
                                f.name, p.id_pce, b.id_bord
                            ));
                        }
                    }
                }
            }
        }
    }

    // Refusals: exactly the invoices Hélios's rules refuse.
    let refused: BTreeSet<String> = tx
        .query_all(
            "SELECT invoice_key FROM helios_refused WHERE tenant = ?1",
            &[&tenant],
            |r| r.get(0),
        )?
        .into_iter()
        .collect();
    counts.ledger_refused = refused.len() as u64;
    let should: BTreeSet<String> = expected
        .valid
        .values()
        .filter(|i| i.refused.is_some())
        .map(|i| i.key.clone())
        .collect();
    if refused != should {
        let extra: Vec<_> = refused.difference(&should).take(5).collect();
        let missing: Vec<_> = should.difference(&refused).take(5).collect();
        failures.push(format!(
            "ledger: {} invoices refused by helios.titres, {} expected (refused but valid: {extra:?}; not refused: {missing:?})",
            refused.len(),
            should.len()
        ));
    }

    // The journal: one titre_emitted fact per titre.
    let (facts, distinct): (u64, u64) = tx.query_one(
        "SELECT count(*), count(DISTINCT invoice_key) FROM invoice_event WHERE tenant = ?1 AND kind = 'titre_emitted'",
        &[&tenant],
        |r| Ok((LedgerView::count(r, 0)?, LedgerView::count(r, 1)?)),
    )?;
    counts.titre_emitted_facts = facts;
    if facts != distinct || facts != counts.titres_in_files as u64 {
        failures.push(format!(
            "journal: {facts} titre_emitted facts for {distinct} invoices; the files hold {} titres",
            counts.titres_in_files
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use encaisse_helios::sim::{SentBordereau, SentLine};

    use super::*;

    fn expected() -> Expected {
        let mut expected = Expected::default();
        for (number, cents, refused) in [
            ("F2026-0000001", 1234, None),
            ("F2026-0000002", 500, None),
            (
                "F2026-0000003",
                800,
                Some("payer.address.postal_code: not 5 digits".to_string()),
            ),
        ] {
            expected.valid.insert(
                number.into(),
                ExpectedInvoice {
                    key: format!("bench/2026/{number}"),
                    total_cents: cents,
                    refused,
                },
            );
        }
        expected
    }

    fn piece(id_pce: u32, object: &str, amounts: &[&str]) -> SentPiece {
        SentPiece {
            id_pce,
            typ_pce: "01".into(),
            object: Some(object.into()),
            num_dette: None,
            per: None,
            cle1: None,
            cle2: None,
            lines: amounts
                .iter()
                .enumerate()
                .map(|(i, a)| SentLine {
                    id_ligne: i as u32 + 1,
                    amount: a.to_string(),
                    sequence: None,
                })
                .collect(),
        }
    }

    fn file(pieces: Vec<SentPiece>) -> OnDisk {
        OnDisk {
            name: "PESALR1_21940081000012_2026_0000001.xml".into(),
            sha256: String::new(),
            bytes: 0,
            sent: Sent {
                nom_fic: "PESALR1_21940081000012_2026_0000001.xml".into(),
                id_post: "094000".into(),
                id_coll: "21940081000012".into(),
                cod_col: "081".into(),
                cod_bud: "00".into(),
                bordereaux: vec![SentBordereau {
                    exercice: 2026,
                    id_bord: 1,
                    typ_bord: "01".into(),
                    nbr_pce: pieces.len() as u32,
                    pieces,
                }],
            },
        }
    }

    fn failures_of(files: &[OnDisk]) -> (Counts, Vec<String>) {
        let mut counts = Counts::default();
        let mut failures = Vec::new();
        check_invoices_in_files(&expected(), files, &mut counts, &mut failures);
        (counts, failures)
    }

    #[test]
    fn every_valid_invoice_once_passes() {
        let (counts, failures) = failures_of(&[file(vec![
            piece(1, "FACTURE F2026-0000001 DECEMBRE 2026", &["10.00", "2.34"]),
            piece(2, "FACTURE F2026-0000002 DECEMBRE 2026", &["5.00"]),
        ])]);
        assert_eq!(failures, Vec::<String>::new());
        assert_eq!(
            (counts.titres_in_files, counts.distinct_invoices_in_files),
            (2, 2)
        );
    }

    #[test]
    fn a_duplicate_a_loss_a_wrong_amount_and_a_refused_invoice_are_reported() {
        let (_, failures) = failures_of(&[
            file(vec![
                piece(1, "FACTURE F2026-0000001 DECEMBRE 2026", &["12.34"]),
                piece(2, "FACTURE F2026-0000003 DECEMBRE 2026", &["8.00"]),
            ]),
            file(vec![piece(
                1,
                "FACTURE F2026-0000001 DECEMBRE 2026",
                &["12.00"],
            )]),
        ]);
        let all = failures.join("\n");
        assert!(all.contains("IdPce used twice"), "{all}");
        assert!(
            all.contains("invoice F2026-0000001 is in 2 titres"),
            "{all}"
        );
        assert!(
            all.contains("F2026-0000003 is in a file though Hélios refuses it"),
            "{all}"
        );
        assert!(
            all.contains("for Some(1200) cents; the export says 1234"),
            "{all}"
        );
        assert!(all.contains("1 valid invoice(s) in no PES file"), "{all}");
        assert!(all.contains("F2026-0000002"), "{all}");
    }

    #[test]
    fn the_invoice_is_found_in_the_object() {
        let expected = expected();
        let (number, invoice) =
            named_invoice("FACTURE F2026-0000001 DECEMBRE 2026", &expected).unwrap();
        assert_eq!(number, "F2026-0000001");
        assert_eq!(invoice.total_cents, 1234);
        assert!(named_invoice("FACTURE F2026-0000009 DECEMBRE 2026", &expected).is_none());
    }
}
