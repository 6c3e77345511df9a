//! The demo's Trésorerie: what the comptable of Vitry answers to the PES Aller the daemon
//! wrote, made with the adapter's simulated Trésorerie (`encaisse_helios::sim`).

use chrono::NaiveDate;
use encaisse_helios::sim::{
    self, Emargement, RetourLine, RetourPiece, Sent, SentBordereau, SentPiece, SimError,
};
use encaisse_schemas::Money;

use super::scenario::TitreFate;

/// A file for the helios inbox.
pub struct Answer {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Why an answer cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error("the PES Aller holds no titre for invoice {0}")]
    NoTitre(String),
    #[error("line {line} of the PES Aller: amount {amount:?} unreadable")]
    Amount { line: u32, amount: String },
}

/// The titre of `invoice`: its object (`ObjPce`) names the invoice.
pub fn titre_of<'a>(
    sent: &'a Sent,
    invoice: &str,
) -> Result<(&'a SentBordereau, &'a SentPiece), AnswerError> {
    sent.pieces()
        .find(|(_, p)| {
            p.object
                .as_deref()
                .is_some_and(|o| o.split_whitespace().any(|w| w == invoice))
        })
        .ok_or_else(|| AnswerError::NoTitre(invoice.to_string()))
}

/// The guichet accepts every bordereau of the file.
pub fn acquit(sent: &Sent, today: NaiveDate) -> Result<Answer, AnswerError> {
    let stem = sent.nom_fic.trim_end_matches(".xml");
    Ok(Answer {
        name: format!("PES_ACQUIT_{stem}.xml"),
        bytes: sim::acquit(sent, today, &[])?,
    })
}

fn amount(line: &encaisse_helios::sim::SentLine) -> Result<Money, AnswerError> {
    Money::parse(&line.amount).map_err(|_| AnswerError::Amount {
        line: line.id_ligne,
        amount: line.amount.clone(),
    })
}

/// Every line of `piece` paid in full with `org_ema` on `today`.
fn paid_lines(
    piece: &SentPiece,
    org_ema: &str,
    today: NaiveDate,
) -> Result<Vec<RetourLine>, AnswerError> {
    piece
        .lines
        .iter()
        .map(|l| {
            Ok(RetourLine {
                id_ligne: l.id_ligne,
                state: "05".into(),
                emargements: vec![Emargement {
                    org_ema: org_ema.into(),
                    date: today,
                    amount: amount(l)?,
                }],
            })
        })
        .collect()
}

fn lines_in_state(piece: &SentPiece, state: &str) -> Vec<RetourLine> {
    piece
        .lines
        .iter()
        .map(|l| RetourLine {
            id_ligne: l.id_ligne,
            state: state.into(),
            emargements: Vec::new(),
        })
        .collect()
}

/// A periodic PES Retour (`TypRestit` 02) deciding each titre of `fates`.
pub fn retour(
    sent: &Sent,
    fates: &[(&str, TitreFate)],
    today: NaiveDate,
    seq: u32,
) -> Result<Answer, AnswerError> {
    let mut pieces = Vec::new();
    let mut bordereau = None;
    for (invoice, fate) in fates {
        let (b, piece) = titre_of(sent, invoice)?;
        bordereau = Some(b);
        let taken = |lines| RetourPiece {
            id_pce: piece.id_pce,
            state: "02".into(),
            obs: None,
            taken_on: Some(today),
            rejected_on: None,
            lines,
        };
        pieces.push(match fate {
            TitreFate::Taken => taken(lines_in_state(piece, "04")),
            TitreFate::Paid(org_ema) => taken(paid_lines(piece, org_ema, today)?),
            TitreFate::Rejected(obs) => RetourPiece {
                id_pce: piece.id_pce,
                state: "04".into(),
                obs: Some((*obs).into()),
                taken_on: None,
                rejected_on: Some(today),
                lines: lines_in_state(piece, "01"),
            },
        });
    }
    let Some(bordereau) = bordereau else {
        return Err(AnswerError::NoTitre("(none asked)".into()));
    };
    let name = format!(
        "PES2R_RCE_{}_{}_{seq}.xml",
        sent.cod_col,
        today.format("%Y%m%d")
    );
    let bytes = sim::retour(sent, bordereau, &name, "02", today, &pieces)?;
    Ok(Answer { name, bytes })
}
