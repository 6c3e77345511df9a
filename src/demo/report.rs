//! What the demo found, checked and prints: invoices read and rejected, files written,
//! payments, REGLEMENTS lines returned to Polyfac, parked messages — and each expectation
//! with its verdict. Printed for people at the end of the run, and written as JSON to
//! `<data_dir>/demo-report.json` for scripts and the demo's test.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One expectation and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    /// What was found, when it is not what was expected.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One invoice the ingest refused.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub line: String,
    pub invoice: String,
    pub field: String,
    pub rule: String,
    pub message: String,
}

/// One export read.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub tenant: String,
    pub file: String,
    pub lines: u64,
    pub valid: u64,
    pub rejected: u64,
    pub rejections: Vec<Rejection>,
}

/// One file the daemon wrote for the outside world.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// `PES Aller`, `pain.008`, `PES_ACQUIT_RETOUR`.
    pub kind: String,
    /// Relative to the data directory.
    pub path: String,
    /// `6 titres, 240.25 EUR`.
    pub content: String,
    /// `valid`, `INVALID: …` or `not validated`.
    pub schema: String,
}

/// One payment made on the Kiosque famille.
#[derive(Debug, Clone, Serialize)]
pub struct OnlineReport {
    pub tenant: String,
    pub invoice: String,
    pub what: String,
    pub payment_id: String,
    pub channel: String,
    pub amount: String,
}

/// One line of a REGLEMENTS file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReglementLine {
    pub invoice: String,
    pub statut: String,
    pub canal: String,
    pub montant: String,
    pub date: String,
    pub reference: String,
    pub motif: String,
}

/// One REGLEMENTS file.
#[derive(Debug, Clone, Serialize)]
pub struct ReglementsFile {
    pub tenant: String,
    /// Relative to the data directory.
    pub path: String,
    pub lines: Vec<ReglementLine>,
}

/// One parked message.
#[derive(Debug, Clone, Serialize)]
pub struct ParkedReport {
    pub id: i64,
    pub stage: String,
    pub kind: String,
    pub invoice: String,
    pub error: String,
}

/// Everything the run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub data_dir: String,
    pub broker_prefix: String,
    pub validation: String,
    pub exports: Vec<ExportReport>,
    pub files: Vec<FileReport>,
    pub online: Vec<OnlineReport>,
    pub reglements: Vec<ReglementsFile>,
    pub parked: Vec<ParkedReport>,
    pub checks: Vec<Check>,
    pub seconds: f64,
}

impl Report {
    /// Records an expectation.
    pub fn expect(&mut self, what: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.checks.push(Check {
            what: what.into(),
            ok,
            detail: if ok { String::new() } else { detail.into() },
        });
        ok
    }

    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// A path relative to the data directory, for display.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.data_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Every REGLEMENTS line with its tenant.
    pub fn all_reglements(&self) -> Vec<(&str, &ReglementLine)> {
        self.reglements
            .iter()
            .flat_map(|f| f.lines.iter().map(move |l| (f.tenant.as_str(), l)))
            .collect()
    }

    /// Writes `demo-report.json` into the data directory.
    pub fn save(&self) -> std::io::Result<PathBuf> {
        let path = Path::new(&self.data_dir).join("demo-report.json");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)?;
        Ok(path)
    }

    /// The report for people.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out)?;
        writeln!(out, "Report")?;
        writeln!(out, "======")?;
        writeln!(out)?;
        writeln!(out, "Invoices read (Polyfac exports)")?;
        for e in &self.exports {
            writeln!(
                out,
                "  {:<6} {}: {} lines, {} invoices read, {} valid, {} rejected",
                e.tenant,
                e.file,
                e.lines,
                e.valid + e.rejected,
                e.valid,
                e.rejected
            )?;
            for r in &e.rejections {
                writeln!(
                    out,
                    "         rejected {} (line {}, {}): {} - {}",
                    r.invoice, r.line, r.field, r.rule, r.message
                )?;
            }
        }
        writeln!(out)?;
        writeln!(out, "Files written ({})", self.validation)?;
        for f in &self.files {
            writeln!(
                out,
                "  {:<17} {}\n                    {}; {}",
                f.kind, f.path, f.content, f.schema
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Paid online (Kiosque famille → PayFiP simulator)")?;
        for p in &self.online {
            writeln!(
                out,
                "  {:<6} {:<12} {:>8} EUR  {:<44} {}",
                p.tenant, p.invoice, p.amount, p.what, p.payment_id
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Returned to Polyfac (REGLEMENTS files)")?;
        for f in &self.reglements {
            writeln!(out, "  {} ({} lines)", f.path, f.lines.len())?;
            for l in &f.lines {
                let extra = if l.motif.is_empty() {
                    l.reference.clone()
                } else {
                    l.motif.clone()
                };
                writeln!(
                    out,
                    "    {:<12} {:<20} {:<18} {:>8}  {}",
                    l.invoice, l.statut, l.canal, l.montant, extra
                )?;
            }
        }
        writeln!(out)?;
        if self.parked.is_empty() {
            writeln!(out, "Parked messages: none")?;
        } else {
            writeln!(out, "Parked messages: {}", self.parked.len())?;
            for p in &self.parked {
                writeln!(
                    out,
                    "  #{} {} {} {}: {}",
                    p.id, p.stage, p.kind, p.invoice, p.error
                )?;
            }
        }
        writeln!(out)?;
        writeln!(out, "Where the files are: {}", self.data_dir)?;
        writeln!(
            out,
            "  <tenant>/polyfac/{{archive,rejected,outbox}}  exports read, rejection reports, REGLEMENTS"
        )?;
        writeln!(
            out,
            "  <tenant>/helios/{{outbox,archive}}           PES Aller and PES_ACQUIT_RETOUR, Trésorerie files read"
        )?;
        writeln!(
            out,
            "  <tenant>/bank/{{outbox,archive}}             pain.008, bank files read"
        )?;
        writeln!(out, "  encaisse-demo.log, demo-report.json, ledger.sqlite")?;
        writeln!(out)?;
        let failed = self.failed();
        if failed.is_empty() {
            writeln!(
                out,
                "Result: every expectation held ({} checks) in {:.1} s.",
                self.checks.len(),
                self.seconds
            )?;
        } else {
            writeln!(
                out,
                "Result: {} of {} expectations did NOT hold:",
                failed.len(),
                self.checks.len()
            )?;
            for c in failed {
                writeln!(out, "  - {}: {}", c.what, c.detail)?;
            }
        }
        Ok(())
    }
}
