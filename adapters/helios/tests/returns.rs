//! Reading what comes back from the Trésorerie: every sample of the specs, safety refusals,
//! correlation with what encaisse sent, reconciliation by state, and the PES_ACQUIT_RETOUR.

mod common;

use common::tresorerie::{RLine, RPiece};
use common::*;
use encaisse_helios::acquit_retour::acquit_retour;
use encaisse_helios::aller::{Titre, pes_aller_bytes};
use encaisse_helios::codes::{BordereauKind, DomaineAck, EtatLigPce, EtatPce, OrgEma, TypRestit};
use encaisse_helios::config::ReturnsConfig;
use encaisse_helios::events::{acquit_events, retour_events};
use encaisse_helios::read::acquit::{AckTarget, read_acquit};
use encaisse_helios::read::aller_check::check_pes_aller;
use encaisse_helios::read::retour::{RetourBordereau, read_retour};
use encaisse_helios::read::{ReadError, ReturnFile, read_return_file};
use encaisse_helios::{ErrorClass, schemas};
use encaisse_schemas::events::{Channel, PaymentMode};

const LIMIT: u64 = 64 << 20;
const REAL_ACQUIT_OK: &str = "megalis-bretagne_pastell/connecteur/fakeTdt/fixtures/pes_acquit.xml";
const REAL_ACQUIT_KO: &str =
    "megalis-bretagne_pastell/test/PHPUnit/module/helios-generique/fixtures/pes_acquit_no_ack.xml";
const REAL_ALLER: &str = "megalis-bretagne_pastell/test/stela/PESALR1_99988877766655_121211_11.xml";
const SYNTH_ACQUIT: &str = "synthetic/PES_ACQUIT_recette_ko.xml";
const SYNTH_RETOUR: &str = "synthetic/PES2R_RCE_periodique_ormc.xml";
const SYNTH_ORMC: &str = "synthetic/PESORMC_ormc_prelevement_sepa.xml";
const SYNTH_ORDINAIRE: &str = "synthetic/PESALR1_titre_ordinaire.xml";

/// Every file under `pes-v2/samples` is one of the samples this file reads: a new sample
/// must get its own test.
#[test]
fn every_sample_is_covered() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let root = specs().join("pes-v2/samples");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "xml") {
                found.push(
                    path.strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    let mut covered = vec![
        REAL_ACQUIT_OK,
        REAL_ACQUIT_KO,
        REAL_ALLER,
        SYNTH_ACQUIT,
        SYNTH_RETOUR,
        SYNTH_ORMC,
        SYNTH_ORDINAIRE,
    ];
    covered.sort();
    assert_eq!(found, covered);
}

#[test]
fn real_acquit_all_accepted() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let a = read_acquit(&sample(REAL_ACQUIT_OK), LIMIT).unwrap();
    assert_eq!(
        a.envelope.nom_fic.as_deref(),
        Some("HELIOS_SIMU_ALR2_1477486132_1155762524.xml")
    );
    assert_eq!(
        (a.header.cod_col.as_str(), a.header.cod_bud.as_str()),
        ("400", "01")
    );
    assert_eq!(a.elements.len(), 5);
    assert!(a.elements.iter().all(|e| e.accepted));
    assert_eq!(a.elements[0].domain, DomaineAck::Depense);
    assert_eq!(
        a.elements[0].target,
        AckTarget::Bordereau {
            exercice: Some(2015),
            id_bord: Some(1847)
        }
    );
    assert_eq!(
        a.elements[1].target,
        AckTarget::Pj("200049104000252015DEPENSE0000087458".into())
    );
    assert_eq!(a.rejected().count(), 0);
}

#[test]
fn real_acquit_rejection_names_piece_514() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let a = read_acquit(&sample(REAL_ACQUIT_KO), LIMIT).unwrap();
    let rejected: Vec<_> = a.rejected().collect();
    assert_eq!(rejected.len(), 1);
    let ko = rejected[0];
    assert_eq!(
        ko.target,
        AckTarget::Bordereau {
            exercice: Some(2019),
            id_bord: Some(140)
        }
    );
    assert_eq!(ko.pieces.len(), 1);
    assert_eq!(ko.pieces[0].id_pce, 514);
    let (line, error) = ko.pieces[0].all_errors().next().unwrap();
    assert_eq!(line, Some(1));
    assert_eq!(error.code.as_deref(), Some("ERREUR_AUTRE"));
    // ISO-8859-1 decoded: the accent survives.
    assert_eq!(error.text.as_deref(), Some("1963 - Domiciliation erronée"));
    assert_eq!(
        a.elements.iter().filter(|e| e.accepted).count(),
        8,
        "the PJ are accepted"
    );

    // The ledger knows the sent file (its NomFic) held pièce 514 in bordereau 2019/140:
    // the acquit becomes a titre.rejected naming it.
    let mut inv = invoice(514, PaymentMode::Prelevement);
    inv.invoice.exercice = 2019;
    let mut sent = Sent::default();
    sent.record(
        "15100-2019-P-DN-140-1548422059000",
        BordereauKind::Ordinaire,
        2019,
        140,
        &[titre(&inv, 514)],
    );
    let out = acquit_events(&a, "ACQUIT_15100.xml", &sent);
    assert!(out.accepted.is_empty());
    assert_eq!(out.rejected.len(), 1);
    let r = &out.rejected[0];
    let titre = r.titre.as_ref().expect("the titre the acquit names");
    assert_eq!(titre.id_pce, 514);
    assert_eq!(titre.id_bord, 140);
    assert_eq!(r.code, "ERREUR_AUTRE");
    assert_eq!(r.text, "ligne 1: 1963 - Domiciliation erronée");
    assert_eq!(r.rejected_at.to_rfc3339(), "2019-01-25T00:00:00+01:00");
    assert_eq!(out.bordereaux.len(), 1);
    assert!(!out.bordereaux[0].accepted);
    assert_eq!(out.attachments.len(), 8);
}

#[test]
fn synthetic_acquit_is_read() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let a = read_acquit(&sample(SYNTH_ACQUIT), LIMIT).unwrap();
    assert_eq!(
        a.envelope.nom_fic.as_deref(),
        Some("PESORMC_21940000000017_2024_0000042.xml")
    );
    let e = &a.elements[0];
    assert_eq!((e.domain.clone(), e.accepted), (DomaineAck::Recette, false));
    assert_eq!(
        e.target,
        AckTarget::Bordereau {
            exercice: Some(2024),
            id_bord: Some(42)
        }
    );
    assert_eq!(e.pieces[0].id_pce, 1);
    assert_eq!(
        e.pieces[0].lines[0].errors[0].text.as_deref(),
        Some("Domiciliation erronee")
    );
}

#[test]
fn synthetic_retour_is_read() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let r = read_retour(&sample(SYNTH_RETOUR), LIMIT).unwrap();
    assert_eq!(
        r.file_name(),
        Some("PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502.xml")
    );
    assert_eq!(r.header.cod_col, "123");
    let rec = r.recette.as_ref().unwrap();
    assert_eq!(rec.typ_restit, TypRestit::Periodique);
    let RetourBordereau::Detail {
        exercice,
        id_bord,
        typ_bord,
        pieces,
    } = &rec.bordereaux[0]
    else {
        panic!("detail bordereau expected");
    };
    assert_eq!((*exercice, *id_bord, typ_bord.as_str()), (2024, 42, "06"));
    let p = &pieces[0];
    assert_eq!(p.state, EtatPce::PriseEnCharge);
    assert_eq!(p.taken_on, Some(date(2024, 10, 8)));
    let ormc = p.ormc.as_ref().unwrap();
    assert_eq!(
        (
            ormc.num_dette.as_deref(),
            ormc.cle1.as_deref(),
            ormc.cle2.as_deref()
        ),
        (Some("2024000123"), Some("8"), Some("T"))
    );
    let l = &p.lines[0];
    assert_eq!(l.state, EtatLigPce::Soldee);
    assert_eq!(l.emargements.len(), 1);
    assert_eq!(l.emargements[0].origin, OrgEma::FluxEncaissement);
    assert_eq!(l.emargements[0].amount, money("45.30"));
    assert_eq!(l.recovery_matches_emargements(), Some(true));
}

#[test]
fn synthetic_pes_aller_samples_pass_the_checker() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    for name in [SYNTH_ORMC, SYNTH_ORDINAIRE] {
        let bytes = sample(name);
        assert_valid(&schemas::pes_aller(), "sample.xml", &bytes);
        let report = check_pes_aller(&bytes, LIMIT).unwrap();
        assert!(report.is_valid(), "{name}: {:#?}", report.findings);
    }
}

/// The real 2011 PES Aller is invalid today. How it is detected: the XSD (xmllint) refuses
/// it, and the rule checker names each broken rule with its line.
#[test]
fn real_pes_aller_is_reported_invalid() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let bytes = sample(REAL_ALLER);
    let err =
        encaisse_xml::xsd::validate_bytes(&schemas::pes_aller(), "real.xml", &bytes).unwrap_err();
    let report_text = err.to_string();
    assert!(report_text.contains("MtTVA"), "{report_text}");
    assert!(report_text.contains("CodCol"), "{report_text}");

    let report = check_pes_aller(&bytes, LIMIT).unwrap();
    assert!(!report.is_valid());
    assert_eq!(
        (report.bordereaux, report.pieces, report.lines),
        (6, 25, 786)
    );
    assert_eq!(report.count("mt_tva_not_positive"), 786);
    assert_eq!(report.count("cod_col"), 1);
    assert_eq!(report.count("recette_version"), 1);
    assert_eq!(report.count("envelope_version"), 1);
    let dot = report
        .findings
        .iter()
        .find(|f| f.rule == "forbidden_text")
        .unwrap();
    assert_eq!(dot.value.as_deref(), Some("."));
    assert_eq!(dot.line, 435);
    assert!(dot.path.ends_with("InfoTiers/Civilite"), "{}", dot.path);
    assert!(dot.line > 1);
    let first = report
        .findings
        .iter()
        .find(|f| f.rule == "mt_tva_not_positive")
        .unwrap();
    assert_eq!(first.line, 61, "the first MtTVA V=\"0\" of the file");
}

#[test]
fn dispatch_by_root_and_refusals() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    assert!(matches!(
        read_return_file("a.xml", &sample(REAL_ACQUIT_OK), LIMIT),
        Ok(ReturnFile::Acquit(_))
    ));
    assert!(matches!(
        read_return_file("r.xml", &sample(SYNTH_RETOUR), LIMIT),
        Ok(ReturnFile::Retour(_))
    ));
    let aller = read_return_file("p.xml", &sample(SYNTH_ORMC), LIMIT).unwrap_err();
    assert!(
        matches!(aller.error, ReadError::UnknownDocument { ref root, .. } if root == "PES_Aller"),
        "{aller}"
    );
    assert_eq!(aller.class(), ErrorClass::Permanent);
    assert!(aller.to_string().starts_with("file p.xml: "));

    let laughs = br#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<n:PES_Retour xmlns:n="http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/retour"><x V="&lol2;"/></n:PES_Retour>"#;
    let err = read_return_file("lol.xml", laughs, LIMIT).unwrap_err();
    assert_eq!(err.error.kind(), "dtd");
    assert_eq!(err.class(), ErrorClass::Poison);

    let big = sample(SYNTH_RETOUR);
    let err = read_return_file("big.xml", &big, big.len() as u64 - 1).unwrap_err();
    assert_eq!(err.error.kind(), "too_large");

    let err = read_return_file("cut.xml", &big[..big.len() / 2], LIMIT).unwrap_err();
    assert_eq!(err.error.kind(), "malformed");
    assert!(
        matches!(err.error, ReadError::Syntax { line, .. } if line > 1),
        "{err}"
    );

    let text = String::from_utf8(big.clone())
        .unwrap()
        .replace("<MtReco V=\"45.30\"/>", "<MtReco V=\"45,30\"/>");
    let err = read_return_file("comma.xml", text.as_bytes(), LIMIT).unwrap_err();
    assert!(
        matches!(err.error, ReadError::Invalid { ref path, line: 60, .. } if path.ends_with("EncaissementEmargement[1]/MtReco")),
        "{err}"
    );

    let text = String::from_utf8(big)
        .unwrap()
        .replace("<EtatPce V=\"02\"/>", "");
    let err = read_return_file("noetat.xml", text.as_bytes(), LIMIT).unwrap_err();
    assert!(
        matches!(err.error, ReadError::Missing { ref path, .. } if path.ends_with("Piece[1]/BlocPiece/EtatPce")),
        "{err}"
    );
}

/// Writes an ORMC bordereau for two families, records it as the ledger would.
fn sent_ormc() -> (Sent, String) {
    let config = config(BordereauKind::Ormc);
    let budget = budget();
    let debit = invoice(1, PaymentMode::Prelevement);
    let online = invoice(2, PaymentMode::Tipi);
    let titres = [titre(&debit, 1), titre(&online, 2)];
    let file = pes_aller_bytes(&bordereau(&config, &budget, 42), &titres).unwrap();
    let mut sent = Sent::default();
    sent.record(
        &file.summary.file_name,
        BordereauKind::Ormc,
        2024,
        42,
        &titres,
    );
    (sent, file.summary.file_name)
}

#[test]
fn acquit_of_our_bordereau_accepts_or_rejects_each_titre() {
    let (sent, name) = sent_ormc();
    let ok = tresorerie::acquit(&name, 2024, 42, &[]);
    assert_valid(&schemas::acquit(), "ok.xml", &ok);
    let out = acquit_events(&read_acquit(&ok, LIMIT).unwrap(), "ACQUIT_1.xml", &sent);
    assert_eq!(out.accepted.len(), 2);
    assert!(out.rejected.is_empty() && out.unmatched.is_empty());
    assert_eq!(out.accepted[0].invoice.number, "F2024000001");

    let ko = tresorerie::acquit(
        &name,
        2024,
        42,
        &[(1, 1, "ERREUR_AUTRE", "1963 - Domiciliation erronée")],
    );
    assert_valid(&schemas::acquit(), "ko.xml", &ko);
    let out = acquit_events(&read_acquit(&ko, LIMIT).unwrap(), "ACQUIT_2.xml", &sent);
    assert!(out.accepted.is_empty());
    assert_eq!(
        out.rejected.len(),
        2,
        "a KO bordereau is not integrated: both titres"
    );
    assert_eq!(
        (id_pce(&out.rejected[0]), out.rejected[0].code.as_str()),
        (1, "ERREUR_AUTRE")
    );
    assert_eq!(
        (id_pce(&out.rejected[1]), out.rejected[1].code.as_str()),
        (2, "ACQUIT_KO")
    );

    // An acquit about a file encaisse never sent matches nothing and yields no event.
    let foreign = tresorerie::acquit("OTHER.xml", 2024, 42, &[]);
    let out = acquit_events(
        &read_acquit(&foreign, LIMIT).unwrap(),
        "ACQUIT_3.xml",
        &sent,
    );
    assert!(out.accepted.is_empty() && out.rejected.is_empty());
    assert_eq!(out.unmatched.len(), 1);
}

fn line<'a>(
    state: &'a str,
    amount: &'a str,
    emargements: Vec<(&'a str, &'a str, &'a str)>,
) -> RLine<'a> {
    RLine {
        id_ligne: 1,
        state,
        amount,
        emargements,
    }
}

fn piece<'a>(id_pce: u32, lines: Vec<RLine<'a>>) -> RPiece<'a> {
    RPiece {
        id_pce,
        state: "02",
        obs: None,
        taken_on: Some("2024-10-08"),
        rejected_on: None,
        lines,
    }
}

#[test]
fn payments_reconciled_by_state() {
    let (sent, _) = sent_ormc();
    let config = ReturnsConfig::default();
    let mut known = Known::default();

    // October: the direct debit of family 1 and the online payment of family 2 are imputed.
    let october = tresorerie::retour(
        "PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502.xml",
        "02",
        "06",
        42,
        &[
            piece(
                1,
                vec![
                    line("05", "45.30", vec![("03", "2024-10-15", "45.30")]),
                    RLine {
                        id_ligne: 2,
                        ..line("05", "12.00", vec![("03", "2024-10-15", "12.00")])
                    },
                ],
            ),
            piece(
                2,
                vec![
                    line("05", "45.30", vec![("10", "2024-10-20", "45.30")]),
                    RLine {
                        id_ligne: 2,
                        ..line("04", "12.00", vec![])
                    },
                ],
            ),
        ],
    );
    assert_valid(&schemas::retour(), "october.xml", &october);
    let retour = read_retour(&october, LIMIT).unwrap();
    let out = retour_events(&retour, "october.xml", &sent, &known, &config);
    assert_eq!(out.accepted.len(), 2);
    assert_eq!(out.payments.len(), 3);
    assert!(out.reversals.is_empty() && out.unmatched.is_empty());
    let channels: Vec<_> = out
        .payments
        .iter()
        .map(|p| (p.invoice.number.as_str(), p.amount.to_string(), p.channel))
        .collect();
    assert_eq!(
        channels,
        [
            ("F2024000001", "45.30".to_string(), Channel::Prelevement),
            ("F2024000001", "12.00".to_string(), Channel::Prelevement),
            ("F2024000002", "45.30".to_string(), Channel::Cb),
        ]
    );
    assert_eq!(
        out.payments[0].payment_id,
        "helios:123/00/2024/06/42/1/1/03-20241015-4530-1"
    );
    assert_eq!(
        out.payments[0].paid_at.to_rfc3339(),
        "2024-10-15T00:00:00+02:00"
    );
    known.remember(&out.line_states);

    // The same file read again: nothing new.
    let again = retour_events(&retour, "october.xml", &sent, &known, &config);
    assert!(again.payments.is_empty() && again.reversals.is_empty());

    // November: the bank rejected family 1's debit of line 1; Hélios neutralised the
    // émargement and the line is owed again. Family 2 pays the rest at the counter.
    let november = tresorerie::retour(
        "PES2R_RCE__PO_123_00_094000_20241130_20241201_20241201061502.xml",
        "02",
        "06",
        42,
        &[
            piece(
                1,
                vec![
                    line("04", "45.30", vec![]),
                    RLine {
                        id_ligne: 2,
                        ..line("05", "12.00", vec![("03", "2024-10-15", "12.00")])
                    },
                ],
            ),
            piece(
                2,
                vec![RLine {
                    id_ligne: 2,
                    ..line("05", "12.00", vec![("02", "2024-11-12", "12.00")])
                }],
            ),
        ],
    );
    assert_valid(&schemas::retour(), "november.xml", &november);
    let retour = read_retour(&november, LIMIT).unwrap();
    let out = retour_events(&retour, "november.xml", &sent, &known, &config);
    assert_eq!(out.reversals.len(), 1);
    let rev = &out.reversals[0];
    assert_eq!(rev.invoice.number, "F2024000001");
    assert_eq!(
        rev.payment_id,
        "helios:123/00/2024/06/42/1/1/03-20241015-4530-1"
    );
    assert_eq!(rev.amount, money("45.30"));
    assert_eq!(out.payments.len(), 1);
    assert_eq!(
        (out.payments[0].channel, out.payments[0].amount),
        (Channel::Guichet, money("12.00"))
    );
    known.remember(&out.line_states);
    let again = retour_events(&retour, "november.xml", &sent, &known, &config);
    assert!(again.payments.is_empty() && again.reversals.is_empty());
}

#[test]
fn rejection_flow_rejects_titres_and_never_reverses() {
    let (sent, _) = sent_ormc();
    let config = ReturnsConfig::default();
    let mut known = Known::default();
    let paid = tresorerie::retour(
        "p.xml",
        "02",
        "06",
        42,
        &[piece(
            1,
            vec![line("05", "45.30", vec![("03", "2024-10-15", "45.30")])],
        )],
    );
    let out = retour_events(
        &read_retour(&paid, LIMIT).unwrap(),
        "p.xml",
        &sent,
        &known,
        &config,
    );
    known.remember(&out.line_states);

    // A daily rejection flow carries no émargements: it must not read as "all neutralised".
    let rejet = tresorerie::retour(
        "r.xml",
        "01",
        "06",
        42,
        &[
            RPiece {
                id_pce: 2,
                state: "04",
                obs: Some("17-35"),
                taken_on: None,
                rejected_on: Some("2024-10-09"),
                lines: vec![line("01", "45.30", vec![])],
            },
            piece(1, vec![line("04", "45.30", vec![])]),
        ],
    );
    assert_valid(&schemas::retour(), "rejet.xml", &rejet);
    let out = retour_events(
        &read_retour(&rejet, LIMIT).unwrap(),
        "r.xml",
        &sent,
        &known,
        &config,
    );
    assert!(out.reversals.is_empty() && out.payments.is_empty() && out.line_states.is_empty());
    assert_eq!(out.rejected.len(), 1);
    let r = &out.rejected[0];
    assert_eq!((id_pce(r), r.code.as_str()), (2, "17-35"));
    assert_eq!(
        r.text,
        "17 domiciliation bancaire absente ou erronée; 35 domiciliation erronée"
    );
    assert_eq!(r.rejected_at.to_rfc3339(), "2024-10-09T00:00:00+02:00");
}

#[test]
fn ignored_origins_are_not_payments() {
    let (sent, _) = sent_ormc();
    let config = ReturnsConfig::default();
    let written_off = tresorerie::retour(
        "n.xml",
        "02",
        "06",
        42,
        &[piece(
            1,
            vec![line("06", "45.30", vec![("06", "2025-03-01", "45.30")])],
        )],
    );
    assert_valid(&schemas::retour(), "nv.xml", &written_off);
    let out = retour_events(
        &read_retour(&written_off, LIMIT).unwrap(),
        "n.xml",
        &sent,
        &Known::default(),
        &config,
    );
    assert!(
        out.payments.is_empty(),
        "a non-valeur is not money received"
    );
    assert_eq!(out.line_states[0].1.len(), 1, "but it is remembered");
}

#[test]
fn ormc_articles_are_found_by_debt_number_too() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    // The synthetic PES Retour names pièce 1 of rôle 42; the ledger here only knows the
    // article by its debt number and period (InfoORMC).
    let mut sent = Sent::default();
    let inv = invoice(123, PaymentMode::Prelevement);
    let mut other = Sent::default();
    other.record(
        "x.xml",
        BordereauKind::Ormc,
        2024,
        42,
        &[Titre { ..titre(&inv, 1) }],
    );
    let known = other.bordereaux.values().next().unwrap()[0].clone();
    sent.dettes.insert(("2024000123".into(), "1".into()), known);
    let retour = read_retour(&sample(SYNTH_RETOUR), LIMIT).unwrap();
    let out = retour_events(
        &retour,
        "s.xml",
        &sent,
        &Known::default(),
        &ReturnsConfig::default(),
    );
    assert_eq!(out.accepted.len(), 1);
    assert_eq!(out.payments.len(), 1);
    assert_eq!(out.payments[0].channel, Channel::Prelevement);
}

#[test]
fn acquit_retour_answers_each_pes_retour() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let config = config(BordereauKind::Ormc);
    let retour = read_retour(&sample(SYNTH_RETOUR), LIMIT).unwrap();
    let ack = acquit_retour(&config, &retour, "received.xml", date(2024, 11, 2)).unwrap();
    assert_eq!(
        ack.file_name,
        "ACQUIT_PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502.xml"
    );
    assert_valid(&schemas::acquit_retour(), &ack.file_name, &ack.bytes);
    assert_eq!(
        ack,
        acquit_retour(&config, &retour, "received.xml", date(2024, 11, 2)).unwrap()
    );
    let tree = encaisse_helios::read::tree::parse(&ack.bytes, LIMIT).unwrap();
    let element = tree
        .root
        .child("ACQUIT_RETOUR")
        .unwrap()
        .child("ElementACQUIT_RETOUR")
        .unwrap();
    assert_eq!(element.value_of("DomaineAckRetour"), Some("14"));
    assert_eq!(element.value_of("TypRestit"), Some("02"));
    assert_eq!(element.value_of("DateAcquit"), Some("2024-11-02"));
    assert_eq!(
        element.value_of("NomFichierRetour"),
        Some("PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502.xml")
    );
    assert_eq!(
        tree.root.child("EnTetePES").unwrap().value_of("CodCol"),
        Some("123")
    );

    // A rejection flow is acknowledged too; a file without a recette or dépense part is not.
    let rejet = tresorerie::retour(
        "PES2R_RCE__RO_123_00_094000_20241009_20241010_20241010061502.xml",
        "01",
        "06",
        42,
        &[piece(1, vec![line("01", "45.30", vec![])])],
    );
    let ack = acquit_retour(
        &config,
        &read_retour(&rejet, LIMIT).unwrap(),
        "r.xml",
        date(2024, 10, 10),
    )
    .unwrap();
    assert_valid(&schemas::acquit_retour(), &ack.file_name, &ack.bytes);
    let client_only = String::from_utf8(sample(SYNTH_RETOUR)).unwrap();
    let start = client_only.find("<PES_RecetteRetour>").unwrap();
    let end = client_only.find("</PES_RecetteRetour>").unwrap() + "</PES_RecetteRetour>".len();
    let empty = format!("{}{}", &client_only[..start], &client_only[end..]);
    let err = acquit_retour(
        &config,
        &read_retour(empty.as_bytes(), LIMIT).unwrap(),
        "e.xml",
        date(2024, 11, 2),
    )
    .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent);
}

#[test]
fn a_nomfic_that_is_not_a_plain_file_name_is_not_echoed_into_the_outbox() {
    encaisse_xml::specs_or_skip!("pes-v2/samples", "the PES samples are read");
    let config = config(BordereauKind::Ormc);
    let good = String::from_utf8(sample(SYNTH_RETOUR)).unwrap();
    let name = "PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502.xml";
    assert!(good.contains(name));
    for bad in [
        "../../etc/cron.d/x.xml",
        "sub/x.xml",
        ".hidden.xml",
        "a b.xml",
    ] {
        let forged = good.replace(name, bad);
        let retour = read_retour(forged.as_bytes(), LIMIT).unwrap();
        let err = acquit_retour(&config, &retour, "received.xml", date(2024, 11, 2)).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent, "{bad}");
        let message = err.to_string();
        assert!(
            message.contains("NomFic") && message.contains("plain file name"),
            "{bad}: {message}"
        );
    }
}

/// The pièce of a titre the Trésorerie rejected (always named: only `helios.titres`' local
/// refusals have none).
fn id_pce(rejected: &encaisse_schemas::TitreRejected) -> u32 {
    rejected.titre.as_ref().map_or(0, |t| t.id_pce)
}
