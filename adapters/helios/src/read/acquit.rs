//! `PES_ACQUIT`: the guichet's acknowledgement of a PES Aller file, one `ElementACQUIT` per
//! bordereau or PJ, accepted (`EtatAck 1`) or rejected with errors per bordereau, pièce and
//! line (`pes-v2.md` §3, `PES_V2_Acquit_Autonome_V2.xsd`).
//!
//! Correlation with what was sent: the envelope's `NomFic` echoes the acknowledged file
//! (seen in the samples; inference), bordereaux are named by (`ExerciceBord`, `NumBord`)
//! and PJ by `IdUnique`. An acquit OK does not mean the titres are taken in charge: that
//! comes later in a PES Retour.

use super::tree::Tree;
use super::{At, Envelope, PesHeader, ReadError, envelope, header, unknown};
use crate::codes::DomaineAck;

/// A read `PES_ACQUIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquit {
    pub envelope: Envelope,
    pub header: PesHeader,
    pub elements: Vec<AckElement>,
}

/// What an `ElementACQUIT` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckTarget {
    /// A bordereau (`NumBord`, `ExerciceBord`; both optional in the schema).
    Bordereau {
        exercice: Option<u16>,
        id_bord: Option<u64>,
    },
    /// A public contract.
    Marche(String),
    /// A PJ, by `IdUnique`.
    Pj(String),
    /// Nothing named (technical or signature elements).
    None,
}

/// An error of the acquit (`NumAnoAck` code, `LibelleAnoAck` text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    pub code: Option<String>,
    pub text: Option<String>,
}

impl AckError {
    /// `ERREUR_AUTRE 1963 - Domiciliation erronée`.
    pub fn describe(&self) -> String {
        match (&self.code, &self.text) {
            (Some(c), Some(t)) => format!("{c} {t}"),
            (Some(c), None) => c.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => "unspecified error".into(),
        }
    }
}

/// Errors on one line of a pièce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckLine {
    pub id_ligne: u64,
    pub errors: Vec<AckError>,
}

/// Errors on one pièce (and its lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckPiece {
    pub id_pce: u64,
    pub errors: Vec<AckError>,
    pub lines: Vec<AckLine>,
}

impl AckPiece {
    /// Every error of the pièce and its lines, first the pièce's own.
    pub fn all_errors(&self) -> impl Iterator<Item = (Option<u64>, &AckError)> {
        self.errors.iter().map(|e| (None, e)).chain(
            self.lines
                .iter()
                .flat_map(|l| l.errors.iter().map(move |e| (Some(l.id_ligne), e))),
        )
    }
}

/// One `ElementACQUIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckElement {
    pub domain: DomaineAck,
    /// `EtatAck`: integrated (true) or rejected.
    pub accepted: bool,
    pub target: AckTarget,
    pub errors: Vec<AckError>,
    pub pieces: Vec<AckPiece>,
    /// Line of the element in the file.
    pub line: u32,
}

fn errors(at: &At<'_>) -> Vec<AckError> {
    at.each("Erreur")
        .iter()
        .map(|e| AckError {
            code: e.opt_str("NumAnoAck"),
            text: e.opt_str("LibelleAnoAck"),
        })
        .collect()
}

fn element(at: &At<'_>) -> Result<AckElement, ReadError> {
    let domain = DomaineAck::from_code(&at.req_str("DomaineAck")?);
    let accepted = at.req_bool("EtatAck")?;
    let target = if at.child("NumBord").is_some() || at.child("ExerciceBord").is_some() {
        let exercice = at
            .opt_u64("ExerciceBord")?
            .map(|y| {
                u16::try_from(y)
                    .map_err(|_| at.invalid_value("ExerciceBord", &y.to_string(), "is not a year"))
            })
            .transpose()?;
        AckTarget::Bordereau {
            exercice,
            id_bord: at.opt_u64("NumBord")?,
        }
    } else if let Some(id) = at.opt_str("IdMarche") {
        AckTarget::Marche(id)
    } else if let Some(id) = at.opt_str("IdUnique") {
        AckTarget::Pj(id)
    } else {
        AckTarget::None
    };
    let mut pieces = Vec::new();
    for p in at.each("DetailPiece") {
        let mut lines = Vec::new();
        for l in p.each("DetailLigne") {
            lines.push(AckLine {
                id_ligne: l.req_u64("NumLigne")?,
                errors: errors(&l),
            });
        }
        pieces.push(AckPiece {
            id_pce: p.req_u64("NumPiece")?,
            errors: errors(&p),
            lines,
        });
    }
    Ok(AckElement {
        domain,
        accepted,
        target,
        errors: errors(at),
        pieces,
        line: at.element.line,
    })
}

pub(crate) fn from_tree(tree: &Tree) -> Result<Acquit, ReadError> {
    if tree.root.name != "PES_ACQUIT" {
        return Err(unknown(tree));
    }
    let root = At::root(&tree.root);
    let ack = root.req("ACQUIT")?;
    let mut elements = Vec::new();
    for e in ack.each("ElementACQUIT") {
        elements.push(element(&e)?);
    }
    if elements.is_empty() {
        return Err(ack.missing("ElementACQUIT"));
    }
    Ok(Acquit {
        envelope: envelope(&root)?,
        header: header(&root)?,
        elements,
    })
}

/// Reads a `PES_ACQUIT` (untrusted bytes, at most `limit_bytes`).
pub fn read_acquit(bytes: &[u8], limit_bytes: u64) -> Result<Acquit, ReadError> {
    let tree = super::tree::parse(bytes, limit_bytes)?;
    from_tree(&tree)
}

impl Acquit {
    /// Elements about bordereaux.
    pub fn bordereaux(&self) -> impl Iterator<Item = &AckElement> {
        self.elements
            .iter()
            .filter(|e| matches!(e.target, AckTarget::Bordereau { .. }))
    }

    /// Rejected elements.
    pub fn rejected(&self) -> impl Iterator<Item = &AckElement> {
        self.elements.iter().filter(|e| !e.accepted)
    }
}
