//! From what the Trésorerie's files say to canonical events.
//!
//! The adapter does not know which invoice a titre is: the stage answers through
//! [`TitreLookup`] (the ledger knows every bordereau and pièce it numbered) and, for
//! payments, through [`EmargementStore`] (the émargements known per line). The functions
//! here are pure: the same file and the same answers give the same events, in the same
//! order, with the same business keys — so a file read twice yields the same message ids
//! (titres) and no new payment (reconciliation by state).
//!
//! Dates become times at midnight, Europe/Paris (the files carry dates only).

use chrono::{DateTime, FixedOffset, NaiveDate, Offset, TimeZone};
use chrono_tz::Europe::Paris;
use encaisse_schemas::events::{
    Channel, InvoiceRef, PaymentMode, PaymentReceived, PaymentReversed, PaymentSource,
    TitreAccepted, TitreRef, TitreRejected, TitreSource,
};

use crate::codes::{DomaineAck, EtatPce, OrgEma, obs_etat_label};
use crate::config::ReturnsConfig;
use crate::read::PesHeader;
use crate::read::acquit::{AckElement, AckPiece, AckTarget, Acquit};
use crate::read::retour::{PesRetour, RetourBordereau, RetourPiece};
use crate::reconcile::{LineKey, Sighting, reconcile};

/// A titre encaisse issued, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTitre {
    pub invoice: InvoiceRef,
    pub titre: TitreRef,
    /// How the family pays (tells a payment centre émargement apart: TIP or direct debit).
    pub payment_mode: PaymentMode,
}

/// Which budget a file is about (`EnTetePES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetCodes<'a> {
    /// SIRET (`IdColl`).
    pub id_coll: &'a str,
    pub cod_col: &'a str,
    pub cod_bud: &'a str,
}

impl<'a> BudgetCodes<'a> {
    fn of(header: &'a PesHeader) -> Self {
        BudgetCodes {
            id_coll: &header.id_coll,
            cod_col: &header.cod_col,
            cod_bud: &header.cod_bud,
        }
    }
}

/// A bordereau named by a return file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BordereauQuery<'a> {
    pub budget: BudgetCodes<'a>,
    pub exercice: u16,
    pub id_bord: u64,
    /// `TypBord` when the file gives it (PES Retour); an acquit does not, so the sent file's
    /// name (below) tells ORMC and ordinary numbering apart.
    pub typ_bord: Option<&'a str>,
    /// The acknowledged file's `NomFic` (acquit).
    pub sent_file: Option<&'a str>,
    /// `DomaineAck` (acquit).
    pub domain: Option<&'a DomaineAck>,
}

/// The answers the stage gives from its ledger.
pub trait TitreLookup {
    /// Every titre of a bordereau (empty when the bordereau is not one of ours).
    fn bordereau(&self, query: &BordereauQuery<'_>) -> Vec<KnownTitre>;
    /// The titre of a pièce.
    fn piece(&self, query: &BordereauQuery<'_>, id_pce: u64) -> Option<KnownTitre>;
    /// The ORMC article with this debt number and period (`InfoORMC`), when the pièce
    /// number alone does not match.
    fn dette(&self, budget: BudgetCodes<'_>, num_dette: &str, per: &str) -> Option<KnownTitre>;
}

/// The émargements known per line (remembered from the previous files).
pub trait EmargementStore {
    fn known(&self, line: &LineKey) -> Vec<Sighting>;
}

/// Midnight, Europe/Paris, on `date`.
pub fn paris_midnight(date: NaiveDate) -> DateTime<FixedOffset> {
    let naive = date.and_time(chrono::NaiveTime::MIN);
    let offset = Paris
        .offset_from_local_datetime(&naive)
        .earliest()
        .map(|o| o.fix())
        // Midnight always exists in Paris (clocks change at 2 or 3 a.m.).
        .unwrap_or_else(|| chrono::Utc.fix());
    DateTime::from_naive_utc_and_offset(naive - offset, offset)
}

/// The channel of a payment reported by an émargement. `OrgEma 10` is PayFiP: card or
/// one-off debit, Hélios does not say which — `CB` is assumed, the PayFiP sighting of the
/// same payment carries the exact channel. `OrgEma 03` is the payment-centre flow: the
/// invoice's payment mode tells a TIP SEPA from a direct debit (inference, `pes-v2.md` §10.4).
pub fn channel_for(origin: &OrgEma, mode: PaymentMode) -> Channel {
    match origin {
        OrgEma::Tipi => Channel::Cb,
        OrgEma::FluxEncaissement => match mode {
            PaymentMode::Prelevement => Channel::Prelevement,
            PaymentMode::Tip => Channel::Tip,
            _ => Channel::Guichet,
        },
        OrgEma::AvantEmission | OrgEma::Encaissement => Channel::Guichet,
        _ => Channel::Autre,
    }
}

/// What a `PES_ACQUIT` means for our titres.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AcquitOutcome {
    pub accepted: Vec<TitreAccepted>,
    pub rejected: Vec<TitreRejected>,
    /// Every bordereau element and its verdict (for the ledger flag ops see).
    pub bordereaux: Vec<BordereauAck>,
    /// PJ elements (ASAP): `IdUnique`, accepted, errors.
    pub attachments: Vec<(String, bool, Vec<String>)>,
    /// Elements or pièces that match nothing encaisse sent, described for the log.
    pub unmatched: Vec<String>,
}

/// The verdict on one bordereau.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BordereauAck {
    pub exercice: u16,
    pub id_bord: u64,
    pub accepted: bool,
    pub errors: Vec<String>,
    /// How many of our titres it holds (0: not ours).
    pub titres: usize,
}

fn piece_errors(piece: &AckPiece) -> (Option<String>, String) {
    let code = piece.all_errors().find_map(|(_, e)| e.code.clone());
    let text = piece
        .all_errors()
        .map(|(line, e)| {
            let described = e.text.clone().unwrap_or_else(|| e.describe());
            match line {
                Some(l) => format!("ligne {l}: {described}"),
                None => described,
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    (code, text)
}

fn element_errors(element: &AckElement) -> Vec<String> {
    element.errors.iter().map(|e| e.describe()).collect()
}

/// Maps a `PES_ACQUIT` to titre events. `file` is the acquit's own file name.
pub fn acquit_events(acquit: &Acquit, file: &str, lookup: &impl TitreLookup) -> AcquitOutcome {
    let mut out = AcquitOutcome::default();
    let at = paris_midnight(acquit.header.date);
    let budget = BudgetCodes::of(&acquit.header);
    for element in &acquit.elements {
        match &element.target {
            AckTarget::Pj(id) => {
                out.attachments
                    .push((id.clone(), element.accepted, element_errors(element)));
            }
            AckTarget::Bordereau {
                exercice: Some(exercice),
                id_bord: Some(id_bord),
            } => {
                let query = BordereauQuery {
                    budget,
                    exercice: *exercice,
                    id_bord: *id_bord,
                    typ_bord: None,
                    sent_file: acquit.envelope.nom_fic.as_deref(),
                    domain: Some(&element.domain),
                };
                let titres = lookup.bordereau(&query);
                out.bordereaux.push(BordereauAck {
                    exercice: *exercice,
                    id_bord: *id_bord,
                    accepted: element.accepted,
                    errors: element_errors(element),
                    titres: titres.len(),
                });
                if titres.is_empty() {
                    out.unmatched.push(format!(
                        "bordereau {exercice}/{id_bord} (DomaineAck {}) of {:?} is not one encaisse sent",
                        element.domain.code(),
                        acquit.envelope.nom_fic
                    ));
                    continue;
                }
                bordereau_verdict(&mut out, element, titres, file, at);
            }
            AckTarget::Bordereau { .. } | AckTarget::Marche(_) | AckTarget::None => {
                if !element.accepted {
                    out.unmatched.push(format!(
                        "rejected element (DomaineAck {}, line {}): {}",
                        element.domain.code(),
                        element.line,
                        element_errors(element).join("; ")
                    ));
                }
            }
        }
    }
    out
}

fn bordereau_verdict(
    out: &mut AcquitOutcome,
    element: &AckElement,
    titres: Vec<KnownTitre>,
    file: &str,
    at: DateTime<FixedOffset>,
) {
    for piece in &element.pieces {
        if !titres
            .iter()
            .any(|t| u64::from(t.titre.id_pce) == piece.id_pce)
        {
            out.unmatched.push(format!(
                "pièce {} named by the acquit is not in the bordereau as encaisse sent it",
                piece.id_pce
            ));
        }
    }
    for known in titres {
        if element.accepted {
            out.accepted.push(TitreAccepted {
                schema_version: 1,
                invoice: known.invoice,
                titre: known.titre,
                source: TitreSource::Acquit,
                accepted_at: at,
                file: file.to_string(),
            });
            continue;
        }
        // A rejected bordereau is not integrated: every titre of it is rejected, with its
        // own errors when the acquit details them.
        let detail = element
            .pieces
            .iter()
            .find(|p| p.id_pce == u64::from(known.titre.id_pce));
        let (code, text) = match detail {
            Some(piece) => piece_errors(piece),
            None => {
                let errors = element_errors(element);
                let code = element.errors.iter().find_map(|e| e.code.clone());
                let text = if errors.is_empty() {
                    "bordereau rejected by the Hélios guichet".to_string()
                } else {
                    format!("bordereau rejected: {}", errors.join("; "))
                };
                (code, text)
            }
        };
        out.rejected.push(TitreRejected {
            schema_version: 1,
            invoice: known.invoice,
            titre: Some(known.titre),
            source: TitreSource::Acquit,
            code: code.unwrap_or_else(|| "ACQUIT_KO".to_string()),
            text,
            rejected_at: at,
            file: file.to_string(),
        });
    }
}

/// What a `PES_Retour` means for our titres and payments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetourOutcome {
    pub accepted: Vec<TitreAccepted>,
    pub rejected: Vec<TitreRejected>,
    pub payments: Vec<PaymentReceived>,
    pub reversals: Vec<PaymentReversed>,
    /// The émargements each line carried, to remember for the next file (only lines of
    /// periodic and stock flows, which carry their full state).
    pub line_states: Vec<(LineKey, Vec<Sighting>)>,
    /// Pièces that match nothing encaisse sent, described for the log.
    pub unmatched: Vec<String>,
}

fn reason_text(piece: &RetourPiece) -> String {
    let mut parts: Vec<String> = piece
        .reasons
        .iter()
        .map(|code| match obs_etat_label(code) {
            Some(label) => format!("{code} {label}"),
            None => code.clone(),
        })
        .collect();
    if let Some(comment) = &piece.comment {
        parts.push(comment.clone());
    }
    if parts.is_empty() {
        "titre rejected by the comptable".into()
    } else {
        parts.join("; ")
    }
}

/// Maps a `PES_Retour` to titre and payment events. `file` is the file's name.
pub fn retour_events(
    retour: &PesRetour,
    file: &str,
    lookup: &impl TitreLookup,
    store: &impl EmargementStore,
    config: &ReturnsConfig,
) -> RetourOutcome {
    let mut out = RetourOutcome::default();
    let Some(recette) = &retour.recette else {
        return out;
    };
    let budget = BudgetCodes::of(&retour.header);
    let file_date = retour.header.date;
    let with_payments = recette.typ_restit.carries_emargements();
    for bordereau in &recette.bordereaux {
        match bordereau {
            RetourBordereau::Detail {
                exercice,
                id_bord,
                typ_bord,
                pieces,
            } => {
                let query = BordereauQuery {
                    budget,
                    exercice: *exercice,
                    id_bord: *id_bord,
                    typ_bord: Some(typ_bord),
                    sent_file: None,
                    domain: None,
                };
                for piece in pieces {
                    let known = lookup.piece(&query, piece.id_pce).or_else(|| {
                        let ormc = piece.ormc.as_ref()?;
                        lookup.dette(
                            budget,
                            ormc.num_dette.as_deref()?,
                            ormc.per.as_deref().unwrap_or(""),
                        )
                    });
                    let Some(known) = known else {
                        out.unmatched.push(format!(
                            "pièce {exercice}/{typ_bord}/{id_bord}/{} (line {}) is not a titre encaisse sent",
                            piece.id_pce, piece.line
                        ));
                        continue;
                    };
                    titre_verdict(&mut out, piece, &known, file, file_date);
                    if with_payments {
                        let line_key = |id_ligne| LineKey {
                            cod_col: budget.cod_col.to_string(),
                            cod_bud: budget.cod_bud.to_string(),
                            exercice: *exercice,
                            typ_bord: typ_bord.clone(),
                            id_bord: *id_bord,
                            id_pce: piece.id_pce,
                            id_ligne,
                        };
                        for line in &piece.lines {
                            let key = line_key(line.id_ligne);
                            let rec = reconcile(&store.known(&key), &line.emargements);
                            payments(
                                &mut out,
                                &key,
                                &rec.added,
                                &rec.removed,
                                &known,
                                file,
                                file_date,
                                config,
                            );
                            out.line_states.push((key, rec.current));
                        }
                    }
                }
            }
            RetourBordereau::OrmcGlobal {
                exercice,
                id_bord,
                taken_on,
                rejected_on,
                ..
            } => {
                let query = BordereauQuery {
                    budget,
                    exercice: *exercice,
                    id_bord: *id_bord,
                    typ_bord: Some("06"),
                    sent_file: None,
                    domain: None,
                };
                let titres = lookup.bordereau(&query);
                if titres.is_empty() {
                    out.unmatched.push(format!(
                        "ORMC rôle {exercice}/{id_bord} is not one encaisse sent"
                    ));
                }
                for known in titres {
                    if let Some(date) = rejected_on {
                        out.rejected.push(TitreRejected {
                            schema_version: 1,
                            invoice: known.invoice,
                            titre: Some(known.titre),
                            source: TitreSource::Retour,
                            code: "ROLE_REJETE".into(),
                            text: "the whole ORMC rôle was rejected by the comptable (BordereauORMCGlobal)".into(),
                            rejected_at: paris_midnight(*date),
                            file: file.to_string(),
                        });
                    } else if let Some(date) = taken_on {
                        out.accepted.push(TitreAccepted {
                            schema_version: 1,
                            invoice: known.invoice,
                            titre: known.titre,
                            source: TitreSource::Retour,
                            accepted_at: paris_midnight(*date),
                            file: file.to_string(),
                        });
                    }
                }
            }
        }
    }
    out
}

fn titre_verdict(
    out: &mut RetourOutcome,
    piece: &RetourPiece,
    known: &KnownTitre,
    file: &str,
    file_date: NaiveDate,
) {
    match piece.state {
        EtatPce::PriseEnCharge | EtatPce::PriseEnChargePartielle => {
            out.accepted.push(TitreAccepted {
                schema_version: 1,
                invoice: known.invoice.clone(),
                titre: known.titre.clone(),
                source: TitreSource::Retour,
                accepted_at: paris_midnight(piece.taken_on.unwrap_or(file_date)),
                file: file.to_string(),
            })
        }
        EtatPce::Rejete => out.rejected.push(TitreRejected {
            schema_version: 1,
            invoice: known.invoice.clone(),
            titre: Some(known.titre.clone()),
            source: TitreSource::Retour,
            code: if piece.reasons.is_empty() {
                "04".to_string()
            } else {
                piece.reasons.join("-")
            },
            text: reason_text(piece),
            rejected_at: paris_midnight(piece.rejected_on.unwrap_or(file_date)),
            file: file.to_string(),
        }),
        // En instance, annulé, unknown: no canonical event; the state stays in the model.
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn payments(
    out: &mut RetourOutcome,
    key: &LineKey,
    added: &[Sighting],
    removed: &[Sighting],
    known: &KnownTitre,
    file: &str,
    file_date: NaiveDate,
    config: &ReturnsConfig,
) {
    let counted = |s: &Sighting| !config.ignored_org_ema.iter().any(|c| c == &s.origin);
    for s in added.iter().filter(|s| counted(s)) {
        out.payments.push(PaymentReceived {
            schema_version: 1,
            invoice: known.invoice.clone(),
            payment_id: s.payment_id(key),
            amount: s.amount,
            channel: channel_for(&OrgEma::from_code(&s.origin), known.payment_mode),
            source: PaymentSource::Helios,
            paid_at: paris_midnight(s.date),
            reference: format!("PES {file} {} OrgEma {}", key.key(), s.origin),
            commission: None,
        });
    }
    for s in removed.iter().filter(|s| counted(s)) {
        out.reversals.push(PaymentReversed {
            schema_version: 1,
            invoice: known.invoice.clone(),
            payment_id: s.payment_id(key),
            amount: s.amount,
            reversed_at: paris_midnight(file_date),
            reason: format!(
                "émargement OrgEma {} of {} ({}) no longer listed in PES Retour {file}: neutralised by the comptable (e.g. a direct debit rejected by the bank)",
                s.origin, s.date, s.amount
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paris_midnight_follows_summer_time() {
        let winter = paris_midnight(NaiveDate::from_ymd_opt(2024, 1, 15).unwrap());
        assert_eq!(winter.to_rfc3339(), "2024-01-15T00:00:00+01:00");
        let summer = paris_midnight(NaiveDate::from_ymd_opt(2024, 7, 15).unwrap());
        assert_eq!(summer.to_rfc3339(), "2024-07-15T00:00:00+02:00");
    }

    #[test]
    fn channels() {
        assert_eq!(channel_for(&OrgEma::Tipi, PaymentMode::Tipi), Channel::Cb);
        assert_eq!(
            channel_for(&OrgEma::FluxEncaissement, PaymentMode::Prelevement),
            Channel::Prelevement
        );
        assert_eq!(
            channel_for(&OrgEma::FluxEncaissement, PaymentMode::Tip),
            Channel::Tip
        );
        assert_eq!(
            channel_for(&OrgEma::FluxEncaissement, PaymentMode::Autre),
            Channel::Guichet
        );
        assert_eq!(
            channel_for(&OrgEma::Encaissement, PaymentMode::Tip),
            Channel::Guichet
        );
        assert_eq!(
            channel_for(&OrgEma::Mandat, PaymentMode::Tip),
            Channel::Autre
        );
    }
}
