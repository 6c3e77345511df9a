//! Writes one PES Aller bordereau of many titres and reports the throughput.
//!
//! ```text
//! cargo build --release -p encaisse-helios --example pes_bench
//! /usr/bin/time -v target/release/examples/pes_bench --titres 100000 --kind ormc --out /tmp/pes.xml
//! ```
//!
//! Options: `--titres N` (default 100 000; a bordereau holds at most 99 999 pièces, so more
//! titres are written as several bordereaux of at most 99 999), `--kind ormc|ordinaire`,
//! `--out FILE` (default: a temporary file, removed), `--asap` (every third invoice is
//! paid by TIP with a DGFiP-printed ASAP), `--validate` (xmllint against the official XSD).
//!
//! The titres are made on the fly (a generator, iterated three times by the writer), so
//! memory does not grow with the bordereau; the time to make them is measured apart and
//! reported, then subtracted.

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

use chrono::NaiveDate;
use encaisse_helios::aller::{Bordereau, OwnedTitre, write_pes_aller};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::{AsapMode, HeliosTenantConfig, PostalAddress};
use encaisse_schemas::Money;
use encaisse_schemas::events::{
    Address, Civilite, InvoiceIssued, InvoiceLine, InvoiceRef, Mandate, Payer, PaymentMode,
    SequenceType, SourceRef,
};
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_schemas::tenant::{Budget, CollectionPath, TenantId};
use rust_decimal::Decimal;

struct Options {
    titres: u32,
    kind: BordereauKind,
    out: Option<String>,
    asap: bool,
    validate: bool,
}

fn options() -> Options {
    let mut o = Options {
        titres: 100_000,
        kind: BordereauKind::Ormc,
        out: None,
        asap: false,
        validate: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--titres" => {
                o.titres = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--titres N")
            }
            "--kind" => {
                o.kind = match args.next().as_deref() {
                    Some("ordinaire") => BordereauKind::Ordinaire,
                    Some("ormc") => BordereauKind::Ormc,
                    other => panic!("--kind ormc|ordinaire, not {other:?}"),
                }
            }
            "--out" => o.out = args.next(),
            "--asap" => o.asap = true,
            "--validate" => o.validate = true,
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

fn config(kind: BordereauKind, asap: bool) -> HeliosTenantConfig {
    let mut c = HeliosTenantConfig {
        id_post: "094000".into(),
        bordereau_kind: kind,
        ..HeliosTenantConfig::default()
    };
    if asap {
        let a = &mut c.asap;
        a.mode = AsapMode::TipOnly;
        a.emitter_name = "Mairie de Test".into();
        a.emitter_address = PostalAddress {
            street: "1 place de la Mairie".into(),
            postal_code: "94000".into(),
            city: "Creteil".into(),
            ..PostalAddress::default()
        };
        a.ics = Some(Ics::parse("FR72ZZZ123456").expect("ICS"));
        a.signatory_last_name = "Durand".into();
        a.signatory_first_name = "Claire".into();
        a.signatory_role = "Le Maire".into();
        a.payment_centre = PostalAddress {
            locality: Some("TSA 12345".into()),
            postal_code: "59041".into(),
            city: "Lille Cedex".into(),
            ..PostalAddress::default()
        };
        a.public_finance_centre_name = "SGC de Creteil".into();
        a.public_finance_centre_address = PostalAddress {
            street: "2 rue de la Tresorerie".into(),
            postal_code: "94000".into(),
            city: "Creteil".into(),
            ..PostalAddress::default()
        };
    }
    let issues = c.validate("bench");
    assert!(issues.is_empty(), "{issues:?}");
    c
}

fn invoice_line(
    number: u32,
    cod: &str,
    label: &str,
    quantity: i64,
    unit_cents: i64,
) -> InvoiceLine {
    let unit_price = Money::from_cents(unit_cents).expect("amount");
    let amount = Money::from_cents(unit_cents * quantity).expect("amount");
    InvoiceLine {
        number,
        product: cod.into(),
        cod_prod_loc: cod.into(),
        nature: "7067".into(),
        fonction: Some("251".into()),
        label: label.into(),
        quantity: Decimal::new(quantity, 0),
        unit_price,
        amount,
    }
}

/// Invoice `n`: a family of the commune, two lines, one in three paid by direct debit (or
/// TIP with `--asap`), the others online.
fn invoice(n: u32, asap: bool) -> InvoiceIssued {
    let lines = vec![
        invoice_line(
            1,
            "RS01",
            "Restauration scolaire septembre",
            10 + i64::from(n % 10),
            302,
        ),
        invoice_line(
            2,
            "PS01",
            "Accueil du soir septembre",
            1 + i64::from(n % 5),
            200,
        ),
    ];
    let total = Money::sum(lines.iter().map(|l| &l.amount)).expect("total");
    let mode = match (n % 3, asap) {
        (0, false) => PaymentMode::Prelevement,
        (0, true) => PaymentMode::Tip,
        _ => PaymentMode::Tipi,
    };
    let mandate = (n % 3 == 0).then(|| Mandate {
        rum: Rum::parse(&format!("FAM{n:07}-01")).expect("RUM"),
        signed_on: date(2023, 8, 28),
        iban: Iban::parse("FR7630004000031234567890143").expect("IBAN"),
        bic: Some(Bic::parse("BNPAFRPPXXX").expect("BIC")),
        holder: "Dupont Marie".into(),
        sequence: Some(SequenceType::Rcur),
    });
    InvoiceIssued {
        schema_version: 1,
        invoice: InvoiceRef {
            tenant: TenantId::new("bench").expect("tenant"),
            exercice: 2024,
            number: format!("2024{n:07}"),
        },
        source: SourceRef {
            application: "polyfac".into(),
            run_id: "bench".into(),
            file: None,
            lines: None,
        },
        content_hash: String::new(),
        issued_on: date(2024, 10, 1),
        period: 9,
        activity: "PERISCOLAIRE".into(),
        budget: "principal".into(),
        collection: CollectionPath::Titres,
        regie: None,
        family_code: format!("FAM{n:07}"),
        payer: Payer {
            civilite: if n % 2 == 0 {
                Civilite::Mme
            } else {
                Civilite::M
            },
            last_name: "Dupont-Hélène".into(),
            first_name: "Zoé".into(),
            address: Address {
                complement: None,
                street: format!("{} rue des Écoles", n % 200 + 1),
                locality: None,
                postal_code: "94000".into(),
                city: "Créteil".into(),
            },
            email: None,
        },
        lines,
        total,
        due_date: date(2024, 10, 15),
        payment_mode: mode,
        mandate,
        online_payable: true,
    }
}

fn titres(first: u32, count: u32, asap: bool) -> impl Iterator<Item = OwnedTitre> + Clone {
    (first..first + count).map(move |n| OwnedTitre {
        invoice: invoice(n, asap),
        id_pce: n,
        sequence: None,
        asap_pdf: None,
    })
}

fn main() {
    let o = options();
    let config = config(o.kind, o.asap && o.kind == BordereauKind::Ordinaire);
    let budget = Budget {
        code: "principal".into(),
        cod_bud: "00".into(),
        cod_col: "123".into(),
        siret: "21940000000017".into(),
        label: "Commune de Test".into(),
        payfip_numcli: Some("008112".into()),
    };
    let asap = o.asap && o.kind == BordereauKind::Ordinaire;
    let max = 99_999u32;
    let chunks: Vec<(u32, u32)> = (0..o.titres.div_ceil(max))
        .map(|i| (1 + i * max, (o.titres - i * max).min(max)))
        .collect();

    // What making the titres costs (the writer iterates them three times, once more with
    // ASAP PJ): measured alone, then taken out of the writer's time.
    let passes = if asap { 4 } else { 3 };
    let started = Instant::now();
    let mut checksum = 0u64;
    for _ in 0..passes {
        for &(first, count) in &chunks {
            checksum += titres(first, count, asap)
                .map(|t| t.invoice.lines.len() as u64)
                .sum::<u64>();
        }
    }
    let generation = started.elapsed();

    let temp = tempfile::NamedTempFile::new().expect("temporary file");
    let base = o
        .out
        .clone()
        .unwrap_or_else(|| temp.path().display().to_string());
    let started = Instant::now();
    let mut bytes = 0u64;
    let mut outputs = Vec::new();
    for (i, &(first, count)) in chunks.iter().enumerate() {
        let path = if chunks.len() == 1 {
            base.clone()
        } else {
            format!("{base}.{}", i + 1)
        };
        let file = BufWriter::with_capacity(1 << 20, File::create(&path).expect("create output"));
        let bordereau = Bordereau {
            config: &config,
            budget: &budget,
            exercice: 2024,
            id_bord: 1 + i as u32,
            date: date(2024, 10, 5),
        };
        let (file, summary) = write_pes_aller(file, &bordereau, titres(first, count, asap))
            .unwrap_or_else(|e| panic!("{e}"));
        drop(file);
        bytes += std::fs::metadata(&path).expect("output").len();
        println!(
            "bordereau {}: {} pièces, {} € -> {path} ({})",
            i + 1,
            summary.pieces,
            summary.total,
            summary.file_name
        );
        outputs.push(path);
    }
    let total = started.elapsed();
    let writing = total.saturating_sub(generation);
    let n = f64::from(o.titres);
    println!(
        "kind {:?}, asap {asap}, {} titres, {:.1} MB written (checksum {checksum})",
        o.kind,
        o.titres,
        bytes as f64 / 1e6
    );
    println!(
        "total {:.3} s ({:.0} titres/s, generation included)",
        total.as_secs_f64(),
        n / total.as_secs_f64()
    );
    println!(
        "generation {:.3} s, writing alone {:.3} s ({:.0} titres/s)",
        generation.as_secs_f64(),
        writing.as_secs_f64(),
        n / writing.as_secs_f64()
    );
    if o.validate {
        let schema = encaisse_helios::schemas::pes_aller();
        for path in &outputs {
            let started = Instant::now();
            match encaisse_xml::xsd::validate_file(&schema, std::path::Path::new(path)) {
                Ok(()) => println!(
                    "{path}: valid against PES_Aller.xsd ({:.1} s)",
                    started.elapsed().as_secs_f64()
                ),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
