//! `PES_ACQUIT_RETOUR`: the ordonnateur's acknowledgement of a PES Retour file
//! (`RETOUR/Rev0/PES_V2_Acquit_Retour.xsd`, `AcquittementRetour_blocs.html`).
//!
//! One `ElementACQUIT_RETOUR` per domain of the file (14 recette, 13 dépense), naming the
//! PES Retour (`NomFichierRetour` = its `NomFic`), its `TypRestit` and the date.
//!
//! The v5.17 schema types the header with the **aller** `TEnveloppe` / `TEnTetePES`
//! (mandatory `Emetteur`, `CodCol`), which is what is written. The only real example found
//! (libriciel/s2low test fixture) instead echoes the PES Retour's envelope (no `Emetteur`)
//! and writes `CodColl`; it does not validate against v5.17, and s2low's own reader accepts
//! both spellings. The envelope's `TypFic` echoes the PES Retour's, as in that example.

use std::io::Write;

use chrono::NaiveDate;

use crate::config::{HeliosTenantConfig, is_codique};
use crate::error::ErrorClass;
use crate::read::retour::PesRetour;
use crate::template::{self, Value};
use crate::text::pes_text;
use crate::xmlw::{PesWriter, date};

/// Namespace of the `PES_ACQUIT_RETOUR` root.
pub const ACQUIT_RETOUR_NS: &str = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller/ack";

/// Why no acknowledgement can be written.
#[derive(Debug, thiserror::Error)]
pub enum AcquitRetourError {
    #[error("PES Retour {file}: nothing to acknowledge: {reason}")]
    Nothing { file: String, reason: String },
    #[error("PES Retour {file}: {field} {value:?} cannot be echoed: {rule}")]
    Header {
        file: String,
        field: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("configuration: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("writing the acknowledgement: {0}")]
    Io(#[from] std::io::Error),
}

impl AcquitRetourError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AcquitRetourError::Io(_) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// A file name made only of ASCII letters, digits, `.`, `_` and `-`, not starting with `.`
/// (so neither a path nor `..` nor a hidden file).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The acknowledgement file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquitRetourFile {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// One acknowledged domain.
struct Element<'a> {
    domain: &'static str,
    typ_restit: &'a str,
}

fn valid_typ_restit(code: &str) -> bool {
    matches!(code, "01" | "02" | "03")
}

/// Writes the `PES_ACQUIT_RETOUR` answering `retour` (received as `received_file`), dated
/// `date`. The same inputs give the same bytes and name.
pub fn acquit_retour(
    config: &HeliosTenantConfig,
    retour: &PesRetour,
    received_file: &str,
    date_acquit: NaiveDate,
) -> Result<AcquitRetourFile, AcquitRetourError> {
    let file = received_file.to_string();
    let nom_retour = retour.envelope.nom_fic.as_deref().unwrap_or(received_file);
    if nom_retour.chars().count() > 100 {
        return Err(AcquitRetourError::Header {
            file,
            field: "NomFic",
            value: nom_retour.to_string(),
            rule: "longer than 100 characters",
        });
    }
    // NomFic comes from the received file and becomes part of the name of the file we write
    // in the outbox: only a plain file name may pass (no separator, no `..`, no hidden name).
    if !is_plain_file_name(nom_retour) {
        return Err(AcquitRetourError::Header {
            file,
            field: "NomFic",
            value: nom_retour.to_string(),
            rule: "is not a plain file name (letters, digits, '.', '_', '-'; no leading '.')",
        });
    }
    let mut elements = Vec::new();
    if let Some(depense) = retour
        .depense_typ_restit
        .as_deref()
        .filter(|t| valid_typ_restit(t))
    {
        elements.push(Element {
            domain: "13",
            typ_restit: depense,
        });
    }
    if let Some(recette) = &retour.recette {
        let code = recette.typ_restit.code();
        if !valid_typ_restit(code) {
            return Err(AcquitRetourError::Header {
                file,
                field: "TypRestit",
                value: code.to_string(),
                rule: "is not 01, 02 or 03",
            });
        }
        elements.push(Element {
            domain: "14",
            typ_restit: code,
        });
    }
    if elements.is_empty() {
        return Err(AcquitRetourError::Nothing {
            file,
            reason: "no recette part and no dépense part with a known TypRestit".into(),
        });
    }
    let h = &retour.header;
    let check = |field: &'static str, value: &str, ok: bool, rule: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(AcquitRetourError::Header {
                file: file.clone(),
                field,
                value: value.to_string(),
                rule,
            })
        }
    };
    check(
        "IdPost",
        &h.id_post,
        is_codique(&h.id_post),
        "is not a codique",
    )?;
    check(
        "IdColl",
        &h.id_coll,
        h.id_coll.len() <= 14 && h.id_coll.bytes().all(|b| b.is_ascii_digit()),
        "is not a SIRET",
    )?;
    check(
        "CodColl",
        &h.cod_col,
        h.cod_col.len() == 3 && h.cod_col.bytes().all(|b| b.is_ascii_digit()) && h.cod_col != "000",
        "is not 3 digits",
    )?;
    let cb = h.cod_bud.as_bytes();
    check(
        "CodBud",
        &h.cod_bud,
        cb.len() == 2
            && (cb[0].is_ascii_digit() || cb[0].is_ascii_uppercase())
            && cb[1].is_ascii_digit(),
        "is not [0-9A-Z][0-9]",
    )?;

    let stem = nom_retour.strip_suffix(".xml").unwrap_or(nom_retour);
    let day = date_acquit.format("%Y%m%d").to_string();
    let file_name =
        template::render(
            &config.returns.acquit_retour_file_name_pattern,
            |name| match name {
                "retour_file" => Some(Value::Text(stem)),
                "date" => Some(Value::Text(&day)),
                _ => None,
            },
        )
        .map_err(|e| AcquitRetourError::Config {
            field: "returns.acquit_retour_file_name_pattern",
            message: e.to_string(),
        })?;
    if file_name.chars().count() > 100 {
        return Err(AcquitRetourError::Config {
            field: "returns.acquit_retour_file_name_pattern",
            message: format!("{file_name:?} is longer than 100 characters (NomFic)"),
        });
    }
    let text = |field: &'static str, value: &str, max| {
        pes_text(value, max, config.text_style).ok_or_else(|| AcquitRetourError::Config {
            field,
            message: format!("{value:?} is not an acceptable PES text"),
        })
    };
    let sigle = text("emitter_sigle", &config.emitter_sigle, 32)?;
    let adresse = text("emitter_adresse", &config.emitter_adresse, 38)?;
    let typ_fic = retour
        .envelope
        .typ_fic
        .clone()
        .unwrap_or_else(|| "PES2R_RCE".into());

    let mut w = PesWriter::start(Vec::new(), config.output_encoding, config.indent_spaces)?;
    w.open_root("PES_ACQUIT_RETOUR", ACQUIT_RETOUR_NS)?;
    w.open("Enveloppe")?;
    w.open("Parametres")?;
    w.leaf("Version", "2")?;
    w.leaf("TypFic", &typ_fic)?;
    w.leaf("NomFic", &file_name)?;
    w.close("Parametres")?;
    w.open("Emetteur")?;
    w.leaf("Sigle", &sigle)?;
    w.leaf("Adresse", &adresse)?;
    w.close("Emetteur")?;
    w.close("Enveloppe")?;
    w.open("EnTetePES")?;
    w.leaf("DteStr", &date(date_acquit))?;
    w.leaf("IdPost", &h.id_post)?;
    let poste = h
        .libelle_poste
        .as_deref()
        .and_then(|l| pes_text(l, 38, config.text_style));
    w.leaf_opt("LibellePoste", poste.as_deref())?;
    w.leaf("IdColl", &h.id_coll)?;
    w.leaf("CodCol", &h.cod_col)?;
    w.leaf("CodBud", &h.cod_bud)?;
    let label = h
        .libelle_col_bud
        .as_deref()
        .and_then(|l| pes_text(l, 38, config.text_style));
    w.leaf_opt("LibelleColBud", label.as_deref())?;
    w.close("EnTetePES")?;
    w.open("ACQUIT_RETOUR")?;
    w.open("EnTeteAcquit_Retour")?;
    w.leaf("IdVer", "2")?;
    w.close("EnTeteAcquit_Retour")?;
    for element in &elements {
        w.open("ElementACQUIT_RETOUR")?;
        w.leaf("DomaineAckRetour", element.domain)?;
        w.leaf("NomFichierRetour", nom_retour)?;
        w.leaf("TypRestit", element.typ_restit)?;
        w.leaf("DateAcquit", &date(date_acquit))?;
        w.close("ElementACQUIT_RETOUR")?;
    }
    w.close("ACQUIT_RETOUR")?;
    w.close_root("PES_ACQUIT_RETOUR")?;
    let mut bytes = w.finish()?;
    bytes.flush()?;
    Ok(AcquitRetourFile { file_name, bytes })
}
