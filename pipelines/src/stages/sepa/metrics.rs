//! What the régie path counts (Prometheus, through the `metrics` facade). Labels are
//! bounded: tenants, régies, reason codes of the adapter's table or the three local ones.

/// Describes the counters for `/metrics` (idempotent; called when the components are built).
pub fn describe() {
    metrics::describe_counter!(
        "encaisse_sepa_files_emitted_total",
        "pain.008 files written to bank/outbox, by tenant, régie and origin (sepa.batch: billing runs; sepa.returns: re-presentations)."
    );
    metrics::describe_counter!(
        "encaisse_sepa_collections_total",
        "Collections (direct debits) in the pain.008 files written."
    );
    metrics::describe_counter!(
        "encaisse_sepa_amount_cents_total",
        "Amount of the collections written, in euro cents."
    );
    metrics::describe_counter!(
        "encaisse_sepa_invoices_refused_total",
        "Direct-debit invoices not sent to the bank, by local reason code (LOCAL-MANDATE, LOCAL-RULES, LOCAL-SETUP)."
    );
    metrics::describe_counter!(
        "encaisse_sepa_rejects_total",
        "Collections rejected or returned by the bank, by ISO reason code and whether they are re-presented."
    );
    metrics::describe_counter!(
        "encaisse_sepa_unmatched_records_total",
        "Bank records matching no collection (see bank/rejected/<MsgId>-unmatched.csv)."
    );
    metrics::describe_counter!(
        "encaisse_sepa_duplicate_records_total",
        "Bank records already handled (same file again, same R-transaction in another file)."
    );
    metrics::describe_counter!(
        "encaisse_sepa_reports_written_total",
        "Reports written to bank/rejected (refused invoices, unmatched records)."
    );
}

/// A pain.008 was written: `encaisse_sepa_files_emitted_total`, its collections
/// (`encaisse_sepa_collections_total`) and amount in cents (`encaisse_sepa_amount_cents_total`),
/// by tenant, régie and origin (`sepa.batch` for a billing run, `sepa.returns` for
/// re-presentations).
pub fn pain008_written(tenant: &str, regie: &str, origin: &str, collections: u64, cents: u64) {
    let labels = [
        ("tenant", tenant.to_string()),
        ("regie", regie.to_string()),
        ("origin", origin.to_string()),
    ];
    metrics::counter!("encaisse_sepa_files_emitted_total", &labels).increment(1);
    metrics::counter!("encaisse_sepa_collections_total", &labels).increment(collections);
    metrics::counter!("encaisse_sepa_amount_cents_total", &labels).increment(cents);
}

/// A report was written to `bank/rejected` (`kind` = the file kind).
pub fn report_written(tenant: &str, kind: &str) {
    metrics::counter!("encaisse_sepa_reports_written_total", "tenant" => tenant.to_string(), "kind" => kind.to_string())
        .increment(1);
}

/// An invoice was not sent: `encaisse_sepa_invoices_refused_total{tenant,reason_code}`.
pub fn refused(tenant: &str, reason_code: &str) {
    metrics::counter!("encaisse_sepa_invoices_refused_total", "tenant" => tenant.to_string(), "reason_code" => reason_code.to_string())
        .increment(1);
}

/// A collection was rejected or returned by the bank:
/// `encaisse_sepa_rejects_total{tenant,reason_code,will_represent}`.
pub fn rejected(tenant: &str, reason_code: &str, will_represent: bool) {
    metrics::counter!(
        "encaisse_sepa_rejects_total",
        "tenant" => tenant.to_string(),
        "reason_code" => reason_code.to_string(),
        "will_represent" => if will_represent { "true" } else { "false" }
    )
    .increment(1);
}

/// Registers at 0 the tenant's counters that alerts read with `increase()`: a series that
/// appears at 1 shows no increase, so the first unmatched record would never alert.
pub fn register_tenant(tenant: &str) {
    unmatched(tenant, 0);
}

/// A bank record named no collection: `encaisse_sepa_unmatched_records_total{tenant}`.
pub fn unmatched(tenant: &str, count: u64) {
    metrics::counter!("encaisse_sepa_unmatched_records_total", "tenant" => tenant.to_string())
        .increment(count);
}

/// Bank records already handled (same file twice, same R-transaction in two files):
/// `encaisse_sepa_duplicate_records_total{tenant}`.
pub fn duplicates(tenant: &str, count: u64) {
    metrics::counter!("encaisse_sepa_duplicate_records_total", "tenant" => tenant.to_string())
        .increment(count);
}
