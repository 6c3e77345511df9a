//! `encaisse check [--connect]`: is this configuration usable? Exit 0 with a summary, or 78
//! with every problem as `field: message`; with `--connect`, 69 if the broker is unreachable.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::config::{self, Config, LoadError, Loaded};
use crate::{exit, wiring};

/// Loads and checks `path`; writes the summary to `out`, problems to `err`.
pub async fn run(path: &Path, connect: bool, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = writeln!(err, "{}", describe_load_error(&e));
            let _ = writeln!(err, "{}: configuration is not usable", path.display());
            return exit::CONFIG;
        }
    };
    let report = config::check(&loaded.config, &config::check::env_value);
    for warning in &report.warnings {
        let _ = writeln!(err, "warning: {warning}");
    }
    if !report.is_ok() {
        for issue in &report.issues {
            let _ = writeln!(err, "{issue}");
        }
        let _ = writeln!(
            err,
            "{}: {} problem{} found",
            path.display(),
            report.issues.len(),
            if report.issues.len() == 1 { "" } else { "s" }
        );
        return exit::CONFIG;
    }
    let _ = write_summary(&loaded, out);
    if connect {
        let url = &loaded.config.broker.url;
        let timeout = Duration::from_millis(loaded.config.broker.connect_timeout_ms.max(1));
        match connect_broker(url, timeout).await {
            Ok(()) => {
                let _ = writeln!(out, "broker: reachable at {}", redact_url(url));
            }
            Err(message) => {
                let _ = writeln!(
                    err,
                    "broker.url: cannot connect to {}: {message}",
                    redact_url(url)
                );
                return exit::UNAVAILABLE;
            }
        }
    }
    exit::OK
}

/// Loads `path` for a subcommand; on failure writes the key at fault to `err` and returns
/// the exit code (78).
pub fn load_or_report(path: &Path, err: &mut dyn Write) -> Result<Loaded, u8> {
    config::load(path).map_err(|e| {
        let _ = writeln!(err, "{}", describe_load_error(&e));
        exit::CONFIG
    })
}

/// One line naming the key and where it is, as `field: message (file line L, column C)`.
pub fn describe_load_error(e: &LoadError) -> String {
    match e {
        LoadError::Invalid {
            path,
            line,
            column,
            field,
            message,
        } => format!("{field}: {message} ({path} line {line}, column {column})"),
        other => other.to_string(),
    }
}

fn write_summary(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    let config: &Config = &loaded.config;
    writeln!(out, "{}: OK", loaded.path.display())?;
    writeln!(out, "data_dir: {}", config.data_dir.display())?;
    writeln!(out, "tenants: {}", config.tenants.len())?;
    for tenant in &config.tenants {
        writeln!(
            out,
            "  {} ({}): budgets {}, activities {}, products {}, régies {}, sources {}",
            tenant.id,
            tenant.name,
            tenant.budgets.len(),
            tenant.activities.len(),
            tenant.products.len(),
            tenant.regies.len(),
            std::iter::once(&tenant.source)
                .chain(&tenant.extra_sources)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    let plan = wiring::plan();
    if plan.is_empty() {
        writeln!(out, "stages: none yet")?;
    } else {
        let names: Vec<String> = plan
            .iter()
            .map(|(name, kind)| format!("{name} ({kind:?})").to_lowercase())
            .collect();
        writeln!(out, "stages: {}", names.join(", "))?;
    }
    if !loaded.overrides.is_empty() {
        writeln!(out, "overridden by: {}", loaded.overrides.join(", "))?;
    }
    Ok(())
}

/// Opens and closes one AMQP connection, within `timeout` (`broker.connect_timeout_ms`).
async fn connect_broker(url: &str, timeout: Duration) -> Result<(), String> {
    let attempt = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    let connection = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
        .map_err(|e| e.to_string())?;
    connection
        .close(200, "encaisse check".into())
        .await
        .map_err(|e| e.to_string())
}

/// The URL without its credentials: `amqp://user:secret@host/vh` → `amqp://***@host/vh`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid URL>".into();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_credentials() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://broker/vh"), "amqp://broker/vh");
        assert_eq!(redact_url("amqps://u:p@b"), "amqps://***@b");
        assert_eq!(redact_url("nonsense"), "<invalid URL>");
    }

    #[test]
    fn load_error_names_the_field_first() {
        let e = LoadError::Invalid {
            path: "c.toml".into(),
            line: 3,
            column: 1,
            field: "tenants[0].colour".into(),
            message: "unknown field `colour`".into(),
        };
        assert_eq!(
            describe_load_error(&e),
            "tenants[0].colour: unknown field `colour` (c.toml line 3, column 1)"
        );
    }
}
