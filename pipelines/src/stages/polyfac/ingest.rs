//! `polyfac.ingest`: export files in `<tenant>/polyfac/inbox` → `invoice.issued.<titres|regie>`
//! and `billing_run.closed` (docs/polyfac.md, "Ingest").
//!
//! One file is one billing run (`run_id` from tenant, file name and file hash). For each file:
//! 1. **prescan** (first pass, blocking thread): a file that cannot be read at all goes to
//!    `polyfac/rejected` whole, with its report;
//! 2. **read** (second pass, blocking thread, bounded channel): valid invoices are gathered in
//!    batches of `publish_batch_size`; invalid ones go to the rejection report;
//! 3. per batch: **decide** in one ledger transaction (already published with the same
//!    content → skipped; same number with other content, or same content from another run →
//!    refused; a direct debit without sequence → the mandate history decides it,
//!    [`crate::mandates::sequence_for`]), **publish** the new ones (confirmed),
//!    then **record** them with their journal facts (one transaction) — in a task of its own
//!    while the next batch is read and decided, batches kept in file order;
//! 4. **close**: `billing_run.closed` with the counts the ledger holds for the run (every
//!    invoice it published, in this attempt or an earlier one), once;
//! 5. the rejection report (when an invoice was refused) with `emit_file`, then the watcher
//!    archives the file.
//!
//! A crash anywhere leaves the file in the inbox: the next scan reads it again, skips what
//! the ledger says was published, and re-sends at most the two batches that were in flight
//! (same message ids: consumers deduplicate them). Memory is bounded by the reader (one record,
//! one invoice, ~16 bytes per invoice number), the channel and two batches.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError, Tx};
use encaisse_polyfac::report::{
    RejectionReport, ReportFiles, report_file_names, unreadable_file_report,
};
use encaisse_polyfac::{
    ExportItem, ExportReader, ExportSummary, Field, FileError, Invoice, Prescan, ReadOptions,
    RejectedInvoice, Rule, RunContext, ValidationError, content_hash, enrich, enrich_credit_note,
    prescan,
};
use encaisse_schemas::{
    BillingRunClosed, CreditNoteIssued, Event, InvoiceIssued, InvoiceRef, Money,
};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::ingest_store::{self, ClosedRun, IssuedRecord};
use super::progress::{self, ImportProgress};
use super::tenants::{PolyfacTenant, PolyfacTenants};
use super::{ledger_now, paris_today};
use crate::mandates::{SequenceError, sequence_for};
use crate::runtime::{PublishError, SourceContext};
use crate::stage::{Outgoing, StageError};
use crate::stages::inbox::{AreaDirs, FileOutcome, InboxFile, InboxHandler};
use crate::stages::untrusted_file;

/// Source name (logs, metrics, journal dedupe keys).
pub const NAME: &str = "polyfac.ingest";
/// The tenant area directory.
pub const AREA: &str = "polyfac";

/// The inbox handler of `polyfac.ingest` (run it with
/// [`crate::stages::inbox::InboxWatcher`]).
pub struct PolyfacIngest {
    tenants: PolyfacTenants,
    data_dir: PathBuf,
    batch_size: usize,
    /// Ready messages a downstream work queue may hold before the next batch waits
    /// (`[polyfac] max_downstream_backlog`).
    backlog: u64,
    /// Invoices per AMQP message (`[polyfac] bundle_size`; 1: one message each).
    bundle_size: usize,
    /// The tenant area it reads: `polyfac` for each tenant's default source, or
    /// `sources/<name>` for another source the tenant receives.
    area: String,
}

impl PolyfacIngest {
    /// `batch_size`: invoices per confirmed publish (`[polyfac] publish_batch_size`).
    pub fn new(tenants: PolyfacTenants, data_dir: PathBuf, batch_size: usize) -> Self {
        progress::describe();
        PolyfacIngest {
            tenants,
            data_dir,
            batch_size: batch_size.max(1),
            backlog: u64::MAX,
            bundle_size: 1,
            area: AREA.to_string(),
        }
    }

    /// Waits before each batch while a downstream work queue holds more than `bound` ready
    /// messages (without it, no bound).
    pub fn with_backlog(mut self, bound: u64) -> Self {
        self.backlog = bound;
        self
    }

    /// Packs each batch's invoices into bundles of at most `size` per routing key
    /// ([`crate::bundle`]); 1 publishes one message per invoice.
    pub fn with_bundles(mut self, size: usize) -> Self {
        self.bundle_size = size.max(1);
        self
    }

    /// The same, reading the area `area` of each tenant (a further source's own inbox).
    pub fn in_area(mut self, area: String) -> Self {
        self.area = area;
        self
    }
}

impl InboxHandler for PolyfacIngest {
    fn name(&self) -> &str {
        NAME
    }

    fn area(&self) -> &str {
        &self.area
    }

    fn handle<'a>(
        &'a self,
        ctx: &'a SourceContext,
        file: &'a InboxFile,
    ) -> BoxFuture<'a, Result<FileOutcome, StageError>> {
        Box::pin(self.ingest(ctx, file))
    }
}

/// What became of one valid invoice of a batch ([`decide`]).
pub enum Decision {
    /// New: publish it, then record it.
    Publish(Box<Issued>),
    /// Published before by this same run (the file dropped again, or a crash half-way).
    Skip,
    /// Not published: the rule it broke and why (reported like a validation error).
    Refuse(Box<Refusal>),
}

/// What a valid line group becomes: an invoice, or a credit note against an earlier one.
pub enum Issued {
    Invoice(InvoiceIssued),
    CreditNote(CreditNoteIssued),
}

impl Issued {
    /// The invoice itself, or the credit note's own lines (negative total).
    fn invoice(&self) -> &InvoiceIssued {
        match self {
            Issued::Invoice(i) => i,
            Issued::CreditNote(n) => &n.note,
        }
    }

    fn outgoing(&self) -> Outgoing {
        match self {
            Issued::Invoice(i) => Outgoing::event(i),
            Issued::CreditNote(n) => Outgoing::event(n),
        }
    }

    fn message_id(&self) -> String {
        match self {
            Issued::Invoice(i) => i.message_id(),
            Issued::CreditNote(n) => n.message_id(),
        }
    }

    /// Where it is routed: the queues the ingest's back-pressure watches.
    fn routing_key(&self) -> String {
        match self {
            Issued::Invoice(i) => i.routing_key(),
            Issued::CreditNote(n) => n.routing_key(),
        }
    }

    fn origin_key(&self) -> Option<String> {
        match self {
            Issued::Invoice(_) => None,
            Issued::CreditNote(n) => Some(n.origin.key()),
        }
    }
}

/// An invoice the stage refuses after validation.
pub struct Refusal {
    pub rejected: RejectedInvoice,
    pub key: InvoiceRef,
    pub hash: String,
    pub activity: String,
    pub total: Money,
}

/// Counts of one file, for the report, the metrics and `billing_run.closed`.
#[derive(Default)]
struct Tally {
    published: u64,
    skipped: u64,
    /// Invoices refused by the stage (ledger or mandate rules) after validation, with
    /// their activity and total.
    refused: Vec<(RejectedInvoice, String, Money)>,
    /// Invoices rejected at validation, recorded in their journal once the file is read.
    rejected: Vec<RejectedInvoice>,
    /// The batch being published and recorded while the next one is read and decided.
    in_flight: Option<InFlight>,
}

/// Opens an export without following links (a link or a special file is refused for good);
/// a plain I/O failure is the reader's own [`FileError::Io`].
fn open_export(path: &std::path::Path, name: &str) -> Result<Result<File, FileError>, StageError> {
    match untrusted_file::open(path) {
        Ok(f) => Ok(Ok(f)),
        Err(untrusted_file::UntrustedFileError::Io { source, .. }) => Ok(Err(FileError::Io {
            file: name.to_string(),
            source,
        })),
        Err(other) => Err(other.into_stage_error()),
    }
}

fn file_error(e: FileError) -> StageError {
    if e.is_transient() {
        StageError::transient(e.kind(), e.to_string())
    } else {
        StageError::permanent(e.kind(), e.to_string())
    }
}

fn publish_error(e: PublishError, what: &str) -> StageError {
    // Even a topology problem (no queue bound) leaves the file in the inbox: the file is
    // fine, and rejecting it would strand a half-published run.
    if !e.is_transient() {
        tracing::error!(error = %e, what, "Publishing failed for a reason that needs a person; the file stays in the inbox.");
    }
    StageError::transient("publish", format!("publishing {what} failed: {e}"))
}

impl PolyfacIngest {
    fn tenant(&self, file: &InboxFile) -> Result<&Arc<PolyfacTenant>, StageError> {
        self.tenants.get(file.tenant.as_str()).ok_or_else(|| {
            StageError::permanent(
                "unknown_tenant",
                format!("tenant {} has no Polyfac settings", file.tenant),
            )
        })
    }

    async fn ingest(
        &self,
        ctx: &SourceContext,
        file: &InboxFile,
    ) -> Result<FileOutcome, StageError> {
        let setup = self.tenant(file)?.clone();
        let tenant = setup.tenant.as_str().to_string();
        let scan = {
            let (path, mapping, name) =
                (file.path.clone(), setup.mapping.clone(), file.name.clone());
            tokio::task::spawn_blocking(move || {
                Ok::<_, StageError>(
                    open_export(&path, &name)?.and_then(|f| prescan(f, &mapping, &name)),
                )
            })
            .await
            .map_err(|e| untrusted_file::join_error("export reader", e))??
        };
        let scan = match scan {
            Ok(scan) => scan,
            Err(e) if e.is_transient() => return Err(file_error(e)),
            Err(e) => {
                let report = unreadable_file_report(&file.name, &e);
                let discriminator = encaisse_ledger::files::sha256_hex(&report.rejected_csv);
                self.emit_report(ctx, &setup, file, report, &discriminator[..12])
                    .await?;
                metrics::counter!("encaisse_polyfac_files_total", "tenant" => tenant, "outcome" => "unreadable").increment(1);
                return Ok(FileOutcome::Rejected {
                    reason: e.to_string(),
                });
            }
        };
        let run = RunContext::for_file(
            setup.tenant.clone(),
            setup.application.clone(),
            &file.name,
            &scan.file_sha256,
        );
        tracing::info!(source = NAME, tenant = %tenant, file = %file.name, run_id = %run.run_id, lines = scan.lines, "Export accepted for reading.");

        let (summary, report, tally) = self
            .read_and_publish(ctx, &setup, file, &scan, &run)
            .await?;
        if summary.file_sha256 != scan.file_sha256 {
            return Err(StageError::transient(
                "file_changed",
                format!(
                    "{} changed between the two reading passes; it will be read again",
                    file.name
                ),
            ));
        }
        self.record_rejected(ctx, &setup, &summary, &tally, &run)
            .await?;
        self.close_run(ctx, &setup, &summary, &tally, &run).await?;
        let counted = adjusted_summary(&summary, &tally.refused);
        if report.rows() > 0 {
            let report_summary = counted.clone();
            let files = report.finish(&report_summary);
            self.emit_report(ctx, &setup, file, files, &run.run_id)
                .await?;
        }
        metrics::counter!("encaisse_polyfac_files_total", "tenant" => tenant.clone(), "outcome" => "processed").increment(1);
        tracing::info!(
            source = NAME,
            tenant = %tenant,
            file = %file.name,
            run_id = %run.run_id,
            lines = summary.lines,
            published = tally.published,
            skipped = tally.skipped,
            rejected = counted.rejected_invoices,
            duplicates = counted.duplicate_invoices,
            "Export ingested."
        );
        Ok(FileOutcome::Archived)
    }

    /// The second pass: reads on a blocking thread, publishes batches, reports the rest.
    async fn read_and_publish(
        &self,
        ctx: &SourceContext,
        setup: &Arc<PolyfacTenant>,
        file: &InboxFile,
        scan: &Prescan,
        run: &RunContext,
    ) -> Result<(ExportSummary, RejectionReport, Tally), StageError> {
        let tenant = setup.tenant.as_str().to_string();
        let (tx, mut rx) = mpsc::channel(self.batch_size.clamp(16, 1024));
        let reader = {
            let (path, mapping, catalogue) = (
                file.path.clone(),
                setup.mapping.clone(),
                setup.catalogue.clone(),
            );
            let options = ReadOptions {
                file_name: file.name.clone(),
                today: paris_today(),
                prescan: Some(scan.clone()),
            };
            tokio::task::spawn_blocking(move || {
                // Replaced by a link or a special file since the first pass: an I/O
                // failure here, so the next scan reads it again and refuses it.
                let opened = open_export(&path, &options.file_name).unwrap_or_else(|e| {
                    Err(FileError::Io {
                        file: options.file_name.clone(),
                        source: std::io::Error::other(e.message),
                    })
                });
                let f = match opened {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                for item in ExportReader::new(f, &mapping, catalogue, options) {
                    if tx.blocking_send(item).is_err() {
                        return; // the file's handling stopped: stop reading
                    }
                }
            })
        };
        let mut report = RejectionReport::new();
        let mut tally = Tally::default();
        let mut progress = ImportProgress::new(&tenant, &file.name, scan.lines);
        let mut batch: Vec<Invoice> = Vec::with_capacity(self.batch_size);
        let mut summary = None;
        while let Some(item) = rx.recv().await {
            match item.map_err(|e| match e {
                FileError::Io { .. } => file_error(e),
                // The first pass read it: the bytes changed since.
                other => StageError::transient(
                    "file_changed",
                    format!(
                        "{other} (the file changed after its first pass; it will be read again)"
                    ),
                ),
            })? {
                ExportItem::Valid(invoice) => {
                    progress.invoice_read(invoice.file_lines.1);
                    batch.push(*invoice);
                    if batch.len() >= self.batch_size {
                        self.publish_batch(
                            ctx,
                            setup,
                            run,
                            std::mem::take(&mut batch),
                            &mut report,
                            &mut tally,
                        )
                        .await?;
                    }
                }
                ExportItem::Invalid(rejected) => {
                    progress.invoice_read(rejected.file_lines.1);
                    for e in &rejected.errors {
                        metrics::counter!("encaisse_polyfac_rejected_total", "tenant" => tenant.clone(), "rule" => e.rule.code()).increment(1);
                    }
                    metrics::counter!("encaisse_polyfac_invoices_total", "tenant" => tenant.clone(), "outcome" => "rejected").increment(1);
                    report.add(&rejected);
                    tally.rejected.push(rejected);
                }
                ExportItem::Summary(s) => summary = Some(s),
            }
        }
        if !batch.is_empty() {
            self.publish_batch(ctx, setup, run, batch, &mut report, &mut tally)
                .await?;
        }
        if let Some(last) = tally.in_flight.take() {
            tally.published += last.finish().await?;
        }
        reader
            .await
            .map_err(|e| untrusted_file::join_error("export reader", e))?;
        let summary = summary.ok_or_else(|| {
            StageError::transient(
                "reader_task",
                format!(
                    "{}: the reader stopped before the end of the file",
                    file.name
                ),
            )
        })?;
        metrics::counter!("encaisse_polyfac_lines_total", "tenant" => tenant)
            .increment(summary.lines);
        Ok((summary, report, tally))
    }

    /// Decides, publishes and records one batch of valid invoices.
    async fn publish_batch(
        &self,
        ctx: &SourceContext,
        setup: &Arc<PolyfacTenant>,
        run: &RunContext,
        batch: Vec<Invoice>,
        report: &mut RejectionReport,
        tally: &mut Tally,
    ) -> Result<(), StageError> {
        if ctx.shutdown.is_cancelled() {
            return Err(StageError::transient(
                "shutting_down",
                "the daemon is stopping; the file will be read again at the next start",
            ));
        }
        let tenant = setup.tenant.as_str().to_string();
        let decided = {
            let (setup, run) = (setup.clone(), run.clone());
            ctx.ledger
                .transact(move |tx| {
                    let keys: Vec<String> = batch
                        .iter()
                        .map(|invoice| invoice_ref(&setup, invoice).key())
                        .collect();
                    let known = ingest_store::issued_before_many(tx, setup.tenant.as_str(), &keys)?;
                    batch
                        .into_iter()
                        .zip(keys)
                        .map(|(invoice, key)| {
                            let before = known.get(&key).cloned();
                            decide_knowing(tx, &setup, &run, &invoice, before)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?
        };
        let mut events = Vec::new();
        let mut skipped = 0;
        for decision in decided {
            match decision {
                Decision::Publish(event) => events.push(*event),
                Decision::Skip => skipped += 1,
                Decision::Refuse(refusal) => {
                    let Refusal {
                        rejected,
                        key,
                        hash,
                        activity,
                        total,
                    } = *refusal;
                    report.add(&rejected);
                    let rule = rejected.errors.first().map_or("", |e| e.rule.code());
                    if is_duplicate(&rejected) {
                        metrics::counter!("encaisse_polyfac_invoices_total", "tenant" => tenant.clone(), "outcome" => "duplicate").increment(1);
                    } else {
                        metrics::counter!("encaisse_polyfac_rejected_total", "tenant" => tenant.clone(), "rule" => rule).increment(1);
                        metrics::counter!("encaisse_polyfac_invoices_total", "tenant" => tenant.clone(), "outcome" => "rejected").increment(1);
                    }
                    let fact = InvoiceFact {
                        invoice_key: key.key(),
                        tenant: tenant.clone(),
                        at: ledger_now(),
                        kind: "refused".into(),
                        detail: serde_json::json!({
                            "stage": NAME,
                            "file": run.file,
                            "lines": [rejected.file_lines.0, rejected.file_lines.1],
                            "rule": rule,
                        })
                        .to_string(),
                        dedupe_key: Some(format!(
                            "{NAME}/refused/{}#{hash}#{}",
                            key.key(),
                            run.run_id
                        )),
                    };
                    ctx.ledger.record_invoice_fact(fact).await?;
                    tally.refused.push((rejected, activity, total));
                }
            }
        }
        tally.skipped += skipped;
        metrics::counter!("encaisse_polyfac_invoices_total", "tenant" => tenant.clone(), "outcome" => "skipped").increment(skipped);
        // Keep the order of batches: the previous one is confirmed and recorded before this
        // one is published.
        if let Some(previous) = tally.in_flight.take() {
            tally.published += previous.finish().await?;
        }
        if !events.is_empty() {
            if self.backlog < u64::MAX {
                let mut keys: Vec<String> = events.iter().map(Issued::routing_key).collect();
                keys.sort_unstable();
                keys.dedup();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                // The bound counts invoices; a bundle carries up to `bundle_size` of them.
                let messages = (self.backlog / self.bundle_size as u64).max(1);
                ctx.publisher
                    .wait_for_downstream(&keys, messages, NAME, &ctx.shutdown)
                    .await;
            }
            let task = tokio::spawn(publish_and_record(
                ctx.clone(),
                tenant,
                events,
                self.bundle_size,
            ));
            tally.in_flight = Some(InFlight(task));
        }
        Ok(())
    }

    /// Records each invoice rejected at validation in its journal (`rejected`: file, lines,
    /// rules), so `encaisse trace` finds it. The key is the invoice's own exercice, or the
    /// run's when its exercice is unreadable; an invoice without number has no key. Every
    /// one is also recorded by file and line (`polyfac_rejected`), which is where those
    /// without key are found (`encaisse trace --file NAME [--line N]`).
    async fn record_rejected(
        &self,
        ctx: &SourceContext,
        setup: &Arc<PolyfacTenant>,
        summary: &ExportSummary,
        tally: &Tally,
        run: &RunContext,
    ) -> Result<(), StageError> {
        let facts: Vec<InvoiceFact> = tally
            .rejected
            .iter()
            .filter_map(|r| rejected_fact(setup.tenant.as_str(), run, r, summary.exercice))
            .collect();
        let at = ledger_now();
        let rows: Vec<ingest_store::FileReject> = tally
            .rejected
            .iter()
            .map(|r| file_reject(setup.tenant.as_str(), run, r, &at))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        ctx.ledger
            .transact(move |tx| {
                for fact in &facts {
                    tx.record_fact(fact)?;
                }
                for row in &rows {
                    ingest_store::record_reject(tx, row)?;
                }
                Ok::<_, LedgerError>(())
            })
            .await?;
        Ok(())
    }

    /// Publishes `billing_run.closed` (once per run) and records it.
    async fn close_run(
        &self,
        ctx: &SourceContext,
        setup: &Arc<PolyfacTenant>,
        summary: &ExportSummary,
        tally: &Tally,
        run: &RunContext,
    ) -> Result<(), StageError> {
        let Some(exercice) = summary.exercice else {
            // No readable invoice at all: nothing was published, nothing to close.
            return Ok(());
        };
        let tenant = setup.tenant.as_str().to_string();
        let (budgets, closed) = {
            let (tenant, run_id) = (tenant.clone(), run.run_id.clone());
            ctx.ledger
                .inspect(move |tx| {
                    Ok::<_, LedgerError>((
                        ingest_store::run_counts(tx, &tenant, &run_id)?,
                        ingest_store::run_closed(tx, &tenant, &run_id)?,
                    ))
                })
                .await?
        };
        if closed {
            tracing::info!(source = NAME, tenant = %tenant, run_id = %run.run_id, "Run already closed; billing_run.closed is not sent again.");
            return Ok(());
        }
        let refused = adjusted_summary(summary, &tally.refused).rejected_invoices;
        let event = BillingRunClosed {
            schema_version: BillingRunClosed::SCHEMA_VERSION,
            tenant: setup.tenant.clone(),
            run_id: run.run_id.clone(),
            application: run.application.clone(),
            file: run.file.clone(),
            exercice,
            budgets,
            rejected_invoices: u32::try_from(refused).unwrap_or(u32::MAX),
        };
        ctx.publisher
            .publish(vec![Outgoing::event(&event)])
            .await
            .map_err(|e| publish_error(e, "billing_run.closed"))?;
        let record = ClosedRun {
            tenant,
            run_id: run.run_id.clone(),
            file: run.file.clone().unwrap_or_default(),
            file_sha256: summary.file_sha256.clone(),
            exercice,
            lines: summary.lines,
            invoices: event.budgets.iter().map(|b| b.invoices).sum(),
            refused,
            closed_message_id: event.message_id(),
        };
        ctx.ledger
            .transact(move |tx| ingest_store::record_run(tx, &record, &ledger_now()))
            .await?;
        Ok(())
    }

    /// Writes a report's two files to `<tenant>/polyfac/rejected` (atomically, recorded).
    /// The names are `<export>.rejected.csv` and `<export>.summary.json`; when those names
    /// already hold another report (the same file name dropped again with other bytes),
    /// `discriminator` is added (`<export>.<discriminator>.rejected.csv`).
    async fn emit_report(
        &self,
        ctx: &SourceContext,
        setup: &Arc<PolyfacTenant>,
        file: &InboxFile,
        files: ReportFiles,
        discriminator: &str,
    ) -> Result<(), StageError> {
        let dir = AreaDirs::new(&self.data_dir, &setup.tenant, &self.area).rejected;
        let (csv_name, json_name) = report_file_names(&file.name);
        let plain = dir.join(&csv_name);
        let taken = match ctx
            .ledger
            .emitted_file_by_path(&plain.display().to_string())
            .await?
        {
            Some(existing) => {
                existing.sha256 != encaisse_ledger::files::sha256_hex(&files.rejected_csv)
            }
            None => false,
        };
        let (csv_path, json_path) = if taken {
            let (csv_name, json_name) =
                report_file_names(&format!("{}.{discriminator}", file.name));
            (dir.join(csv_name), dir.join(json_name))
        } else {
            (plain, dir.join(json_name))
        };
        let tenant = setup.tenant.as_str();
        let cause = format!("{NAME}:{}", file.name);
        for (path, bytes) in [
            (csv_path, files.rejected_csv),
            (json_path, files.summary_json),
        ] {
            emit(&ctx.ledger, tenant, &path, bytes, &cause).await?;
        }
        Ok(())
    }
}

async fn emit(
    ledger: &Ledger,
    tenant: &str,
    path: &Path,
    bytes: Vec<u8>,
    cause: &str,
) -> Result<(), StageError> {
    ledger
        .emit_file(tenant, "report", path, bytes, cause)
        .await
        .map(|_| ())
        .map_err(StageError::from)
}

/// A batch being published and recorded in its own task (while the next batch is read and
/// decided). Dropping it aborts the task, like a crash: the file's handling stopped.
struct InFlight(tokio::task::JoinHandle<Result<u64, StageError>>);

impl InFlight {
    /// Waits for the batch: how many invoices it published.
    async fn finish(mut self) -> Result<u64, StageError> {
        (&mut self.0)
            .await
            .map_err(|e| untrusted_file::join_error("batch publisher", e))?
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Publishes one batch of new invoices (confirmed; in bundles of `bundle_size` per routing
/// key), then records them with their journal facts in one transaction.
async fn publish_and_record(
    ctx: SourceContext,
    tenant: String,
    events: Vec<Issued>,
    bundle_size: usize,
) -> Result<u64, StageError> {
    let outgoing = crate::bundle::pack(events.iter().map(Issued::outgoing).collect(), bundle_size);
    ctx.publisher
        .publish(outgoing)
        .await
        .map_err(|e| publish_error(e, "invoice.issued"))?;
    let published = events.len() as u64;
    let records: Vec<(IssuedRecord, InvoiceFact)> =
        events.iter().map(|e| issued_record(e, &tenant)).collect();
    ctx.ledger
        .transact(move |tx| {
            let at = ledger_now();
            let issued: Vec<&IssuedRecord> = records.iter().map(|(record, _)| record).collect();
            ingest_store::record_issued_many(tx, &issued, &at)?;
            let facts: Vec<InvoiceFact> = records.into_iter().map(|(_, fact)| fact).collect();
            tx.record_facts(&facts)?;
            Ok::<_, LedgerError>(())
        })
        .await?;
    metrics::counter!("encaisse_polyfac_invoices_total", "tenant" => tenant, "outcome" => "published").increment(published);
    Ok(published)
}

/// The decision for one valid invoice, inside the batch's ledger transaction (or, for
/// `encaisse preview`, inside a private in-memory copy of the tenant's ledger rows).
pub fn decide(
    tx: &mut Tx<'_>,
    setup: &PolyfacTenant,
    run: &RunContext,
    invoice: &Invoice,
) -> Result<Decision, LedgerError> {
    let key = invoice_ref(setup, invoice).key();
    let before = ingest_store::issued_before(tx, setup.tenant.as_str(), &key)?;
    decide_knowing(tx, setup, run, invoice, before)
}

fn invoice_ref(setup: &PolyfacTenant, invoice: &Invoice) -> InvoiceRef {
    InvoiceRef {
        tenant: setup.tenant.clone(),
        exercice: invoice.exercice,
        number: invoice.number.clone(),
    }
}

/// [`decide`] with the invoice's earlier record already looked up (a batch looks its
/// invoices up together).
fn decide_knowing(
    tx: &mut Tx<'_>,
    setup: &PolyfacTenant,
    run: &RunContext,
    invoice: &Invoice,
    before: Option<ingest_store::IssuedBefore>,
) -> Result<Decision, LedgerError> {
    let key = invoice_ref(setup, invoice);
    // The content hash is computed only when needed (`enrich` computes it for a new
    // invoice): it is a SHA-256 over the invoice's canonical JSON.
    let refuse = |field: Field, rule: Rule, message: String, hash: String| {
        Decision::Refuse(Box::new(Refusal {
            rejected: RejectedInvoice {
                number: invoice.number.clone(),
                family_code: Some(invoice.family_code.clone()),
                file_lines: invoice.file_lines,
                line_count: invoice.lines.len() as u64,
                exercice: Some(invoice.exercice),
                errors: vec![ValidationError {
                    file: run.file.clone().unwrap_or_default(),
                    line: invoice.file_lines.0,
                    column: setup.mapping.column(field).to_string(),
                    field: Some(field),
                    rule,
                    message,
                }],
            },
            key: key.clone(),
            hash,
            activity: invoice.activity.code.clone(),
            total: invoice.total,
        }))
    };
    if let Some(before) = before {
        let hash = content_hash(invoice);
        return Ok(if before.content_hash != hash {
            refuse(
                Field::InvoiceNumber,
                Rule::InvoiceNumberReused,
                format!(
                    "invoice {} of exercice {} was already issued with other content (file {}); a correction needs a new invoice number",
                    invoice.number, invoice.exercice, before.file
                ),
                hash,
            )
        } else if before.run_id != run.run_id {
            refuse(
                Field::InvoiceNumber,
                Rule::AlreadyIssued,
                format!(
                    "invoice {} of exercice {} was already issued, unchanged, by file {} ({}); it is not issued twice",
                    invoice.number, invoice.exercice, before.file, before.run_id
                ),
                hash,
            )
        } else {
            Decision::Skip
        });
    }
    if let Some(note) = enrich_credit_note(invoice, run) {
        return Ok(Decision::Publish(Box::new(Issued::CreditNote(note))));
    }
    let event = enrich(invoice, run, |_rum| match &invoice.mandate {
        Some(mandate) => sequence_for(tx, &key, mandate, invoice.due_date, &setup.sequence_policy),
        // `enrich` asks only for an invoice with a mandate.
        None => Err(SequenceError::Ledger(LedgerError::Corrupt(
            "sequence asked for an invoice without mandate".into(),
        ))),
    });
    match event {
        Ok(event) => Ok(Decision::Publish(Box::new(Issued::Invoice(event)))),
        Err(SequenceError::Unusable(why)) => Ok(refuse(
            Field::Rum,
            Rule::MandateUnusable,
            format!(
                "the direct-debit mandate cannot be used ({}): {why}",
                why.kind()
            ),
            content_hash(invoice),
        )),
        Err(SequenceError::Ledger(e)) => Err(e),
    }
}

/// The ledger record and the journal fact of a published invoice (or credit note).
fn issued_record(issued: &Issued, tenant: &str) -> (IssuedRecord, InvoiceFact) {
    let event = issued.invoice();
    let key = event.invoice.key();
    let lines = event.source.lines.unwrap_or((0, 0));
    let message_id = issued.message_id();
    let origin_key = issued.origin_key();
    let record = IssuedRecord {
        tenant: tenant.to_string(),
        invoice_key: key.clone(),
        content_hash: event.content_hash.clone(),
        run_id: event.source.run_id.clone(),
        file: event.source.file.clone().unwrap_or_default(),
        lines,
        budget: event.budget.clone(),
        activity: event.activity.clone(),
        collection: event.collection,
        total: event.total,
        message_id: message_id.clone(),
        origin_key: origin_key.clone(),
        payer_key: encaisse_schemas::text::search_key(&event.payer.last_name),
    };
    let fact = InvoiceFact {
        invoice_key: key.clone(),
        tenant: tenant.to_string(),
        at: ledger_now(),
        kind: "issued".into(),
        detail: serde_json::json!({
            "stage": NAME,
            "application": event.source.application,
            "file": event.source.file,
            "lines": [lines.0, lines.1],
            "run_id": event.source.run_id,
            "message_id": message_id,
            "budget": event.budget,
            "collection": ingest_store::collection_text(event.collection),
            "total": event.total.to_dot_string(),
            "credit_note_of": origin_key,
        })
        .to_string(),
        dedupe_key: Some(format!("{NAME}/issued/{key}#{}", event.content_hash)),
    };
    (record, fact)
}

/// Whether a refusal only says the invoice was issued, unchanged, by an earlier run: a
/// duplicate, counted apart from the rejected invoices.
pub fn is_duplicate(refused: &RejectedInvoice) -> bool {
    refused.errors.iter().all(|e| e.rule == Rule::AlreadyIssued) && !refused.errors.is_empty()
}

/// The journal fact of an invoice rejected at validation; `None` without a number or any
/// readable exercice.
fn rejected_fact(
    tenant: &str,
    run: &RunContext,
    rejected: &RejectedInvoice,
    run_exercice: Option<u16>,
) -> Option<InvoiceFact> {
    let number = rejected.number.trim();
    let exercice = rejected.exercice.or(run_exercice)?;
    if number.is_empty() {
        return None;
    }
    let key = format!("{tenant}/{exercice}/{number}");
    let first = rejected.errors.first();
    let rules: Vec<&str> = rejected.errors.iter().map(|e| e.rule.code()).collect();
    Some(InvoiceFact {
        invoice_key: key.clone(),
        tenant: tenant.to_string(),
        at: ledger_now(),
        kind: "rejected".into(),
        detail: serde_json::json!({
            "stage": NAME,
            "file": run.file,
            "lines": [rejected.file_lines.0, rejected.file_lines.1],
            "run_id": run.run_id,
            "rule": first.map_or("", |e| e.rule.code()),
            "column": first.map_or("", |e| e.column.as_str()),
            "message": first.map_or("", |e| e.message.as_str()),
            "rules": rules.join(", "),
        })
        .to_string(),
        dedupe_key: Some(format!(
            "{NAME}/rejected/{key}#{}#{}",
            run.run_id, rejected.file_lines.0
        )),
    })
}

/// The `polyfac_rejected` row of an invoice rejected at validation.
fn file_reject(
    tenant: &str,
    run: &RunContext,
    rejected: &RejectedInvoice,
    at: &str,
) -> ingest_store::FileReject {
    let first = rejected.errors.first();
    let rules: Vec<&str> = rejected.errors.iter().map(|e| e.rule.code()).collect();
    ingest_store::FileReject {
        tenant: tenant.to_string(),
        run_id: run.run_id.clone(),
        file: run.file.clone().unwrap_or_default(),
        application: run.application.clone(),
        lines: rejected.file_lines,
        number: rejected.number.trim().to_string(),
        exercice: rejected.exercice,
        rule: first.map_or("", |e| e.rule.code()).to_string(),
        column: first.map_or("", |e| e.column.as_str()).to_string(),
        message: first.map_or("", |e| e.message.as_str()).to_string(),
        rules: rules.join(", "),
        recorded_at: at.to_string(),
    }
}

/// The reader's summary with the stage's refusals moved from valid to rejected — or, for an
/// invoice already issued unchanged by an earlier run, to duplicates — so the report's counts
/// match what was published.
pub fn adjusted_summary(
    summary: &ExportSummary,
    refusals: &[(RejectedInvoice, String, Money)],
) -> ExportSummary {
    let mut adjusted = summary.clone();
    for (refused, activity, total) in refusals {
        adjusted.valid_invoices = adjusted.valid_invoices.saturating_sub(1);
        adjusted.valid_total = adjusted
            .valid_total
            .checked_sub(*total)
            .unwrap_or(adjusted.valid_total);
        if let Some(count) = adjusted.activities.get_mut(activity) {
            count.invoices = count.invoices.saturating_sub(1);
            count.total = count.total.checked_sub(*total).unwrap_or(count.total);
        }
        if is_duplicate(refused) {
            adjusted.duplicate_invoices += 1;
            continue;
        }
        adjusted.rejected_invoices += 1;
        adjusted.rejected_lines += refused.line_count;
        for e in &refused.errors {
            *adjusted.rules.entry(e.rule).or_insert(0) += 1;
        }
    }
    adjusted
}
