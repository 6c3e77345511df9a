//! `PES_Retour` recette: the comptable's decisions and the payments imputed on each titre
//! line (`pes-v2.md` §4, `RETOUR/Rev0/PES_Retour.xsd`, `RETOUR/NS_Recette/r0`).
//!
//! Dépense and client parts are noted (their presence) but not read: encaisse only issues
//! titres. A `PES_Retour` without a recette part is still read (its header), so that it can
//! be acknowledged and archived.

use chrono::NaiveDate;
use encaisse_schemas::Money;

use super::tree::Tree;
use super::{At, Envelope, PesHeader, ReadError, envelope, header, unknown};
use crate::codes::{EtatLigPce, EtatPce, OrgEma, TypRestit};

/// A read `PES_Retour`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PesRetour {
    pub envelope: Envelope,
    pub header: PesHeader,
    pub recette: Option<RecetteRetour>,
    /// Whether the file also holds a `PES_DepenseRetour` (not read beyond its header).
    pub has_depense: bool,
    /// `TypRestit` of the dépense part, to acknowledge it.
    pub depense_typ_restit: Option<String>,
    /// Whether the file also holds a `PES_ClientRetour` (not read).
    pub has_client: bool,
}

/// `PES_RecetteRetour`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecetteRetour {
    pub typ_restit: TypRestit,
    /// `NatInf`: 1 stock détaillé, 2 flux détaillé.
    pub nat_inf: String,
    pub bordereaux: Vec<RetourBordereau>,
}

/// A bordereau of the return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetourBordereau {
    /// `BlocBordereau` and its pièces.
    Detail {
        exercice: u16,
        id_bord: u64,
        typ_bord: String,
        pieces: Vec<RetourPiece>,
    },
    /// `BordereauORMCGlobal`: an event on a whole ORMC rôle (taken in charge, rejected,
    /// suspended).
    OrmcGlobal {
        exercice: u16,
        id_bord: u64,
        total: Money,
        taken_on: Option<NaiveDate>,
        rejected_on: Option<NaiveDate>,
        suspended_on: Option<NaiveDate>,
    },
}

/// `InfoORMC`, returned as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoOrmc {
    pub num_dette: Option<String>,
    pub per: Option<String>,
    pub cle1: Option<String>,
    pub cle2: Option<String>,
}

/// A pièce and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetourPiece {
    pub id_pce: u64,
    pub typ_pce: String,
    pub nat_pce: String,
    pub object: Option<String>,
    /// `DtePcePec`.
    pub taken_on: Option<NaiveDate>,
    pub state: EtatPce,
    /// `ObsEtat` reason codes (several joined with `-` in the file).
    pub reasons: Vec<String>,
    pub comment: Option<String>,
    /// `DtePceRej`.
    pub rejected_on: Option<NaiveDate>,
    /// `DtePceInst`.
    pub suspended_on: Option<NaiveDate>,
    pub ormc: Option<InfoOrmc>,
    pub lines: Vec<RetourLine>,
    pub line: u32,
}

impl RetourPiece {
    /// Rejected after being taken in charge: the `IdPce` can never be sent again. Rejected at
    /// visa only (no `DtePcePec`): it may be sent again with the same `IdPce` once corrected.
    pub fn rejected_after_charge(&self) -> bool {
        self.taken_on.is_some() && self.rejected_on.is_some()
    }
}

/// One encaissement or émargement on a line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Emargement {
    pub origin: OrgEma,
    /// `DteReco`.
    pub date: NaiveDate,
    /// `MtReco`.
    pub amount: Money,
}

/// A line of a pièce and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetourLine {
    pub id_ligne: u64,
    pub cod_prod_loc: Option<String>,
    pub state: EtatLigPce,
    pub reasons: Vec<String>,
    pub comment: Option<String>,
    pub amount: Money,
    /// `InfoRecouvrement`: number and total of the encaissements, when given.
    pub recovered: Option<(u64, Money)>,
    pub emargements: Vec<Emargement>,
}

impl RetourLine {
    /// Whether `InfoRecouvrement` agrees with the émargements listed (count and total);
    /// `None` when the file gives no `InfoRecouvrement`.
    pub fn recovery_matches_emargements(&self) -> Option<bool> {
        let (count, total) = self.recovered?;
        let sum = Money::sum(self.emargements.iter().map(|e| &e.amount)).ok()?;
        Some(count == self.emargements.len() as u64 && total == sum)
    }
}

fn reasons(value: Option<String>) -> Vec<String> {
    value
        .map(|v| {
            v.split('-')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn line(at: &At<'_>) -> Result<RetourLine, ReadError> {
    let bloc = at.req("BlocLignePiece")?;
    let info = bloc.req("InfoLignePiece")?;
    let recovered = match bloc.child("InfoRecouvrement") {
        Some(r) => Some((r.req_u64("NbrReco")?, r.req_money("MtRecoTot")?)),
        None => None,
    };
    let mut emargements = Vec::new();
    for e in at.each("EncaissementEmargement") {
        let amount = e.req_money("MtReco")?;
        if !amount.is_positive() {
            return Err(e.invalid_value(
                "MtReco",
                &amount.to_string(),
                "must be > 0 (Base_Montant)",
            ));
        }
        emargements.push(Emargement {
            origin: OrgEma::from_code(&e.req_str("OrgEma")?),
            date: e.req_date("DteReco")?,
            amount,
        });
    }
    Ok(RetourLine {
        id_ligne: info.req_u64("IdLigne")?,
        cod_prod_loc: info.opt_str("CodProdLoc"),
        state: EtatLigPce::from_code(&info.req_str("EtatLigPce")?),
        reasons: reasons(info.opt_str("ObsEtat")),
        comment: info.opt_str("Commentaire"),
        amount: info.req_money("MtHT")?,
        recovered,
        emargements,
    })
}

fn piece(at: &At<'_>) -> Result<RetourPiece, ReadError> {
    let bloc = at.req("BlocPiece")?;
    let ormc = bloc.child("InfoORMC").map(|o| InfoOrmc {
        num_dette: o.opt_str("NumDette"),
        per: o.opt_str("Per"),
        cle1: o.opt_str("Cle1"),
        cle2: o.opt_str("Cle2"),
    });
    let mut lines = Vec::new();
    for l in at.each("LigneDePiece") {
        lines.push(line(&l)?);
    }
    if lines.is_empty() {
        return Err(at.missing("LigneDePiece"));
    }
    Ok(RetourPiece {
        id_pce: bloc.req_u64("IdPce")?,
        typ_pce: bloc.req_str("TypPce")?,
        nat_pce: bloc.req_str("NatPce")?,
        object: bloc.opt_str("Obj"),
        taken_on: bloc.opt_date("DtePcePec")?,
        state: EtatPce::from_code(&bloc.req_str("EtatPce")?),
        reasons: reasons(bloc.opt_str("ObsEtat")),
        comment: bloc.opt_str("Commentaire"),
        rejected_on: bloc.opt_date("DtePceRej")?,
        suspended_on: bloc.opt_date("DtePceInst")?,
        ormc,
        lines,
        line: at.element.line,
    })
}

fn bordereau(at: &At<'_>) -> Result<RetourBordereau, ReadError> {
    if let Some(global) = at.child("BordereauORMCGlobal") {
        return Ok(RetourBordereau::OrmcGlobal {
            exercice: global.req_u16("Exer")?,
            id_bord: global.req_u64("IdBord")?,
            total: global.req_money("MtTTC")?,
            taken_on: global.opt_date("DtePec")?,
            rejected_on: global.opt_date("DteRej")?,
            suspended_on: global.opt_date("DteInst")?,
        });
    }
    let bloc = at.req("BlocBordereau")?;
    let mut pieces = Vec::new();
    for p in at.each("Piece") {
        pieces.push(piece(&p)?);
    }
    if pieces.is_empty() {
        return Err(at.missing("Piece"));
    }
    Ok(RetourBordereau::Detail {
        exercice: bloc.req_u16("Exer")?,
        id_bord: bloc.req_u64("IdBord")?,
        typ_bord: bloc.req_str("TypBord")?,
        pieces,
    })
}

pub(crate) fn from_tree(tree: &Tree) -> Result<PesRetour, ReadError> {
    if tree.root.name != "PES_Retour" {
        return Err(unknown(tree));
    }
    let root = At::root(&tree.root);
    let recette = match root.child("PES_RecetteRetour") {
        Some(r) => {
            let head = r.req("EnTeteRecette")?;
            let mut bordereaux = Vec::new();
            for b in r.each("Bordereau") {
                bordereaux.push(bordereau(&b)?);
            }
            Some(RecetteRetour {
                typ_restit: TypRestit::from_code(&head.req_str("TypRestit")?),
                nat_inf: head.req_str("NatInf")?,
                bordereaux,
            })
        }
        None => None,
    };
    Ok(PesRetour {
        envelope: envelope(&root)?,
        header: header(&root)?,
        recette,
        has_depense: root.child("PES_DepenseRetour").is_some(),
        depense_typ_restit: root
            .child("PES_DepenseRetour")
            .and_then(|d| d.child("EnTeteDepense"))
            .and_then(|h| h.opt_str("TypRestit")),
        has_client: root.child("PES_ClientRetour").is_some(),
    })
}

/// Reads a `PES_Retour` (untrusted bytes, at most `limit_bytes`).
pub fn read_retour(bytes: &[u8], limit_bytes: u64) -> Result<PesRetour, ReadError> {
    let tree = super::tree::parse(bytes, limit_bytes)?;
    from_tree(&tree)
}

impl PesRetour {
    /// The file's name as Hélios gave it (`NomFic`).
    pub fn file_name(&self) -> Option<&str> {
        self.envelope.nom_fic.as_deref()
    }
}
