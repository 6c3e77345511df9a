//! What the Hélios stages count (Prometheus, through the `metrics` facade). One function
//! per observable event; labels are bounded (tenants, fixed kinds, channels, sources).

pub fn describe() {
    metrics::describe_counter!(
        "encaisse_helios_bordereaux_emitted_total",
        "Bordereaux written in PES Aller files (helios.titres)."
    );
    metrics::describe_counter!(
        "encaisse_helios_titres_emitted_total",
        "Titres (pièces) written in PES Aller files (helios.titres)."
    );
    metrics::describe_gauge!(
        "encaisse_pes_last_emission_timestamp_seconds",
        metrics::Unit::Seconds,
        "Unix time of the last PES Aller file written for the tenant."
    );
    metrics::describe_counter!(
        "encaisse_helios_invoices_refused_total",
        "Invoices of a closed run that could not become titres (reported in helios/rejected)."
    );
    metrics::describe_gauge!(
        "encaisse_helios_unwritten_files",
        "Planned PES Aller files and reports not written yet (should be 0 between runs)."
    );
    metrics::describe_counter!(
        "encaisse_helios_emission_failures_total",
        "Attempts to write a planned PES Aller file that failed, by error kind."
    );
    metrics::describe_counter!(
        "encaisse_helios_return_files_total",
        "PES_ACQUIT and PES_Retour files handled (helios.returns), by kind."
    );
    metrics::describe_counter!(
        "encaisse_helios_return_files_rejected_total",
        "Files of helios/inbox moved to helios/rejected, by reason kind."
    );
    metrics::describe_counter!(
        "encaisse_helios_titres_accepted_total",
        "titre.accepted published, by source (acquit, retour)."
    );
    metrics::describe_counter!(
        "encaisse_helios_titres_rejected_total",
        "titre.rejected published, by source (acquit, retour)."
    );
    metrics::describe_counter!(
        "encaisse_helios_bordereaux_rejected_total",
        "Bordereaux rejected by the Hélios guichet (PES_ACQUIT KO), flagged in the ledger."
    );
    metrics::describe_counter!(
        "encaisse_helios_payments_received_total",
        "payment.received from PES Retour émargements, by channel."
    );
    metrics::describe_counter!(
        "encaisse_helios_payments_reversed_total",
        "payment.reversed: émargements no longer listed (neutralised)."
    );
    metrics::describe_counter!(
        "encaisse_helios_unmatched_total",
        "Bordereaux or pièces of return files that match nothing encaisse sent (reported)."
    );
}

fn tenant_label(tenant: &str) -> (&'static str, String) {
    ("tenant", tenant.to_string())
}

/// A planned file was written: its bordereaux and titres.
pub fn emitted(tenant: &str, bordereaux: u64, titres: u64) {
    let labels = [tenant_label(tenant)];
    metrics::counter!("encaisse_helios_bordereaux_emitted_total", &labels).increment(bordereaux);
    metrics::counter!("encaisse_helios_titres_emitted_total", &labels).increment(titres);
}

/// The last PES Aller file written for the tenant (read from the ledger, so the gauge is
/// right again as soon as the daemon restarts).
pub fn last_emission(tenant: &str, written_at: &str) {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(written_at) {
        metrics::gauge!("encaisse_pes_last_emission_timestamp_seconds", "tenant" => tenant.to_string())
            .set(at.timestamp_millis() as f64 / 1000.0);
    }
}

pub fn refused(tenant: &str, count: u64) {
    metrics::counter!("encaisse_helios_invoices_refused_total", "tenant" => tenant.to_string())
        .increment(count);
}

pub fn unwritten(tenant: &str, count: u64) {
    metrics::gauge!("encaisse_helios_unwritten_files", "tenant" => tenant.to_string())
        .set(count as f64);
}

pub fn emission_failed(tenant: &str, kind: &str) {
    metrics::counter!("encaisse_helios_emission_failures_total", "tenant" => tenant.to_string(), "kind" => kind.to_string())
        .increment(1);
}

pub fn return_file(tenant: &str, kind: &'static str) {
    metrics::counter!("encaisse_helios_return_files_total", "tenant" => tenant.to_string(), "kind" => kind)
        .increment(1);
}

pub fn return_file_rejected(tenant: &str, reason: &'static str) {
    metrics::counter!("encaisse_helios_return_files_rejected_total", "tenant" => tenant.to_string(), "reason" => reason)
        .increment(1);
}

pub fn titres(tenant: &str, source: &'static str, accepted: u64, rejected: u64) {
    metrics::counter!("encaisse_helios_titres_accepted_total", "tenant" => tenant.to_string(), "source" => source)
        .increment(accepted);
    metrics::counter!("encaisse_helios_titres_rejected_total", "tenant" => tenant.to_string(), "source" => source)
        .increment(rejected);
}

pub fn bordereau_rejected(tenant: &str) {
    metrics::counter!("encaisse_helios_bordereaux_rejected_total", "tenant" => tenant.to_string())
        .increment(1);
}

pub fn payment_received(tenant: &str, channel: &str) {
    metrics::counter!("encaisse_helios_payments_received_total", "tenant" => tenant.to_string(), "channel" => channel.to_string())
        .increment(1);
}

pub fn payments_reversed(tenant: &str, count: u64) {
    metrics::counter!("encaisse_helios_payments_reversed_total", "tenant" => tenant.to_string())
        .increment(count);
}

/// Registers at 0 the tenant's counters that alerts read with `increase()`: a series that
/// appears at 1 shows no increase, so the first unmatched file would never alert.
pub fn register_tenant(tenant: &str) {
    for kind in ["acquit", "retour"] {
        unmatched(tenant, kind, 0);
    }
}

pub fn unmatched(tenant: &str, kind: &'static str, count: u64) {
    metrics::counter!("encaisse_helios_unmatched_total", "tenant" => tenant.to_string(), "kind" => kind)
        .increment(count);
}
