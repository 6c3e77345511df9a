//! Reading the Trésorerie's files (`PES_ACQUIT`, `PES_Retour`) and checking PES Aller files.
//!
//! Every reader takes the untrusted bytes and the size limit; a file that is too large,
//! declares a DTD, is not XML, is not a known PES document or breaks a rule gives a typed
//! [`ReadError`] naming the line and the element, so that the inbox can move it to
//! `rejected/` with a reason and carry on with the next file.

pub mod acquit;
pub mod aller_check;
pub mod retour;
pub mod tree;

use chrono::NaiveDate;
use encaisse_schemas::Money;
use encaisse_xml::{EncodingError, GuardError};

use crate::error::ErrorClass;
use tree::{Element, Tree};

pub use acquit::Acquit;
pub use retour::PesRetour;

/// Namespace of `PES_ACQUIT` (acquit v2).
pub const ACQUIT_NS: &str = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2";
/// Namespace of `PES_Retour`.
pub const RETOUR_NS: &str = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour";

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("refused before parsing: {0}")]
    Guard(#[from] GuardError),
    #[error("{0}")]
    Encoding(#[from] EncodingError),
    #[error("line {line}: not well-formed XML: {message}")]
    Syntax { line: u32, message: String },
    #[error("line {line}: elements nested deeper than {limit} levels")]
    TooDeep { line: u32, limit: usize },
    #[error("not a file encaisse reads here: root element <{root}> in namespace {namespace:?}")]
    UnknownDocument {
        root: String,
        namespace: Option<String>,
    },
    #[error("line {line}: {path}: missing")]
    Missing { path: String, line: u32 },
    #[error("line {line}: {path}: {value:?} {rule}")]
    Invalid {
        path: String,
        line: u32,
        value: String,
        rule: String,
    },
}

impl ReadError {
    /// Undecodable input is poison; a readable file with wrong content is permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Guard(GuardError::TooLarge { .. }) => ErrorClass::Permanent,
            ReadError::Guard(_)
            | ReadError::Encoding(_)
            | ReadError::Syntax { .. }
            | ReadError::TooDeep { .. } => ErrorClass::Poison,
            ReadError::UnknownDocument { .. }
            | ReadError::Missing { .. }
            | ReadError::Invalid { .. } => ErrorClass::Permanent,
        }
    }

    /// A short machine kind (`too_large`, `dtd`, `malformed`, `unknown_document`, `invalid`),
    /// for logs and the name of the rejection reason.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadError::Guard(GuardError::TooLarge { .. }) => "too_large",
            ReadError::Guard(GuardError::Dtd { .. }) => "dtd",
            ReadError::Guard(GuardError::Empty) => "empty",
            ReadError::Encoding(_) => "encoding",
            ReadError::Syntax { .. } | ReadError::TooDeep { .. } => "malformed",
            ReadError::UnknownDocument { .. } => "unknown_document",
            ReadError::Missing { .. } | ReadError::Invalid { .. } => "invalid",
        }
    }
}

/// A [`ReadError`] with the name of the file it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file {file}: {error}")]
pub struct FileError {
    pub file: String,
    #[source]
    pub error: ReadError,
}

impl FileError {
    pub fn class(&self) -> ErrorClass {
        self.error.class()
    }
}

/// A file from the Trésorerie, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnFile {
    Acquit(Acquit),
    Retour(PesRetour),
}

/// Bounds of one read (bytes, nesting, elements).
pub use encaisse_xml::tree::Limits;

/// Reads a file dropped in `helios/inbox`: a `PES_ACQUIT` or a `PES_Retour`, anything else
/// is refused. `limits`: a byte limit, or [`Limits`] with an element bound.
pub fn read_return_file(
    file: &str,
    bytes: &[u8],
    limits: impl Into<Limits>,
) -> Result<ReturnFile, FileError> {
    let wrap = |error| FileError {
        file: file.to_string(),
        error,
    };
    let tree = tree::parse(bytes, limits).map_err(wrap)?;
    match tree.root.name.as_str() {
        "PES_ACQUIT" => acquit::from_tree(&tree)
            .map(ReturnFile::Acquit)
            .map_err(wrap),
        "PES_Retour" => retour::from_tree(&tree)
            .map(ReturnFile::Retour)
            .map_err(wrap),
        _ => Err(wrap(unknown(&tree))),
    }
}

pub(crate) fn unknown(tree: &Tree) -> ReadError {
    ReadError::UnknownDocument {
        root: tree.root.name.clone(),
        namespace: tree.namespace.clone(),
    }
}

/// The envelope of a PES file (`Enveloppe/Parametres`, `Emetteur`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: Option<String>,
    pub typ_fic: Option<String>,
    /// `NomFic`: in an acquit, the name of the acknowledged file (inference, `pes-v2.md` §3).
    pub nom_fic: Option<String>,
    pub emitter_sigle: Option<String>,
}

/// `EnTetePES`: whose file it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesHeader {
    pub date: NaiveDate,
    pub id_post: String,
    pub libelle_poste: Option<String>,
    /// SIRET of the budget.
    pub id_coll: String,
    /// `CodCol` (aller, acquit) or `CodColl` (retour).
    pub cod_col: String,
    pub cod_bud: String,
    pub libelle_col_bud: Option<String>,
}

/// Reading context: the path of the current element, for error messages.
pub(crate) struct At<'e> {
    pub element: &'e Element,
    pub path: String,
}

impl<'e> At<'e> {
    pub fn root(element: &'e Element) -> Self {
        At {
            element,
            path: element.name.clone(),
        }
    }

    fn child_path(&self, name: &str, index: Option<usize>) -> String {
        match index {
            Some(i) => format!("{}/{name}[{}]", self.path, i + 1),
            None => format!("{}/{name}", self.path),
        }
    }

    pub fn missing(&self, name: &str) -> ReadError {
        ReadError::Missing {
            path: self.child_path(name, None),
            line: self.element.line,
        }
    }

    pub fn child(&self, name: &str) -> Option<At<'e>> {
        self.element.child(name).map(|element| At {
            element,
            path: self.child_path(name, None),
        })
    }

    pub fn req(&self, name: &str) -> Result<At<'e>, ReadError> {
        self.child(name).ok_or_else(|| self.missing(name))
    }

    /// Every child named `name`, with an indexed path.
    pub fn each(&self, name: &str) -> Vec<At<'e>> {
        self.element
            .children
            .iter()
            .filter(|c| c.name == name)
            .enumerate()
            .map(|(i, element)| At {
                element,
                path: self.child_path(name, Some(i)),
            })
            .collect()
    }

    pub fn opt_str(&self, name: &str) -> Option<String> {
        self.element.value_of(name).map(str::to_string)
    }

    pub fn req_str(&self, name: &str) -> Result<String, ReadError> {
        self.opt_str(name).ok_or_else(|| self.missing(name))
    }

    fn invalid(&self, name: &str, value: &str, rule: &str) -> ReadError {
        let line = self
            .element
            .child(name)
            .map_or(self.element.line, |c| c.line);
        ReadError::Invalid {
            path: self.child_path(name, None),
            line,
            value: value.to_string(),
            rule: rule.to_string(),
        }
    }

    pub fn opt_date(&self, name: &str) -> Result<Option<NaiveDate>, ReadError> {
        self.element
            .value_of(name)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| self.invalid(name, v, "is not a date (AAAA-MM-JJ)"))
            })
            .transpose()
    }

    pub fn req_date(&self, name: &str) -> Result<NaiveDate, ReadError> {
        self.opt_date(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_money(&self, name: &str) -> Result<Option<Money>, ReadError> {
        self.element
            .value_of(name)
            .map(|v| {
                if v.contains(',') {
                    return Err(self.invalid(name, v, "is not an amount (decimal point expected)"));
                }
                Money::parse(v)
                    .map_err(|e| self.invalid(name, v, &format!("is not an amount: {e}")))
            })
            .transpose()
    }

    pub fn req_money(&self, name: &str) -> Result<Money, ReadError> {
        self.opt_money(name)?.ok_or_else(|| self.missing(name))
    }

    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, ReadError> {
        self.element
            .value_of(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| self.invalid(name, v, "is not a whole number"))
            })
            .transpose()
    }

    pub fn req_u64(&self, name: &str) -> Result<u64, ReadError> {
        self.opt_u64(name)?.ok_or_else(|| self.missing(name))
    }

    /// `Base_Booleen`: `0`, `1`, `true`, `false`.
    pub fn req_bool(&self, name: &str) -> Result<bool, ReadError> {
        let v = self.req_str(name)?;
        match v.as_str() {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(self.invalid(name, &v, "is not a boolean (0, 1, true, false)")),
        }
    }

    pub fn req_u16(&self, name: &str) -> Result<u16, ReadError> {
        let v = self.req_u64(name)?;
        u16::try_from(v).map_err(|_| self.invalid(name, &v.to_string(), "is not a year"))
    }

    pub fn invalid_value(&self, name: &str, value: &str, rule: &str) -> ReadError {
        self.invalid(name, value, rule)
    }
}

/// `Enveloppe`.
pub(crate) fn envelope(root: &At<'_>) -> Result<Envelope, ReadError> {
    let env = root.req("Enveloppe")?;
    let params = env.req("Parametres")?;
    Ok(Envelope {
        version: params.opt_str("Version"),
        typ_fic: params.opt_str("TypFic"),
        nom_fic: params.opt_str("NomFic"),
        emitter_sigle: env.child("Emetteur").and_then(|e| e.opt_str("Sigle")),
    })
}

/// `EnTetePES` (aller-style `CodCol` or retour-style `CodColl`).
pub(crate) fn header(root: &At<'_>) -> Result<PesHeader, ReadError> {
    let h = root.req("EnTetePES")?;
    let cod_col = h
        .opt_str("CodCol")
        .or_else(|| h.opt_str("CodColl"))
        .ok_or_else(|| h.missing("CodCol"))?;
    Ok(PesHeader {
        date: h.req_date("DteStr")?,
        id_post: h.req_str("IdPost")?,
        libelle_poste: h.opt_str("LibellePoste"),
        id_coll: h.req_str("IdColl")?,
        cod_col,
        cod_bud: h.req_str("CodBud")?,
        libelle_col_bud: h.opt_str("LibelleColBud"),
    })
}
