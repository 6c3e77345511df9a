//! The PES Aller recette writer: one bordereau of titres (ordinaires or ORMC) per file.
//!
//! * [`check_titre`]: the rules an invoice must satisfy to become a titre, run by the stage
//!   before it numbers the invoice, so that one bad invoice is refused alone and never
//!   blocks the bordereau.
//! * [`write_pes_aller`]: streams the file into any [`Write`](std::io::Write), in three passes over the
//!   titres (totals, pièces, PJ of the ASAP); nothing else is held in memory but a few bytes
//!   per titre to find a repeated `IdPce` or invoice.
//! * [`pes_aller_bytes`]: the same into memory, with the conventional file name, for
//!   `encaisse_ledger::files` (atomic emission).
//! * [`write_pes_aller_split`] / [`pes_aller_split_bytes`]: several consecutive bordereaux in
//!   one file, for a billing run larger than a bordereau may hold.
//! * [`check_bordereau`]: the bordereau's own rules (numbers, date, budget codes), for the
//!   stage to check before it commits numbers.
//! * [`titre_shape`]: what the ledger keeps of a titre (its lines as written, ORMC keys).
//!
//! Given the same configuration, budget, numbers and invoices, the bytes are identical (no
//! clock, no random, no hash order): a file rewritten after a crash between writing and
//! acknowledging is the same file.

pub(crate) mod asap;
mod netting;
mod prepare;
mod recette;
pub mod reduction;
pub mod talon;

use chrono::NaiveDate;
use encaisse_schemas::events::{InvoiceIssued, SequenceType};
use encaisse_schemas::tenant::Budget;
use encaisse_schemas::{Money, MoneyError};

use crate::config::HeliosTenantConfig;
use crate::error::ErrorClass;
use crate::template::{self, TemplateError, Value};

pub use prepare::{OrmcKeys, TitreLine, TitreShape, check_titre, ormc_keys, titre_shape};
pub use recette::{write_pes_aller, write_pes_aller_split};

/// The largest `IdBord` (`Base_Num7`).
pub const MAX_ID_BORD: u32 = 9_999_999;
/// The largest `IdPce` (`Base_Num8`).
pub const MAX_ID_PCE: u32 = 99_999_999;
/// The largest `NbrPce` (`Base_Num5`).
pub const MAX_PIECES: usize = 99_999;

/// One bordereau: who sends it, its number and date. The pièces are given separately.
#[derive(Debug, Clone, Copy)]
pub struct Bordereau<'a> {
    pub config: &'a HeliosTenantConfig,
    /// The budget whose titres these are (`CodCol`, `CodBud`, SIRET, label, PayFiP number).
    pub budget: &'a Budget,
    /// `Exer`.
    pub exercice: u16,
    /// `IdBord`, 1 to 9 999 999: gapless per exercice and bordereau type (the ledger's job).
    pub id_bord: u32,
    /// `DteBordEm` and `DteStr`.
    pub date: NaiveDate,
}

/// One titre: an invoice and the numbers and facts the stage adds.
#[derive(Debug, Clone, Copy)]
pub struct Titre<'a> {
    pub invoice: &'a InvoiceIssued,
    /// `IdPce`, 1 to 99 999 999, never reused.
    pub id_pce: u32,
    /// SEPA sequence of the debit (kept per mandate in the ledger); when `None`, the
    /// invoice's `mandate.sequence` is used. Required for invoices paid by direct debit.
    pub sequence: Option<SequenceType>,
    /// The invoice PDF, for an ORMC article whose ASAP the DGFiP prints (`Edition 06`, PJ of
    /// type 010). Not needed otherwise.
    pub asap_pdf: Option<&'a [u8]>,
}

/// Anything that can lend a [`Titre`]: `Titre`, `&Titre`, [`OwnedTitre`] (for titres made
/// on the fly while streaming).
pub trait AsTitre {
    fn as_titre(&self) -> Titre<'_>;
}

impl AsTitre for Titre<'_> {
    fn as_titre(&self) -> Titre<'_> {
        *self
    }
}

impl<T: AsTitre> AsTitre for &T {
    fn as_titre(&self) -> Titre<'_> {
        (**self).as_titre()
    }
}

/// A titre that owns its invoice.
#[derive(Debug, Clone)]
pub struct OwnedTitre {
    pub invoice: InvoiceIssued,
    pub id_pce: u32,
    pub sequence: Option<SequenceType>,
    pub asap_pdf: Option<Vec<u8>>,
}

impl AsTitre for OwnedTitre {
    fn as_titre(&self) -> Titre<'_> {
        Titre {
            invoice: &self.invoice,
            id_pce: self.id_pce,
            sequence: self.sequence,
            asap_pdf: self.asap_pdf.as_deref(),
        }
    }
}

/// An invoice that cannot become a titre: which one, which field, which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invoice {invoice}: {field}: {rule}")]
pub struct InvoiceError {
    /// `tenant/exercice/number`.
    pub invoice: String,
    /// The invoice field or PES element at fault (`lines[2].amount`, `payer.address.postal_code`).
    pub field: String,
    pub rule: String,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    #[error("bordereau {exercice}/{id_bord}: {rule}")]
    Bordereau {
        exercice: u16,
        id_bord: u32,
        rule: String,
    },
    #[error("configuration: {field}: {message}")]
    Config { field: String, message: String },
    #[error("amount: {0}")]
    Money(#[from] MoneyError),
    #[error("writing the file: {0}")]
    Io(#[from] std::io::Error),
}

impl WriteError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WriteError::Io(_) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }

    pub(crate) fn config(field: &str, message: impl Into<String>) -> Self {
        WriteError::Config {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    /// The conventional file name (also in `NomFic`).
    pub file_name: String,
    pub typ_fic: String,
    /// `TypBord`.
    pub typ_bord: String,
    /// `NbrPce` (summed over the bordereaux of a split file).
    pub pieces: usize,
    /// `MtBordHt` (summed over the bordereaux of a split file).
    pub total: Money,
    /// How many PJ (ASAP) the file holds: their `IdUnique` are in the file, a list of them
    /// would grow with the run.
    pub attachments: usize,
    /// Each bordereau of the file, in order (one unless the file was split).
    pub bordereaux: Vec<BordereauSummary>,
}

/// One bordereau of a written file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BordereauSummary {
    pub id_bord: u32,
    /// `NbrPce`.
    pub pieces: usize,
    /// `MtBordHt`.
    pub total: Money,
}

/// A PES Aller file in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesFile {
    pub summary: WriteSummary,
    pub bytes: Vec<u8>,
}

/// The conventional name of a bordereau's file (`[tenants.helios] file_name_pattern`).
pub fn file_name(bordereau: &Bordereau<'_>) -> Result<String, WriteError> {
    let config = bordereau.config;
    let date = bordereau.date.format("%Y%m%d").to_string();
    let lookup = |name: &str| {
        Some(match name {
            "typ_fic" => Value::Text(config.typ_fic()),
            "siret" => Value::Text(&bordereau.budget.siret),
            "cod_col" => Value::Text(&bordereau.budget.cod_col),
            "cod_bud" => Value::Text(&bordereau.budget.cod_bud),
            "id_post" => Value::Text(&config.id_post),
            "exercice" => Value::Number(u64::from(bordereau.exercice)),
            "typ_bord" => Value::Text(config.bordereau_kind.typ_bord()),
            "id_bord" => Value::Number(u64::from(bordereau.id_bord)),
            "date" => Value::Text(&date),
            _ => return None,
        })
    };
    template::render(&config.file_name_pattern, lookup)
        .map_err(|e: TemplateError| WriteError::config("file_name_pattern", e.to_string()))
}

/// [`write_pes_aller`] into memory.
pub fn pes_aller_bytes<T: AsTitre>(
    bordereau: &Bordereau<'_>,
    titres: &[T],
) -> Result<PesFile, WriteError> {
    let (bytes, summary) = write_pes_aller(Vec::new(), bordereau, titres.iter())?;
    Ok(PesFile { summary, bytes })
}

/// [`write_pes_aller_split`] into memory.
pub fn pes_aller_split_bytes<T: AsTitre>(
    bordereaux: &[(Bordereau<'_>, &[T])],
) -> Result<PesFile, WriteError> {
    let iterable: Vec<(Bordereau<'_>, std::slice::Iter<'_, T>)> =
        bordereaux.iter().map(|(b, t)| (*b, t.iter())).collect();
    let (bytes, summary) = write_pes_aller_split(Vec::new(), &iterable)?;
    Ok(PesFile { summary, bytes })
}

/// Checks the bordereau's own fields: `IdBord` 1–9 999 999, the date in the exercice's year
/// or the next (journée complémentaire), `CodCol`, `CodBud`, SIRET, codique. The writer
/// applies the same rules; a stage calls this before it commits a bordereau's number.
pub fn check_bordereau(bordereau: &Bordereau<'_>) -> Result<(), WriteError> {
    prepare::check_bordereau(bordereau).map_err(|rule| WriteError::Bordereau {
        exercice: bordereau.exercice,
        id_bord: bordereau.id_bord,
        rule,
    })
}

/// Exact sum of amounts through their cents (cheaper than decimal additions on the
/// writer's hot path); out of range like any [`Money`].
pub(crate) fn sum_cents(amounts: impl IntoIterator<Item = Money>) -> Result<Money, MoneyError> {
    let cents = amounts
        .into_iter()
        .try_fold(0i64, |acc, m| acc.checked_add(m.cents()))
        .ok_or(MoneyError::Overflow("addition"))?;
    Money::from_cents(cents)
}

/// French month names, upper case without accents (the postal norm of PES texts).
pub(crate) fn month_name(month: u8) -> &'static str {
    const NAMES: [&str; 12] = [
        "JANVIER",
        "FEVRIER",
        "MARS",
        "AVRIL",
        "MAI",
        "JUIN",
        "JUILLET",
        "AOUT",
        "SEPTEMBRE",
        "OCTOBRE",
        "NOVEMBRE",
        "DECEMBRE",
    ];
    NAMES
        .get(usize::from(month).wrapping_sub(1))
        .copied()
        .unwrap_or("")
}
