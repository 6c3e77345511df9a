//! Streaming the PES Aller recette document, element by element in the order of the XSD
//! (`PES_Aller.xsd`, `NS_Recette/r0/*.xsd`, v5.17).

use std::collections::HashMap;
use std::io::Write;

use sha2::{Digest, Sha256};

use encaisse_schemas::seen::SeenFilter;
use encaisse_schemas::{Money, MoneyError};

use super::prepare::{self, BankAccount, Debtor, Piece, check_bordereau, ormc_asap_date};
use super::{
    AsTitre, Bordereau, BordereauSummary, MAX_PIECES, Titre, WriteError, WriteSummary, asap,
    file_name,
};
use crate::config::HeliosTenantConfig;
use crate::template;
use crate::text::pes_text;
use crate::xmlw::{PesWriter, amount, date};

/// Namespace of the `PES_Aller` root.
pub(crate) const ALLER_NS: &str = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller";

/// Totals of the first pass.
struct Totals {
    pieces: usize,
    total: Money,
    with_asap: bool,
}

fn bordereau_error(bordereau: &Bordereau<'_>, rule: impl Into<String>) -> WriteError {
    WriteError::Bordereau {
        exercice: bordereau.exercice,
        id_bord: bordereau.id_bord,
        rule: rule.into(),
    }
}

/// What must be unique across the bordereaux of a file: `IdPce` (per exercice) and invoices.
///
/// Pass 1 asks two [`SeenFilter`]s (2 to 4 bytes per titre; hash sets of every key held
/// ~13 MB while a file of 270,000 titres was written) and keeps what they may have met
/// before as suspects: every repeat, and well under 1 % of the other keys. Pass 2 meets the
/// titres in the same order and settles the suspects exactly ([`Suspects::check`]): a
/// repeat is refused at the same titre, with the same message, as when every key was held.
struct Seen {
    ids: SeenFilter,
    invoices: SeenFilter,
    suspects: Suspects,
}

impl Seen {
    fn new(filter: fn() -> SeenFilter) -> Self {
        Seen {
            ids: filter(),
            invoices: filter(),
            suspects: Suspects::default(),
        }
    }

    fn note(&mut self, id_pce: u32, invoice: u128) {
        if self.ids.check_and_insert(u64::from(id_pce)) {
            self.suspects.ids.insert(id_pce, false);
        }
        // Any 64 bits of a SHA-256 digest are as good a hash as the filter needs.
        if self.invoices.check_and_insert(invoice as u64) {
            self.suspects.invoices.insert(invoice, false);
        }
    }
}

/// The keys pass 1 may have met twice, each with whether pass 2 met it already.
#[derive(Default)]
struct Suspects {
    ids: HashMap<u32, bool>,
    invoices: HashMap<u128, bool>,
}

/// A key pass 2 met a second time.
#[derive(Debug, PartialEq, Eq)]
enum Repeat {
    IdPce,
    Invoice,
}

impl Suspects {
    /// Pass 2, before a titre is written: whether its `IdPce` or invoice came earlier in
    /// the file. Exact: a key met twice was a suspect at its second meeting.
    fn repeat(&mut self, id_pce: u32, exercice: u16, number: &str) -> Option<Repeat> {
        if let Some(met) = self.ids.get_mut(&id_pce)
            && std::mem::replace(met, true)
        {
            return Some(Repeat::IdPce);
        }
        if self.invoices.is_empty() {
            return None;
        }
        let met = self.invoices.get_mut(&invoice_digest(exercice, number))?;
        std::mem::replace(met, true).then_some(Repeat::Invoice)
    }

    fn check(&mut self, bordereau: &Bordereau<'_>, titre: &Titre<'_>) -> Result<(), WriteError> {
        let invoice = &titre.invoice.invoice;
        let rule = match self.repeat(titre.id_pce, invoice.exercice, &invoice.number) {
            None => return Ok(()),
            Some(Repeat::IdPce) => format!("IdPce {} appears twice", titre.id_pce),
            Some(Repeat::Invoice) => format!("invoice {} appears twice", invoice.key()),
        };
        Err(bordereau_error(bordereau, rule))
    }
}

/// The key of an invoice in [`Seen::invoices`]: a 128-bit digest of its exercice and
/// number (a collision, which would refuse a good file, has a chance of about 2^-90 in a
/// file of 450,000 titres).
fn invoice_digest(exercice: u16, number: &str) -> u128 {
    let digest = Sha256::new()
        .chain_update(exercice.to_be_bytes())
        .chain_update(number.as_bytes())
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// Pass 1: count, sum, suspects of repeated `IdPce` or invoices, whether any titre has an
/// ASAP PJ. Cheap: no text is normalised here; the full rules run in pass 2.
fn totals<I>(bordereau: &Bordereau<'_>, titres: I, seen: &mut Seen) -> Result<Totals, WriteError>
where
    I: IntoIterator,
    I::Item: AsTitre,
{
    let mut pieces = 0usize;
    let mut cents = 0i64;
    let mut with_asap = false;
    for item in titres {
        let titre = item.as_titre();
        pieces += 1;
        // Each IdPce once, each invoice in exactly one titre: settled in pass 2.
        seen.note(
            titre.id_pce,
            invoice_digest(
                titre.invoice.invoice.exercice,
                &titre.invoice.invoice.number,
            ),
        );
        // Reductions are netted into the other lines: the pièce carries the lines' sum.
        for line in &titre.invoice.lines {
            cents = cents
                .checked_add(line.amount.cents())
                .ok_or(MoneyError::Overflow("MtBordHt"))?;
        }
        with_asap |= asap::wanted(bordereau.config, titre.invoice);
    }
    if pieces == 0 {
        return Err(bordereau_error(
            bordereau,
            "a bordereau needs at least one pièce (NbrPce ≥ 1)",
        ));
    }
    let limit = bordereau.config.max_pieces_per_bordereau.min(MAX_PIECES);
    if pieces > limit {
        return Err(bordereau_error(
            bordereau,
            format!(
                "{pieces} pièces, at most {limit} (NbrPce is 5 digits; max_pieces_per_bordereau): split the run"
            ),
        ));
    }
    let total = Money::from_cents(cents)?;
    if !total.is_positive() {
        return Err(bordereau_error(bordereau, "MtBordHt must be > 0"));
    }
    Ok(Totals {
        pieces,
        total,
        with_asap,
    })
}

/// A configuration text (emitter, labels, ASAP settings): normalised, mandatory. The
/// configuration is checked by `validate`; a value that still fails here is named.
pub(crate) fn config_text(
    config: &HeliosTenantConfig,
    field: &str,
    value: &str,
    max: usize,
) -> Result<String, WriteError> {
    pes_text(value, max, config.text_style).ok_or_else(|| {
        WriteError::config(field, format!("{value:?} is not an acceptable PES text"))
    })
}

/// `Enveloppe` + `EnTetePES`, shared by the file and the PES Facture inside its PJ.
pub(crate) fn write_headers<W: Write>(
    w: &mut PesWriter<W>,
    bordereau: &Bordereau<'_>,
    file_name: &str,
) -> Result<(), WriteError> {
    let config = bordereau.config;
    let budget = bordereau.budget;
    w.open("Enveloppe")?;
    w.open("Parametres")?;
    w.leaf("Version", "2")?;
    w.leaf("TypFic", config.typ_fic())?;
    w.leaf("NomFic", file_name)?;
    w.close("Parametres")?;
    w.open("Emetteur")?;
    w.leaf(
        "Sigle",
        &config_text(config, "emitter_sigle", &config.emitter_sigle, 32)?,
    )?;
    w.leaf(
        "Adresse",
        &config_text(config, "emitter_adresse", &config.emitter_adresse, 38)?,
    )?;
    w.close("Emetteur")?;
    w.close("Enveloppe")?;

    w.open("EnTetePES")?;
    w.leaf("DteStr", &date(bordereau.date))?;
    w.leaf("IdPost", &config.id_post)?;
    let libelle_poste = config
        .libelle_poste
        .as_deref()
        .and_then(|l| pes_text(l, 38, config.text_style));
    w.leaf_opt("LibellePoste", libelle_poste.as_deref())?;
    w.leaf("IdColl", &budget.siret)?;
    w.leaf("CodCol", &budget.cod_col)?;
    w.leaf("CodBud", &budget.cod_bud)?;
    let label = pes_text(&budget.label, 38, config.text_style);
    w.leaf_opt("LibelleColBud", label.as_deref())?;
    w.close("EnTetePES")?;
    Ok(())
}

fn bordereau_object(bordereau: &Bordereau<'_>, month: u8) -> Result<Option<String>, WriteError> {
    let config = bordereau.config;
    let template_text = &config.ormc.bordereau_object;
    if template_text.is_empty() {
        return Ok(None);
    }
    let period = format!("{month:02}");
    let rendered = template::render(template_text, |name| {
        Some(match name {
            "exercice" => template::Value::Number(u64::from(bordereau.exercice)),
            "period" => template::Value::Text(&period),
            "month_name" => template::Value::Text(super::month_name(month)),
            "budget_label" => template::Value::Text(&bordereau.budget.label),
            _ => return None,
        })
    })
    .map_err(|e| WriteError::config("ormc.bordereau_object", e.to_string()))?;
    Ok(pes_text(&rendered, 160, config.text_style))
}

/// Writes the PES Aller file of `bordereau` with `titres` into `out`.
///
/// `titres` is iterated three times (it must be `Clone`: a slice, a `Vec` iterator, or a
/// generator). On error the output holds a partial document and must be discarded.
pub fn write_pes_aller<W, I>(
    out: W,
    bordereau: &Bordereau<'_>,
    titres: I,
) -> Result<(W, WriteSummary), WriteError>
where
    W: Write,
    I: IntoIterator + Clone,
    I::Item: AsTitre,
{
    write_pes_aller_split(out, &[(*bordereau, titres)])
}

/// The bordereaux of one file must share what the file's headers say once.
fn check_split<I>(bordereaux: &[(Bordereau<'_>, I)]) -> Result<(), WriteError> {
    let Some((first, _)) = bordereaux.first() else {
        return Err(WriteError::config(
            "bordereaux",
            "a PES Aller file needs at least one bordereau",
        ));
    };
    let mut previous: Option<u32> = None;
    for (b, _) in bordereaux {
        check_bordereau(b).map_err(|rule| bordereau_error(b, rule))?;
        let same = b.budget.code == first.budget.code
            && b.exercice == first.exercice
            && b.date == first.date
            && b.config.bordereau_kind == first.config.bordereau_kind
            && b.config.typ_fic() == first.config.typ_fic();
        if !same {
            return Err(bordereau_error(
                b,
                format!(
                    "differs from bordereau {} of the same file (budget, exercice, date and kind must be the same)",
                    first.id_bord
                ),
            ));
        }
        if previous.is_some_and(|p| b.id_bord <= p) {
            return Err(bordereau_error(
                b,
                "bordereaux of a file must have increasing numbers",
            ));
        }
        previous = Some(b.id_bord);
    }
    Ok(())
}

/// Writes one PES Aller file holding several bordereaux: a billing run with more pièces
/// than a bordereau may hold (`NbrPce` is 5 digits, or `max_pieces_per_bordereau`), split
/// into consecutive bordereaux of the same budget, exercice, kind and date. The file is
/// named after the first bordereau; `IdPce` and invoices are unique across the file. The
/// summary's `pieces` and `total` are the file's, `bordereaux` each bordereau's.
///
/// Each `titres` is iterated three times (it must be `Clone`). On error the output holds a
/// partial document and must be discarded.
pub fn write_pes_aller_split<W, I>(
    out: W,
    bordereaux: &[(Bordereau<'_>, I)],
) -> Result<(W, WriteSummary), WriteError>
where
    W: Write,
    I: IntoIterator + Clone,
    I::Item: AsTitre,
{
    check_split(bordereaux)?;
    let Some((first, _)) = bordereaux.first() else {
        return Err(WriteError::config("bordereaux", "no bordereau"));
    };
    let config = first.config;
    let kind = config.bordereau_kind;
    let name = file_name(first)?;
    if name.chars().count() > 100 {
        return Err(WriteError::config(
            "file_name_pattern",
            format!("{name:?} is longer than 100 characters (NomFic)"),
        ));
    }
    let mut seen = Seen::new(SeenFilter::new);
    let mut all_totals = Vec::with_capacity(bordereaux.len());
    for (b, titres) in bordereaux {
        all_totals.push(totals(b, titres.clone(), &mut seen)?);
    }
    // The filters are done with: only the suspects go on to pass 2.
    let Seen {
        ids,
        invoices,
        mut suspects,
    } = seen;
    drop((ids, invoices));

    let mut w = PesWriter::start(out, config.output_encoding, config.indent_spaces)?;
    w.open_root("PES_Aller", ALLER_NS)?;
    write_headers(&mut w, first, &name)?;
    w.open("PES_RecetteAller")?;
    w.open("EnTeteRecette")?;
    w.leaf("IdVer", "2")?;
    w.leaf("InfoDematerialisee", "0")?;
    w.close("EnTeteRecette")?;
    let mut attachments = 0;
    let mut summaries = Vec::with_capacity(bordereaux.len());
    for ((bordereau, titres), totals) in bordereaux.iter().zip(&all_totals) {
        let pass = Pass2 {
            totals,
            suspects: &mut suspects,
            attachments: &mut attachments,
        };
        write_bordereau(&mut w, bordereau, titres.clone(), pass)?;
        summaries.push(BordereauSummary {
            id_bord: bordereau.id_bord,
            pieces: totals.pieces,
            total: totals.total,
        });
    }
    w.close("PES_RecetteAller")?;

    if all_totals.iter().any(|t| t.with_asap) {
        w.open("PES_PJ")?;
        w.open("EnTetePES_PJ")?;
        w.leaf("IdVer", "1")?;
        w.close("EnTetePES_PJ")?;
        let mut gzip = asap::Gzip::new();
        for (bordereau, titres) in bordereaux {
            for item in titres.clone() {
                let titre = item.as_titre();
                let piece = prepare::prepare(bordereau, &titre)?;
                if let Some(a) = &piece.asap {
                    asap::write_pj(&mut w, &mut gzip, bordereau, &piece, a)?;
                }
            }
        }
        w.close("PES_PJ")?;
    }
    w.close_root("PES_Aller")?;
    let out = w.finish()?;
    let pieces = all_totals.iter().map(|t| t.pieces).sum();
    let total = super::sum_cents(all_totals.iter().map(|t| t.total))?;
    tracing::debug!(
        file = %name,
        exercice = first.exercice,
        id_bord = first.id_bord,
        bordereaux = bordereaux.len(),
        pieces,
        total = %total,
        attachments,
        "PES Aller written."
    );
    Ok((
        out,
        WriteSummary {
            file_name: name,
            typ_fic: config.typ_fic().to_string(),
            typ_bord: kind.typ_bord().to_string(),
            pieces,
            total,
            attachments,
            bordereaux: summaries,
        },
    ))
}

/// What pass 2 checks a bordereau against, and counts.
struct Pass2<'a> {
    totals: &'a Totals,
    suspects: &'a mut Suspects,
    /// PJ referenced so far in the file.
    attachments: &'a mut usize,
}

/// One `Bordereau` element: `BlocBordereau` and its pièces (pass 2, checked against pass 1).
fn write_bordereau<W, I>(
    w: &mut PesWriter<W>,
    bordereau: &Bordereau<'_>,
    titres: I,
    pass: Pass2<'_>,
) -> Result<(), WriteError>
where
    W: Write,
    I: IntoIterator + Clone,
    I::Item: AsTitre,
{
    let totals = pass.totals;
    let kind = bordereau.config.bordereau_kind;
    w.open("Bordereau")?;
    w.open("BlocBordereau")?;
    w.leaf("Exer", &bordereau.exercice.to_string())?;
    w.leaf("IdBord", &bordereau.id_bord.to_string())?;
    w.leaf("DteBordEm", &date(bordereau.date))?;
    w.leaf("TypBord", kind.typ_bord())?;
    w.leaf("NbrPce", &totals.pieces.to_string())?;
    w.leaf("MtBordHt", &amount(totals.total))?;
    if kind == crate::codes::BordereauKind::Ormc {
        w.leaf_opt("DteAsp", ormc_asap_date(bordereau).map(date).as_deref())?;
        let month = titres
            .clone()
            .into_iter()
            .next()
            .map(|t| t.as_titre().invoice.period)
            .unwrap_or(1);
        w.leaf_opt("Objet", bordereau_object(bordereau, month)?.as_deref())?;
    }
    w.close("BlocBordereau")?;

    let mut written = 0usize;
    let mut sum_cents = 0i64;
    for item in titres {
        let titre = item.as_titre();
        pass.suspects.check(bordereau, &titre)?;
        let piece = prepare::prepare(bordereau, &titre)?;
        write_piece(w, bordereau, &piece)?;
        written += 1;
        sum_cents = sum_cents.saturating_add(piece.total.cents());
        if piece.asap.is_some() {
            *pass.attachments += 1;
        }
    }
    let sum = Money::from_cents(sum_cents)?;
    if written != totals.pieces || sum != totals.total {
        return Err(bordereau_error(
            bordereau,
            format!(
                "the titres changed between passes ({written} pièces for {total}, expected {} for {})",
                totals.pieces,
                totals.total,
                total = sum
            ),
        ));
    }
    w.close("Bordereau")?;
    Ok(())
}

fn write_piece<W: Write>(
    w: &mut PesWriter<W>,
    bordereau: &Bordereau<'_>,
    piece: &Piece<'_>,
) -> Result<(), WriteError> {
    let kind = bordereau.config.bordereau_kind;
    w.open("Piece")?;
    w.open("BlocPiece")?;
    w.leaf("IdPce", &piece.id_pce.to_string())?;
    w.leaf("TypPce", kind.typ_pce())?;
    w.leaf("NatPce", kind.nat_pce())?;
    w.leaf_opt("Edition", piece.asap.as_ref().map(|a| a.edition))?;
    w.leaf_opt("ObjPce", piece.object.as_deref())?;
    if let Some(ormc) = &piece.ormc {
        w.leaf("NumDette", &ormc.num_dette)?;
        w.leaf("Per", &ormc.per.to_string())?;
        w.leaf("Cle1", &ormc.cle1.to_string())?;
        w.leaf("Cle2", ormc.cle2.encode_utf8(&mut [0; 4]))?;
    }
    if let Some(a) = &piece.asap {
        w.open("PJRef")?;
        w.leaf("Support", "01")?;
        w.leaf("IdUnique", &a.id_unique)?;
        w.leaf("NomPJ", &a.pj_name)?;
        w.leaf("TypePJ", a.pj_type)?;
        w.close("PJRef")?;
    }
    w.close("BlocPiece")?;
    for line in &piece.lines {
        w.open("LigneDePiece")?;
        w.open("BlocLignePiece")?;
        w.open("InfoLignePiece")?;
        w.leaf("IdLigne", &line.id_ligne.to_string())?;
        w.leaf_opt("ObjLignePce", line.object.as_deref())?;
        w.leaf("CodProdLoc", line.cod_prod_loc)?;
        w.leaf("Nature", line.nature)?;
        w.leaf_opt("Fonction", line.fonction)?;
        w.leaf("Majo", "0")?;
        w.leaf("TvaIntraCom", "0")?;
        w.leaf("MtHT", &amount(line.amount))?;
        w.close("InfoLignePiece")?;
        if let Some(debit) = &piece.debit {
            w.open("InfoPrelevementSEPA")?;
            w.leaf("NatPrel", "01")?;
            w.leaf("PerPrel", debit.periodicity)?;
            w.leaf("DtePrel", &debit.due)?;
            w.leaf("MtPrel", &amount(line.amount))?;
            w.leaf("SequencePres", debit.sequence)?;
            w.leaf("DateSignMandat", &debit.signed_on)?;
            w.leaf("RefUniMdt", debit.rum)?;
            w.leaf_opt("LibPrel", debit.label.as_deref())?;
            if debit.holder_differs {
                w.leaf("TitCpteDiff", "1")?;
            }
            w.close("InfoPrelevementSEPA")?;
        }
        w.close("BlocLignePiece")?;
        write_tiers(w, &piece.debtor, piece.bank.as_ref())?;
        w.close("LigneDePiece")?;
    }
    w.close("Piece")?;
    Ok(())
}

/// The line's `Tiers`: the debtor, its address, and the account debited when there is one.
pub(crate) fn write_tiers<W: Write>(
    w: &mut PesWriter<W>,
    d: &Debtor,
    bank: Option<&BankAccount<'_>>,
) -> Result<(), WriteError> {
    w.open("Tiers")?;
    w.open("InfoTiers")?;
    w.leaf_opt("RefTiers", d.ref_tiers.as_deref())?;
    write_person(w, d)?;
    w.close("InfoTiers")?;
    write_debtor_address(w, d)?;
    if let Some(bank) = bank {
        w.open("CpteBancaire")?;
        w.leaf_opt("BIC", bank.bic)?;
        w.leaf("IBAN", bank.iban)?;
        w.leaf("TitCpte", &bank.holder)?;
        w.close("CpteBancaire")?;
    }
    w.close("Tiers")?;
    Ok(())
}

/// The debtor as a person, principal debtor (`CatTiers` 01 … `Prenom`): the same in the
/// titre's `InfoTiers` and in the ASAP's `Debiteur`.
pub(crate) fn write_person<W: Write>(w: &mut PesWriter<W>, d: &Debtor) -> Result<(), WriteError> {
    w.leaf("CatTiers", "01")?;
    w.leaf("NatJur", "01")?;
    w.leaf("TypTiers", "01")?;
    w.leaf("Civilite", &d.civilite)?;
    w.leaf("Nom", &d.nom)?;
    w.leaf("Prenom", &d.prenom)?;
    Ok(())
}

/// The debtor's `Adresse` (same element order in `TAdresse` and `TAdresseFacture`).
pub(crate) fn write_debtor_address<W: Write>(
    w: &mut PesWriter<W>,
    d: &Debtor,
) -> Result<(), WriteError> {
    w.open("Adresse")?;
    w.leaf("TypAdr", "1")?;
    w.leaf_opt("Adr1", d.adr1.as_deref())?;
    w.leaf("Adr2", &d.adr2)?;
    w.leaf_opt("Adr3", d.adr3.as_deref())?;
    w.leaf("CP", &d.cp)?;
    w.leaf("Ville", &d.ville)?;
    w.leaf("CodRes", "0")?;
    w.close("Adresse")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Passes 1 and 2 over `(IdPce, exercice, number)`: what pass 2 finds at each titre.
    fn repeats(filter: fn() -> SeenFilter, titres: &[(u32, u16, &str)]) -> Vec<Option<Repeat>> {
        let mut seen = Seen::new(filter);
        for &(id, exercice, number) in titres {
            seen.note(id, invoice_digest(exercice, number));
        }
        let mut suspects = seen.suspects;
        titres
            .iter()
            .map(|&(id, exercice, number)| suspects.repeat(id, exercice, number))
            .collect()
    }

    /// Also with every key suspect (the worst the filters can do): only true repeats are
    /// refused, at their second titre.
    #[test]
    fn suspects_are_settled_exactly() {
        for filter in [
            SeenFilter::new as fn() -> SeenFilter,
            SeenFilter::always_maybe,
        ] {
            let distinct = [
                (1, 2024, "F1"),
                (2, 2024, "F2"),
                (3, 2025, "F1"),
                (4, 2024, "F3"),
            ];
            assert_eq!(repeats(filter, &distinct), [None, None, None, None]);
            let twice = [
                (1, 2024, "F1"),
                (2, 2024, "F2"),
                (3, 2024, "F1"),
                (2, 2024, "F4"),
            ];
            assert_eq!(
                repeats(filter, &twice),
                [None, None, Some(Repeat::Invoice), Some(Repeat::IdPce)]
            );
        }
    }
}
