use std::path::Path;
use std::process::Command;

/// Why a document does not validate, or could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XsdError {
    #[error("{document} does not validate against {schema}:\n{report}")]
    Invalid {
        document: String,
        schema: String,
        report: String,
    },
    #[error("cannot run xmllint (install libxml2-utils): {0}")]
    Unavailable(String),
}

/// Validates `document` against `schema` with `xmllint --noout --nonet --schema`.
/// `--nonet` keeps libxml2 from fetching anything; the DGFiP and ISO schemas import their
/// siblings by relative path.
pub fn validate_file(schema: &Path, document: &Path) -> Result<(), XsdError> {
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(schema)
        .arg(document)
        .output()
        .map_err(|e| XsdError::Unavailable(e.to_string()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(XsdError::Invalid {
        document: document.display().to_string(),
        schema: schema.display().to_string(),
        report: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Validates in-memory bytes (written to a temporary file first).
pub fn validate_bytes(schema: &Path, name: &str, bytes: &[u8]) -> Result<(), XsdError> {
    let dir = std::env::temp_dir().join(format!("encaisse-xsd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| XsdError::Unavailable(e.to_string()))?;
    let path = dir.join(format!("{}-{name}", unique_suffix()));
    std::fs::write(&path, bytes).map_err(|e| XsdError::Unavailable(e.to_string()))?;
    let result = validate_file(schema, &path);
    let _ = std::fs::remove_file(&path);
    result
}

fn unique_suffix() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    nanos ^ u128::from(COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_invalid_documents() {
        let dir = tempfile::tempdir().unwrap();
        let xsd = dir.path().join("s.xsd");
        std::fs::write(
            &xsd,
            r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
                 <xs:element name="a" type="xs:decimal"/></xs:schema>"#,
        )
        .unwrap();
        assert!(validate_bytes(&xsd, "ok.xml", b"<a>1.5</a>").is_ok());
        let err = validate_bytes(&xsd, "bad.xml", b"<a>abc</a>").unwrap_err();
        assert!(matches!(err, XsdError::Invalid { .. }), "{err}");
    }
}
