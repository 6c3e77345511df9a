//! `encaisse trace <invoice>`: the life of one invoice, from the ledger alone, in time order.
//!
//! Sources, all keyed by the invoice (`tenant/exercice/number`):
//! - the journal `invoice_event`: the facts each stage records (`issued` with the export file
//!   and lines, `titre_emitted` with exercice / bordereau / pièce, `payfip_paid`,
//!   `collection_planned`, `payment_rejected`, `reglement_recorded`…);
//! - `processed_message`: every message a stage handled about it (type, stage, when);
//! - `emitted_file`: the files the facts name (PES Aller, pain.008, REGLEMENTS…);
//! - `parked_message`: messages about it that were parked, and what ops did with them.
//!
//! Facts are shown whatever their kind: a known kind gets a label, and every detail the
//! stage recorded is shown as it is, so a new fact needs no change here.

use std::collections::BTreeSet;

use encaisse_ledger::{LedgerError, Tx};
use serde::Serialize;
use serde_json::{Map, Value, json};

use encaisse_ledger::OpsStore;

use super::store::{Filter, ParkedSummary};

/// Why a trace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no invoice {0} in the ledger")]
    NotFound(String),
    #[error("{given} matches several invoices: {}; give the full key tenant/exercice/number or --tenant", .candidates.join(", "))]
    Ambiguous {
        given: String,
        candidates: Vec<String>,
    },
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
}

impl TraceError {
    /// Retry class: only a ledger failure may pass.
    pub fn class(&self) -> encaisse_schemas::ErrorClass {
        match self {
            TraceError::Ledger(e) if e.is_transient() => encaisse_schemas::ErrorClass::Transient,
            _ => encaisse_schemas::ErrorClass::Permanent,
        }
    }
}

/// One step of an invoice's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// RFC 3339.
    pub at: String,
    /// `journal` (a stage's fact), `message` (a message handled), `file` (a file written),
    /// `parked` (a parked message and what ops did).
    pub source: &'static str,
    /// The fact's kind (`issued`, `titre_emitted`…), `handled`, `file_emitted`, `parked`,
    /// `replayed`, `discarded`.
    pub kind: String,
    pub stage: Option<String>,
    /// The credit note whose journal this step comes from, when it is not the invoice's own.
    pub credit_note: Option<String>,
    /// One line for people, in English ([`phrase`] in either language): what the CLI shows.
    pub summary: String,
    /// Everything recorded, as JSON: with `kind`, what [`phrase`] words.
    pub detail: Value,
}

/// The language a step is phrased in: the console speaks French by default, the CLI English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    French,
    English,
}

impl Language {
    fn t(self, fr: &'static str, en: &'static str) -> &'static str {
        match self {
            Language::French => fr,
            Language::English => en,
        }
    }
}

/// A file written about the invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRef {
    pub kind: String,
    pub path: String,
    pub sha256: String,
    pub bytes: i64,
    pub written_at: String,
}

/// The whole trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub invoice: String,
    pub tenant: String,
    pub steps: Vec<Step>,
    pub files: Vec<FileRef>,
    pub parked: Vec<ParkedSummary>,
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The invoice keys `given` may mean: a full key `tenant/exercice/number`, or
/// `exercice/number` or `number` (within `tenant` when given).
pub fn candidates(
    tx: &mut Tx<'_>,
    given: &str,
    tenant: Option<&str>,
) -> Result<Vec<String>, LedgerError> {
    let parts = given.split('/').count();
    let pattern = match (parts, tenant) {
        (3.., Some(t)) if !given.starts_with(&format!("{t}/")) => format!("{t}/{given}"),
        (3.., _) => given.to_string(),
        (2, Some(t)) => format!("{t}/{given}"),
        (_, Some(t)) => format!("{t}/%/{}", escape_like(given)),
        (2, None) => format!("%/{}", escape_like(given)),
        (_, None) => format!("%/%/{}", escape_like(given)),
    };
    let exact = !pattern.contains('%');
    let condition = if exact {
        "invoice_key = ?1"
    } else {
        "invoice_key LIKE ?1 ESCAPE '\\'"
    };
    let sql = format!(
        "SELECT invoice_key FROM invoice_event WHERE {condition}
         UNION SELECT invoice_key FROM processed_message WHERE {condition}
         UNION SELECT invoice_key FROM parked_message WHERE {condition}
         ORDER BY 1 LIMIT 20"
    );
    let mut keys: Vec<String> = tx.query_all(&sql, &[&pattern], |r| r.get(0))?;
    // Byte order on both backends (PostgreSQL's collation may order text otherwise).
    keys.sort();
    // A `%` pattern also matches numbers containing '/': keep keys of three parts whose
    // trailing parts are exactly what was given.
    keys.retain(|k| exact || k.ends_with(&format!("/{given}")));
    Ok(keys)
}

/// The one invoice `given` means.
pub fn resolve(tx: &mut Tx<'_>, given: &str, tenant: Option<&str>) -> Result<String, TraceError> {
    let mut keys = candidates(tx, given, tenant)?;
    match keys.len() {
        0 => Err(TraceError::NotFound(given.to_string())),
        1 => Ok(keys.remove(0)),
        _ => Err(TraceError::Ambiguous {
            given: given.to_string(),
            candidates: keys,
        }),
    }
}

/// What a journal fact's kind means, in French and English.
fn label(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "issued" => (
            "Facture lue dans l'export et publiée",
            "Invoice read from the export and published",
        ),
        "refused" => (
            "Facture refusée à l'ingestion",
            "Invoice refused at ingestion",
        ),
        "rejected" => (
            "Facture rejetée à la validation, non publiée (voir le compte rendu de l'export)",
            "Invoice rejected at validation, not published (see the export's report)",
        ),
        "mandate_imported" => (
            "Historique du mandat importé (encaisse mandates import)",
            "Mandate history imported (encaisse mandates import)",
        ),
        "titre_emitted" => (
            "Titre émis vers la Trésorerie (PES Aller)",
            "Titre emitted to the Trésorerie (PES Aller)",
        ),
        "titre_refused" => ("Titre non émis", "Titre not emitted"),
        "titre_accepted" => (
            "Titre accepté par la Trésorerie",
            "Titre accepted by the Trésorerie",
        ),
        "titre_rejected" => (
            "Titre rejeté par la Trésorerie",
            "Titre rejected by the Trésorerie",
        ),
        "payfip_attempt" => (
            "Paiement en ligne commencé (PayFiP)",
            "Online payment started (PayFiP)",
        ),
        "payfip_paid" => ("Payé en ligne (PayFiP)", "Paid online (PayFiP)"),
        "payfip_failed" => (
            "Le paiement en ligne n'a pas payé (PayFiP)",
            "Online payment did not pay (PayFiP)",
        ),
        "payfip_announced" => (
            "Paiement en ligne annoncé par le résultat PayFiP classique (non signé : attend le PES Retour)",
            "Online payment announced by the classic PayFiP result (unsigned: awaits the PES Retour)",
        ),
        "payfip_claim_confirmed" => (
            "Paiement en ligne annoncé, confirmé par le PES Retour",
            "Announced online payment confirmed by the PES Retour",
        ),
        "payfip_claim_unconfirmed" => (
            "Paiement en ligne annoncé NON confirmé à temps par un PES Retour (signalé à l'exploitation)",
            "Announced online payment NOT confirmed by any PES Retour in time (reported to ops)",
        ),
        "collection_planned" => (
            "Prélèvement planifié (pain.008)",
            "Direct debit planned (pain.008)",
        ),
        "sepa_refused" => ("Prélèvement non planifié", "Direct debit not planned"),
        "payment_received" => ("Paiement reçu", "Payment received"),
        "payment_rejected" => (
            "Prélèvement rejeté par la banque",
            "Direct debit rejected by the bank",
        ),
        "payment_reversed" => ("Paiement annulé", "Payment reversed"),
        "payment_confirmed" => (
            "Paiement confirmé par une seconde source",
            "Payment confirmed by a second source",
        ),
        "payment_reversal_confirmed" => (
            "Annulation confirmée par une seconde source",
            "Reversal confirmed by a second source",
        ),
        "reglement_recorded" => (
            "Ligne de paiement préparée pour Polyfac (REGLEMENTS)",
            "Payment line prepared for Polyfac (REGLEMENTS)",
        ),
        "reglement_confirmed" => (
            "Ligne de paiement déjà envoyée à Polyfac",
            "Payment line already sent to Polyfac",
        ),
        "reglements_written" => (
            "Fichier REGLEMENTS écrit pour la source",
            "REGLEMENTS file written for the source",
        ),
        "credit_note_received" => (
            "Avoir reçu par helios.titres",
            "Credit note received by helios.titres",
        ),
        "reduction_planned" => (
            "Titre de réduction planifié pour un avoir",
            "Réduction titre planned for a credit note",
        ),
        "credit_note_refused" => (
            "Avoir refusé (non envoyé, Polyfac informé par AVOIR_REJETE)",
            "Credit note refused (not sent, Polyfac told AVOIR_REJETE)",
        ),
        _ => return None,
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) if items.len() == 2 && items.iter().all(Value::is_number) => {
            Some(format!("{}–{}", items[0], items[1]))
        }
        _ => None,
    }
}

/// A journal fact in one line: the label, the titre reference when there is one, then
/// every detail as recorded.
fn fact_line(kind: &str, detail: &Value, lang: Language) -> String {
    let mut parts = vec![
        label(kind)
            .map(|(fr, en)| lang.t(fr, en))
            .unwrap_or(kind)
            .to_string(),
    ];
    if let Some(d) = detail.as_object() {
        let get = |k: &str| d.get(k).and_then(scalar);
        if let (Some(e), Some(t), Some(b), Some(p)) = (
            get("exercice"),
            get("bordereau_type"),
            get("id_bord"),
            get("id_pce"),
        ) {
            parts.push(format!(
                "titre {e}/{t}/{b}/{p} (exercice/type/bordereau/pièce)"
            ));
        }
        let details: Vec<String> = d
            .iter()
            .filter(|(k, _)| k.as_str() != "stage")
            .filter_map(|(k, v)| scalar(v).map(|v| format!("{k}={v}")))
            .collect();
        if !details.is_empty() {
            parts.push(details.join(" "));
        }
    }
    parts.join(" — ")
}

/// A step in one line for people, in `lang`, from its kind and detail: the console and the
/// CLI word the same facts.
pub fn phrase(step: &Step, lang: Language) -> String {
    let d = &step.detail;
    let text = |k: &str| d.get(k).and_then(scalar).unwrap_or_default();
    let line = match (step.source, step.kind.as_str()) {
        ("message", _) => {
            let stage = step.stage.as_deref().unwrap_or("?");
            match d.get("message_type").and_then(Value::as_str) {
                Some(kind) => format!("{stage} {} {kind}", lang.t("a traité", "handled")),
                None => format!(
                    "{stage} {}",
                    lang.t("a traité un message", "handled a message")
                ),
            }
        }
        ("file", _) => format!(
            "{} {} ({}, {} {})",
            lang.t("Fichier écrit :", "File written:"),
            text("path"),
            text("kind"),
            text("bytes"),
            lang.t("octets", "bytes")
        ),
        ("parked", "parked") => format!(
            "{} {}){} {} {} — {}",
            lang.t("Message mis de côté (dlq n°", "Message parked (dlq id"),
            text("id"),
            lang.t(" :", ":"),
            text("error_class"),
            text("error_kind"),
            text("error")
        ),
        ("parked", state) => {
            let done = match state {
                "replayed" => lang.t("rejoué", "replayed"),
                "discarded" => lang.t("écarté", "discarded"),
                other => other,
            };
            let by = d.get("by").and_then(Value::as_str).unwrap_or("?");
            format!(
                "{} {} {done} {} {by}",
                lang.t("Message mis de côté n°", "Parked message"),
                text("id"),
                lang.t("par", "by")
            )
        }
        (_, kind) => fact_line(kind, d, lang),
    };
    match &step.credit_note {
        Some(note) => format!(
            "{} {note}{} {line}",
            lang.t("Avoir", "Credit note"),
            lang.t(" :", ":")
        ),
        None => line,
    }
}

fn file_names(detail: &Value, into: &mut BTreeSet<String>) {
    let Some(d) = detail.as_object() else { return };
    for key in ["file", "path", "files"] {
        match d.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {
                into.insert(s.clone());
            }
            Some(Value::Array(items)) => {
                into.extend(items.iter().filter_map(Value::as_str).map(str::to_string));
            }
            _ => {}
        }
    }
}

fn journal(
    tx: &mut Tx<'_>,
    key: &str,
    names: &mut BTreeSet<String>,
) -> Result<Vec<Step>, LedgerError> {
    let rows = tx.query_all(
        "SELECT at, kind, detail FROM invoice_event WHERE invoice_key = ?1 ORDER BY at, id",
        &[&key],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )?;
    let mut steps = Vec::new();
    for (at, kind, detail) in rows {
        let detail: Value = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
        file_names(&detail, names);
        steps.push(Step {
            summary: String::new(),
            credit_note: None,
            stage: detail
                .get("stage")
                .and_then(Value::as_str)
                .map(str::to_string),
            at,
            source: "journal",
            kind,
            detail,
        });
    }
    Ok(steps)
}

fn handled(tx: &mut Tx<'_>, key: &str) -> Result<Vec<Step>, LedgerError> {
    tx.query_all(
        "SELECT processed_at, stage, message_type, message_id FROM processed_message
         WHERE invoice_key = ?1 ORDER BY processed_at",
        &[&key],
        |r| {
            let (at, stage, kind, id): (String, String, Option<String>, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            Ok(Step {
                summary: String::new(),
                credit_note: None,
                detail: json!({ "message_type": kind, "message_id": id }),
                stage: Some(stage),
                at,
                source: "message",
                kind: "handled".into(),
            })
        },
    )
}

/// `?2` is cast: PostgreSQL cannot tell `length(?2)`'s type from the call alone.
fn files(
    tx: &mut Tx<'_>,
    tenant: &str,
    names: &BTreeSet<String>,
) -> Result<Vec<FileRef>, LedgerError> {
    let mut out: Vec<FileRef> = Vec::new();
    for name in names {
        let rows = tx.query_all(
            "SELECT kind, path, sha256, bytes, written_at FROM emitted_file
             WHERE tenant = ?1 AND (path = CAST(?2 AS TEXT)
                 OR (length(path) > length(CAST(?2 AS TEXT))
                     AND substr(path, length(path) - length(CAST(?2 AS TEXT)))
                         = '/' || CAST(?2 AS TEXT)))
             ORDER BY written_at, id",
            &[&tenant, name],
            |r| {
                Ok(FileRef {
                    kind: r.get(0)?,
                    path: r.get(1)?,
                    sha256: r.get(2)?,
                    bytes: r.get(3)?,
                    written_at: r.get(4)?,
                })
            },
        )?;
        for file in rows {
            if !out.iter().any(|f| f.path == file.path) {
                out.push(file);
            }
        }
    }
    Ok(out)
}

fn parked_steps(parked: &[ParkedSummary]) -> Vec<Step> {
    let mut steps = Vec::new();
    for p in parked {
        steps.push(Step {
            at: p.parked_at.clone(),
            source: "parked",
            kind: "parked".into(),
            stage: Some(p.stage.clone()),
            credit_note: None,
            summary: String::new(),
            detail: json!({ "id": p.id, "group": p.group, "message_type": p.message_type,
                "attempts": p.attempts, "error_class": p.error_class,
                "error_kind": p.error_kind, "error": p.error }),
        });
        if let Some(at) = &p.resolved_at {
            let mut detail = Map::new();
            detail.insert("id".into(), json!(p.id));
            detail.insert("by".into(), json!(p.resolved_by));
            if let Some(reason) = &p.resolution_reason {
                detail.insert("reason".into(), json!(reason));
            }
            steps.push(Step {
                at: at.clone(),
                source: "parked",
                kind: p.state.as_str().into(),
                stage: Some(p.stage.clone()),
                credit_note: None,
                summary: String::new(),
                detail: Value::Object(detail),
            });
        }
    }
    steps
}

/// Sort key of a time: parsed when it is RFC 3339 (times of different offsets compare
/// right), else the text itself.
fn instant(at: &str) -> (i64, String) {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => (t.timestamp_micros(), String::new()),
        Err(_) => (i64::MAX, at.to_string()),
    }
}

/// The journals of the credit notes against `key`, so that an invoice's trace shows each
/// credit note, its réduction titre and its fate next to the original. Facts already in the
/// original's own journal (planned, refused) are not repeated.
fn credit_note_steps(
    tx: &mut Tx<'_>,
    tenant: &str,
    key: &str,
    names: &mut BTreeSet<String>,
) -> Result<Vec<Step>, LedgerError> {
    let notes: Vec<String> = tx.query_all(
        "SELECT note_key FROM helios_reduction WHERE tenant = ?1 AND origin_key = ?2
         ORDER BY received_at, note_key",
        &[&tenant, &key],
        |r| r.get(0),
    )?;
    let mut steps = Vec::new();
    for note in notes {
        for mut step in journal(tx, &note, names)? {
            if matches!(
                step.kind.as_str(),
                "reduction_planned" | "credit_note_refused"
            ) {
                continue;
            }
            step.credit_note = Some(note.clone());
            steps.push(step);
        }
    }
    Ok(steps)
}

/// The trace of invoice `key` (already resolved); each step's `summary` in English.
pub fn trace(tx: &mut Tx<'_>, key: &str) -> Result<Trace, LedgerError> {
    let tenant = key.split('/').next().unwrap_or_default().to_string();
    let mut names = BTreeSet::new();
    let mut steps = journal(tx, key, &mut names)?;
    steps.extend(credit_note_steps(tx, &tenant, key, &mut names)?);
    steps.extend(handled(tx, key)?);
    let files = files(tx, &tenant, &names)?;
    steps.extend(files.iter().map(|f| Step {
        at: f.written_at.clone(),
        source: "file",
        kind: "file_emitted".into(),
        stage: None,
        credit_note: None,
        summary: String::new(),
        detail: json!({ "kind": f.kind, "path": f.path, "sha256": f.sha256, "bytes": f.bytes }),
    }));
    let filter = Filter {
        invoice_key: Some(key.to_string()),
        ..Filter::default()
    };
    let mut parked = tx.list_parked(&filter, 1000)?;
    parked.reverse();
    steps.extend(parked_steps(&parked));
    // Stable: equal times keep the order above (journal, messages, files, parked).
    steps.sort_by_cached_key(|s| instant(&s.at));
    for step in &mut steps {
        step.summary = phrase(step, Language::English);
    }
    Ok(Trace {
        invoice: key.to_string(),
        tenant,
        steps,
        files,
        parked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(source: &'static str, kind: &str, detail: Value) -> Step {
        Step {
            at: "2026-03-01T10:00:00Z".into(),
            source,
            kind: kind.into(),
            stage: Some("helios.titres".into()),
            credit_note: None,
            summary: String::new(),
            detail,
        }
    }

    #[test]
    fn summaries_name_the_titre_and_keep_every_detail() {
        let detail = json!({"stage": "helios.titres", "file": "PES_1.xml", "exercice": 2026,
            "bordereau_type": "01", "id_bord": 12, "id_pce": 345});
        let s = fact_line("titre_emitted", &detail, Language::English);
        assert!(
            s.starts_with("Titre emitted to the Trésorerie (PES Aller) — titre 2026/01/12/345"),
            "{s}"
        );
        assert!(s.contains("file=PES_1.xml"), "{s}");
        assert!(!s.contains("stage="), "{s}");
        let s = fact_line(
            "issued",
            &json!({"file": "export.csv", "lines": [2, 4]}),
            Language::English,
        );
        assert!(s.contains("lines=2–4"), "{s}");
        assert_eq!(
            fact_line("something_new", &json!({"x": 1}), Language::English),
            "something_new — x=1"
        );
    }

    /// Every kind of step has its French wording (the console's default); the data recorded
    /// is the same in both languages.
    #[test]
    fn steps_are_phrased_in_french_and_english() {
        let titre = step(
            "journal",
            "titre_emitted",
            json!({"exercice": 2026, "bordereau_type": "01", "id_bord": 12, "id_pce": 345}),
        );
        assert!(
            phrase(&titre, Language::French)
                .starts_with("Titre émis vers la Trésorerie (PES Aller) — titre 2026/01/12/345"),
            "{}",
            phrase(&titre, Language::French)
        );
        let mut note = step("journal", "payment_received", json!({"amount": "12.00"}));
        note.credit_note = Some("vitry/2026/AV1".into());
        let cases = [
            (
                note,
                "Avoir vitry/2026/AV1 : Paiement reçu — amount=12.00",
                "Credit note vitry/2026/AV1: Payment received — amount=12.00",
            ),
            (
                step(
                    "message",
                    "handled",
                    json!({"message_type": "invoice.issued", "message_id": "m"}),
                ),
                "helios.titres a traité invoice.issued",
                "helios.titres handled invoice.issued",
            ),
            (
                step(
                    "file",
                    "file_emitted",
                    json!({"kind": "pes_aller", "path": "/o/PES.xml", "bytes": 10}),
                ),
                "Fichier écrit : /o/PES.xml (pes_aller, 10 octets)",
                "File written: /o/PES.xml (pes_aller, 10 bytes)",
            ),
            (
                step(
                    "parked",
                    "parked",
                    json!({"id": 7, "error_class": "permanent", "error_kind": "schema",
                        "error": "bad"}),
                ),
                "Message mis de côté (dlq n° 7) : permanent schema — bad",
                "Message parked (dlq id 7): permanent schema — bad",
            ),
            (
                step("parked", "discarded", json!({"id": 7, "by": "anne"})),
                "Message mis de côté n° 7 écarté par anne",
                "Parked message 7 discarded by anne",
            ),
        ];
        for (step, fr, en) in cases {
            assert_eq!(phrase(&step, Language::French), fr);
            assert_eq!(phrase(&step, Language::English), en);
        }
        // Every journal kind the stages record has a French label of its own.
        for kind in [
            "issued",
            "refused",
            "rejected",
            "mandate_imported",
            "titre_emitted",
            "titre_refused",
            "titre_accepted",
            "titre_rejected",
            "payfip_attempt",
            "payfip_paid",
            "payfip_failed",
            "payfip_announced",
            "payfip_claim_confirmed",
            "payfip_claim_unconfirmed",
            "collection_planned",
            "sepa_refused",
            "payment_received",
            "payment_rejected",
            "payment_reversed",
            "payment_confirmed",
            "payment_reversal_confirmed",
            "reglement_recorded",
            "reglement_confirmed",
            "reglements_written",
            "credit_note_received",
            "reduction_planned",
            "credit_note_refused",
        ] {
            let (fr, en) = label(kind).unwrap();
            assert_ne!(fr, en, "{kind}");
        }
    }

    #[test]
    fn times_of_different_offsets_sort_by_instant() {
        let mut times = vec![
            "2026-05-04T12:00:00+02:00",
            "2026-05-04T10:30:00Z",
            "2026-05-04T09:59:00Z",
        ];
        times.sort_by_cached_key(|t| instant(t));
        assert_eq!(
            times,
            [
                "2026-05-04T09:59:00Z",
                "2026-05-04T12:00:00+02:00",
                "2026-05-04T10:30:00Z"
            ]
        );
    }

    fn fact(key: &str, at: &str, kind: &str, detail: Value) -> encaisse_ledger::InvoiceFact {
        encaisse_ledger::InvoiceFact {
            invoice_key: key.into(),
            tenant: key.split('/').next().unwrap().into(),
            at: at.into(),
            kind: kind.into(),
            detail: detail.to_string(),
            dedupe_key: None,
        }
    }

    #[tokio::test]
    async fn short_forms_resolve_when_unambiguous_and_the_trace_is_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = encaisse_ledger::Ledger::open(dir.path().join("l.sqlite")).unwrap();
        let facts = [
            fact(
                "vitry/2026/F_1",
                "2026-02-01T10:00:00Z",
                "titre_emitted",
                json!({"stage": "helios.titres", "file": "PES_1.xml", "exercice": 2026,
                       "bordereau_type": "06", "id_bord": 3, "id_pce": 7}),
            ),
            fact(
                "vitry/2026/F_1",
                "2026-01-31T09:00:00+01:00",
                "issued",
                json!({"file": "FACT.csv", "lines": [2, 3]}),
            ),
            fact("ivry/2026/F_1", "2026-01-31T08:00:00Z", "issued", json!({})),
            fact(
                "vitry/2025/F_2",
                "2025-12-01T08:00:00Z",
                "issued",
                json!({}),
            ),
            fact(
                "vitry/2025/FX1",
                "2025-12-01T08:00:00Z",
                "issued",
                json!({}),
            ),
        ];
        for f in facts {
            ledger.record_invoice_fact(f).await.unwrap();
        }
        ledger
            .write(|c| {
                c.execute(
                    "INSERT INTO emitted_file (tenant, kind, path, sha256, bytes, written_at)
                     VALUES ('vitry', 'pes_aller', '/d/vitry/helios/outbox/PES_1.xml', 'ab', 10,
                             '2026-02-01T10:00:01Z'),
                            ('vitry', 'pes_aller', '/d/vitry/helios/outbox/XPES_1.xml', 'cd', 10,
                             '2026-02-01T10:00:01Z')",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let (t, key) = ledger
            .inspect(|tx| {
                let mut resolved = |given: &str, tenant: Option<&str>| resolve(tx, given, tenant);
                assert!(matches!(
                    resolved("F_1", None),
                    Err(TraceError::Ambiguous { ref candidates, .. }) if candidates.len() == 2
                ));
                // `_` is a character, not a wildcard: vitry/2025/FX1 is not F_1.
                assert_eq!(resolved("F_1", Some("vitry")).unwrap(), "vitry/2026/F_1");
                assert_eq!(resolved("2026/F_1", Some("ivry")).unwrap(), "ivry/2026/F_1");
                assert_eq!(resolved("F_2", None).unwrap(), "vitry/2025/F_2");
                // `_` is a character, not a wildcard: FX1 is not F_1.
                assert!(matches!(
                    resolved("F_9", None),
                    Err(TraceError::NotFound(_))
                ));
                assert!(matches!(
                    resolved("vitry/2024/F_1", None),
                    Err(TraceError::NotFound(_))
                ));
                let key = resolved("F_1", Some("vitry")).unwrap();
                Ok::<_, LedgerError>((trace(tx, &key)?, key))
            })
            .await
            .unwrap();
        assert_eq!(key, "vitry/2026/F_1");
        let kinds: Vec<&str> = t.steps.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["issued", "titre_emitted", "file_emitted"]);
        assert_eq!(
            t.files.len(),
            1,
            "XPES_1.xml is another file: {:?}",
            t.files
        );
        assert_eq!(t.files[0].path, "/d/vitry/helios/outbox/PES_1.xml");
        assert!(
            t.steps[1].summary.contains("titre 2026/06/3/7"),
            "{}",
            t.steps[1].summary
        );
        assert_eq!(t.steps[1].stage.as_deref(), Some("helios.titres"));
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like("F_1%"), "F\\_1\\%");
    }
}
