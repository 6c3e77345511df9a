//! Réduction titres: a credit note (avoir) against an invoice that went out as a titre
//! becomes a titre of a bordereau of type 02 (annulation/réduction), `TypPce 02`,
//! `NatPce 06` — the triplet 02/02/06 of the dossier's grid — whose every line names the
//! line of the original it reduces in `RattachPiece` (`NatPceOrig 01` titre, `ExerRat` =
//! the bordereau's exercice, `IdPceOrig`, `IdLigneOrig` ≥ 1, all mandatory for 02/02/06).
//!
//! * [`allocate`]: which lines of the original the credit note reduces, and by how much,
//!   never more than what remains of each line (after earlier reductions);
//! * [`pes_reduction_bytes`]: the PES Aller file of one bordereau of réduction titres.
//!
//! `IdBord` of a type 02 bordereau follows its own sequence: the dossier makes the number
//! "unique par exercice et par type de bordereau pour un budget", sequentiality checked, so
//! annulation bordereaux do not share the numbers of the ordinary (01) or ORMC (06) ones.
//! `IdPce` is the budget's single sequence of the exercice (a réduction titre is a titre).

use std::io::Write;

use encaisse_schemas::Money;
use encaisse_schemas::events::InvoiceIssued;

use super::netting::{Gross, net_lines, take};
use super::prepare::{Debtor, debtor};
use super::recette::{ALLER_NS, write_headers, write_tiers};
use super::{Bordereau, InvoiceError, MAX_ID_PCE, PesFile, WriteError, WriteSummary};
use crate::codes::BordereauKind;
use crate::text::pes_text;
use crate::xmlw::{PesWriter, amount, date};

/// `TypBord` of an annulation/réduction bordereau.
pub const TYP_BORD_REDUCTION: &str = "02";
/// `TypPce` of a titre correctif.
const TYP_PCE_REDUCTION: &str = "02";
/// `NatPce` annulation-réduction.
const NAT_PCE_REDUCTION: &str = "06";
/// `NatPceOrig` of an original that is a titre.
const NAT_PCE_ORIG_TITRE: &str = "01";
/// `TypFic` of a file of réduction titres (a recette, whatever the budget's usual kind).
const TYP_FIC_REDUCTION: &str = "PESALR1";

/// A line of the original titre as written, and what remains of it after earlier
/// reductions (taken in charge or still on their way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalLine {
    /// `IdLigne` of the original titre.
    pub id_ligne: u32,
    pub cod_prod_loc: String,
    pub nature: String,
    pub fonction: Option<String>,
    pub remaining: Money,
}

/// A line of a réduction titre: how much of which original line it takes off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReductionLine {
    /// `IdLigne` of the réduction titre (1, 2, … in the original's line order).
    pub id_ligne: u32,
    /// `IdLigneOrig`: the original line reduced.
    pub id_ligne_orig: u32,
    pub cod_prod_loc: String,
    pub nature: String,
    pub fonction: Option<String>,
    /// `MtHT`, > 0: the reduction.
    pub amount: Money,
    /// The credit note's label for it (`ObjLignePce`).
    pub label: String,
}

/// Why a credit note cannot become a réduction titre.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReductionError {
    #[error("its lines add up to {total}: a credit note must take something off (total < 0)")]
    NothingCredited { total: Money },
    #[error(
        "it takes off {asked}, more than what remains of the original titre ({remaining}, after earlier credit notes)"
    )]
    ExceedsRemaining { asked: Money, remaining: Money },
    #[error("amount out of range: {0}")]
    Amount(String),
}

/// The lines of the réduction titre of `credit_note` against the original's `lines`.
///
/// The credit note's lines are netted first (a positive line in a credit note lowers its
/// reductions). Each reduction is then taken from the original lines of the same product
/// (`CodProdLoc` and `Fonction`), then from the other lines, the line with the largest
/// remaining amount first — the rule reductions inside an invoice follow — never beyond
/// what remains of a line. The total may not exceed what remains of the whole titre.
pub fn allocate(
    credit_note: &InvoiceIssued,
    original: &[OriginalLine],
) -> Result<Vec<ReductionLine>, ReductionError> {
    let money =
        |cents: i64| Money::from_cents(cents).map_err(|e| ReductionError::Amount(e.to_string()));
    // Credits as positive amounts, netted among themselves.
    let credits: Vec<Gross<(&str, Option<&str>)>> = credit_note
        .lines
        .iter()
        .map(|l| Gross {
            imputation: (l.cod_prod_loc.as_str(), l.fonction.as_deref()),
            cents: -l.amount.cents(),
        })
        .collect();
    let net = net_lines(&credits).ok_or(ReductionError::NothingCredited {
        total: credit_note.total,
    })?;
    let asked: i64 = net.iter().sum();
    let remaining_cents: i64 = original.iter().map(|l| l.remaining.cents().max(0)).sum();
    if asked > remaining_cents {
        return Err(ReductionError::ExceedsRemaining {
            asked: money(asked)?,
            remaining: money(remaining_cents)?,
        });
    }
    let mut left: Vec<i64> = original
        .iter()
        .map(|l| l.remaining.cents().max(0))
        .collect();
    let mut taken = vec![0i64; original.len()];
    let mut labels: Vec<Option<&str>> = vec![None; original.len()];
    let mut spill = Vec::new();
    for (i, cents) in net.iter().enumerate().filter(|(_, c)| **c > 0) {
        let (code, fonction) = credits[i].imputation;
        let (owed, from) = take(&mut left, cents.unsigned_abs(), |j| {
            original[j].cod_prod_loc == code && original[j].fonction.as_deref() == fonction
        });
        record(&from, &mut taken, &mut labels, &credit_note.lines[i].label);
        if owed > 0 {
            spill.push((i, owed));
        }
    }
    for (i, owed) in spill {
        let (still, from) = take(&mut left, owed, |_| true);
        record(&from, &mut taken, &mut labels, &credit_note.lines[i].label);
        if still > 0 {
            // Unreachable: the total was checked against what remains.
            return Err(ReductionError::ExceedsRemaining {
                asked: money(asked)?,
                remaining: money(remaining_cents)?,
            });
        }
    }
    let mut lines = Vec::new();
    for ((line, cents), label) in original.iter().zip(taken).zip(labels) {
        if cents == 0 {
            continue;
        }
        lines.push(ReductionLine {
            id_ligne: u32::try_from(lines.len() + 1).unwrap_or(u32::MAX),
            id_ligne_orig: line.id_ligne,
            cod_prod_loc: line.cod_prod_loc.clone(),
            nature: line.nature.clone(),
            fonction: line.fonction.clone(),
            amount: money(cents)?,
            label: label.unwrap_or_default().to_string(),
        });
    }
    Ok(lines)
}

fn record<'a>(
    from: &[(usize, i64)],
    taken: &mut [i64],
    labels: &mut [Option<&'a str>],
    label: &'a str,
) {
    for (j, cents) in from {
        taken[*j] += cents;
        labels[*j].get_or_insert(label);
    }
}

/// One réduction titre: the credit note, its number, the original it reduces.
#[derive(Debug, Clone, Copy)]
pub struct ReductionTitre<'a> {
    pub credit_note: &'a InvoiceIssued,
    /// `IdPce` of the réduction titre.
    pub id_pce: u32,
    /// `IdPceOrig`: the original titre (of the bordereau's exercice, `ExerRat`).
    pub original_id_pce: u32,
    /// The original invoice's number, for the titre's object.
    pub original_number: &'a str,
    pub lines: &'a [ReductionLine],
}

/// The name of the file of the réduction bordereau: the budget's usual pattern cannot be
/// used, its numbers (per type of bordereau) would give the name of an ordinary file.
pub fn reduction_file_name(bordereau: &Bordereau<'_>) -> String {
    format!(
        "{TYP_FIC_REDUCTION}_{}_{}_{TYP_BORD_REDUCTION}_{:07}.xml",
        bordereau.budget.siret, bordereau.exercice, bordereau.id_bord
    )
}

fn reduction_error(titre: &ReductionTitre<'_>, field: &str, rule: impl Into<String>) -> WriteError {
    WriteError::Invoice(InvoiceError {
        invoice: titre.credit_note.invoice.key(),
        field: field.to_string(),
        rule: rule.into(),
    })
}

/// The rules a réduction titre must meet (the writer applies them too).
pub fn check_reduction(
    bordereau: &Bordereau<'_>,
    titre: &ReductionTitre<'_>,
) -> Result<(), WriteError> {
    for (field, id) in [
        ("IdPce", titre.id_pce),
        ("IdPceOrig", titre.original_id_pce),
    ] {
        if id == 0 || id > MAX_ID_PCE {
            return Err(reduction_error(
                titre,
                field,
                format!("{id} is outside 1..={MAX_ID_PCE}"),
            ));
        }
    }
    if titre.lines.is_empty() {
        return Err(reduction_error(titre, "lines", "nothing to reduce"));
    }
    if let Some(l) = titre
        .lines
        .iter()
        .find(|l| !l.amount.is_positive() || l.id_ligne_orig == 0)
    {
        return Err(reduction_error(
            titre,
            "lines",
            format!(
                "line {} ({} on IdLigneOrig {}): MtHT must be > 0 and IdLigneOrig ≥ 1",
                l.id_ligne, l.amount, l.id_ligne_orig
            ),
        ));
    }
    debtor(bordereau, titre.credit_note).map_err(WriteError::Invoice)?;
    Ok(())
}

/// The PES Aller file of one annulation/réduction bordereau (`TypBord 02`) holding
/// `titres`, named by [`reduction_file_name`]. `bordereau.exercice` is the originals'
/// exercice (`ExerRat` must equal `Exer` for the 02/02/06 triplet).
pub fn pes_reduction_bytes(
    bordereau: &Bordereau<'_>,
    titres: &[ReductionTitre<'_>],
) -> Result<PesFile, WriteError> {
    super::check_bordereau(bordereau)?;
    if titres.is_empty() || titres.len() > super::MAX_PIECES {
        return Err(WriteError::Bordereau {
            exercice: bordereau.exercice,
            id_bord: bordereau.id_bord,
            rule: format!(
                "{} pièces, 1 to {} allowed",
                titres.len(),
                super::MAX_PIECES
            ),
        });
    }
    let mut config = bordereau.config.clone();
    config.typ_fic = Some(TYP_FIC_REDUCTION.to_string());
    config.bordereau_kind = BordereauKind::Ordinaire;
    let b = Bordereau {
        config: &config,
        ..*bordereau
    };
    let mut debtors = Vec::with_capacity(titres.len());
    let mut total = 0i64;
    for t in titres {
        check_reduction(&b, t)?;
        debtors.push(debtor(&b, t.credit_note)?);
        for l in t.lines {
            total = total
                .checked_add(l.amount.cents())
                .ok_or(encaisse_schemas::MoneyError::Overflow("MtBordHt"))?;
        }
    }
    let total = Money::from_cents(total)?;
    let name = reduction_file_name(&b);
    let mut w = PesWriter::start(Vec::new(), config.output_encoding, config.indent_spaces)?;
    w.open_root("PES_Aller", ALLER_NS)?;
    write_headers(&mut w, &b, &name)?;
    w.open("PES_RecetteAller")?;
    w.open("EnTeteRecette")?;
    w.leaf("IdVer", "2")?;
    w.leaf("InfoDematerialisee", "0")?;
    w.close("EnTeteRecette")?;
    w.open("Bordereau")?;
    w.open("BlocBordereau")?;
    w.leaf("Exer", &b.exercice.to_string())?;
    w.leaf("IdBord", &b.id_bord.to_string())?;
    w.leaf("DteBordEm", &date(b.date))?;
    w.leaf("TypBord", TYP_BORD_REDUCTION)?;
    w.leaf("NbrPce", &titres.len().to_string())?;
    w.leaf("MtBordHt", &amount(total))?;
    w.close("BlocBordereau")?;
    for (t, d) in titres.iter().zip(&debtors) {
        write_reduction_piece(&mut w, &b, t, d)?;
    }
    w.close("Bordereau")?;
    w.close("PES_RecetteAller")?;
    w.close_root("PES_Aller")?;
    let bytes = w.finish()?;
    Ok(PesFile {
        summary: WriteSummary {
            file_name: name,
            typ_fic: TYP_FIC_REDUCTION.to_string(),
            typ_bord: TYP_BORD_REDUCTION.to_string(),
            pieces: titres.len(),
            total,
            attachments: 0,
            bordereaux: vec![super::BordereauSummary {
                id_bord: b.id_bord,
                pieces: titres.len(),
                total,
            }],
        },
        bytes,
    })
}

fn write_reduction_piece<W: Write>(
    w: &mut PesWriter<W>,
    bordereau: &Bordereau<'_>,
    titre: &ReductionTitre<'_>,
    debtor: &Debtor,
) -> Result<(), WriteError> {
    let style = bordereau.config.text_style;
    w.open("Piece")?;
    w.open("BlocPiece")?;
    w.leaf("IdPce", &titre.id_pce.to_string())?;
    w.leaf("TypPce", TYP_PCE_REDUCTION)?;
    w.leaf("NatPce", NAT_PCE_REDUCTION)?;
    let object = format!(
        "Avoir {} sur facture {}",
        titre.credit_note.invoice.number, titre.original_number
    );
    w.leaf_opt("ObjPce", pes_text(&object, 160, style).as_deref())?;
    w.close("BlocPiece")?;
    for line in titre.lines {
        w.open("LigneDePiece")?;
        w.open("BlocLignePiece")?;
        w.open("InfoLignePiece")?;
        w.leaf("IdLigne", &line.id_ligne.to_string())?;
        w.leaf_opt("ObjLignePce", pes_text(&line.label, 160, style).as_deref())?;
        w.leaf("CodProdLoc", &line.cod_prod_loc)?;
        w.leaf("Nature", &line.nature)?;
        w.leaf_opt(
            "Fonction",
            line.fonction.as_deref().filter(|f| !f.is_empty()),
        )?;
        w.leaf("Majo", "0")?;
        w.leaf("TvaIntraCom", "0")?;
        w.leaf("MtHT", &amount(line.amount))?;
        w.close("InfoLignePiece")?;
        w.open("RattachPiece")?;
        w.leaf("NatPceOrig", NAT_PCE_ORIG_TITRE)?;
        w.leaf("ExerRat", &bordereau.exercice.to_string())?;
        w.leaf("IdPceOrig", &titre.original_id_pce.to_string())?;
        w.leaf("IdLigneOrig", &line.id_ligne_orig.to_string())?;
        w.close("RattachPiece")?;
        w.close("BlocLignePiece")?;
        write_tiers(w, debtor, None)?;
        w.close("LigneDePiece")?;
    }
    w.close("Piece")?;
    Ok(())
}
