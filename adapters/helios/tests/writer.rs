//! The PES Aller writer: every file validates against the official XSD (v5.17), passes the
//! rule checker, carries what the invoices say, and is byte-identical for identical input.

mod common;

use std::io::Read;

use base64::Engine as _;
use common::*;
use encaisse_helios::aller::{
    self, OwnedTitre, Titre, WriteError, check_titre, pes_aller_bytes, reduction, write_pes_aller,
};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::{AsapMode, NumDetteRule, OutputEncoding, PeriodRule};
use encaisse_helios::read::aller_check::check_pes_aller;
use encaisse_helios::read::tree::{self, Element};
use encaisse_helios::schemas;
use encaisse_helios::text::TextStyle;
use encaisse_schemas::Money;
use encaisse_schemas::events::{InvoiceIssued, PaymentMode, SequenceType};

const LIMIT: u64 = 64 << 20;

/// Writes, validates against the XSD and the rule checker, and returns the parsed tree.
fn write_valid(
    config: &encaisse_helios::config::HeliosTenantConfig,
    titres: &[Titre<'_>],
) -> (aller::PesFile, tree::Tree) {
    let budget = budget();
    let b = bordereau(config, &budget, 42);
    let file = pes_aller_bytes(&b, titres).unwrap_or_else(|e| panic!("{e}"));
    assert_valid(&schemas::pes_aller(), &file.summary.file_name, &file.bytes);
    let report = check_pes_aller(&file.bytes, LIMIT).unwrap();
    assert!(report.is_valid(), "{:#?}", report.findings);
    let parsed = tree::parse(&file.bytes, LIMIT).unwrap();
    (file, parsed)
}

fn find<'a>(e: &'a Element, path: &[&str]) -> &'a Element {
    path.iter().fold(e, |e, name| {
        e.child(name)
            .unwrap_or_else(|| panic!("no {name} under {}", e.name))
    })
}

fn pieces(tree: &tree::Tree) -> Vec<&Element> {
    find(&tree.root, &["PES_RecetteAller", "Bordereau"])
        .children_named("Piece")
        .collect()
}

/// The PES Facture inside a PJ: base64 → gunzip → bytes.
fn pj_contents(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut out = Vec::new();
    for chunk in text.split("<Fichier MIMEType=\"").skip(1) {
        let (mime, rest) = chunk.split_once("\">").unwrap();
        let (b64, _) = rest.split_once("</Fichier>").unwrap();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap();
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        out.push((mime.to_string(), plain));
    }
    out
}

#[test]
fn ormc_with_direct_debit_reproduces_the_spec_vector() {
    let config = config(BordereauKind::Ormc);
    let mut inv = invoice(123, PaymentMode::Prelevement);
    inv.invoice.number = "2024000123".into();
    let (file, tree) = write_valid(&config, &[titre(&inv, 1)]);
    assert_eq!(
        file.summary.file_name,
        "PESORMC_21940000000017_2024_0000042.xml"
    );
    // What the ledger keeps to find the article by debt number later.
    let keys = aller::ormc_keys(&bordereau(&config, &budget(), 42), &titre(&inv, 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        (keys.num_dette.as_str(), keys.per, keys.cle1, keys.cle2),
        ("2024000123", 1, 8, 'T')
    );
    assert_eq!(file.summary.pieces, 1);
    assert_eq!(file.summary.total, money("57.30"));
    let bloc = find(
        &tree.root,
        &["PES_RecetteAller", "Bordereau", "BlocBordereau"],
    );
    assert_eq!(bloc.value_of("TypBord"), Some("06"));
    assert_eq!(bloc.value_of("NbrPce"), Some("1"));
    assert_eq!(bloc.value_of("MtBordHt"), Some("57.30"));
    assert_eq!(bloc.value_of("Objet"), Some("FACTURATION SEPTEMBRE 2024"));
    let piece = pieces(&tree)[0];
    let bp = piece.child("BlocPiece").unwrap();
    // Same inputs as the synthetic sample (CodCol 123, 2024, Per 1, dette 2024000123):
    // the spec's keys 8 and T.
    assert_eq!(bp.value_of("TypPce"), Some("15"));
    assert_eq!(bp.value_of("NumDette"), Some("2024000123"));
    assert_eq!(bp.value_of("Per"), Some("1"));
    assert_eq!(bp.value_of("Cle1"), Some("8"));
    assert_eq!(bp.value_of("Cle2"), Some("T"));
    let lines: Vec<&Element> = piece.children_named("LigneDePiece").collect();
    assert_eq!(lines.len(), 2);
    for (l, amount) in lines.iter().zip(["45.30", "12.00"]) {
        let info = find(l, &["BlocLignePiece", "InfoLignePiece"]);
        assert_eq!(info.value_of("Nature"), Some("588"));
        assert_eq!(info.value_of("MtHT"), Some(amount));
        let prel = find(l, &["BlocLignePiece", "InfoPrelevementSEPA"]);
        assert_eq!(prel.value_of("NatPrel"), Some("01"));
        assert_eq!(prel.value_of("MtPrel"), Some(amount));
        assert_eq!(prel.value_of("SequencePres"), Some("03"));
        assert_eq!(prel.value_of("DtePrel"), Some("2024-10-15"));
        assert_eq!(prel.value_of("RefUniMdt"), Some("FAM000123-001"));
        assert_eq!(
            prel.value_of("LibPrel"),
            Some("Commune de Test FACTURE 2024000123")
        );
        assert_eq!(prel.child("TitCpteDiff"), None, "holder is the debtor");
        // One debtor per ORMC titre: the same Tiers on every line.
        let tiers = l.child("Tiers").unwrap();
        assert_eq!(find(tiers, &["InfoTiers"]).value_of("Nom"), Some("DUPONT"));
        assert_eq!(
            find(tiers, &["Adresse"]).value_of("Adr1"),
            Some("BATIMENT B")
        );
        assert_eq!(
            find(tiers, &["Adresse"]).value_of("Adr2"),
            Some("10 RUE DES ECOLES")
        );
        let bank = tiers.child("CpteBancaire").unwrap();
        assert_eq!(bank.value_of("IBAN"), Some("FR7630004000031234567890143"));
        assert_eq!(bank.value_of("BIC"), Some("BNPAFRPPXXX"));
        assert_eq!(bank.value_of("TitCpte"), Some("DUPONT MARIE"));
    }
}

#[test]
fn titres_ordinaires_with_and_without_direct_debit() {
    let config = config(BordereauKind::Ordinaire);
    let plain = invoice(1, PaymentMode::Autre);
    let mut debit = invoice(2, PaymentMode::Prelevement);
    debit.mandate.as_mut().unwrap().holder = "Martin Paul".into();
    let (file, tree) = write_valid(
        &config,
        &[
            titre(&plain, 2871),
            Titre {
                sequence: Some(SequenceType::Frst),
                ..titre(&debit, 2872)
            },
        ],
    );
    assert_eq!(
        file.summary.file_name,
        "PESALR1_21940000000017_2024_0000042.xml"
    );
    assert_eq!(file.summary.total, money("114.60"));
    let ps = pieces(&tree);
    assert_eq!(ps.len(), 2);
    let bp = ps[0].child("BlocPiece").unwrap();
    assert_eq!(bp.value_of("TypPce"), Some("01"));
    assert_eq!(
        bp.value_of("ObjPce"),
        Some("FACTURE F2024000001 SEPTEMBRE 2024")
    );
    assert!(bp.child("NumDette").is_none() && bp.child("Edition").is_none());
    let first_line = ps[0].child("LigneDePiece").unwrap();
    assert!(
        find(first_line, &["BlocLignePiece"])
            .child("InfoPrelevementSEPA")
            .is_none()
    );
    assert_eq!(
        find(first_line, &["BlocLignePiece", "InfoLignePiece"]).value_of("Nature"),
        Some("7067")
    );
    assert_eq!(
        find(first_line, &["BlocLignePiece", "InfoLignePiece"]).value_of("Fonction"),
        Some("251")
    );
    let second = ps[1].child("LigneDePiece").unwrap();
    let prel = find(second, &["BlocLignePiece", "InfoPrelevementSEPA"]);
    assert_eq!(
        prel.value_of("SequencePres"),
        Some("02"),
        "the caller's sequence wins"
    );
    assert_eq!(
        prel.value_of("TitCpteDiff"),
        Some("1"),
        "holder differs from the debtor"
    );
}

#[test]
fn tip_invoices_carry_a_pes_facture_asap_with_tip_and_payfip() {
    let config = config_with_asap(BordereauKind::Ordinaire, AsapMode::TipOnly);
    let tip = invoice(7, PaymentMode::Tip);
    let plain = invoice(8, PaymentMode::Autre);
    let (file, tree) = write_valid(&config, &[titre(&tip, 10), titre(&plain, 11)]);
    assert_eq!(file.summary.attachments, 1);
    let ps = pieces(&tree);
    let bp = ps[0].child("BlocPiece").unwrap();
    assert_eq!(bp.value_of("Edition"), Some("01"));
    let pj_ref = bp.child("PJRef").unwrap();
    assert_eq!(
        pj_ref.value_of("IdUnique"),
        Some(format!("21940000000017A2024010000042{}", "00000010").as_str())
    );
    assert_eq!(pj_ref.value_of("TypePJ"), Some("006"));
    assert_eq!(pj_ref.value_of("Support"), Some("01"));
    assert!(
        ps[1].child("BlocPiece").unwrap().child("Edition").is_none(),
        "no TIP, no ASAP in tip_only"
    );
    let pj = find(&tree.root, &["PES_PJ", "PJ"]);
    assert_eq!(pj.value_of("IdUnique"), pj_ref.value_of("IdUnique"));
    assert_eq!(pj.value_of("TypePJ"), Some("006"));

    let contents = pj_contents(&file.bytes);
    assert_eq!(contents.len(), 1);
    let (mime, facture) = &contents[0];
    assert_eq!(mime, "text/xml");
    // The PES Facture is itself a PES_Aller document valid against the XSD.
    assert_valid(&schemas::pes_aller(), "asap.xml", facture);
    let f = tree::parse(facture, LIMIT).unwrap();
    let pf = find(&f.root, &["PES_Facture"]);
    assert_eq!(pf.value_of("TypeFact"), Some("09"));
    let suppl = find(pf, &["Emetteur", "InfoSuppl"]);
    assert_eq!(
        suppl.value_of("RefBdf"),
        Some("FR72ZZZ123456"),
        "TIP: the ICS"
    );
    assert_eq!(
        suppl.value_of("CodeTipi"),
        Some("008112"),
        "payable online: PayFiP identifier"
    );
    assert_eq!(
        suppl.value_of("AdrTipi"),
        Some("https://www.payfip.gouv.fr")
    );
    let indiv = pf.child("FactureIndiv").unwrap();
    assert_eq!(indiv.value_of("ModeRecouvrement"), Some("0"), "with TIP");
    let reft = indiv.child("RefTitre").unwrap();
    assert_eq!(
        (
            reft.value_of("Exercice"),
            reft.value_of("NumBordereau"),
            reft.value_of("NumTitre"),
            reft.value_of("NumLigne")
        ),
        (Some("2024"), Some("42"), Some("10"), Some("1"))
    );
    let talon = indiv.child("TalonOptique2Lignes").unwrap();
    assert!(
        talon
            .value_of("Ligne1")
            .unwrap()
            .starts_with("094000 2024010000042")
    );
    assert_eq!(
        find(indiv, &["TotalAPayer"]).value_of("MtTotalTTC"),
        Some("57.30")
    );
    let first = indiv.child("LigneFacture").unwrap();
    assert_eq!(
        (first.value_of("Quantite"), first.value_of("MtUnitaire")),
        (Some("15"), Some("3.02"))
    );
    assert_eq!(
        find(indiv, &["Debiteur", "CpteBancaire"]).value_of("IBAN"),
        Some("FR7630004000031234567890143")
    );
    let centres: Vec<_> = pf
        .children_named("Tiers")
        .map(|t| find(t, &["InfoTiers"]).value_of("TypTiers"))
        .collect();
    assert_eq!(centres, [Some("25"), Some("26")]);
}

#[test]
fn every_titre_gets_an_asap_with_mode_all_talon_for_non_tip() {
    let config = config_with_asap(BordereauKind::Ordinaire, AsapMode::All);
    let mut offline = invoice(9, PaymentMode::Autre);
    offline.online_payable = false;
    let online = invoice(10, PaymentMode::Tipi);
    let (file, _) = write_valid(&config, &[titre(&offline, 1), titre(&online, 2)]);
    let contents = pj_contents(&file.bytes);
    assert_eq!(contents.len(), 2);
    let mut seen = Vec::new();
    for (_, facture) in &contents {
        assert_valid(&schemas::pes_aller(), "asap.xml", facture);
        let f = tree::parse(facture, LIMIT).unwrap();
        let pf = find(&f.root, &["PES_Facture"]);
        let suppl = find(pf, &["Emetteur", "InfoSuppl"]);
        let indiv = pf.child("FactureIndiv").unwrap();
        assert_eq!(indiv.value_of("ModeRecouvrement"), Some("1"), "talon");
        assert_eq!(
            suppl.value_of("RefBdf"),
            Some("940033"),
            "talon: numéro émetteur"
        );
        assert!(find(indiv, &["Debiteur"]).child("CpteBancaire").is_none());
        seen.push(suppl.value_of("CodeTipi").map(str::to_string));
    }
    assert_eq!(
        seen,
        [None, Some("008112".to_string())],
        "CodeTipi only when payable online"
    );
}

#[test]
fn tip_and_online_mode_prints_the_payfip_identifier_for_online_invoices() {
    let config = config_with_asap(BordereauKind::Ordinaire, AsapMode::TipAndOnline);
    let mut offline = invoice(13, PaymentMode::Autre);
    offline.online_payable = false;
    let online = invoice(14, PaymentMode::Tipi);
    let tip = invoice(15, PaymentMode::Tip);
    let (file, tree) = write_valid(
        &config,
        &[titre(&offline, 1), titre(&online, 2), titre(&tip, 3)],
    );
    let editions: Vec<_> = pieces(&tree)
        .iter()
        .map(|p| {
            p.child("BlocPiece")
                .unwrap()
                .value_of("Edition")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        editions,
        [None, Some("01".to_string()), Some("01".to_string())]
    );
    let asap: Vec<(Option<String>, Option<String>)> = pj_contents(&file.bytes)
        .iter()
        .map(|(_, facture)| {
            assert_valid(&schemas::pes_aller(), "asap.xml", facture);
            let f = tree::parse(facture, LIMIT).unwrap();
            let pf = find(&f.root, &["PES_Facture"]);
            (
                find(pf, &["Emetteur", "InfoSuppl"])
                    .value_of("CodeTipi")
                    .map(str::to_string),
                pf.child("FactureIndiv")
                    .unwrap()
                    .value_of("ModeRecouvrement")
                    .map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        asap,
        [
            (Some("008112".to_string()), Some("1".to_string())),
            (Some("008112".to_string()), Some("0".to_string())),
        ]
    );
}

#[test]
fn ormc_asap_is_the_commune_pdf() {
    let config = config_with_asap(BordereauKind::Ormc, AsapMode::TipOnly);
    let inv = invoice(11, PaymentMode::Tip);
    let pdf = b"%PDF-1.4 invoice".to_vec();
    let without = check_titre(&bordereau(&config, &budget(), 42), &titre(&inv, 1)).unwrap_err();
    assert_eq!(without.field, "asap_pdf");
    let t = Titre {
        asap_pdf: Some(&pdf),
        ..titre(&inv, 1)
    };
    let (file, tree) = write_valid(&config, &[t]);
    let bp = pieces(&tree)[0].child("BlocPiece").unwrap();
    assert_eq!(bp.value_of("Edition"), Some("06"));
    assert_eq!(bp.child("PJRef").unwrap().value_of("TypePJ"), Some("010"));
    assert_eq!(
        pj_contents(&file.bytes),
        [("application/pdf".to_string(), pdf)]
    );
}

#[test]
fn encodings_and_accents() {
    let mut config = config(BordereauKind::Ordinaire);
    config.text_style = TextStyle::Preserve;
    let mut inv = invoice(12, PaymentMode::Autre);
    inv.payer.last_name = "Lefèvre-Œuvray".into();
    for encoding in [OutputEncoding::Iso88591, OutputEncoding::Utf8] {
        config.output_encoding = encoding;
        let (file, tree) = write_valid(&config, &[titre(&inv, 1)]);
        let head = String::from_utf8_lossy(&file.bytes[..60]).into_owned();
        assert!(head.contains(encoding.xml_name()), "{head}");
        let tiers = find(pieces(&tree)[0], &["LigneDePiece", "Tiers", "InfoTiers"]);
        // 'Œ' is outside Latin-1: a character reference in ISO-8859-1, read back the same.
        assert_eq!(tiers.value_of("Nom"), Some("Lefèvre-Œuvray"));
        assert_eq!(tiers.value_of("Prenom"), Some("Marie"));
    }
}

#[test]
fn identical_input_gives_identical_bytes_streamed_or_not() {
    let config = config_with_asap(BordereauKind::Ordinaire, AsapMode::All);
    let invoices: Vec<_> = (1..=30)
        .map(|n| {
            invoice(
                n,
                [
                    PaymentMode::Prelevement,
                    PaymentMode::Tip,
                    PaymentMode::Tipi,
                ][n as usize % 3],
            )
        })
        .collect();
    let titres: Vec<Titre<'_>> = invoices.iter().zip(1..).map(|(i, n)| titre(i, n)).collect();
    let budget = budget();
    let b = bordereau(&config, &budget, 7);
    let first = pes_aller_bytes(&b, &titres).unwrap();
    let second = pes_aller_bytes(&b, &titres).unwrap();
    assert_eq!(first, second);
    // A generator that makes each titre on the fly gives the same bytes.
    let generated = (1..=30u32).map(|n| OwnedTitre {
        invoice: invoice(
            n,
            [
                PaymentMode::Prelevement,
                PaymentMode::Tip,
                PaymentMode::Tipi,
            ][n as usize % 3],
        ),
        id_pce: n,
        sequence: None,
        asap_pdf: None,
    });
    let (streamed, summary) = write_pes_aller(Vec::new(), &b, generated).unwrap();
    assert_eq!(streamed, first.bytes);
    assert_eq!(summary, first.summary);
    assert_valid(&schemas::pes_aller(), "big.xml", &first.bytes);
    // A different number gives a different file name and content.
    let other = pes_aller_bytes(&bordereau(&config, &budget, 8), &titres).unwrap();
    assert_ne!(other.summary.file_name, first.summary.file_name);
}

fn rule_error(
    config: &encaisse_helios::config::HeliosTenantConfig,
    t: Titre<'_>,
) -> aller::InvoiceError {
    let budget = budget();
    check_titre(&bordereau(config, &budget, 42), &t).unwrap_err()
}

#[test]
fn business_rules_name_invoice_field_and_rule() {
    let ordinaire = config(BordereauKind::Ordinaire);
    let mut inv = invoice(20, PaymentMode::Autre);
    inv.lines[1].amount = Money::from_cents(-5000).unwrap();
    inv.total = money("-4.70");
    let e = rule_error(&ordinaire, titre(&inv, 1));
    assert_eq!(
        (e.invoice.as_str(), e.field.as_str()),
        ("test/2024/F2024000020", "lines")
    );
    assert!(e.rule.contains("FactureOrigine"), "{}", e.rule);

    let mut inv = invoice(21, PaymentMode::Autre);
    inv.total = money("57.31");
    assert_eq!(rule_error(&ordinaire, titre(&inv, 1)).field, "total");

    let mut inv = invoice(22, PaymentMode::Autre);
    for l in &mut inv.lines {
        l.amount = Money::ZERO;
    }
    inv.total = Money::ZERO;
    assert_eq!(rule_error(&ordinaire, titre(&inv, 1)).field, "lines");

    // A free line is skipped, the others are numbered from 1.
    let mut inv = invoice(23, PaymentMode::Autre);
    inv.lines[0].amount = Money::ZERO;
    inv.total = money("12.00");
    let (_, tree) = write_valid(&ordinaire, &[titre(&inv, 1)]);
    let only = find(
        pieces(&tree)[0],
        &["LigneDePiece", "BlocLignePiece", "InfoLignePiece"],
    );
    assert_eq!(
        (only.value_of("IdLigne"), only.value_of("MtHT")),
        (Some("1"), Some("12.00"))
    );

    let mut inv = invoice(24, PaymentMode::Autre);
    inv.invoice.exercice = 2023;
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "invoice.exercice"
    );

    let mut inv = invoice(25, PaymentMode::Autre);
    inv.payer.address.postal_code = "9400".into();
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "payer.address.postal_code"
    );

    let mut inv = invoice(26, PaymentMode::Autre);
    inv.payer.first_name = " . ".into();
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "payer.first_name"
    );

    let inv = invoice(27, PaymentMode::Tip);
    let e = rule_error(&ordinaire, titre(&inv, 1));
    assert_eq!(
        e.field, "payment_mode",
        "TIP without DGFiP-printed ASAP is refused: {e}"
    );

    let mut inv = invoice(28, PaymentMode::Prelevement);
    inv.mandate.as_mut().unwrap().sequence = None;
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "mandate.sequence"
    );

    let mut inv = invoice(29, PaymentMode::Prelevement);
    inv.due_date = date(2024, 10, 5);
    assert_eq!(rule_error(&ordinaire, titre(&inv, 1)).field, "due_date");

    let mut inv = invoice(30, PaymentMode::Prelevement);
    inv.mandate.as_mut().unwrap().signed_on = date(2024, 11, 1);
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "mandate.signed_on"
    );

    let mut inv = invoice(31, PaymentMode::Autre);
    inv.lines[0].cod_prod_loc = "RS-1".into();
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 1)).field,
        "lines[0].cod_prod_loc"
    );

    let inv = invoice(32, PaymentMode::Autre);
    assert_eq!(rule_error(&ordinaire, titre(&inv, 0)).field, "IdPce");
    assert_eq!(
        rule_error(&ordinaire, titre(&inv, 100_000_000)).field,
        "IdPce"
    );

    let mut ormc = config(BordereauKind::Ormc);
    let mut inv = invoice(33, PaymentMode::Autre);
    inv.invoice.number = "AVOIR".into();
    assert_eq!(rule_error(&ormc, titre(&inv, 1)).field, "invoice.number");
    ormc.ormc.num_dette = NumDetteRule::ExerciceAndPiece;
    assert!(check_titre(&bordereau(&ormc, &budget(), 42), &titre(&inv, 1)).is_ok());
}

#[test]
fn bordereau_rules() {
    let config = config(BordereauKind::Ordinaire);
    let budget = budget();
    let a = invoice(40, PaymentMode::Autre);
    let b = invoice(41, PaymentMode::Autre);
    let err = pes_aller_bytes(
        &bordereau(&config, &budget, 42),
        &[titre(&a, 5), titre(&b, 5)],
    )
    .unwrap_err();
    assert!(
        matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("IdPce 5")),
        "{err}"
    );
    let err = pes_aller_bytes(
        &bordereau(&config, &budget, 42),
        &[titre(&a, 5), titre(&a, 6)],
    )
    .unwrap_err();
    assert!(
        matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("invoice test/2024/F2024000040 appears twice")),
        "{err}"
    );
    let err = pes_aller_bytes(&bordereau(&config, &budget, 0), &[titre(&a, 5)]).unwrap_err();
    assert!(matches!(err, WriteError::Bordereau { .. }), "{err}");
    let err = pes_aller_bytes::<Titre<'_>>(&bordereau(&config, &budget, 1), &[]).unwrap_err();
    assert!(
        matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("NbrPce")),
        "{err}"
    );
    let mut late = bordereau(&config, &budget, 1);
    late.date = date(2026, 1, 10);
    let err = pes_aller_bytes(&late, &[titre(&a, 5)]).unwrap_err();
    assert!(
        matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("exercice")),
        "{err}"
    );
    // A bad invoice inside the bordereau stops it with the invoice's error.
    let mut bad = invoice(42, PaymentMode::Autre);
    bad.payer.address.city = String::new();
    let err = pes_aller_bytes(
        &bordereau(&config, &budget, 1),
        &[titre(&a, 1), titre(&bad, 2)],
    )
    .unwrap_err();
    assert!(
        matches!(err, WriteError::Invoice(ref e) if e.field == "payer.address.city"),
        "{err}"
    );
    assert_eq!(err.class(), encaisse_helios::ErrorClass::Permanent);
}

#[test]
fn ormc_period_rules() {
    let mut config = config(BordereauKind::Ormc);
    let mut inv = invoice(50, PaymentMode::Autre);
    inv.period = 11;
    inv.invoice.number = "2024000123".into();
    let budget = budget();
    let per = |config: &encaisse_helios::config::HeliosTenantConfig,
               inv: &encaisse_schemas::events::InvoiceIssued| {
        let file = pes_aller_bytes(&bordereau(config, &budget, 42), &[titre(inv, 1)]).unwrap();
        assert_valid(&schemas::pes_aller(), "period.xml", &file.bytes);
        let tree = tree::parse(&file.bytes, LIMIT).unwrap();
        pieces(&tree)[0]
            .child("BlocPiece")
            .unwrap()
            .value_of("Per")
            .map(str::to_string)
    };
    config.ormc.period_rule = PeriodRule::MonthFirstDigit;
    assert_eq!(per(&config, &inv).as_deref(), Some("1"));
    config.ormc.period_rule = PeriodRule::MonthLastDigit;
    assert_eq!(per(&config, &inv).as_deref(), Some("1"));
    inv.period = 10;
    assert_eq!(per(&config, &inv).as_deref(), Some("0"));
    config.ormc.period_rule = PeriodRule::Fixed;
    config.ormc.fixed_period = 7;
    assert_eq!(per(&config, &inv).as_deref(), Some("7"));
}

#[test]
#[ignore = "writes sample files to $HELIOS_DUMP_DIR for eyeballing"]
fn dump_samples() {
    let dir = std::path::PathBuf::from(std::env::var("HELIOS_DUMP_DIR").unwrap());
    let config = config_with_asap(BordereauKind::Ordinaire, AsapMode::TipOnly);
    let tip = invoice(7, PaymentMode::Tip);
    let debit = invoice(8, PaymentMode::Prelevement);
    let budget = budget();
    let file = pes_aller_bytes(
        &bordereau(&config, &budget, 42),
        &[titre(&tip, 10), titre(&debit, 11)],
    )
    .unwrap();
    std::fs::write(dir.join(&file.summary.file_name), &file.bytes).unwrap();
    for (i, (_, c)) in pj_contents(&file.bytes).iter().enumerate() {
        std::fs::write(dir.join(format!("pj{i}.xml")), c).unwrap();
    }
}

/// A run larger than `max_pieces_per_bordereau`: consecutive bordereaux in one file, each
/// with its own `NbrPce` and `MtBordHt`, valid against the XSD, named after the first.
#[test]
fn split_file_holds_consecutive_bordereaux() {
    for kind in [BordereauKind::Ordinaire, BordereauKind::Ormc] {
        let mut config = config(kind);
        config.max_pieces_per_bordereau = 2;
        let budget = budget();
        let invoices: Vec<_> = (1..=5)
            .map(|n| invoice(60 + n, PaymentMode::Prelevement))
            .collect();
        let titres: Vec<Titre<'_>> = invoices
            .iter()
            .zip(1..)
            .map(|(inv, id)| titre(inv, id))
            .collect();
        let split: Vec<(aller::Bordereau<'_>, &[Titre<'_>])> = titres
            .chunks(2)
            .zip(7..)
            .map(|(chunk, id_bord)| (bordereau(&config, &budget, id_bord), chunk))
            .collect();
        let file = aller::pes_aller_split_bytes(&split).unwrap_or_else(|e| panic!("{e}"));
        assert_valid(&schemas::pes_aller(), &file.summary.file_name, &file.bytes);
        let report = check_pes_aller(&file.bytes, LIMIT).unwrap();
        assert!(report.is_valid(), "{:#?}", report.findings);
        assert!(
            file.summary.file_name.ends_with("_0000007.xml"),
            "{}",
            file.summary.file_name
        );
        assert_eq!(file.summary.pieces, 5);
        let per: Vec<(u32, usize)> = file
            .summary
            .bordereaux
            .iter()
            .map(|b| (b.id_bord, b.pieces))
            .collect();
        assert_eq!(per, [(7, 2), (8, 2), (9, 1)]);
        let parsed = tree::parse(&file.bytes, LIMIT).unwrap();
        let recette = find(&parsed.root, &["PES_RecetteAller"]);
        let written: Vec<(String, String, usize)> = recette
            .children_named("Bordereau")
            .map(|b| {
                let bloc = find(b, &["BlocBordereau"]);
                (
                    bloc.value_of("IdBord").unwrap().to_string(),
                    bloc.value_of("NbrPce").unwrap().to_string(),
                    b.children_named("Piece").count(),
                )
            })
            .collect();
        assert_eq!(
            written,
            [
                ("7".to_string(), "2".to_string(), 2),
                ("8".to_string(), "2".to_string(), 2),
                ("9".to_string(), "1".to_string(), 1)
            ]
        );
        let sum: Money = Money::sum(file.summary.bordereaux.iter().map(|b| &b.total)).unwrap();
        assert_eq!(sum, file.summary.total);

        // The configured limit holds per bordereau, and numbers must increase.
        let err = aller::pes_aller_split_bytes(&[(bordereau(&config, &budget, 1), &titres[..3])])
            .unwrap_err();
        assert!(
            matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("at most 2")),
            "{err}"
        );
        let err = aller::pes_aller_split_bytes(&[
            (bordereau(&config, &budget, 3), &titres[..2]),
            (bordereau(&config, &budget, 3), &titres[2..4]),
        ])
        .unwrap_err();
        assert!(
            matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("increasing")),
            "{err}"
        );
        // IdPce and invoices are unique across the bordereaux of a file.
        let twice = [titre(&invoices[0], 1), titre(&invoices[1], 2)];
        let again = [titre(&invoices[0], 3)];
        let err = aller::pes_aller_split_bytes(&[
            (bordereau(&config, &budget, 1), &twice[..]),
            (bordereau(&config, &budget, 2), &again[..]),
        ])
        .unwrap_err();
        assert!(
            matches!(err, WriteError::Bordereau { ref rule, .. } if rule.contains("appears twice")),
            "{err}"
        );
    }
}

/// The shape the stage keeps: written lines (a free line skipped) and the ORMC keys.
#[test]
fn titre_shape_names_written_lines() {
    let config = config(BordereauKind::Ormc);
    let budget = budget();
    let mut inv = invoice(70, PaymentMode::Autre);
    let mut free = inv.lines[0].clone();
    free.number = 3;
    free.amount = Money::from_cents(0).unwrap();
    inv.lines.insert(0, free);
    let shape = aller::titre_shape(&bordereau(&config, &budget, 4), &titre(&inv, 9)).unwrap();
    let lines: Vec<(u32, u32)> = shape
        .lines
        .iter()
        .map(|l| (l.id_ligne, l.invoice_line))
        .collect();
    assert_eq!(lines, [(1, 1), (2, 2)]);
    assert_eq!(shape.total, inv.total);
    let keys = shape.ormc.unwrap();
    assert_eq!(keys.num_dette, "2024000070");
    let ordinaire = common::config(BordereauKind::Ordinaire);
    let shape = aller::titre_shape(&bordereau(&ordinaire, &budget, 4), &titre(&inv, 9)).unwrap();
    assert!(shape.ormc.is_none());
}

/// The `MtHT` of every line of a pièce, and its `MtPrel` when it has one.
fn line_amounts(piece: &Element) -> Vec<(String, Option<String>)> {
    piece
        .children_named("LigneDePiece")
        .map(|l| {
            let bloc = find(l, &["BlocLignePiece"]);
            (
                find(bloc, &["InfoLignePiece"])
                    .value_of("MtHT")
                    .unwrap()
                    .to_string(),
                bloc.child("InfoPrelevementSEPA")
                    .and_then(|p| p.value_of("MtPrel"))
                    .map(str::to_string),
            )
        })
        .collect()
}

/// An invoice with a cantine line (45.30), an accueil du soir line (12.00) and `reductions`
/// (imputation of line `of`, amount) after them.
fn reduced(n: u32, mode: PaymentMode, reductions: &[(usize, &str)]) -> InvoiceIssued {
    let mut inv = invoice(n, mode);
    for (of, amount) in reductions {
        let mut line = inv.lines[*of].clone();
        line.number = u32::try_from(inv.lines.len() + 1).unwrap();
        line.label = "Réduction quotient familial".into();
        line.quantity = rust_decimal::Decimal::ONE;
        line.unit_price = money(amount);
        line.amount = money(amount);
        inv.lines.push(line);
    }
    inv.total = Money::sum(inv.lines.iter().map(|l| &l.amount)).unwrap();
    inv
}

#[test]
fn reductions_are_netted_into_the_titre_for_the_invoice_total() {
    // Cantine 45.30 − 1.50 (its own imputation); accueil du soir 12.00 − 15.00: the 3.00 the
    // soir line cannot absorb comes off the largest remaining line (the cantine).
    let own = reduced(30, PaymentMode::Tipi, &[(0, "-1.50")]);
    let spill = reduced(31, PaymentMode::Prelevement, &[(1, "-15.00"), (0, "-1.50")]);
    assert_eq!((own.total, spill.total), (money("55.80"), money("40.80")));
    for kind in [BordereauKind::Ordinaire, BordereauKind::Ormc] {
        // ORMC: the ASAP is the commune's PDF, nothing of it is computed here.
        let config = match kind {
            BordereauKind::Ordinaire => config_with_asap(kind, AsapMode::All),
            BordereauKind::Ormc => config(kind),
        };
        let (file, tree) = write_valid(&config, &[titre(&own, 1), titre(&spill, 2)]);
        assert_eq!(file.summary.total, money("96.60"), "{kind:?}");
        let ps = pieces(&tree);
        assert_eq!(
            line_amounts(ps[0]),
            [("43.80".into(), None), ("12.00".into(), None)],
            "{kind:?}"
        );
        assert_eq!(
            line_amounts(ps[1]),
            [("40.80".into(), Some("40.80".into()))],
            "{kind:?}: the soir line netted to zero is not written; MtPrel = MtHT"
        );
        let bloc = find(
            &tree.root,
            &["PES_RecetteAller", "Bordereau", "BlocBordereau"],
        );
        assert_eq!(bloc.value_of("MtBordHt"), Some("96.60"));
        if kind == BordereauKind::Ordinaire {
            // The ASAP the family receives says the same total, line by line.
            for (_, facture) in pj_contents(&file.bytes) {
                assert_valid(&schemas::pes_aller(), "asap.xml", &facture);
                let f = tree::parse(&facture, LIMIT).unwrap();
                let indiv = find(&f.root, &["PES_Facture", "FactureIndiv"]);
                let total = find(indiv, &["TotalAPayer"]).value_of("MtTotalTTC");
                let lines: Vec<Money> = indiv
                    .children_named("LigneFacture")
                    .map(|l| money(l.value_of("MtTTC").unwrap()))
                    .collect();
                let sum = Money::sum(lines.iter()).unwrap();
                assert!(
                    total == Some("55.80") || total == Some("40.80"),
                    "{total:?}"
                );
                assert_eq!(Some(sum.to_dot_string().as_str()), total);
            }
        }
    }
    // What the ledger keeps: the written lines, their net amounts and invoice lines.
    let config = config(BordereauKind::Ordinaire);
    let budget = budget();
    let shape = aller::titre_shape(&bordereau(&config, &budget, 4), &titre(&spill, 9)).unwrap();
    let lines: Vec<(u32, u32, Money)> = shape
        .lines
        .iter()
        .map(|l| (l.id_ligne, l.invoice_line, l.amount))
        .collect();
    assert_eq!(lines, [(1, 1, money("40.80"))]);
    assert_eq!(shape.total, spill.total);
}

/// The original titre of `invoice(40)` as written: cantine 45.30 (line 1), soir 12.00 (2).
fn original_lines(remaining: [&str; 2]) -> Vec<reduction::OriginalLine> {
    [(1, "RS01", remaining[0]), (2, "PS01", remaining[1])]
        .into_iter()
        .map(|(id_ligne, cod, left)| reduction::OriginalLine {
            id_ligne,
            cod_prod_loc: cod.into(),
            nature: "7067".into(),
            fonction: Some("251".into()),
            remaining: money(left),
        })
        .collect()
}

/// A credit note of `invoice(n)`'s debtor with `lines` (product code, amount).
fn credit_note(n: u32, lines: &[(&str, &str)]) -> InvoiceIssued {
    let mut note = invoice(n, PaymentMode::Autre);
    note.invoice.number = format!("AV2024{n:06}");
    note.lines = lines
        .iter()
        .zip(1..)
        .map(|((cod, amount), number)| {
            let mut l = common::line(number, "CANTINE", cod, "Absences justifiées", 1, amount);
            l.amount = money(amount);
            l
        })
        .collect();
    note.total = Money::sum(note.lines.iter().map(|l| &l.amount)).unwrap();
    note
}

#[test]
fn a_credit_note_is_allocated_to_the_lines_it_reduces_never_beyond_them() {
    let original = original_lines(["45.30", "12.00"]);
    // On the cantine: taken from the cantine line.
    let partial = credit_note(41, &[("RS01", "-6.04")]);
    let lines = reduction::allocate(&partial, &original).unwrap();
    let got: Vec<(u32, u32, Money)> = lines
        .iter()
        .map(|l| (l.id_ligne, l.id_ligne_orig, l.amount))
        .collect();
    assert_eq!(got, [(1, 1, money("6.04"))]);
    assert_eq!(lines[0].label, "Absences justifiées");
    // The whole invoice: every line, in the original's order.
    let full = credit_note(42, &[("PS01", "-12.00"), ("RS01", "-45.30")]);
    let got: Vec<(u32, u32, Money)> = reduction::allocate(&full, &original)
        .unwrap()
        .iter()
        .map(|l| (l.id_ligne, l.id_ligne_orig, l.amount))
        .collect();
    assert_eq!(got, [(1, 1, money("45.30")), (2, 2, money("12.00"))]);
    // More on the soir than the soir line holds: the rest from the cantine.
    let spill = credit_note(43, &[("PS01", "-15.00")]);
    let got: Vec<(u32, Money)> = reduction::allocate(&spill, &original)
        .unwrap()
        .iter()
        .map(|l| (l.id_ligne_orig, l.amount))
        .collect();
    assert_eq!(got, [(1, money("3.00")), (2, money("12.00"))]);
    // After an earlier credit note only 10.00 remain: 10.01 is refused.
    let left = original_lines(["0.00", "10.00"]);
    let too_much = credit_note(44, &[("RS01", "-10.01")]);
    assert_eq!(
        reduction::allocate(&too_much, &left),
        Err(reduction::ReductionError::ExceedsRemaining {
            asked: money("10.01"),
            remaining: money("10.00"),
        })
    );
    let nothing = credit_note(45, &[("RS01", "1.00")]);
    assert!(matches!(
        reduction::allocate(&nothing, &original),
        Err(reduction::ReductionError::NothingCredited { .. })
    ));
}

#[test]
fn reduction_titres_are_a_valid_type_02_bordereau_tied_to_their_originals() {
    let config = config(BordereauKind::Ormc);
    let budget = budget();
    let original = original_lines(["45.30", "12.00"]);
    let partial = credit_note(41, &[("RS01", "-6.04")]);
    let full = credit_note(42, &[("PS01", "-12.00"), ("RS01", "-45.30")]);
    let partial_lines = reduction::allocate(&partial, &original).unwrap();
    let full_lines = reduction::allocate(&full, &original_lines(["45.30", "12.00"])).unwrap();
    let titres = [
        reduction::ReductionTitre {
            credit_note: &partial,
            id_pce: 31,
            original_id_pce: 7,
            original_number: "F2024000040",
            lines: &partial_lines,
        },
        reduction::ReductionTitre {
            credit_note: &full,
            id_pce: 32,
            original_id_pce: 8,
            original_number: "F2024000039",
            lines: &full_lines,
        },
    ];
    let b = bordereau(&config, &budget, 3);
    let file = reduction::pes_reduction_bytes(&b, &titres).unwrap();
    assert_eq!(
        file.summary.file_name, "PESALR1_21940000000017_2024_02_0000003.xml",
        "not the name of ordinary bordereau 3"
    );
    assert_valid(&schemas::pes_aller(), &file.summary.file_name, &file.bytes);
    let report = check_pes_aller(&file.bytes, LIMIT).unwrap();
    assert!(report.is_valid(), "{:#?}", report.findings);
    let tree = tree::parse(&file.bytes, LIMIT).unwrap();
    let head = find(&tree.root, &["Enveloppe", "Parametres"]);
    assert_eq!(head.value_of("TypFic"), Some("PESALR1"), "a recette file");
    let bloc = find(
        &tree.root,
        &["PES_RecetteAller", "Bordereau", "BlocBordereau"],
    );
    assert_eq!(
        (
            bloc.value_of("TypBord"),
            bloc.value_of("IdBord"),
            bloc.value_of("NbrPce"),
            bloc.value_of("MtBordHt")
        ),
        (Some("02"), Some("3"), Some("2"), Some("63.34"))
    );
    let ps = pieces(&tree);
    let mut links = Vec::new();
    for p in &ps {
        let bp = p.child("BlocPiece").unwrap();
        assert_eq!(
            (bp.value_of("TypPce"), bp.value_of("NatPce")),
            (Some("02"), Some("06"))
        );
        for l in p.children_named("LigneDePiece") {
            let r = find(l, &["BlocLignePiece", "RattachPiece"]);
            links.push((
                bp.value_of("IdPce").unwrap().to_string(),
                find(l, &["BlocLignePiece", "InfoLignePiece"])
                    .value_of("MtHT")
                    .unwrap()
                    .to_string(),
                r.value_of("NatPceOrig").unwrap().to_string(),
                r.value_of("ExerRat").unwrap().to_string(),
                r.value_of("IdPceOrig").unwrap().to_string(),
                r.value_of("IdLigneOrig").unwrap().to_string(),
            ));
        }
    }
    let s = |v: [&str; 6]| v.map(str::to_string);
    let expected: Vec<_> = [
        s(["31", "6.04", "01", "2024", "7", "1"]),
        s(["32", "45.30", "01", "2024", "8", "1"]),
        s(["32", "12.00", "01", "2024", "8", "2"]),
    ]
    .into_iter()
    .map(|[a, b, c, d, e, f]| (a, b, c, d, e, f))
    .collect();
    assert_eq!(links, expected);
}
