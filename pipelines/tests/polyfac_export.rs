//! `polyfac.export` and its flush against the real broker: payment and titre events →
//! REGLEMENTS lines (once each, reconciled) → `REGLEMENTS_<tenant>_<AAAAMMJJ>_<seq>.csv` in
//! the tenant's dialect, rolling to the next `seq`, never rewritten.

#[path = "runtime_support/mod.rs"]
mod support;

#[path = "polyfac_support/mod.rs"]
mod polyfac;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use encaisse_pipelines::Stage;
use encaisse_pipelines::stages::polyfac::flush::plan_next;
use encaisse_pipelines::stages::polyfac::{
    PolyfacExport, PolyfacTenants, ReglementsFlusher, paris_today,
};
use encaisse_polyfac::generate::example_catalogue;
use encaisse_polyfac::{
    ExportItem, ExportReader, ReadOptions, RunContext, SourceMapping, enrich, prescan,
};
use encaisse_schemas::{
    Channel, Event, InvoiceIssued, Money, PayfipFailure, PaymentFailed, PaymentReceived,
    PaymentReversed, PaymentSource, SequenceType, TenantId, TitreAccepted, TitreRef, TitreRejected,
    TitreSource,
};
use lapin::BasicProperties;
use polyfac::{Harness, count, sample, tenant, vitry};

async fn harness() -> Harness {
    Harness::start(
        |ledger| vec![Arc::new(PolyfacExport::new(vitry(), ledger.clone())) as Arc<dyn Stage>],
        &[],
    )
    .await
}

/// The canonical invoices of the 2-invoice sample, as the ingest would publish them.
fn invoices() -> Vec<InvoiceIssued> {
    let tenant = TenantId::new("vitry").unwrap();
    let catalogue = Arc::new(example_catalogue(tenant.clone()).unwrap());
    let mapping = SourceMapping::polyfac_default();
    let bytes = sample("polyfac-2-invoices.csv");
    let name = "FACT_202601.csv";
    let scan = prescan(&bytes[..], &mapping, name).unwrap();
    let ctx = RunContext::for_file(tenant, "polyfac", name, &scan.file_sha256);
    let options = ReadOptions {
        file_name: name.into(),
        today: paris_today(),
        prescan: Some(scan),
    };
    ExportReader::new(&bytes[..], &mapping, catalogue, options)
        .filter_map(|item| match item.unwrap() {
            ExportItem::Valid(invoice) => Some(
                enrich(&invoice, &ctx, |_| {
                    Ok::<_, std::convert::Infallible>(SequenceType::Rcur)
                })
                .unwrap(),
            ),
            _ => None,
        })
        .collect()
}

/// Publishes a canonical event as a producer would (deterministic id unless `id` is given).
async fn publish<E: Event>(h: &Harness, event: &E, id: Option<&str>) {
    let id = id.map_or_else(|| event.message_id(), str::to_string);
    let props = BasicProperties::default()
        .with_message_id(id.as_str().into())
        .with_type(E::TYPE.into())
        .with_content_type("application/json".into());
    h.client
        .publish(
            &h.ns.prefix,
            &event.routing_key(),
            props,
            &encaisse_schemas::encode(event),
        )
        .await;
}

async fn publish_invoices(h: &Harness) -> Vec<InvoiceIssued> {
    let invoices = invoices();
    for invoice in &invoices {
        publish(h, invoice, None).await;
    }
    h.wait_count(
        "the invoices learnt",
        "SELECT count(*) FROM polyfac_export_invoice",
        invoices.len() as i64,
    )
    .await;
    invoices
}

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

fn money(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn payfip_payment(invoice: &InvoiceIssued, idop: &str) -> PaymentReceived {
    PaymentReceived {
        schema_version: 1,
        invoice: invoice.invoice.clone(),
        payment_id: format!("payfip:{idop}"),
        amount: invoice.total,
        channel: Channel::Cb,
        source: PaymentSource::Payfip,
        paid_at: at("2026-02-03T10:15:00+01:00"),
        reference: format!("123456 {idop}"),
        commission: Some(money("0.10")),
    }
}

fn helios_emargement(invoice: &InvoiceIssued) -> PaymentReceived {
    PaymentReceived {
        schema_version: 1,
        invoice: invoice.invoice.clone(),
        payment_id: "helios:2026/01/12/345/1".into(),
        amount: invoice.total,
        channel: Channel::Cb,
        source: PaymentSource::Helios,
        paid_at: at("2026-02-07T00:00:00+01:00"),
        reference: "2026/01/12/345".into(),
        commission: None,
    }
}

/// Titre 2026/01/12/`id_pce` of budget `principal`.
fn titre(id_pce: u32) -> TitreRef {
    TitreRef {
        budget: "principal".into(),
        exercice: 2026,
        bordereau_type: "01".into(),
        id_bord: 12,
        id_pce,
    }
}

fn titre_accepted(invoice: &InvoiceIssued, source: TitreSource) -> TitreAccepted {
    TitreAccepted {
        schema_version: 1,
        invoice: invoice.invoice.clone(),
        titre: titre(345),
        source,
        accepted_at: at("2026-02-05T09:00:00+01:00"),
        file: match source {
            TitreSource::Acquit => "PES_ACQUIT.xml".into(),
            TitreSource::Retour => "PES2R_RCE_081_00_2026_1.xml".into(),
            TitreSource::Local => unreachable!("a titre is never accepted locally"),
        },
    }
}

/// The guichet refuses the bordereau of `invoice` (acquit KO).
fn titre_rejected_at_the_acquit(invoice: &InvoiceIssued) -> TitreRejected {
    TitreRejected {
        schema_version: 1,
        invoice: invoice.invoice.clone(),
        titre: Some(titre(346)),
        source: TitreSource::Acquit,
        code: "ACQUIT_KO".into(),
        text: "Bordereau rejete".into(),
        rejected_at: at("2026-02-05T09:00:00+01:00"),
        file: "PES_ACQUIT.xml".into(),
    }
}

const LINES: &str = "SELECT count(*) FROM polyfac_reglement_line";
const HANDLED: &str = "SELECT count(*) FROM processed_message WHERE stage = 'polyfac.export'";

fn flusher(h: &Harness) -> ReglementsFlusher {
    ReglementsFlusher::new(vitry(), h.data_dir(), Duration::from_secs(60))
}

fn file_name(seq: u32) -> String {
    format!(
        "REGLEMENTS_vitry_{}_{seq:03}.csv",
        paris_today().format("%Y%m%d")
    )
}

/// The lines of a REGLEMENTS file (Windows-1252; these rows are ASCII), header first.
fn lines_of(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).expect("ASCII rows");
    assert!(text.ends_with("\r\n"), "CRLF, last line terminated");
    text.split_terminator("\r\n").map(str::to_string).collect()
}

const HEADER: &str =
    "NumFacture;CodeFamille;DateEvenement;Montant;Canal;Statut;Reference;Motif;Frais";

#[tokio::test]
async fn events_become_one_reglements_file_in_the_dialect() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let (debit, creche) = (&invoices[0], &invoices[1]);
    publish(&h, &payfip_payment(debit, "1001"), None).await;
    publish(&h, &titre_accepted(debit, TitreSource::Retour), None).await;
    let failed = PaymentFailed {
        schema_version: 1,
        invoice: creche.invoice.clone(),
        payment_id: "payfip:2002".into(),
        result: PayfipFailure::R,
        amount: creche.total,
        failed_at: at("2026-02-04T18:30:00+01:00"),
        reason: "PayFiP result R: card refused.".into(),
    };
    publish(&h, &failed, None).await;
    h.wait_count("three lines", LINES, 3).await;

    let written = flusher(&h).flush_all(&h.ledger).await;
    let outbox = h.area("vitry", "outbox");
    assert_eq!(written, [outbox.join(file_name(1))]);
    assert_eq!(h.files(&outbox), [file_name(1)], "no temporary file left");
    let lines = lines_of(&std::fs::read(outbox.join(file_name(1))).unwrap());
    assert_eq!(lines[0], HEADER);
    let mut rows = lines[1..].to_vec();
    rows.sort();
    assert_eq!(
        rows,
        [
            "F2026-000101;FAM000123;03/02/2026;62,95;CB;PAYE;123456 1001;;0,10",
            "F2026-000101;FAM000123;05/02/2026;62,95;;TITRE_PRIS_EN_CHARGE;2026/01/12/345;;",
            "F2026-000102;FAM000456;04/02/2026;70,13;CB;REJETE;2002;R PayFiP result R: card refused.;",
        ]
    );
    let recorded = h
        .ledger
        .emitted_file_by_path(&outbox.join(file_name(1)).display().to_string())
        .await
        .unwrap()
        .expect("the file is recorded");
    assert_eq!(recorded.kind, "reglements");
    let facts = h.ledger.invoice_facts(&debit.invoice.key()).await.unwrap();
    assert!(facts.iter().any(|f| f.kind == "reglements_written"));
    h.stop().await;
}

#[tokio::test]
async fn the_same_event_twice_is_one_line_and_files_roll_to_the_next_seq() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let payment = payfip_payment(&invoices[0], "1001");
    publish(&h, &payment, None).await;
    publish(&h, &payment, None).await; // redelivered: same id
    publish(&h, &payment, Some("replayed-under-another-id")).await;
    h.wait_count("every message handled", HANDLED, 4).await;
    assert_eq!(count(&h.ledger, LINES).await, 1, "one line for one payment");

    let flush = flusher(&h);
    flush.flush_all(&h.ledger).await;
    let outbox = h.area("vitry", "outbox");
    let first = std::fs::read(outbox.join(file_name(1))).unwrap();
    assert_eq!(lines_of(&first).len(), 2);
    assert!(
        flush.flush_all(&h.ledger).await.is_empty(),
        "nothing new, no file"
    );

    let taken = titre_accepted(&invoices[0], TitreSource::Retour);
    publish(&h, &taken, None).await;
    // The same prise en charge replayed under another id: it confirms, no second line.
    publish(&h, &taken, Some("retour-replayed-under-another-id")).await;
    h.wait_count("both titre events handled", HANDLED, 6).await;
    assert_eq!(count(&h.ledger, LINES).await, 2);
    flush.flush_all(&h.ledger).await;
    assert_eq!(h.files(&outbox), [file_name(1), file_name(2)]);
    assert_eq!(
        std::fs::read(outbox.join(file_name(1))).unwrap(),
        first,
        "a written file never changes"
    );
    let second = lines_of(&std::fs::read(outbox.join(file_name(2))).unwrap());
    assert_eq!(second.len(), 2, "header and the new line only: {second:?}");
    assert_eq!(second[0], HEADER);
    assert!(second[1].contains(";TITRE_PRIS_EN_CHARGE;"));
    h.stop().await;
}

#[tokio::test]
async fn only_the_pes_retour_tells_polyfac_a_titre_is_taken_in_charge() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let (taken, refused) = (&invoices[0], &invoices[1]);
    // The guichet integrated the bordereau: not a prise en charge, no line.
    publish(&h, &titre_accepted(taken, TitreSource::Acquit), None).await;
    h.wait_count("the acquit handled", HANDLED, 3).await;
    assert_eq!(
        count(&h.ledger, LINES).await,
        0,
        "an acquit is no prise en charge"
    );
    // A titre the guichet rejects is still told.
    publish(&h, &titre_rejected_at_the_acquit(refused), None).await;
    h.wait_count("the rejected titre's line", LINES, 1).await;
    // The comptable takes the first titre in charge (PES Retour).
    publish(&h, &titre_accepted(taken, TitreSource::Retour), None).await;
    h.wait_count("the prise en charge's line", LINES, 2).await;
    h.wait_count("every event handled", HANDLED, 5).await;
    assert_eq!(count(&h.ledger, LINES).await, 2);

    flusher(&h).flush_all(&h.ledger).await;
    let lines = lines_of(&std::fs::read(h.area("vitry", "outbox").join(file_name(1))).unwrap());
    let mut rows = lines[1..].to_vec();
    rows.sort();
    assert_eq!(
        rows,
        [
            "F2026-000101;FAM000123;05/02/2026;62,95;;TITRE_PRIS_EN_CHARGE;2026/01/12/345;;",
            "F2026-000102;FAM000456;05/02/2026;70,13;;TITRE_REJETE;2026/01/12/346;ACQUIT_KO Bordereau rejete;",
        ]
    );
    h.stop().await;
}

/// `helios.titres` refused the invoice before writing any PES file (its postal code).
fn titre_refused_locally(invoice: &InvoiceIssued) -> TitreRejected {
    encaisse_pipelines::stages::helios::refusal::event(
        &invoice.invoice,
        "payer.address.postal_code",
        "\"9440\" is not a French postal code (5 digits)",
        "vitry/helios/rejected/run-1-principal.refused.txt",
        at("2026-02-05T09:00:00+01:00"),
    )
}

#[tokio::test]
async fn an_invoice_refused_before_the_pes_file_is_one_titre_rejete_line() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let refused = titre_refused_locally(&invoices[1]);
    assert_eq!(
        (refused.source, &refused.titre),
        (TitreSource::Local, &None)
    );
    publish(&h, &refused, None).await;
    publish(&h, &refused, None).await; // redelivered: same id
    h.wait_count("both deliveries handled", HANDLED, 3).await;
    assert_eq!(count(&h.ledger, LINES).await, 1, "one line for one refusal");

    flusher(&h).flush_all(&h.ledger).await;
    let bytes = std::fs::read(h.area("vitry", "outbox").join(file_name(1))).unwrap();
    // Windows-1252: the `é` of Hélios is one byte, 0xE9.
    assert!(bytes.contains(&0xE9), "Windows-1252");
    let text = String::from_utf8_lossy(&bytes).replace('\u{FFFD}', "é");
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(
        lines[1..],
        [
            "F2026-000102;FAM000456;05/02/2026;70,13;;TITRE_REJETE;;\"LOCAL-RULES Not sent to Hélios: payer.address.postal_code: \"\"9440\"\" is not a French postal code (5 digits)\";"
        ],
        "no titre number (empty Reference), the local code first in Motif"
    );
    h.stop().await;
}

#[tokio::test]
async fn payfip_then_helios_is_one_paye_line_and_a_reversal_one_annule_line() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let debit = &invoices[0];
    publish(&h, &payfip_payment(debit, "1001"), None).await;
    h.wait_count("the PayFiP payment", LINES, 1).await;
    let emargement = helios_emargement(debit);
    publish(&h, &emargement, None).await;
    h.wait_count("the émargement handled", HANDLED, 4).await;
    assert_eq!(
        count(&h.ledger, LINES).await,
        1,
        "the émargement confirms, never doubles"
    );
    let facts = h.ledger.invoice_facts(&debit.invoice.key()).await.unwrap();
    let confirmed = facts
        .iter()
        .find(|f| f.kind == "payment_confirmed")
        .expect("the confirmation is journalled");
    assert!(confirmed.detail.contains("payfip:1001"));

    // The émargement disappears: the payment is cancelled, once.
    let reversal = |payment_id: &str| PaymentReversed {
        schema_version: 1,
        invoice: debit.invoice.clone(),
        payment_id: payment_id.into(),
        amount: debit.total,
        reversed_at: at("2026-02-20T00:00:00+01:00"),
        reason: "Émargement annulé".into(),
    };
    publish(&h, &reversal(&emargement.payment_id), None).await;
    publish(&h, &reversal("payfip:1001"), None).await;
    h.wait_count("both reversals handled", HANDLED, 6).await;
    assert_eq!(count(&h.ledger, LINES).await, 2);

    flusher(&h).flush_all(&h.ledger).await;
    let bytes = std::fs::read(h.area("vitry", "outbox").join(file_name(1))).unwrap();
    // Windows-1252: `É` is one byte (0xC9).
    assert!(bytes.contains(&0xC9));
    let text: String = bytes
        .iter()
        .map(|&b| if b == 0xC9 { 'É' } else { b as char })
        .collect();
    let rows: Vec<&str> = text.split_terminator("\r\n").skip(1).collect();
    assert_eq!(
        rows,
        [
            "F2026-000101;FAM000123;03/02/2026;62,95;CB;PAYE;123456 1001;;0,10",
            "F2026-000101;FAM000123;20/02/2026;62,95;CB;ANNULE;123456 1001;Émargement annulé;",
        ]
    );
    h.stop().await;
}

#[tokio::test]
async fn an_event_before_its_invoice_is_retried_until_the_invoice_arrives() {
    let h = harness().await;
    let invoices = invoices();
    let creche = &invoices[1];
    let payment = payfip_payment(creche, "3003");
    publish(&h, &payment, None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&h.ledger, LINES).await,
        0,
        "no line without its invoice"
    );
    assert_eq!(count(&h.ledger, HANDLED).await, 0, "not processed: retried");
    publish(&h, creche, None).await;
    h.wait_count("the payment's line after a retry", LINES, 1)
        .await;
    h.stop().await;
}

#[tokio::test]
async fn a_crash_between_planning_and_writing_writes_the_same_file_once() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    publish(&h, &payfip_payment(&invoices[0], "1001"), None).await;
    h.wait_count("the payment's line", LINES, 1).await;

    // The flush planned _001 (its line assigned), then the daemon died before writing it.
    let tenant = TenantId::new("vitry").unwrap();
    let planned = plan_next(&h.ledger, &tenant, "").await.unwrap().unwrap();
    assert_eq!(planned.name, file_name(1));
    let outbox = h.area("vitry", "outbox");
    assert!(h.files(&outbox).is_empty());
    // A line recorded after the plan belongs to the next file.
    publish(&h, &titre_accepted(&invoices[0], TitreSource::Retour), None).await;
    h.wait_count("the titre's line", LINES, 2).await;

    let flush = flusher(&h);
    flush.flush_all(&h.ledger).await;
    assert_eq!(h.files(&outbox), [file_name(1), file_name(2)]);
    let first = lines_of(&std::fs::read(outbox.join(file_name(1))).unwrap());
    assert_eq!(
        first.len(),
        2,
        "the planned file has its planned line: {first:?}"
    );
    assert!(first[1].contains(";PAYE;"));
    let second = std::fs::read(outbox.join(file_name(2))).unwrap();
    assert!(lines_of(&second)[1].contains(";TITRE_PRIS_EN_CHARGE;"));

    // Written but not marked (a crash right after the rename): completed with the same
    // bytes, no third file.
    h.ledger
        .write(|c| {
            c.execute(
                "UPDATE polyfac_reglements_file SET written_at = NULL WHERE seq = 2",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    flush.flush_all(&h.ledger).await;
    assert_eq!(h.files(&outbox), [file_name(1), file_name(2)]);
    assert_eq!(std::fs::read(outbox.join(file_name(2))).unwrap(), second);
    assert_eq!(
        count(
            &h.ledger,
            "SELECT count(*) FROM polyfac_reglements_file WHERE written_at IS NULL"
        )
        .await,
        0
    );
    h.stop().await;
}

#[tokio::test]
async fn cells_a_spreadsheet_would_evaluate_are_written_as_text() {
    let h = harness().await;
    let invoices = publish_invoices(&h).await;
    let debit = &invoices[0];
    // A Trésorerie reference and a reason that a spreadsheet would run as formulas.
    let payment = PaymentReceived {
        reference: "=HYPERLINK(\"http://x.invalid\",\"ok\")".into(),
        ..helios_emargement(debit)
    };
    publish(&h, &payment, None).await;
    let reversal = PaymentReversed {
        schema_version: 1,
        invoice: debit.invoice.clone(),
        payment_id: payment.payment_id.clone(),
        amount: debit.total,
        reversed_at: at("2026-02-20T00:00:00+01:00"),
        reason: "@SUM(1+1)*cmd|' /C calc'!A0".into(),
    };
    publish(&h, &reversal, None).await;
    h.wait_count("both lines", LINES, 2).await;
    flusher(&h).flush_all(&h.ledger).await;
    let lines = lines_of(&std::fs::read(h.area("vitry", "outbox").join(file_name(1))).unwrap());
    assert_eq!(
        lines[1..],
        [
            "F2026-000101;FAM000123;07/02/2026;62,95;CB;PAYE;\"'=HYPERLINK(\"\"http://x.invalid\"\",\"\"ok\"\")\";;",
            "F2026-000101;FAM000123;20/02/2026;62,95;CB;ANNULE;\"'=HYPERLINK(\"\"http://x.invalid\"\",\"\"ok\"\")\";'@SUM(1+1)*cmd|' /C calc'!A0;",
        ]
    );
    h.stop().await;
}

/// `vitry` receiving Polyfac and a crèche tool that reads its REGLEMENTS with its own column
/// names, commas, dot decimals, ISO dates and LF line endings.
fn vitry_with_creche() -> PolyfacTenants {
    let creche: SourceMapping = toml::from_str(
        "separator = \",\"\ndecimal_separator = \".\"\ndate_format = \"%Y-%m-%d\"\n\
         encoding = \"utf-8\"\nline_ending = \"lf\"\n\
         [reglements_columns]\nNumFacture = \"facture\"\nMontant = \"montant\"\n",
    )
    .unwrap();
    vitry().with_further(&[(
        "creche".to_string(),
        PolyfacTenants::new([tenant("vitry", "creche", creche)]),
    )])
}

#[tokio::test]
async fn each_source_gets_the_lines_of_its_invoices_in_its_own_outbox_and_dialect() {
    let h = Harness::start(
        |ledger| {
            vec![
                Arc::new(PolyfacExport::new(vitry_with_creche(), ledger.clone())) as Arc<dyn Stage>,
            ]
        },
        &[],
    )
    .await;
    let mut invoices = invoices();
    // The second invoice came from the crèche tool's inbox.
    invoices[1].source.application = "creche".into();
    for invoice in &invoices {
        publish(&h, invoice, None).await;
    }
    h.wait_count(
        "the invoices learnt",
        "SELECT count(*) FROM polyfac_export_invoice",
        2,
    )
    .await;
    publish(&h, &payfip_payment(&invoices[0], "1001"), None).await;
    publish(&h, &payfip_payment(&invoices[1], "1002"), None).await;
    h.wait_count("two lines", LINES, 2).await;
    assert_eq!(
        count(
            &h.ledger,
            "SELECT count(*) FROM polyfac_reglement_line WHERE source = 'creche'"
        )
        .await,
        1,
        "the ledger knows the crèche line's outbox"
    );

    let flush = ReglementsFlusher::new(vitry_with_creche(), h.data_dir(), Duration::from_secs(60));
    let written = flush.flush_all(&h.ledger).await;
    let polyfac_outbox = h.area("vitry", "outbox");
    let creche_outbox = h.data_dir().join("vitry/sources/creche/outbox");
    assert_eq!(
        written,
        [
            polyfac_outbox.join(file_name(1)),
            creche_outbox.join(file_name(1))
        ],
        "each outbox counts its own sequence"
    );
    let polyfac = lines_of(&std::fs::read(polyfac_outbox.join(file_name(1))).unwrap());
    assert_eq!(
        polyfac,
        [
            HEADER,
            "F2026-000101;FAM000123;03/02/2026;62,95;CB;PAYE;123456 1001;;0,10"
        ],
        "Polyfac is told of its own invoice only, in its dialect"
    );
    let creche =
        String::from_utf8(std::fs::read(creche_outbox.join(file_name(1))).unwrap()).unwrap();
    assert_eq!(
        creche,
        "facture,CodeFamille,DateEvenement,montant,Canal,Statut,Reference,Motif,Frais\n\
         F2026-000102,FAM000456,2026-02-03,70.13,CB,PAYE,123456 1002,,0.10\n",
        "the crèche tool gets its invoice's line in its own columns and formats"
    );
    let facts = h
        .ledger
        .invoice_facts(&invoices[1].invoice.key())
        .await
        .unwrap();
    assert!(
        facts.iter().any(|f| f.kind == "reglements_written"
            && f.detail
                .contains(&format!("sources/creche/outbox/{}", file_name(1)))),
        "trace names the crèche outbox: {facts:?}"
    );
    assert!(
        flush.flush_all(&h.ledger).await.is_empty(),
        "nothing new, no file"
    );
    h.stop().await;
}
