//! Enrichment to `invoice.issued` and `billing_run.closed`, the crèche source configured by
//! mapping only, and the generator against the reader.

mod common;

use std::cell::RefCell;

use common::*;
use encaisse_polyfac::generate::{ExportSpec, GeneratedEncoding, write_export};
use encaisse_polyfac::{
    ExportItem, RunContext, SourceMapping, billing_run_closed, content_hash, enrich,
};
use encaisse_schemas::identifiers::Rum;
use encaisse_schemas::{CollectionPath, Event, InvoiceIssued, Money, SequenceType, decode, encode};

fn no_history(_: &Rum) -> Result<SequenceType, std::convert::Infallible> {
    Ok(SequenceType::Frst)
}

fn issued(read: &Read, ctx: &RunContext) -> Vec<InvoiceIssued> {
    read.valid
        .iter()
        .map(|i| enrich(i, ctx, no_history).unwrap())
        .collect()
}

#[test]
fn sample_enriches_from_the_tenant_catalogue() {
    let bytes = sample("polyfac-2-invoices.csv");
    let read = read(&bytes).unwrap();
    let ctx = RunContext::for_file(tenant(), "polyfac", "export.csv", &read.summary.file_sha256);
    let asked = RefCell::new(Vec::new());
    let events: Vec<InvoiceIssued> = read
        .valid
        .iter()
        .map(|i| {
            enrich(i, &ctx, |rum| {
                asked.borrow_mut().push(rum.as_str().to_string());
                Ok::<_, std::convert::Infallible>(SequenceType::Rcur)
            })
            .unwrap()
        })
        .collect();
    assert_eq!(
        *asked.borrow(),
        ["VITRY-CANT-000123"],
        "asked once, for the debit"
    );

    let periscolaire = &events[0];
    assert_eq!(periscolaire.invoice.key(), "vitry/2026/F2026-000101");
    assert_eq!(periscolaire.budget, "principal");
    assert_eq!(periscolaire.collection, CollectionPath::Titres);
    assert_eq!(periscolaire.regie, None);
    assert_eq!(periscolaire.routing_key(), "invoice.issued.titres");
    assert!(
        !periscolaire.online_payable,
        "direct debit is not offered online"
    );
    assert_eq!(
        periscolaire.mandate.as_ref().unwrap().sequence,
        Some(SequenceType::Rcur)
    );
    let lines: Vec<_> = periscolaire
        .lines
        .iter()
        .map(|l| {
            (
                l.number,
                l.cod_prod_loc.as_str(),
                l.nature.as_str(),
                l.amount,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (1, "CANT", "7067", Money::parse("50,25").unwrap()),
            (2, "ACCS", "7066", Money::parse("17,20").unwrap()),
            (3, "CANT", "7067", Money::parse("-4,50").unwrap()),
        ]
    );
    assert_eq!(periscolaire.source.lines, Some((2, 4)));
    assert_eq!(periscolaire.source.run_id, ctx.run_id);
    assert_eq!(periscolaire.content_hash.len(), 64);

    let creche = &events[1];
    assert_eq!(creche.collection, CollectionPath::Regie);
    assert_eq!(creche.regie.as_deref(), Some("regie-creche"));
    assert_eq!(creche.routing_key(), "invoice.issued.regie");
    assert!(creche.online_payable);
    assert_eq!(creche.lines[0].quantity.to_string(), "37.5");

    // The JSON body round-trips through the canonical decoder.
    for e in &events {
        assert_eq!(&decode::<InvoiceIssued>(&encode(e)).unwrap(), e);
    }
}

#[test]
fn the_same_file_twice_is_the_same_run_and_the_same_messages() {
    let bytes = sample("polyfac-2-invoices.csv");
    let once = read(&bytes).unwrap();
    let twice = read(&bytes).unwrap();
    let ctx1 = RunContext::for_file(tenant(), "polyfac", "export.csv", &once.summary.file_sha256);
    let ctx2 = RunContext::for_file(
        tenant(),
        "polyfac",
        "export.csv",
        &twice.summary.file_sha256,
    );
    assert_eq!(ctx1.run_id, ctx2.run_id);
    let ids = |r: &Read, c: &RunContext| -> Vec<String> {
        issued(r, c).iter().map(|e| e.message_id()).collect()
    };
    assert_eq!(ids(&once, &ctx1), ids(&twice, &ctx2));

    // One changed amount changes that invoice's hash and message id only.
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    let text = text.replace("37,5;1,87;70,13", "38;1,87;71,06");
    let changed = read(&cp1252(&text)).unwrap();
    let ctx3 = RunContext::for_file(
        tenant(),
        "polyfac",
        "export.csv",
        &changed.summary.file_sha256,
    );
    assert_ne!(ctx3.run_id, ctx1.run_id);
    let (a, b) = (ids(&once, &ctx1), ids(&changed, &ctx3));
    assert_eq!(a[0], b[0]);
    assert_ne!(a[1], b[1]);
}

#[test]
fn billing_run_closed_counts_per_budget() {
    let bytes = sample("polyfac-2-invoices.csv");
    let mut text = encoding_rs::WINDOWS_1252.decode(&bytes).0.into_owned();
    // A third invoice for the caisse des écoles, and a rejected one.
    text.push_str("F3;31/01/2026;2026;1;SEJOUR;FAM9;M;Dupont;Jean;;1 rue A;;94400;Vitry;;SEJOUR;Séjour;1;420,00;420,00;TIP;;;;;;;10/02/2026\r\n");
    text.push_str("F4;31/01/2026;2026;1;SEJOUR;FAM9;M;Dupont;Jean;;1 rue A;;94400;Vitry;;SEJOUR;Séjour;1;420,00;420,01;TIP;;;;;;;10/02/2026\r\n");
    let read = read(&cp1252(&text)).unwrap();
    let ctx = RunContext::for_file(tenant(), "polyfac", "export.csv", &read.summary.file_sha256);
    let closed = billing_run_closed(&read.summary, &catalogue(), &ctx).unwrap();
    assert_eq!(closed.exercice, 2026);
    assert_eq!(closed.rejected_invoices, 1);
    assert_eq!(closed.run_id, ctx.run_id);
    let budgets: Vec<_> = closed
        .budgets
        .iter()
        .map(|b| {
            (
                b.budget.as_str(),
                b.collection,
                b.invoices,
                b.total.to_string(),
            )
        })
        .collect();
    assert_eq!(
        budgets,
        [
            (
                "caisse-ecoles",
                CollectionPath::Titres,
                1,
                "420.00".to_string()
            ),
            ("principal", CollectionPath::Titres, 1, "62.95".to_string()),
            ("principal", CollectionPath::Regie, 1, "70.13".to_string()),
        ]
    );
}

#[test]
fn creche_source_by_mapping_yields_the_same_canonical_invoices() {
    let toml_text = String::from_utf8(sample("creche-mapping.toml")).unwrap();
    let creche: SourceMapping = toml::from_str(&toml_text).unwrap();
    assert!(
        creche.validate("sources.creche").is_empty(),
        "{:?}",
        creche.validate("sources.creche")
    );

    let from_creche = read_with(&sample("creche-2-invoices.csv"), &creche, "creche.csv").unwrap();
    assert!(
        from_creche.rejected.is_empty(),
        "{:#?}",
        from_creche.rejected
    );
    assert_eq!(from_creche.valid.len(), 2);

    // The same invoices in the Polyfac contract; that file has no BIC either.
    let mut polyfac = SourceMapping::polyfac_default();
    polyfac.bic_required = false;
    let from_polyfac = read_with(
        &sample("polyfac-creche-equivalent.csv"),
        &polyfac,
        "polyfac.csv",
    )
    .unwrap();
    assert!(
        from_polyfac.rejected.is_empty(),
        "{:#?}",
        from_polyfac.rejected
    );

    let ctx = RunContext::for_file(tenant(), "creche", "run.csv", "same-run");
    let a = issued(&from_creche, &ctx);
    let mut b = issued(&from_polyfac, &ctx);
    // Only the line numbers in the source differ (no header line offset here, same layout).
    for (x, y) in a.iter().zip(b.iter_mut()) {
        y.source = x.source.clone();
    }
    assert_eq!(a, b);
    assert_eq!(
        from_creche
            .valid
            .iter()
            .map(content_hash)
            .collect::<Vec<_>>(),
        from_polyfac
            .valid
            .iter()
            .map(content_hash)
            .collect::<Vec<_>>()
    );
    assert_eq!(a[1].payer.address.complement.as_deref(), Some("Escalier B"));
    assert_eq!(a[1].mandate.as_ref().unwrap().bic, None);
    assert_eq!(a[0].lines[1].label, "Heures complémentaires, mercredi");

    // A value outside the crèche's payment-mode table is refused there.
    let text = String::from_utf8(sample("creche-2-invoices.csv"))
        .unwrap()
        .replace(",CB,", ",TIPI,");
    let read = read_with(text.as_bytes(), &creche, "creche.csv").unwrap();
    assert_eq!(read.rejected("CR-2026-0007").errors[0].column, "paiement");
}

#[test]
fn generated_export_reads_back_exactly() {
    for encoding in [
        GeneratedEncoding::Windows1252,
        GeneratedEncoding::Utf8WithBom,
    ] {
        let mut spec = ExportSpec::new(3_000);
        spec.encoding = encoding;
        let mut bytes = Vec::new();
        let tally = write_export(&spec, &mut bytes).unwrap();
        assert_eq!(tally.lines, 3_000);
        assert_eq!(tally.invoices_per_mode.len(), 4, "all payment modes");
        assert!(tally.invoices_per_activity.contains_key("CRECHE"));
        assert!(tally.invoices_per_activity.contains_key("PERISCOLAIRE"));
        assert!(
            tally.families * 2 < tally.invoices,
            "several invoices per family"
        );

        let read = read(&bytes).unwrap();
        assert!(read.rejected.is_empty(), "{:#?}", &read.rejected[..1]);
        assert_eq!(read.summary.lines, tally.lines);
        assert_eq!(read.summary.valid_invoices, tally.invoices);
        assert_eq!(read.summary.valid_total, tally.total);
        for (activity, count) in &tally.invoices_per_activity {
            assert_eq!(
                u64::from(read.summary.activities[activity].invoices),
                *count
            );
        }
        let ctx = RunContext::for_file(tenant(), "polyfac", "gen.csv", &read.summary.file_sha256);
        let closed = billing_run_closed(&read.summary, &catalogue(), &ctx).unwrap();
        let total = Money::sum(closed.budgets.iter().map(|b| &b.total)).unwrap();
        assert_eq!(total, tally.total);
        // principal (titres: PERISCOLAIRE; régie: CRECHE, ANTENNE_QUARTIER), caisse des
        // écoles (titres: SEJOUR, CLASSE_DECOUVERTE).
        assert_eq!(closed.budgets.len(), 3);
    }
}

#[test]
fn summary_item_comes_last() {
    let bytes = sample("polyfac-2-invoices.csv");
    let mapping = SourceMapping::polyfac_default();
    let items: Vec<_> = encaisse_polyfac::ExportReader::new(
        &bytes[..],
        &mapping,
        catalogue(),
        encaisse_polyfac::ReadOptions {
            file_name: "e.csv".into(),
            today: today(),
            prescan: None,
        },
    )
    .collect::<Result<_, _>>()
    .unwrap();
    assert!(matches!(items.last(), Some(ExportItem::Summary(_))));
    assert_eq!(items.len(), 3);
}

/// The example message of `docs/adding-a-source.md` decodes as `invoice.issued` and has the
/// documented message id and routing key; the same invoice read from the crèche sample has
/// the same content hash.
#[test]
fn documented_message_is_valid() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/adding-a-source.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let json = doc
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap();
    let message: InvoiceIssued = decode(json.as_bytes()).unwrap();
    assert!(doc.contains(&format!("`message_id`\n`{}`", message.message_id())));
    assert!(doc.contains(&format!("routing key `{}`", message.routing_key())));

    let creche: SourceMapping =
        toml::from_str(&String::from_utf8(sample("creche-mapping.toml")).unwrap()).unwrap();
    let read = read_with(
        &sample("creche-2-invoices.csv"),
        &creche,
        "creche-2026-01.csv",
    )
    .unwrap();
    assert_eq!(content_hash(&read.valid[1]), message.content_hash);
    assert!(
        doc.contains(&toml_text_of_sample()),
        "the mapping in the doc is the sample's, under [sources.creche]"
    );
}

/// The sample mapping as it appears in the doc: every table prefixed by `sources.creche`.
fn toml_text_of_sample() -> String {
    let text = String::from_utf8(sample("creche-mapping.toml")).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| match l.strip_prefix('[') {
            Some(rest) => format!("[sources.creche.{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    format!("[sources.creche]\n{body}")
}

/// The séjours walk-through of `docs/adding-a-source.md` (one line per invoice, UTF-8 with a
/// byte-order mark, tabs, decimal point, ISO dates, the tool's own payment words) reads as
/// the page says: one invoice of 185.00 paid online, the other rejected for its postal code.
#[test]
fn documented_sejours_recipe_reads_one_invoice_per_line() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/adding-a-source.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let section = doc
        .split("### 1.10 Walk-through: a séjours tool")
        .nth(1)
        .unwrap();
    let export = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap();
    let toml_text = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap();
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    let mapping: SourceMapping = table["sources"]["sejours"].clone().try_into().unwrap();
    assert!(mapping.validate("sources.sejours").is_empty());
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(export.replace('\n', "\r\n").as_bytes());
    let read = read_with(&bytes, &mapping, "sejours-2026-02.tsv").unwrap();
    assert_eq!(read.valid.len(), 1);
    let invoice = &read.valid[0];
    assert_eq!(invoice.number, "SEJ-26-0112");
    assert_eq!(invoice.total.to_dot_string(), "185.00");
    assert_eq!(invoice.lines.len(), 1);
    assert_eq!(invoice.payment_mode, encaisse_schemas::PaymentMode::Tipi);
    let rejected = read.rejected("SEJ-26-0113");
    assert_eq!(
        rejected.errors[0].rule,
        encaisse_polyfac::Rule::InvalidPostalCode
    );
    assert_eq!(rejected.errors[0].column, "cp");
}
