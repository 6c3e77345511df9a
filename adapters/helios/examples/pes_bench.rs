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

use encaisse_helios::aller::{Bordereau, OwnedTitre, write_pes_aller};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::AsapMode;
use encaisse_schemas::events::PaymentMode;

#[path = "../tests/common/mod.rs"]
mod common;

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

/// Invoice `n`: one in three paid by direct debit (or TIP with `--asap`), the others
/// online (the test fixtures' invoice: two lines, a family of the commune).
fn titres(first: u32, count: u32, asap: bool) -> impl Iterator<Item = OwnedTitre> + Clone {
    (first..first + count).map(move |n| OwnedTitre {
        invoice: common::invoice(
            n,
            match (n.is_multiple_of(3), asap) {
                (true, false) => PaymentMode::Prelevement,
                (true, true) => PaymentMode::Tip,
                _ => PaymentMode::Tipi,
            },
        ),
        id_pce: n,
        sequence: None,
        asap_pdf: None,
    })
}

fn main() {
    let o = options();
    let asap = o.asap && o.kind == BordereauKind::Ordinaire;
    let config = if asap {
        common::config_with_asap(o.kind, AsapMode::TipOnly)
    } else {
        common::config(o.kind)
    };
    let budget = common::budget();
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
            date: common::date(2024, 10, 5),
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
