//! Reading `encaisse.toml`: syntax, types and unknown keys, each error naming the key path
//! (`tenants[0].budgets[1].siret`) and its line; then the environment overrides.

use std::path::{Path, PathBuf};

use super::Config;

/// Overrides the data directory of any configuration file.
pub const ENV_DATA_DIR: &str = "ENCAISSE_DATA_DIR";
/// Overrides the broker URL of any configuration file (credentials belong here, not in the file).
pub const ENV_AMQP_URL: &str = "ENCAISSE_AMQP_URL";
/// Overrides `[ledger] url` (a PostgreSQL password belongs here, not in the file).
pub const ENV_LEDGER_URL: &str = "ENCAISSE_LEDGER_URL";

/// A configuration read from a file, with what the environment changed in it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file it was read from.
    pub path: PathBuf,
    pub config: Config,
    /// The environment variables that overrode a setting (names only: values may be secret).
    pub overrides: Vec<&'static str>,
}

/// Why a configuration file cannot be used. Every variant is a configuration error
/// (exit code 78): nothing is worth retrying until a person edits the file or environment.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML at all (unclosed string, duplicate key, …).
    #[error("{path}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid TOML, but a key is unknown, missing or of the wrong type or value.
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        /// Key path of the offending setting (`tenants[0].budgets[1].colour`).
        field: String,
        message: String,
    },
    /// An override variable is set but unusable.
    #[error("{variable}: {message}")]
    Override {
        variable: &'static str,
        message: String,
    },
}

impl LoadError {
    /// The key path of the setting at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            LoadError::Invalid { field, .. } => Some(field),
            LoadError::Override { variable, .. } => Some(variable),
            _ => None,
        }
    }
}

/// Reads and parses `path`, then applies the environment overrides.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let config = load_str(&text, &path.display().to_string())?;
    let mut loaded = Loaded {
        path: path.to_path_buf(),
        config,
        overrides: Vec::new(),
    };
    apply_overrides(&mut loaded, |name| std::env::var_os(name))?;
    Ok(loaded)
}

/// Parses a configuration text; `origin` names it in errors (a file path).
pub fn load_str(text: &str, origin: &str) -> Result<Config, LoadError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        let (line, column) = position(text, e.span());
        LoadError::Syntax {
            path: origin.to_string(),
            line,
            column,
            message: first_line(e.message()),
        }
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = position(text, inner.span());
        LoadError::Invalid {
            path: origin.to_string(),
            line,
            column,
            field,
            message: first_line(inner.message()),
        }
    })
}

/// Applies `ENCAISSE_DATA_DIR`, `ENCAISSE_AMQP_URL` and `ENCAISSE_LEDGER_URL`, reading
/// variables through `var`.
pub fn apply_overrides(
    loaded: &mut Loaded,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<(), LoadError> {
    if let Some(dir) = var(ENV_DATA_DIR) {
        if dir.is_empty() {
            return Err(LoadError::Override {
                variable: ENV_DATA_DIR,
                message: "is set but empty".into(),
            });
        }
        loaded.config.data_dir = PathBuf::from(dir);
        loaded.overrides.push(ENV_DATA_DIR);
    }
    if let Some(url) = var(ENV_AMQP_URL) {
        let url = url.into_string().map_err(|_| LoadError::Override {
            variable: ENV_AMQP_URL,
            message: "is not valid UTF-8".into(),
        })?;
        if url.trim().is_empty() {
            return Err(LoadError::Override {
                variable: ENV_AMQP_URL,
                message: "is set but empty".into(),
            });
        }
        loaded.config.broker.url = url;
        loaded.overrides.push(ENV_AMQP_URL);
    }
    if let Some(url) = var(ENV_LEDGER_URL) {
        let url = url.into_string().map_err(|_| LoadError::Override {
            variable: ENV_LEDGER_URL,
            message: "is not valid UTF-8".into(),
        })?;
        encaisse_ledger::LedgerUrl::parse(&url).map_err(|e| LoadError::Override {
            variable: ENV_LEDGER_URL,
            message: e.to_string(),
        })?;
        loaded.config.ledger.url = Some(url);
        loaded.overrides.push(ENV_LEDGER_URL);
    }
    Ok(())
}

/// 1-based line and column of a byte offset (1:1 when the error has no position).
fn position(text: &str, span: Option<std::ops::Range<usize>>) -> (usize, usize) {
    let Some(span) = span else {
        return (1, 1);
    };
    let offset = span.start.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, last)| last)
        .chars()
        .count()
        + 1;
    (line, column)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (String, usize, String) {
        match load_str(text, "test.toml") {
            Err(LoadError::Invalid {
                field,
                line,
                message,
                ..
            }) => (field, line, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let config = load_str("", "test.toml").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("var/encaisse"));
        assert_eq!(config.http.listen.port(), 8080);
        assert_eq!(config.broker.prefix, "encaisse");
        assert!(config.tenants.is_empty());
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let (field, line, message) = invalid("data_dir = \"x\"\ncolour = \"blue\"\n");
        assert_eq!(field, "colour");
        assert_eq!(line, 2);
        assert!(message.contains("unknown field"), "{message}");
    }

    #[test]
    fn unknown_nested_key_is_named_with_its_path() {
        let text = r#"
[[tenants]]
id = "vitry"
name = "Vitry-sur-Seine"

[[tenants.budgets]]
code = "principal"
cod_bud = "00"
cod_col = "123"
siret = "21940081000012"
label = "Budget principal"
colour = "blue"
"#;
        let (field, line, _) = invalid(text);
        assert_eq!(field, "tenants[0].budgets[0].colour");
        assert_eq!(line, 12);
    }

    #[test]
    fn unknown_key_in_runtime_section_is_named() {
        let (field, _, _) = invalid("[broker]\nprefech = 3\n");
        assert_eq!(field, "broker.prefech");
    }

    #[test]
    fn wrong_type_is_named() {
        let (field, line, message) = invalid("[broker]\nprefetch = \"many\"\n");
        assert_eq!(field, "broker.prefetch");
        assert_eq!(line, 2);
        assert!(message.contains("invalid type"), "{message}");
    }

    #[test]
    fn invalid_tenant_id_is_named() {
        let (field, _, message) = invalid("[[tenants]]\nid = \"Vitry\"\nname = \"V\"\n");
        assert_eq!(field, "tenants[0].id");
        assert!(message.contains("a-z"), "{message}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let (field, _, message) = invalid("[[tenants]]\nid = \"vitry\"\n");
        assert_eq!(field, "tenants[0]");
        assert!(message.contains("missing field `name`"), "{message}");
    }

    #[test]
    fn syntax_error_has_a_position() {
        match load_str("a = \"unclosed\n", "test.toml") {
            Err(LoadError::Syntax { line, .. }) => assert_eq!(line, 1),
            other => panic!("expected a Syntax error, got {other:?}"),
        }
    }

    #[test]
    fn overrides_replace_data_dir_and_url() {
        let mut loaded = Loaded {
            path: PathBuf::from("test.toml"),
            config: load_str("data_dir = \"from-file\"", "test.toml").unwrap(),
            overrides: Vec::new(),
        };
        apply_overrides(&mut loaded, |name| match name {
            ENV_DATA_DIR => Some("/srv/encaisse".into()),
            ENV_AMQP_URL => Some("amqp://u:p@broker:5672/%2f".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(loaded.config.data_dir, PathBuf::from("/srv/encaisse"));
        assert_eq!(loaded.config.broker.url, "amqp://u:p@broker:5672/%2f");
        assert_eq!(loaded.overrides, vec![ENV_DATA_DIR, ENV_AMQP_URL]);
    }

    #[test]
    fn empty_override_is_an_error() {
        let mut loaded = Loaded {
            path: PathBuf::from("test.toml"),
            config: load_str("", "test.toml").unwrap(),
            overrides: Vec::new(),
        };
        let err = apply_overrides(&mut loaded, |name| {
            (name == ENV_DATA_DIR).then(std::ffi::OsString::new)
        })
        .unwrap_err();
        assert_eq!(err.field(), Some(ENV_DATA_DIR));
    }

    #[test]
    fn position_counts_lines_and_columns() {
        assert_eq!(position("ab\ncd", Some(4..5)), (2, 2));
        assert_eq!(position("ab", None), (1, 1));
    }
}
