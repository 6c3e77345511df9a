//! Cross-checks of a parsed configuration: what the types alone cannot say (references
//! between sections, identifier check digits, duplicates, usable directories, the adapters'
//! own rules). Every problem names its field (`tenants[1].activities[0].budget`).

use std::collections::{BTreeSet, HashMap};

use encaisse_payfip::config::validate_tenant_with_gateway;
use encaisse_pipelines::runtime::{BrokerConfig, RetryConfig};
use encaisse_schemas::CollectionPath;
use encaisse_schemas::tenant::ConfigIssue;

use super::{Config, DEFAULT_SOURCE, TenantConfig, rules};
use crate::dirs;

/// `[cluster]` asks for several daemons, which share a PostgreSQL ledger only: an SQLite
/// file is held by one daemon (its data directory lock), and a second one on the same
/// prefix is refused.
fn check_cluster(config: &Config, report: &mut Report) {
    let Some(cluster) = &config.cluster else {
        return;
    };
    if let Ok(encaisse_ledger::LedgerUrl::Sqlite(path)) = config.ledger_url() {
        report.issue(
            "cluster",
            format!(
                "several daemons need a PostgreSQL ledger ([ledger] url = \"postgres://…\"); \
                 the SQLite ledger {} is held by one daemon. Remove [cluster], or migrate the \
                 ledger (`encaisse ledger migrate --to postgres://…`)",
                path.display()
            ),
        );
    }
    for (field, message) in cluster.validate() {
        report.issue(field, message);
    }
}

/// Longest creditor name a pain.008 accepts (`Cdtr/Nm`, EPC: 70 characters).
const CREDITOR_NAME_MAX_CHARS: usize = 70;

/// What `encaisse check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Problems that make the configuration unusable (exit code 78).
    pub issues: Vec<ConfigIssue>,
    /// Things worth knowing that do not stop the daemon (a token variable not set yet).
    pub warnings: Vec<ConfigIssue>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.issues.is_empty()
    }

    fn issue(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue::new(field, message));
    }

    fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigIssue::new(field, message));
    }

    fn rule(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(message) = result {
            self.issue(field, message);
        }
    }
}

/// Checks everything; `env` reads an environment variable, `None` when unset or empty (the real
/// environment in the binary, a fixed answer in tests).
pub fn check(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Report {
    let mut report = check_settings(config, env);
    if let Err(message) = dirs::check_creatable(&config.data_dir) {
        report.issue("data_dir", message);
    }
    report
}

/// Everything [`check`] checks but the data directory, which it probes by writing a file:
/// for commands that write nothing and may run as another user than the daemon
/// (`encaisse preview`).
pub fn check_settings(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Report {
    let mut report = Report::default();
    if let Err(message) = config.usable_ledger_url() {
        report.issue("ledger.url", message);
    }
    check_cluster(config, &mut report);
    check_broker(&config.broker, &mut report);
    check_retry(&config.retry, &mut report);
    let tenant_ids: Vec<&str> = config.tenants.iter().map(|t| t.id.as_str()).collect();
    for (field, message) in super::console::problems(&config.console, &tenant_ids) {
        report.issue(field, message);
    }
    // The runtime's own rules (it refuses to start otherwise); reported unless one of the
    // checks above already named the same field.
    if let Err(message) = config.runtime().validate() {
        let field = message
            .split([' ', ':'])
            .next()
            .unwrap_or("broker")
            .to_string();
        if !report.issues.iter().any(|i| i.field.starts_with(&field)) {
            let text = message[field.len()..]
                .trim_start_matches([' ', ':'])
                .to_string();
            report.issue(field, text);
        }
    }
    if config.shutdown_grace_secs == 0 {
        report.warn(
            "shutdown_grace_secs",
            "0 s: in-flight messages are abandoned on stop (they will be redelivered)",
        );
    }
    if let Some(gateway) = &config.payfip {
        report.issues.extend(gateway.validate("payfip"));
    }
    report.issues.extend(config.polyfac.validate("polyfac"));
    report.issues.extend(config.helios.validate("helios"));
    report.issues.extend(config.sepa.validate("sepa"));
    for (name, mapping) in &config.sources {
        let field = format!("sources.{name}");
        if name.is_empty() {
            report.issue(field.clone(), "a source needs a name");
        }
        report.issues.extend(mapping.validate(&field));
    }
    if config.tenants.is_empty() {
        report.issue(
            "tenants",
            "no tenant configured: add one [[tenants]] table per commune",
        );
    }
    let mut seen_ids = HashMap::new();
    for (index, tenant) in config.tenants.iter().enumerate() {
        let field = format!("tenants[{index}]");
        if let Some(first) = seen_ids.insert(tenant.id.as_str(), index) {
            report.issue(
                format!("{field}.id"),
                format!(
                    "tenant id {} is already used by tenants[{first}]",
                    tenant.id
                ),
            );
        }
        check_tenant(config, tenant, &field, env, &mut report);
    }
    report
}

fn check_broker(broker: &BrokerConfig, report: &mut Report) {
    if !(broker.url.starts_with("amqp://") || broker.url.starts_with("amqps://")) {
        // The URL may hold credentials: name the rule, never echo the value.
        report.issue(
            "broker.url",
            "must start with amqp:// or amqps:// (set ENCAISSE_AMQP_URL to keep credentials out of the file)",
        );
    }
    if broker.prefetch == 0 {
        report.issue(
            "broker.prefetch",
            "must be at least 1 (0 would mean unlimited)",
        );
    }
    if broker.confirm_window == 0 {
        report.issue("broker.confirm_window", "must be at least 1");
    }
    if broker.delivery_limit == 0 {
        report.issue("broker.delivery_limit", "must be at least 1");
    }
    if broker.reconnect_min_delay_ms == 0 {
        report.issue(
            "broker.reconnect_min_delay_ms",
            "must be at least 1 ms (a reconnection storm would hammer the broker)",
        );
    }
    if broker.reconnect_min_delay_ms > broker.reconnect_max_delay_ms {
        report.issue(
            "broker.reconnect_max_delay_ms",
            format!(
                "{} ms is shorter than reconnect_min_delay_ms ({} ms)",
                broker.reconnect_max_delay_ms, broker.reconnect_min_delay_ms
            ),
        );
    }
}

fn check_retry(retry: &RetryConfig, report: &mut Report) {
    if retry.tiers_secs.is_empty() {
        report.issue(
            "retry.tiers_secs",
            "needs at least one delay tier (in seconds)",
        );
    }
    for (i, pair) in retry.tiers_secs.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            report.issue(
                format!("retry.tiers_secs[{}]", i + 1),
                format!(
                    "{} s is not longer than the tier before it ({} s): tiers must increase",
                    pair[1], pair[0]
                ),
            );
        }
    }
    if retry.tiers_secs.first() == Some(&0) {
        report.issue("retry.tiers_secs[0]", "a delay tier of 0 s retries at once");
    }
    if retry.max_attempts == 0 {
        report.issue(
            "retry.max_attempts",
            "must be at least 1 (the first try counts)",
        );
    }
}

fn check_tenant(
    config: &Config,
    tenant: &TenantConfig,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    if tenant.name.trim().is_empty() {
        report.issue(format!("{field}.name"), "must not be empty");
    }
    for (i, extra) in tenant.extra_sources.iter().enumerate() {
        let f = format!("{field}.extra_sources[{i}]");
        if *extra == tenant.source || tenant.extra_sources[..i].contains(extra) {
            report.issue(
                f,
                format!("source {extra:?} is listed twice for this tenant"),
            );
        } else if let Some(mapping) = config.sources.get(extra) {
            source_values::check(extra, mapping, tenant, report);
        } else if extra != DEFAULT_SOURCE {
            report.issue(
                f,
                format!("unknown source {extra:?}: add a [sources.{extra}] table"),
            );
        }
    }
    if let Some(mapping) = config.sources.get(&tenant.source) {
        source_values::check(&tenant.source, mapping, tenant, report);
    } else if tenant.source != DEFAULT_SOURCE {
        report.issue(
            format!("{field}.source"),
            format!(
                "unknown source {:?}: add a [sources.{}] table or use the built-in {DEFAULT_SOURCE:?}",
                tenant.source, tenant.source
            ),
        );
    }
    let budgets = unique_codes(
        report,
        field,
        "budgets",
        tenant.budgets.iter().map(|b| b.code.as_str()),
    );
    let activities = unique_codes(
        report,
        field,
        "activities",
        tenant.activities.iter().map(|a| a.code.as_str()),
    );
    let regies = unique_codes(
        report,
        field,
        "regies",
        tenant.regies.iter().map(|r| r.code.as_str()),
    );
    unique_codes(
        report,
        field,
        "products",
        tenant.products.iter().map(|p| p.code.as_str()),
    );
    if tenant.budgets.is_empty() {
        report.issue(
            format!("{field}.budgets"),
            "a tenant needs at least one budget",
        );
    }
    check_budgets(tenant, field, report);
    check_activities(tenant, field, &budgets, &regies, report);
    for (i, product) in tenant.products.iter().enumerate() {
        let f = format!("{field}.products[{i}]");
        if !activities.contains_key(product.activity.as_str()) {
            report.issue(
                format!("{f}.activity"),
                format!("unknown activity {:?}", product.activity),
            );
        }
        report.rule(
            format!("{f}.cod_prod_loc"),
            rules::cod_prod_loc(&product.cod_prod_loc),
        );
        report.rule(format!("{f}.nature"), rules::nature(&product.nature));
    }
    check_regies(tenant, field, report);
    check_collection_sections(tenant, field, report);
    if let Some(api) = &tenant.api {
        let f = format!("{field}.api.token_env");
        if let Err(message) = rules::env_var_name(&api.token_env) {
            report.issue(f, message);
        } else {
            match env(&api.token_env) {
                None => report.warn(
                    f,
                    format!(
                        "{} is not set: the payment API will refuse this tenant's calls",
                        api.token_env
                    ),
                ),
                Some(token) => report.rule(f, rules::api_token(&api.token_env, &token)),
            }
        }
    }
    if let Some(helios) = &tenant.helios {
        report
            .issues
            .extend(helios.validate(&format!("{field}.helios")));
    }
    if let Some(payfip) = &tenant.payfip {
        // The tenant's own rules plus those that need the gateway (a public base URL).
        let gateway = config.payfip.clone().unwrap_or_default();
        report.issues.extend(validate_tenant_with_gateway(
            &gateway,
            payfip,
            &format!("{field}.payfip"),
        ));
    }
    if let Some(sepa) = &tenant.sepa {
        report
            .issues
            .extend(sepa.validate(&format!("{field}.sepa")));
    }
}

fn check_budgets(tenant: &TenantConfig, field: &str, report: &mut Report) {
    let mut helios_budgets = HashMap::new();
    for (i, budget) in tenant.budgets.iter().enumerate() {
        let f = format!("{field}.budgets[{i}]");
        report.rule(format!("{f}.siret"), rules::siret(&budget.siret));
        report.rule(format!("{f}.cod_col"), rules::cod_col(&budget.cod_col));
        report.rule(format!("{f}.cod_bud"), rules::cod_bud(&budget.cod_bud));
        if let Some(numcli) = &budget.payfip_numcli {
            report.rule(format!("{f}.payfip_numcli"), rules::numcli(numcli));
        }
        if budget.label.trim().is_empty() {
            report.issue(format!("{f}.label"), "must not be empty");
        }
        let key = (budget.cod_col.as_str(), budget.cod_bud.as_str());
        if let Some(first) = helios_budgets.insert(key, i) {
            report.issue(
                format!("{f}.cod_bud"),
                format!(
                    "CodCol {} / CodBud {} is already {field}.budgets[{first}]: Hélios would see one budget",
                    budget.cod_col, budget.cod_bud
                ),
            );
        }
    }
}

fn check_activities(
    tenant: &TenantConfig,
    field: &str,
    budgets: &HashMap<&str, usize>,
    regies: &HashMap<&str, usize>,
    report: &mut Report,
) {
    for (i, activity) in tenant.activities.iter().enumerate() {
        let f = format!("{field}.activities[{i}]");
        let budget = budgets
            .get(activity.budget.as_str())
            .map(|&b| &tenant.budgets[b]);
        if budget.is_none() {
            report.issue(
                format!("{f}.budget"),
                format!("unknown budget {:?}", activity.budget),
            );
        }
        match (activity.collection, &activity.regie) {
            (CollectionPath::Regie, None) => report.issue(
                format!("{f}.regie"),
                "a régie activity must name the régie that collects it",
            ),
            (CollectionPath::Regie, Some(code)) => match regies.get(code.as_str()) {
                None => report.issue(format!("{f}.regie"), format!("unknown régie {code:?}")),
                Some(&r) => {
                    let regie = &tenant.regies[r];
                    if activity.online_payment && regie.payfip_numcli.is_none() {
                        report.issue(
                            format!("{f}.online_payment"),
                            format!(
                                "online payment needs a PayFiP client number on régie {code:?} (payfip_numcli)"
                            ),
                        );
                    }
                }
            },
            (CollectionPath::Titres, Some(_)) => report.issue(
                format!("{f}.regie"),
                "only activities with collection = \"regie\" name a régie",
            ),
            (CollectionPath::Titres, None) => {
                if activity.online_payment
                    && let Some(budget) = budget
                    && budget.payfip_numcli.is_none()
                {
                    report.issue(
                        format!("{f}.online_payment"),
                        format!(
                            "online payment of titres needs a PayFiP client number on budget {:?} (payfip_numcli)",
                            budget.code
                        ),
                    );
                }
            }
        }
    }
}

fn check_regies(tenant: &TenantConfig, field: &str, report: &mut Report) {
    let used: BTreeSet<&str> = tenant
        .activities
        .iter()
        .filter(|a| a.collection == CollectionPath::Regie)
        .filter_map(|a| a.regie.as_deref())
        .collect();
    for (i, regie) in tenant.regies.iter().enumerate() {
        let f = format!("{field}.regies[{i}]");
        if let Some(numcli) = &regie.payfip_numcli {
            report.rule(format!("{f}.payfip_numcli"), rules::numcli(numcli));
        }
        if let Some(name) = &regie.creditor_name {
            let chars = name.chars().count();
            if chars == 0 || chars > CREDITOR_NAME_MAX_CHARS {
                report.issue(
                    format!("{f}.creditor_name"),
                    format!("has {chars} characters; a pain.008 creditor name has 1 to {CREDITOR_NAME_MAX_CHARS}"),
                );
            }
        }
        if !used.contains(regie.code.as_str()) {
            report.warn(
                format!("{f}.code"),
                format!("régie {:?} collects no activity", regie.code),
            );
        }
        // Direct debit needs the creditor's identity in every pain.008.
        if tenant.sepa.is_some() && used.contains(regie.code.as_str()) {
            for (missing, name) in [
                (regie.ics.is_none(), "ics"),
                (regie.creditor_name.is_none(), "creditor_name"),
                (regie.creditor_iban.is_none(), "creditor_iban"),
            ] {
                if missing {
                    report.issue(
                        format!("{f}.{name}"),
                        "required for direct debit (the tenant has a [tenants.sepa] section)",
                    );
                }
            }
        }
    }
}

/// The sections the tenant's collection paths need.
///
/// * Titres activities without `[tenants.helios]`: a **warning**. Their invoices (and their
///   runs' `billing_run.closed`) are parked by `helios.titres` (`no_helios_config`), intact;
///   once the section is added, `encaisse dlq replay --group helios.titres/no_helios_config`
///   sends them on, nothing lost. A commune can thus be onboarded (régie, online payment)
///   before its Trésorerie has given its settings.
/// * A régie activity whose régie has a creditor identity (`ics` or `creditor_iban`, used
///   only by direct debit) without `[tenants.sepa]`: an **issue**. `sepa.batch` would refuse
///   every direct-debit invoice of it at once and for good (`payment.rejected`, `REJETE`
///   told to Polyfac): nothing is parked, nothing can be replayed, and the configuration
///   contradicts itself.
fn check_collection_sections(tenant: &TenantConfig, field: &str, report: &mut Report) {
    if tenant.helios.is_none() {
        let titres: Vec<&str> = tenant
            .activities
            .iter()
            .filter(|a| a.collection == CollectionPath::Titres)
            .map(|a| a.code.as_str())
            .collect();
        if !titres.is_empty() {
            report.warn(
                format!("{field}.helios"),
                format!(
                    "no [tenants.helios] section, yet activities {} are collected by titres: their invoices will be parked (helios.titres/no_helios_config) until the section is added and they are replayed",
                    titres.join(", ")
                ),
            );
        }
    }
    if tenant.sepa.is_none() {
        let debiting: BTreeSet<&str> = tenant
            .regies
            .iter()
            .filter(|r| r.ics.is_some() || r.creditor_iban.is_some())
            .map(|r| r.code.as_str())
            .collect();
        let activities: Vec<&str> = tenant
            .activities
            .iter()
            .filter(|a| a.collection == CollectionPath::Regie)
            .filter(|a| a.regie.as_deref().is_some_and(|r| debiting.contains(r)))
            .map(|a| a.code.as_str())
            .collect();
        if !activities.is_empty() {
            report.issue(
                format!("{field}.sepa"),
                format!(
                    "missing: activities {} are collected by a régie set up for direct debit (ics, creditor_iban), but without [tenants.sepa] no pain.008 is written and every direct-debit invoice is refused at once (REJETE to Polyfac); add the section, or remove the régie's creditor identity if it does not debit",
                    activities.join(", ")
                ),
            );
        }
    }
}

/// Records duplicate codes as issues; returns code → first index.
fn unique_codes<'a>(
    report: &mut Report,
    field: &str,
    list: &str,
    codes: impl Iterator<Item = &'a str>,
) -> HashMap<&'a str, usize> {
    let mut seen = HashMap::new();
    for (i, code) in codes.enumerate() {
        if code.trim().is_empty() {
            report.issue(format!("{field}.{list}[{i}].code"), "must not be empty");
        }
        if let Some(first) = seen.insert(code, i) {
            report.issue(
                format!("{field}.{list}[{i}].code"),
                format!("code {code:?} is already used by {field}.{list}[{first}]"),
            );
            seen.insert(code, first);
        }
    }
    seen
}

/// Convenience for the CLI: the real environment (an empty or non-UTF-8 value counts as
/// unset).
pub fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

mod source_values;

#[cfg(test)]
mod tests;
