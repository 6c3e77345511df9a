//! The demo's configuration: the file given with `--config` (default `config/encaisse.toml`),
//! the overlay `demo/encaisse-demo.toml` merged over it, then what only the running demo
//! knows (data directory, broker prefix, ports of the daemon and of the PayFiP simulator).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::config::{self, Config, LoadError, Loaded};

/// The overlay, as shipped (`demo/encaisse-demo.toml`).
pub const OVERLAY: &str = include_str!("../../demo/encaisse-demo.toml");
/// Where the overlay is read from, for messages.
pub const OVERLAY_PATH: &str = "demo/encaisse-demo.toml";

/// What the demo sets at run time.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub data_dir: PathBuf,
    pub broker_prefix: String,
    /// The daemon's HTTP listener, already bound.
    pub listen: SocketAddr,
    /// The PayFiP simulator's base URL (`http://127.0.0.1:<port>`).
    pub simulator: String,
}

/// Why the demo's configuration cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DemoConfigError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    /// The merged configuration does not load (a key the overlay sets is unknown…).
    #[error("configuration with the demo overlay: {0}")]
    Load(#[from] LoadError),
}

/// Reads `base`, merges the overlay and the run-time settings, and loads the result with
/// the daemon's own loader (so every key is checked as `encaisse check` would).
pub fn build(base: &Path, runtime: &Runtime) -> Result<Loaded, DemoConfigError> {
    let shown = base.display().to_string();
    let text = std::fs::read_to_string(base).map_err(|source| DemoConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut table = parse(&text, &shown)?;
    merge(&mut table, parse(OVERLAY, OVERLAY_PATH)?, &shown)?;
    set_runtime(&mut table, runtime);
    let merged = toml::to_string(&table).map_err(|e| DemoConfigError::Shape {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let config: Config = config::load_str(&merged, &format!("{shown} + {OVERLAY_PATH} (merged)"))?;
    Ok(Loaded {
        path: base.to_path_buf(),
        config,
        overrides: Vec::new(),
    })
}

fn parse(text: &str, path: &str) -> Result<Table, DemoConfigError> {
    text.parse::<Table>().map_err(|e| DemoConfigError::Syntax {
        path: path.to_string(),
        message: e.message().to_string(),
    })
}

/// Merges `overlay` into `base`: tables key by key, `tenants` entries by `id`, any other
/// value replaced.
fn merge(base: &mut Table, overlay: Table, path: &str) -> Result<(), DemoConfigError> {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(into)), Value::Table(from)) => merge(into, from, path)?,
            (Some(Value::Array(into)), Value::Array(from)) if key == "tenants" => {
                merge_tenants(into, from, path)?
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
    Ok(())
}

fn merge_tenants(
    base: &mut [Value],
    overlay: Vec<Value>,
    path: &str,
) -> Result<(), DemoConfigError> {
    for entry in overlay {
        let Value::Table(mut entry) = entry else {
            return Err(shape(
                path,
                "a [[tenants]] entry of the overlay is not a table",
            ));
        };
        let Some(Value::String(id)) = entry.remove("id") else {
            return Err(shape(path, "a [[tenants]] entry of the overlay has no id"));
        };
        let target = base.iter_mut().find_map(|t| match t {
            Value::Table(t) if t.get("id").and_then(Value::as_str) == Some(id.as_str()) => Some(t),
            _ => None,
        });
        let Some(target) = target else {
            return Err(shape(
                path,
                &format!(
                    "the overlay configures tenant {id:?}, which the configuration does not have"
                ),
            ));
        };
        merge(target, entry, path)?;
    }
    Ok(())
}

fn shape(path: &str, message: &str) -> DemoConfigError {
    DemoConfigError::Shape {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// Sets `[section] key = value`, making the section when the file has none.
fn set(config: &mut Table, section: &str, key: &str, value: Value) {
    match config.get_mut(section) {
        Some(Value::Table(t)) => {
            t.insert(key.into(), value);
        }
        _ => {
            let mut t = Table::new();
            t.insert(key.into(), value);
            config.insert(section.into(), Value::Table(t));
        }
    }
}

fn set_runtime(config: &mut Table, runtime: &Runtime) {
    config.insert(
        "data_dir".into(),
        Value::String(runtime.data_dir.display().to_string()),
    );
    set(
        config,
        "broker",
        "prefix",
        Value::String(runtime.broker_prefix.clone()),
    );
    set(
        config,
        "http",
        "listen",
        Value::String(runtime.listen.to_string()),
    );
    let sim = runtime.simulator.trim_end_matches('/');
    for (key, path) in [
        ("soap_url", "/tpa/services/securite"),
        ("payment_page_url", "/tpa/paiementws.web"),
        ("classic_url", "/tpa/paiement.web"),
    ] {
        set(config, "payfip", key, Value::String(format!("{sim}{path}")));
    }
    set(
        config,
        "payfip",
        "public_base_url",
        Value::String(format!("http://{}", runtime.listen)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Runtime {
        Runtime {
            data_dir: PathBuf::from("/tmp/demo-data"),
            broker_prefix: "encaisse-demo-test".into(),
            listen: "127.0.0.1:41000".parse().unwrap(),
            simulator: "http://127.0.0.1:42000".into(),
        }
    }

    #[test]
    fn the_example_with_the_overlay_is_a_valid_demo_configuration() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/encaisse.toml");
        let loaded = build(&base, &runtime()).unwrap();
        let c = &loaded.config;
        assert_eq!(c.data_dir, PathBuf::from("/tmp/demo-data"));
        assert_eq!(c.broker.prefix, "encaisse-demo-test");
        assert_eq!(c.http.listen.port(), 41000);
        assert_eq!(c.retry.tiers_secs, vec![1, 2, 4]);
        assert_eq!(c.polyfac.flush_interval_secs, 1);
        // The returns watchers read the simulated partners' files within half a second.
        for watch in [c.helios.watch(), c.sepa.watch()] {
            assert_eq!(watch.poll_interval, std::time::Duration::from_millis(200));
            assert_eq!(watch.settle, std::time::Duration::from_millis(300));
        }
        let payfip = c.payfip.as_ref().unwrap();
        assert_eq!(
            payfip.soap_url,
            "http://127.0.0.1:42000/tpa/services/securite"
        );
        assert_eq!(
            payfip.public_base_url.as_deref(),
            Some("http://127.0.0.1:41000")
        );
        assert_eq!(payfip.titre_payable_after_days, 0);
        // The communes are the file's, untouched: the demo needs no setting of its own.
        let vitry = c.tenant("vitry").unwrap();
        assert_eq!(vitry.name, "Vitry-sur-Seine");
        assert_eq!(vitry.helios.as_ref().unwrap().id_post, "094000");
        assert!(c.tenant("ivry").unwrap().sepa.is_some());
        let report = config::check(c, &|name| super::super::tokens()(name));
        assert!(report.is_ok(), "{:?}", report.issues);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }

    #[test]
    fn an_overlay_tenant_missing_from_the_file_is_an_error() {
        let mut base = parse("[[tenants]]\nid = \"vitry\"\nname = \"V\"\n", "t").unwrap();
        let overlay = parse("[[tenants]]\nid = \"orly\"\n[tenants.helios]\n", "o").unwrap();
        let err = merge(&mut base, overlay, "o").unwrap_err();
        assert!(err.to_string().contains("orly"), "{err}");
        let overlay = parse("data_dir = \"x\"\n[broker]\nprefix = \"p\"\n", "o").unwrap();
        let mut base = parse("data_dir = \"y\"\n[broker]\nurl = \"u\"\n", "t").unwrap();
        merge(&mut base, overlay, "o").unwrap();
        assert_eq!(base["data_dir"].as_str(), Some("x"));
        assert_eq!(base["broker"]["url"].as_str(), Some("u"));
        assert_eq!(base["broker"]["prefix"].as_str(), Some("p"));
    }
}
