//! The daemon's configuration for a benchmark or chaos run: `bench.toml` with the run's
//! prefix, data directory, listen address, delay tiers and (for the notification benchmark)
//! the PayFiP simulator's address filled in — then read and checked exactly as `encaisse run`
//! reads and checks it, so a harness bug is a clear error before any daemon starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{self, Config};

use super::error::{BenchError, Result};

/// The template (placeholders `@NAME@`).
const TEMPLATE: &str = include_str!("bench.toml");

/// The tenant of every benchmark and chaos run.
pub const TENANT: &str = "bench";
/// The régie that takes the notification benchmark's online payments.
pub const REGIE: &str = "regie-en-ligne";
/// The régie activity of those invoices.
pub const REGIE_ACTIVITY: &str = "BILLETTERIE";
/// The variable holding the payment API token (`[tenants.api] token_env`).
pub const TOKEN_ENV: &str = "ENCAISSE_BENCH_TOKEN";

/// Where the PayFiP gateway (the simulator) and the daemon's public address are.
#[derive(Debug, Clone)]
pub struct PayfipUrls {
    pub soap_url: String,
    pub payment_page_url: String,
    pub classic_url: String,
    /// The daemon's own base URL, where the gateway sends notifications.
    pub public_base_url: String,
}

/// What differs from one run to the next.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub amqp_url: String,
    /// Broker prefix of the run (its own exchange and queues).
    pub prefix: String,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `[retry] tiers_secs`.
    pub tiers_secs: Vec<u64>,
    /// `None`: online payment disabled for the tenant (the chaos run needs no gateway).
    pub payfip: Option<PayfipUrls>,
    /// `[polyfac] max_downstream_backlog` (`None`: not written, the daemon's default).
    pub max_downstream_backlog: Option<u64>,
    /// `[polyfac] bundle_size` (`None`: not written, the daemon's default).
    pub bundle_size: Option<usize>,
    /// `[polyfac] publish_batch_size` (`None`: not written, the daemon's default).
    pub publish_batch_size: Option<usize>,
    /// `[ledger] url` (`None`: not written, the data directory's SQLite file).
    pub ledger_url: Option<String>,
    /// Writes a `[cluster]` section: several daemons share the PostgreSQL ledger.
    pub cluster: bool,
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

impl RunSettings {
    /// A run's settings: its own prefix, `<work>/data`, a free local port, the production
    /// delay tiers, no online payment.
    pub fn for_run(amqp_url: &str, prefix: &str, work: &Path) -> Result<Self> {
        Ok(RunSettings {
            amqp_url: amqp_url.to_string(),
            prefix: prefix.to_string(),
            data_dir: work.join("data"),
            listen: free_local_addr()?,
            tiers_secs: vec![5, 30, 120, 600, 3600],
            payfip: None,
            max_downstream_backlog: None,
            bundle_size: None,
            publish_batch_size: None,
            ledger_url: None,
            cluster: false,
        })
    }

    /// The daemon's base URL (`http://<listen>`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The configuration file's text.
    pub fn render(&self) -> String {
        let tiers: Vec<String> = self.tiers_secs.iter().map(u64::to_string).collect();
        let gateway = match &self.payfip {
            Some(urls) => format!(
                "[payfip]\nsoap_url = {}\npayment_page_url = {}\nclassic_url = {}\npublic_base_url = {}\n",
                quoted(&urls.soap_url),
                quoted(&urls.payment_page_url),
                quoted(&urls.classic_url),
                quoted(&urls.public_base_url),
            ),
            None => String::new(),
        };
        TEMPLATE
            .replace(
                "\"@DATA_DIR@\"",
                &quoted(&self.data_dir.display().to_string()),
            )
            .replace("\"@AMQP_URL@\"", &quoted(&self.amqp_url))
            .replace("\"@PREFIX@\"", &quoted(&self.prefix))
            .replace("\"@LISTEN@\"", &quoted(&self.listen.to_string()))
            .replace("@TIERS_SECS@", &format!("[{}]", tiers.join(", ")))
            .replace("@PAYFIP_GATEWAY@", &gateway)
            .replace(
                "@POLYFAC_MORE@",
                &[
                    self.max_downstream_backlog
                        .map(|n| format!("max_downstream_backlog = {n}")),
                    self.bundle_size.map(|n| format!("bundle_size = {n}")),
                    self.publish_batch_size
                        .map(|n| format!("publish_batch_size = {n}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("\n"),
            )
            .replace(
                "@PAYFIP_ENABLED@",
                if self.payfip.is_some() {
                    "true"
                } else {
                    "false"
                },
            )
    }

    /// Renders, reads and checks the configuration (as `encaisse run` does), then writes it
    /// to `path`.
    pub fn write(&self, path: &Path) -> Result<Config> {
        let mut text = self.render();
        if let Some(url) = &self.ledger_url {
            text.push_str(&format!("\n[ledger]\nurl = {}\n", quoted(url)));
        }
        if self.cluster {
            text.push_str("\n[cluster]\n");
        }
        let config = check(&text)?;
        std::fs::write(path, text).map_err(|e| BenchError::io(path.display().to_string(), e))?;
        Ok(config)
    }
}

/// Reads and checks a rendered configuration; the token variable counts as set (the harness
/// sets it for the daemon it starts).
pub fn check(text: &str) -> Result<Config> {
    let config = config::load_str(text, "bench.toml")
        .map_err(|e| BenchError::Setup(format!("the benchmark configuration: {e}")))?;
    let report = config::check(&config, &|name| {
        (name == TOKEN_ENV).then(|| super::daemon::TOKEN.to_string())
    });
    if !report.is_ok() {
        let problems: Vec<String> = report
            .issues
            .iter()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect();
        return Err(BenchError::Setup(format!(
            "the benchmark configuration does not pass `encaisse check`: {}",
            problems.join("; ")
        )));
    }
    Ok(config)
}

/// A free TCP port on the loopback interface (bound, then released for the daemon).
pub fn free_local_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::io("binding a free port", e))?;
    listener
        .local_addr()
        .map_err(|e| BenchError::io("binding a free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(payfip: Option<PayfipUrls>) -> RunSettings {
        RunSettings {
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "bench-test".into(),
            data_dir: PathBuf::from("/tmp/encaisse \"bench\""),
            listen: "127.0.0.1:18080".parse().unwrap(),
            tiers_secs: vec![1, 5],
            payfip,
            max_downstream_backlog: Some(2000),
            bundle_size: Some(50),
            publish_batch_size: Some(1000),
            ledger_url: None,
            cluster: false,
        }
    }

    #[test]
    fn the_rendered_configuration_passes_the_daemons_checks() {
        let config = check(&settings(None).render()).unwrap();
        assert_eq!(config.broker.prefix, "bench-test");
        assert_eq!(config.retry.tiers_secs, vec![1, 5]);
        assert_eq!(config.polyfac.max_downstream_backlog, 2000);
        assert_eq!(config.polyfac.bundle_size, 50);
        assert_eq!(config.polyfac.publish_batch_size, 1000);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/encaisse \"bench\""));
        let tenant = config.tenant(TENANT).unwrap();
        assert!(tenant.helios.is_some(), "titres go to Hélios");
        assert!(!tenant.payfip.as_ref().unwrap().enabled);
        assert!(config.payfip.is_none());
    }

    #[test]
    fn daemons_sharing_a_postgresql_ledger_get_a_cluster_section() {
        let dir = tempfile::tempdir().unwrap();
        let mut shared = settings(None);
        shared.ledger_url = Some("postgres://postgres@127.0.0.1:5432/bench_run".into());
        shared.cluster = true;
        let config = shared.write(&dir.path().join("one.toml")).unwrap();
        assert!(config.cluster.is_some());
        let written = std::fs::read_to_string(dir.path().join("one.toml")).unwrap();
        assert!(written.contains("[cluster]"), "{written}");
        assert!(written.contains("bench_run"), "{written}");
    }

    #[test]
    fn online_payment_points_at_the_simulator() {
        let urls = PayfipUrls {
            soap_url: "http://127.0.0.1:9/tpa/services/securite".into(),
            payment_page_url: "http://127.0.0.1:9/tpa/paiementws.web".into(),
            classic_url: "http://127.0.0.1:9/tpa/paiement.web".into(),
            public_base_url: "http://127.0.0.1:18080".into(),
        };
        let config = check(&settings(Some(urls)).render()).unwrap();
        let gateway = config.payfip.clone().unwrap();
        assert_eq!(gateway.soap_url, "http://127.0.0.1:9/tpa/services/securite");
        assert_eq!(
            gateway.public_base_url.as_deref(),
            Some("http://127.0.0.1:18080")
        );
        let tenant = config.tenant(TENANT).unwrap();
        assert!(tenant.payfip.as_ref().unwrap().enabled);
        assert!(tenant.regies.iter().any(|r| r.code == REGIE));
    }
}
