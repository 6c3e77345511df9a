//! Parser benchmark: a generated Polyfac export through prescan, read + validation, and
//! enrichment to `invoice.issued` JSON (everything the ingest stage does but publishing).
//!
//! ```text
//! cargo run --release -p encaisse-polyfac --example parse_bench -- generate /tmp/export.csv 1000000
//! /usr/bin/time -v target/release/examples/parse_bench parse /tmp/export.csv
//! ```
//!
//! `parse` is the figure to measure (peak RSS of the parse alone); `read` stops after
//! validation (the parser alone, no enrichment); `all` generates to a temporary file and
//! parses it in one run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use encaisse_polyfac::generate::{ExportSpec, example_catalogue, write_export};
use encaisse_polyfac::{
    ExportItem, ExportReader, ReadOptions, RunContext, SourceMapping, enrich, prescan,
};
use encaisse_schemas::{SequenceType, TenantId, encode};

type Error = Box<dyn std::error::Error>;

fn generate(path: &str, lines: u64) -> Result<(), Error> {
    let started = Instant::now();
    let tally = write_export(&ExportSpec::new(lines), BufWriter::new(File::create(path)?))?;
    println!(
        "generated {path}: {} lines, {} invoices, {} families, total {} EUR in {:.2?}",
        tally.lines,
        tally.invoices,
        tally.families,
        tally.total,
        started.elapsed()
    );
    Ok(())
}

fn parse(path: &str, enrich_too: bool) -> Result<(), Error> {
    let tenant = TenantId::new("vitry")?;
    let catalogue = Arc::new(example_catalogue(tenant.clone()).map_err(|e| format!("{e:?}"))?);
    let mapping = SourceMapping::polyfac_default();
    let name = std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("export.csv")
        .to_string();

    let started = Instant::now();
    let scan = prescan(File::open(path)?, &mapping, &name)?;
    let prescan_time = started.elapsed();

    let ctx = RunContext::for_file(tenant, "polyfac", &name, &scan.file_sha256);
    let options = ReadOptions {
        file_name: name.clone(),
        today: NaiveDate::from_ymd_opt(2026, 2, 1).ok_or("date")?,
        prescan: Some(scan.clone()),
    };
    let started = Instant::now();
    let mut json_bytes = 0usize;
    let mut valid = 0u64;
    let mut rejected = 0u64;
    let mut summary = None;
    for item in ExportReader::new(File::open(path)?, &mapping, catalogue, options) {
        match item? {
            ExportItem::Valid(_) if !enrich_too => valid += 1,
            ExportItem::Valid(invoice) => {
                let issued = enrich(&invoice, &ctx, |_| {
                    Ok::<_, std::convert::Infallible>(SequenceType::Rcur)
                })?;
                json_bytes += encode(&issued).len();
                valid += 1;
            }
            ExportItem::Invalid(_) => rejected += 1,
            ExportItem::Summary(s) => summary = Some(s),
        }
    }
    let read_time = started.elapsed();
    let summary = summary.ok_or("no summary")?;
    let lines = summary.lines as f64;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "file: {name}, {} bytes, {} lines, encoding {}",
        summary.bytes,
        summary.lines,
        summary.encoding.label()
    )?;
    writeln!(
        out,
        "invoices: {valid} valid, {rejected} rejected, total {} EUR",
        summary.valid_total
    )?;
    writeln!(
        out,
        "prescan: {:.2?} ({:.0} lines/s)",
        prescan_time,
        lines / prescan_time.as_secs_f64()
    )?;
    writeln!(
        out,
        "read + validate{} ({} MB of JSON): {:.2?} ({:.0} lines/s)",
        if enrich_too { " + enrich + JSON" } else { "" },
        json_bytes / 1_000_000,
        read_time,
        lines / read_time.as_secs_f64()
    )?;
    writeln!(
        out,
        "both passes: {:.0} lines/s",
        lines / (prescan_time + read_time).as_secs_f64()
    )?;
    if summary.file_sha256 != scan.file_sha256 {
        return Err("file changed between the two passes".into());
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", path, lines] => generate(path, lines.parse()?),
        ["parse", path] => parse(path, true),
        ["read", path] => parse(path, false),
        ["all"] | [] => {
            let path = std::env::temp_dir().join("encaisse-parse-bench.csv");
            let path = path.to_str().ok_or("temp path")?.to_string();
            generate(&path, 1_000_000)?;
            let result = parse(&path, true);
            std::fs::remove_file(&path)?;
            result
        }
        _ => Err(
            "usage: parse_bench [generate <path> <lines> | parse <path> | read <path> | all]"
                .into(),
        ),
    }
}
