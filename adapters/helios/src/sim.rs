//! A simulated Trésorerie (DGFiP Hélios), for tests and `encaisse demo`: it reads a PES
//! Aller file as the Hélios guichet would ([`read_sent`]) and answers it with the files the
//! Trésorerie sends back — a `PES_ACQUIT` per file ([`acquit`]) and `PES_Retour` recette
//! files ([`retour`]) carrying the comptable's decision per titre and the payments
//! (émargements) per line.
//!
//! The files are shaped as the official schemas say (`PES_V2_Acquit_Autonome_V2.xsd`,
//! `PES_Retour.xsd` v5.17; ISO-8859-1 like the real ones) and take every identifier from
//! the PES Aller they answer (`NomFic`, codique, SIRET, `CodCol`, `CodBud`, exercice,
//! bordereau and pièce numbers, line amounts, ORMC `InfoORMC`), so they match what was
//! sent. Validating them against the XSD is the caller's choice
//! ([`crate::schemas::acquit`], [`crate::schemas::retour`]); this module only writes them.
//!
//! Nothing here is used by the daemon: it stands for the outside world.

use std::fmt::Write as _;

use chrono::NaiveDate;
use encaisse_schemas::{ErrorClass, Money};

use crate::read::ReadError;
use crate::read::tree::{self, Element};

/// Why a simulated answer cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The PES Aller cannot be read at all.
    #[error("cannot read the PES Aller file: {0}")]
    Unreadable(#[from] ReadError),
    /// The PES Aller lacks an element Hélios needs.
    #[error("PES Aller: no {element} under {parent}")]
    Missing { element: String, parent: String },
    /// A value of the PES Aller is not what the schema allows.
    #[error("PES Aller: {element} = {value:?} is not a number")]
    NotANumber { element: String, value: String },
    /// The answer names a pièce or line that the bordereau does not hold.
    #[error("bordereau {id_bord}: {what} was not sent")]
    NotSent { id_bord: u32, what: String },
    /// The émargements of a line cannot be added up.
    #[error("émargements: {0}")]
    Amount(String),
    /// A text cannot be written in ISO-8859-1.
    #[error("{0:?} cannot be written in ISO-8859-1")]
    NotLatin1(String),
}

impl SimError {
    /// Everything here is about the input given: retrying changes nothing.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
}

/// What the Trésorerie reads in a PES Aller file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `Enveloppe/Parametres/NomFic`: the name the acquit echoes.
    pub nom_fic: String,
    /// `EnTetePES/IdPost`: the Trésorerie's codique.
    pub id_post: String,
    /// `EnTetePES/IdColl`: the budget's SIRET.
    pub id_coll: String,
    pub cod_col: String,
    pub cod_bud: String,
    pub bordereaux: Vec<SentBordereau>,
}

/// One bordereau of a PES Aller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentBordereau {
    pub exercice: u16,
    pub id_bord: u32,
    /// `01` titres ordinaires, `06` ORMC.
    pub typ_bord: String,
    /// `NbrPce` as declared.
    pub nbr_pce: u32,
    pub pieces: Vec<SentPiece>,
}

/// One pièce (titre) of a bordereau.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentPiece {
    pub id_pce: u32,
    pub typ_pce: String,
    /// `ObjPce`: the titre's object as the ordonnateur wrote it (`FACTURE F2026-000101 …`).
    pub object: Option<String>,
    /// ORMC article keys, echoed in `InfoORMC` by the PES Retour.
    pub num_dette: Option<String>,
    pub per: Option<String>,
    pub cle1: Option<String>,
    pub cle2: Option<String>,
    pub lines: Vec<SentLine>,
}

/// One line of a pièce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentLine {
    pub id_ligne: u32,
    /// `MtHT` as written (`50.25`).
    pub amount: String,
    /// `InfoPrelevementSEPA/SequencePres` when the line is collected by direct debit.
    pub sequence: Option<String>,
}

impl Sent {
    /// Every titre of the file, with its bordereau.
    pub fn pieces(&self) -> impl Iterator<Item = (&SentBordereau, &SentPiece)> {
        self.bordereaux
            .iter()
            .flat_map(|b| b.pieces.iter().map(move |p| (b, p)))
    }
}

fn child<'a>(e: &'a Element, name: &str) -> Result<&'a Element, SimError> {
    e.child(name).ok_or_else(|| SimError::Missing {
        element: name.to_string(),
        parent: e.name.clone(),
    })
}

fn value(e: &Element, name: &str) -> Result<String, SimError> {
    e.value_of(name)
        .map(str::to_string)
        .ok_or_else(|| SimError::Missing {
            element: name.to_string(),
            parent: e.name.clone(),
        })
}

fn number<T: std::str::FromStr>(e: &Element, name: &str) -> Result<T, SimError> {
    let text = value(e, name)?;
    text.parse().map_err(|_| SimError::NotANumber {
        element: name.to_string(),
        value: text,
    })
}

/// Reads a PES Aller recette as the Hélios guichet does (safely: size and element limits —
/// a byte count alone keeps the default element cap —, no DTD, no entity expansion).
pub fn read_sent(
    bytes: &[u8],
    limits: impl Into<encaisse_xml::tree::Limits>,
) -> Result<Sent, SimError> {
    let parsed = tree::parse(bytes, limits)?;
    let root = &parsed.root;
    let params = child(child(root, "Enveloppe")?, "Parametres")?;
    let head = child(root, "EnTetePES")?;
    let recette = child(root, "PES_RecetteAller")?;
    let mut bordereaux = Vec::new();
    for b in recette.children_named("Bordereau") {
        let bloc = child(b, "BlocBordereau")?;
        let mut pieces = Vec::new();
        for p in b.children_named("Piece") {
            let bp = child(p, "BlocPiece")?;
            let mut lines = Vec::new();
            for l in p.children_named("LigneDePiece") {
                let bloc = child(l, "BlocLignePiece")?;
                let info = child(bloc, "InfoLignePiece")?;
                lines.push(SentLine {
                    id_ligne: number(info, "IdLigne")?,
                    amount: value(info, "MtHT")?,
                    sequence: match bloc.child("InfoPrelevementSEPA") {
                        Some(sepa) => Some(value(sepa, "SequencePres")?),
                        None => None,
                    },
                });
            }
            pieces.push(SentPiece {
                id_pce: number(bp, "IdPce")?,
                typ_pce: value(bp, "TypPce")?,
                object: bp.value_of("ObjPce").map(str::to_string),
                num_dette: bp.value_of("NumDette").map(str::to_string),
                per: bp.value_of("Per").map(str::to_string),
                cle1: bp.value_of("Cle1").map(str::to_string),
                cle2: bp.value_of("Cle2").map(str::to_string),
                lines,
            });
        }
        bordereaux.push(SentBordereau {
            exercice: number(bloc, "Exer")?,
            id_bord: number(bloc, "IdBord")?,
            typ_bord: value(bloc, "TypBord")?,
            nbr_pce: number(bloc, "NbrPce")?,
            pieces,
        });
    }
    Ok(Sent {
        nom_fic: value(params, "NomFic")?,
        id_post: value(head, "IdPost")?,
        id_coll: value(head, "IdColl")?,
        cod_col: value(head, "CodCol")?,
        cod_bud: value(head, "CodBud")?,
        bordereaux,
    })
}

/// An error the guichet reports on a line of a rejected bordereau.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub id_pce: u32,
    pub id_ligne: u32,
    /// `NumAnoAck`.
    pub code: String,
    /// `LibelleAnoAck`.
    pub text: String,
}

/// `(IdPce, IdLigne, NumAnoAck, LibelleAnoAck)`, the shape tests write rejections in.
impl From<&(u32, u32, &str, &str)> for LineError {
    fn from(&(id_pce, id_ligne, code, text): &(u32, u32, &str, &str)) -> Self {
        LineError {
            id_pce,
            id_ligne,
            code: code.to_string(),
            text: text.to_string(),
        }
    }
}

/// A `PES_ACQUIT` of the Hélios guichet for every bordereau of `sent`, dated `on`: each
/// bordereau accepted, except those listed in `rejected` (`IdBord` → the errors on its
/// lines; an empty list rejects the bordereau without detail).
pub fn acquit(
    sent: &Sent,
    on: NaiveDate,
    rejected: &[(u32, Vec<LineError>)],
) -> Result<Vec<u8>, SimError> {
    let mut elements = String::new();
    for b in &sent.bordereaux {
        let errors = rejected.iter().find(|(id, _)| *id == b.id_bord);
        let _ = write!(
            elements,
            "<ElementACQUIT><DomaineAck V=\"6\"/><EtatAck V=\"{}\"/><NumBord V=\"{}\"/><ExerciceBord V=\"{}\"/>",
            u8::from(errors.is_none()),
            b.id_bord,
            b.exercice
        );
        for e in errors.map(|(_, e)| e.as_slice()).unwrap_or_default() {
            let _ = write!(
                elements,
                "<DetailPiece><NumPiece V=\"{}\"/><DetailLigne><NumLigne V=\"{}\"/><Erreur><NumAnoAck V=\"{}\"/><LibelleAnoAck V=\"{}\"/></Erreur></DetailLigne></DetailPiece>",
                e.id_pce,
                e.id_ligne,
                escape(&e.code),
                escape(&e.text)
            );
        }
        elements.push_str("</ElementACQUIT>");
    }
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_ACQUIT xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour/v2">
<Enveloppe><Parametres><Version V="2"/><TypFic V="PESALR1"/><NomFic V="{}"/></Parametres><Emetteur><Sigle V="HELIOS"/><Adresse V="DGFIP"/></Emetteur></Enveloppe>
<EnTetePES><DteStr V="{on}"/><IdPost V="{}"/><IdColl V="{}"/><CodCol V="{}"/><CodBud V="{}"/></EnTetePES>
<ACQUIT><EnTeteAcquit><IdVer V="2"/></EnTeteAcquit>
{elements}
</ACQUIT></n:PES_ACQUIT>
"#,
        escape(&sent.nom_fic),
        escape(&sent.id_post),
        escape(&sent.id_coll),
        escape(&sent.cod_col),
        escape(&sent.cod_bud)
    );
    latin1(&xml)
}

/// A payment recorded by the comptable on a line (`EncaissementEmargement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emargement {
    /// `OrgEma`: `01` guichet, `03` payment-centre flow (direct debit, TIP), `10` TIPI /
    /// PayFiP…
    pub org_ema: String,
    /// `DteReco`.
    pub date: NaiveDate,
    /// `MtReco`.
    pub amount: Money,
}

/// A line of a PES Retour: `EtatLigPce` and every émargement still standing on it (a
/// periodic flow lists them all, not only the new ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetourLine {
    pub id_ligne: u32,
    /// `EtatLigPce`.
    pub state: String,
    pub emargements: Vec<Emargement>,
}

/// A pièce of a PES Retour: `EtatPce` (`02` pris en charge, `04` rejeté…), `ObsEtat`,
/// dates, lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetourPiece {
    pub id_pce: u32,
    pub state: String,
    pub obs: Option<String>,
    /// `DtePcePec`: taken in charge on.
    pub taken_on: Option<NaiveDate>,
    /// `DtePceRej`: rejected on.
    pub rejected_on: Option<NaiveDate>,
    pub lines: Vec<RetourLine>,
}

/// A `PES_Retour` recette (`TypRestit` `01` rejets, `02` périodique, `03` stock) about one
/// bordereau of `sent`, named `name`, dated `on`. Line amounts and `InfoORMC` are the ones
/// sent; a pièce or line that was not sent is an error.
pub fn retour(
    sent: &Sent,
    bordereau: &SentBordereau,
    name: &str,
    typ_restit: &str,
    on: NaiveDate,
    pieces: &[RetourPiece],
) -> Result<Vec<u8>, SimError> {
    let mut body = String::new();
    for p in pieces {
        let piece = bordereau
            .pieces
            .iter()
            .find(|s| s.id_pce == p.id_pce)
            .ok_or_else(|| SimError::NotSent {
                id_bord: bordereau.id_bord,
                what: format!("pièce {}", p.id_pce),
            })?;
        let _ = write!(
            body,
            "<Piece><BlocPiece><IdPce V=\"{}\"/><TypPce V=\"{}\"/><NatPce V=\"01\"/>",
            p.id_pce,
            escape(&piece.typ_pce)
        );
        if let Some(d) = p.taken_on {
            let _ = write!(body, "<DtePcePec V=\"{d}\"/>");
        }
        let _ = write!(body, "<EtatPce V=\"{}\"/>", escape(&p.state));
        if let Some(o) = &p.obs {
            let _ = write!(body, "<ObsEtat V=\"{}\"/>", escape(o));
        }
        if let Some(d) = p.rejected_on {
            let _ = write!(body, "<DtePceRej V=\"{d}\"/>");
        }
        if let (Some(num), Some(per)) = (&piece.num_dette, &piece.per) {
            let _ = write!(
                body,
                "<InfoORMC><NumDette V=\"{}\"/><Per V=\"{}\"/><Cle1 V=\"{}\"/><Cle2 V=\"{}\"/></InfoORMC>",
                escape(num),
                escape(per),
                escape(piece.cle1.as_deref().unwrap_or_default()),
                escape(piece.cle2.as_deref().unwrap_or_default())
            );
        }
        body.push_str("</BlocPiece>");
        for l in &p.lines {
            let amount = &piece
                .lines
                .iter()
                .find(|s| s.id_ligne == l.id_ligne)
                .ok_or_else(|| SimError::NotSent {
                    id_bord: bordereau.id_bord,
                    what: format!("line {} of pièce {}", l.id_ligne, p.id_pce),
                })?
                .amount;
            let _ = write!(
                body,
                "<LigneDePiece><BlocLignePiece><InfoLignePiece><IdLigne V=\"{}\"/><EtatLigPce V=\"{}\"/><MtHT V=\"{}\"/></InfoLignePiece>",
                l.id_ligne,
                escape(&l.state),
                escape(amount)
            );
            if !l.emargements.is_empty() {
                let total = Money::sum(l.emargements.iter().map(|e| &e.amount))
                    .map_err(|e| SimError::Amount(e.to_string()))?;
                let _ = write!(
                    body,
                    "<InfoRecouvrement><NbrReco V=\"{}\"/><MtRecoTot V=\"{total}\"/></InfoRecouvrement>",
                    l.emargements.len()
                );
            }
            body.push_str("</BlocLignePiece>");
            for e in &l.emargements {
                let _ = write!(
                    body,
                    "<EncaissementEmargement><OrgEma V=\"{}\"/><DteReco V=\"{}\"/><MtReco V=\"{}\"/></EncaissementEmargement>",
                    escape(&e.org_ema),
                    e.date,
                    e.amount
                );
            }
            body.push_str("</LigneDePiece>");
        }
        body.push_str("</Piece>");
    }
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Retour xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour">
<Enveloppe><Parametres><Version V="1"/><TypFic V="PES2R_RCE"/><NomFic V="{}"/></Parametres></Enveloppe>
<EnTetePES><DteStr V="{on}"/><IdPost V="{}"/><IdColl V="{}"/><CodColl V="{}"/><CodBud V="{}"/></EnTetePES>
<PES_RecetteRetour><EnTeteRecette><TypRestit V="{}"/><IdVer V="2"/><NatInf V="2"/></EnTeteRecette>
<Bordereau><BlocBordereau><Exer V="{}"/><IdBord V="{}"/><TypBord V="{}"/></BlocBordereau>{body}</Bordereau>
</PES_RecetteRetour></n:PES_Retour>
"#,
        escape(name),
        escape(&sent.id_post),
        escape(&sent.id_coll),
        escape(&sent.cod_col),
        escape(&sent.cod_bud),
        escape(typ_restit),
        bordereau.exercice,
        bordereau.id_bord,
        escape(&bordereau.typ_bord)
    );
    latin1(&xml)
}

/// Text with the XML special characters escaped (`&`, `<`, `>`, `"`, `'`).
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// ISO-8859-1 bytes of `text` (the Trésorerie's encoding).
fn latin1(text: &str) -> Result<Vec<u8>, SimError> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| SimError::NotLatin1(c.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_refuses_what_latin1_cannot_hold() {
        assert_eq!(escape(r#"a&b<"c">"#), "a&amp;b&lt;&quot;c&quot;&gt;");
        assert_eq!(latin1("é").unwrap(), vec![0xE9]);
        assert!(matches!(latin1("Œ"), Err(SimError::NotLatin1(_))));
    }

    #[test]
    fn a_file_that_is_not_a_pes_aller_is_an_error() {
        let err = read_sent(b"<a><b V=\"1\"/></a>", 1024).unwrap_err();
        assert!(matches!(err, SimError::Missing { .. }), "{err}");
        assert!(matches!(
            read_sent(b"<!DOCTYPE a><a/>", 1024),
            Err(SimError::Unreadable(_))
        ));
    }
}
