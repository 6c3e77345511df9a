//! The benchmark's result: one JSON object (`--json`) and a table for people.

use super::baseline::BaselineResult;
use super::notify::NotifyResult;
use super::pes::PesResult;
use super::pipeline::PipelineResult;

/// The machine during the run (the figures depend on it: say the load when quoting them).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub load_at_start: Option<f64>,
    pub load_at_end: Option<f64>,
    pub rabbitmq_url: String,
    /// How the daemon was run.
    pub daemon: String,
}

/// Everything one run measured. The first fields are the contract; the nested
/// objects give the detail behind each figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The daemon's ledger backend (`sqlite`, `postgres`).
    pub ledger: String,
    /// Daemons that shared the work (the memory, CPU and stage figures are the first's).
    pub instances: usize,
    pub invoices: u64,
    pub baseline_msgs_per_s: f64,
    pub pipeline_invoices_per_s: f64,
    /// `pipeline_invoices_per_s / baseline_msgs_per_s`.
    pub ratio: f64,
    pub notify_p50_ms: f64,
    pub notify_p99_ms: f64,
    /// The daemon's peak resident memory over the whole run (`VmHWM`), in MB (10^6 bytes).
    pub peak_rss_mb: f64,
    /// The same, right after the pipeline (before the notification benchmark).
    pub peak_rss_after_pipeline_mb: f64,
    /// The largest RSS sampled in each phase (ingest, collection, planning, PES writing,
    /// reconciliation, notification), in MB.
    pub phases: Vec<super::pipeline::PhasePeak>,
    /// The deepest ready-message count sampled in each work queue during the pipeline.
    pub max_queue_depth: std::collections::BTreeMap<String, u64>,
    /// The daemon's `[polyfac] max_downstream_backlog` (invoices).
    pub backlog_bound: u64,
    /// The daemon's `[polyfac] bundle_size`: invoices per queue message at most.
    pub bundle_size: u64,
    /// The bound in queue messages: `backlog_bound / bundle_size` plus one ingest batch.
    pub backlog_bound_messages: u64,
    /// Whether every work queue stayed within `backlog_bound_messages`.
    pub backlog_bound_held: bool,
    pub pes_titres_per_s: f64,
    pub machine: Machine,
    pub baseline: BaselineResult,
    pub pipeline: PipelineResult,
    pub notify: NotifyResult,
    pub pes: PesResult,
}

/// Bytes to MB (10^6).
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// `12345.6` → `12,346`.
pub fn thousands(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

fn opt_secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.1} s"))
}

fn cores(v: Option<f64>) -> String {
    v.map_or("-".into(), |c| format!("{c:.2}"))
}

/// The table printed without `--json`.
pub fn table(r: &Report) -> String {
    let p = &r.pipeline;
    let mut out = String::new();
    out.push_str(&format!(
        "encaisse-bench: {} invoices ({} lines, {:.0} MB export), {} ledger{}; {} cores{}; load {} → {}\n\n",
        thousands(r.invoices as f64),
        thousands(p.export_lines as f64),
        mb(p.export_bytes),
        r.ledger,
        if r.instances > 1 {
            format!(
                ", {} daemons (memory, CPU and stage figures: the first)",
                r.instances
            )
        } else {
            String::new()
        },
        r.machine.cores,
        r.machine
            .cpu_model
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        r.machine
            .load_at_start
            .map_or("-".into(), |l| format!("{l:.2}")),
        r.machine
            .load_at_end
            .map_or("-".into(), |l| format!("{l:.2}")),
    ));
    let rows = [
        (
            "raw broker baseline (persistent, confirmed, 1 quorum queue)".to_string(),
            format!(
                "{} msg/s ({} msgs of {} B in {:.1} s)",
                thousands(r.baseline_msgs_per_s),
                thousands(r.baseline.messages as f64),
                r.baseline.body_bytes,
                r.baseline.total_secs
            ),
            String::new(),
        ),
        (
            "pipeline: export dropped → last PES file recorded".into(),
            format!(
                "{} invoices/s ({:.1} s)",
                thousands(r.pipeline_invoices_per_s),
                p.secs
            ),
            String::new(),
        ),
        (
            "ratio pipeline / baseline".into(),
            format!("{:.2}", r.ratio),
            "≥ 0.5".into(),
        ),
        (
            format!(
                "PayFiP notification → payment.received, p50 / p99 ({} payments, {} at a time)",
                thousands(r.notify.payments as f64),
                r.notify.concurrency
            ),
            format!("{:.1} / {:.1} ms", r.notify_p50_ms, r.notify_p99_ms),
            String::new(),
        ),
        (
            "daemon peak RSS (VmHWM)".into(),
            format!(
                "{:.0} MB ({:.0} MB after the pipeline)",
                r.peak_rss_mb, r.peak_rss_after_pipeline_mb
            ),
            "< 200 MB at 1,000,000".into(),
        ),
        (
            format!(
                "PES writing alone ({} titres, {} with ASAP)",
                thousands(r.pes.titres as f64),
                thousands(r.pes.asap_titres as f64)
            ),
            format!(
                "{} titres/s ({} without the TIP titres)",
                thousands(r.pes_titres_per_s),
                thousands(r.pes.titres_per_s_without_asap)
            ),
            "≥ 100,000".into(),
        ),
    ];
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let w2 = rows
        .iter()
        .map(|r| r.2.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(s.chars().count())));
    out.push_str(&format!(
        "| {} | {} | {} |\n",
        pad("measure", w0),
        pad("figure", w1),
        pad("aim", w2)
    ));
    out.push_str(&format!(
        "|{}|{}|{}|\n",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 2),
        "-".repeat(w2 + 2)
    ));
    for (what, figure, aim) in &rows {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            pad(what, w0),
            pad(figure, w1),
            pad(aim, w2)
        ));
    }
    out.push_str(&format!(
        "\npipeline: {} published, {} rejected by the ingest, {} titres in {} PES file(s), {} refused by helios.titres (reported)\n",
        thousands(p.published as f64),
        thousands(p.ingest_rejected as f64),
        thousands(p.titres as f64),
        p.pes_files,
        thousands(p.helios_refused as f64),
    ));
    out.push_str(&format!(
        "  steps since the drop: ingest closed {}, helios collected every invoice {}, last file planned {}, written {:.1} s, every queue empty {}\n",
        opt_secs(p.ingest_closed_secs),
        opt_secs(p.helios_collected_secs),
        opt_secs(p.last_file_planned_secs),
        p.secs,
        opt_secs(p.drained_secs),
    ));
    out.push_str(&format!(
        "  daemon memory: largest RSS seen {:.0} MB, {:.1} s after the drop\n",
        p.max_rss_seen_mb, p.max_rss_seen_at_secs
    ));
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|ph| {
            format!(
                "{} {}",
                ph.phase,
                ph.peak_rss_mb.map_or("-".into(), |m| format!("{m:.0} MB"))
            )
        })
        .collect();
    out.push_str(&format!("  peak RSS per phase: {}\n", phases.join(", ")));
    let depths: Vec<String> = r
        .max_queue_depth
        .iter()
        .map(|(q, d)| {
            format!(
                "{} {}",
                q.split_once('.').map_or(q.as_str(), |(_, s)| s),
                thousands(*d as f64)
            )
        })
        .collect();
    out.push_str(&format!(
        "  deepest work queues in messages of up to {} invoices (bound {} messages{}): {}\n",
        r.bundle_size,
        thousands(r.backlog_bound_messages as f64),
        if r.backlog_bound_held {
            ", held"
        } else {
            ", EXCEEDED"
        },
        depths.join(", ")
    ));
    out.push_str(&format!(
        "  CPU (cores busy) from drop to last file: daemon {}, RabbitMQ {}, rest of the machine {}\n",
        cores(p.cpu.daemon_cores),
        cores(p.cpu.broker_cores),
        cores(p.cpu.others_cores),
    ));
    for s in &p.stages {
        out.push_str(&format!(
            "  stage {:<16} processed {:>9}  mean {:>8}  duplicates {}  retried {}  parked {}\n",
            s.stage,
            thousands(s.processed as f64),
            s.mean_ms.map_or("-".into(), |m| format!("{m:.2} ms")),
            s.duplicates,
            s.retried,
            s.parked,
        ));
    }
    out.push_str(&format!(
        "notification: p90 {:.1} ms, max {:.1} ms, {:.0} payments/s\n",
        r.notify.p90_ms, r.notify.max_ms, r.notify.payments_per_s
    ));
    out.push_str(&format!(
        "PES alone: {} file(s), {} bordereau(x), {:.0} MB in {:.2} s\n",
        r.pes.files,
        r.pes.bordereaux,
        mb(r.pes.bytes),
        r.pes.secs
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.6), "1,234,568");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
