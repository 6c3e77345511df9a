//! Files in the tenants' directories as the demo watches them: listing, waiting for the
//! daemon to write or handle one, and XSD validation when `xmllint` and the official
//! schemas (`encaisse_xml::specs::specs_dir()`) are available.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(200);

/// Visible files of `dir` (no hidden or temporary ones), sorted by name.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| !name(p).starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The file name of `path`.
pub fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Waits until `check` returns `Some`, looking every 200 ms, for at most `timeout`.
pub async fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for_async(timeout, || std::future::ready(check())).await
}

/// Waits until `dir` holds at least `n` files whose names start with `prefix`; returns
/// them (sorted).
pub async fn wait_files(
    dir: &Path,
    prefix: &str,
    n: usize,
    timeout: Duration,
) -> Option<Vec<PathBuf>> {
    wait_for(timeout, || {
        let files: Vec<PathBuf> = list(dir)
            .into_iter()
            .filter(|p| name(p).starts_with(prefix))
            .collect();
        (files.len() >= n).then_some(files)
    })
    .await
}

/// Where an inbox file went once handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Archived,
    Rejected,
}

/// Waits until `name` left `<area>/inbox` for `<area>/archive` or `<area>/rejected`.
pub async fn wait_handled(area: &Path, name: &str, timeout: Duration) -> Option<Handled> {
    wait_for(timeout, || {
        if area.join("inbox").join(name).exists() {
            None
        } else if area.join("archive").join(name).exists() {
            Some(Handled::Archived)
        } else if area.join("rejected").join(name).exists() {
            Some(Handled::Rejected)
        } else {
            None
        }
    })
    .await
}

/// Whether files can be validated against the official schemas, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// `xmllint` runs and the specs directory exists.
    Available {
        specs: PathBuf,
    },
    Unavailable {
        why: String,
    },
}

impl Validation {
    pub fn probe() -> Validation {
        let specs = encaisse_xml::specs::specs_dir();
        let specs = specs.canonicalize().unwrap_or(specs);
        if let Some(missing) = Validation::schemas().into_iter().find(|s| !s.is_file()) {
            return Validation::Unavailable {
                why: format!(
                    "the official schemas are not in {} ({} is missing; docs/schemas.md says where to get them, ENCAISSE_SPECS_DIR where they are)",
                    specs.display(),
                    missing.display()
                ),
            };
        }
        match std::process::Command::new("xmllint")
            .arg("--version")
            .output()
        {
            Ok(out) if out.status.success() => Validation::Available { specs },
            _ => Validation::Unavailable {
                why: "xmllint is not installed (package libxml2-utils)".into(),
            },
        }
    }

    /// Every official schema the demo validates its files against.
    pub fn schemas() -> Vec<PathBuf> {
        let sepa = encaisse_xml::specs::specs_dir().join("sepa");
        vec![
            encaisse_helios::schemas::pes_aller(),
            encaisse_helios::schemas::acquit(),
            encaisse_helios::schemas::retour(),
            encaisse_helios::schemas::acquit_retour(),
            sepa.join("pain.008.001.02.xsd"),
            sepa.join("pain.002.001.10.xsd"),
        ]
    }

    /// For people: what validation the report's verdicts come from.
    pub fn describe(&self) -> String {
        match self {
            Validation::Available { specs } => {
                format!(
                    "validated with xmllint against the schemas in {}",
                    specs.display()
                )
            }
            Validation::Unavailable { why } => format!("not validated: {why}"),
        }
    }

    /// `Some(Ok)` valid, `Some(Err(report))` invalid, `None` when validation is unavailable.
    pub fn check(&self, schema: &Path, document: &Path) -> Option<Result<(), String>> {
        match self {
            Validation::Available { .. } => {
                Some(encaisse_xml::xsd::validate_file(schema, document).map_err(|e| e.to_string()))
            }
            Validation::Unavailable { .. } => None,
        }
    }

    /// [`Validation::check`] for bytes not written yet.
    pub fn check_bytes(
        &self,
        schema: &Path,
        name: &str,
        bytes: &[u8],
    ) -> Option<Result<(), String>> {
        match self {
            Validation::Available { .. } => Some(
                encaisse_xml::xsd::validate_bytes(schema, name, bytes).map_err(|e| e.to_string()),
            ),
            Validation::Unavailable { .. } => None,
        }
    }

    /// A schema of the SEPA specs (`sepa/<name>`).
    pub fn sepa_schema(&self, name: &str) -> PathBuf {
        encaisse_xml::specs::specs_dir().join("sepa").join(name)
    }
}

/// [`wait_for`] with an asynchronous check.
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `GET <base>/readyz` answers 200, or `daemon` ended, or `timeout` passed.
pub async fn wait_ready(
    base: &str,
    timeout: Duration,
    daemon: &tokio::task::JoinHandle<u8>,
) -> bool {
    let client = reqwest::Client::new();
    let url = format!("{base}/readyz");
    wait_for_async(timeout, || {
        let client = client.clone();
        let url = url.clone();
        let finished = daemon.is_finished();
        async move {
            if finished {
                return Some(false);
            }
            let response = client.get(&url).send().await.ok()?;
            (response.status() == reqwest::StatusCode::OK).then_some(true)
        }
    })
    .await
    .unwrap_or(false)
}
