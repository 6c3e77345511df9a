//! REGLEMENTS rows and bytes for every event kind (spec polyfac.md §2).

mod common;

use chrono::{DateTime, FixedOffset, NaiveDate};
use common::tenant;
use encaisse_polyfac::SourceMapping;
use encaisse_polyfac::config::{LineEnding, SourceEncoding};
use encaisse_polyfac::reglements::{
    COLUMNS, OriginalPayment, ReglementsFormat, RowContext, StatusEvent, Statut, file_name,
    reglement_row,
};
use encaisse_schemas::{
    Channel, InvoiceRef, Money, PayfipFailure, PaymentFailed, PaymentReceived, PaymentRejected,
    PaymentReversed, PaymentSource, TitreAccepted, TitreRef, TitreRejected, TitreSource,
};

fn invoice() -> InvoiceRef {
    InvoiceRef {
        tenant: tenant(),
        exercice: 2026,
        number: "F2026-000101".into(),
    }
}

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

fn eur(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn ctx() -> RowContext {
    RowContext {
        family_code: "FAM000123".into(),
        invoice_total: Some(eur("62,95")),
        reversed_payment: None,
        credit_note_of: None,
    }
}

fn titre() -> TitreRef {
    TitreRef {
        budget: "principal".into(),
        exercice: 2026,
        bordereau_type: "01".into(),
        id_bord: 12,
        id_pce: 345,
    }
}

/// The row's bytes in the default (Polyfac) dialect, as text.
fn line(event: StatusEvent<'_>, ctx: &RowContext) -> Vec<u8> {
    ReglementsFormat::default().rows(&[reglement_row(event, ctx)])
}

fn received() -> PaymentReceived {
    PaymentReceived {
        schema_version: 1,
        invoice: invoice(),
        payment_id: "payfip:OP123".into(),
        amount: eur("62,95"),
        channel: Channel::Cb,
        source: PaymentSource::Payfip,
        // 23:30 UTC on 31 January is 1 February in Paris.
        paid_at: at("2026-01-31T23:30:00Z"),
        reference: "123456".into(),
        commission: Some(eur("0,05")),
    }
}

#[test]
fn payment_received_is_paye_with_fees_and_paris_date() {
    assert_eq!(
        line(StatusEvent::Received(&received()), &ctx()),
        b"F2026-000101;FAM000123;01/02/2026;62,95;CB;PAYE;123456;;0,05\r\n"
    );
    let mut helios = received();
    helios.channel = Channel::Guichet;
    helios.commission = None;
    helios.paid_at = at("2026-03-02T10:00:00+01:00");
    assert_eq!(
        line(StatusEvent::Received(&helios), &ctx()),
        b"F2026-000101;FAM000123;02/03/2026;62,95;GUICHET;PAYE;123456;;\r\n"
    );
}

#[test]
fn payment_failed_is_rejete_with_the_payfip_result() {
    let mut failed = PaymentFailed {
        schema_version: 1,
        invoice: invoice(),
        payment_id: "payfip:OP124".into(),
        result: PayfipFailure::R,
        amount: eur("62,95"),
        failed_at: at("2026-02-03T12:00:00+01:00"),
        reason: "Paiement refusé".into(),
    };
    let mut expected =
        b"F2026-000101;FAM000123;03/02/2026;62,95;CB;REJETE;OP124;R Paiement refus".to_vec();
    expected.extend_from_slice(b"\xe9;\r\n"); // é in Windows-1252
    assert_eq!(line(StatusEvent::Failed(&failed), &ctx()), expected);
    for (result, canal) in [
        (PayfipFailure::Z, "PRELEVEMENT_UNIQUE"),
        (PayfipFailure::A, "AUTRE"),
        (PayfipFailure::Expired, "AUTRE"),
    ] {
        failed.result = result;
        let row = reglement_row(StatusEvent::Failed(&failed), &ctx());
        assert_eq!((row.canal, row.statut), (Some(canal), Statut::Rejete));
    }
}

/// A direct debit of the invoice rejected by the bank with `code` and `text`.
fn rejected_debit(code: &str, text: &str) -> PaymentRejected {
    PaymentRejected {
        schema_version: 1,
        invoice: invoice(),
        payment_id: "sepa:F2026-000101-1".into(),
        end_to_end_id: "F2026-000101-1".into(),
        amount: eur("62,95"),
        reason_code: code.into(),
        reason_text: text.into(),
        rejected_at: at("2026-02-12T09:00:00+01:00"),
        will_represent: true,
        file: None,
    }
}

#[test]
fn payment_rejected_is_a_rejected_debit() {
    let rejected = rejected_debit("AM04", "Provision insuffisante");
    assert_eq!(
        line(StatusEvent::Rejected(&rejected), &ctx()),
        b"F2026-000101;FAM000123;12/02/2026;62,95;PRELEVEMENT;REJETE;F2026-000101-1;AM04 Provision insuffisante;\r\n"
    );
}

#[test]
fn payment_reversed_is_annule_with_the_original_reference() {
    let reversed = PaymentReversed {
        schema_version: 1,
        invoice: invoice(),
        payment_id: "helios:2026/12/345/1/1".into(),
        amount: eur("62,95"),
        reversed_at: at("2026-02-20T09:00:00+01:00"),
        reason: "Émargement annulé".into(),
    };
    let mut with_original = ctx();
    with_original.reversed_payment = Some(OriginalPayment {
        channel: Channel::Prelevement,
        reference: "2026/01/12/345".into(),
    });
    let row = reglement_row(StatusEvent::Reversed(&reversed), &with_original);
    assert_eq!(
        (row.canal, row.statut, row.reference.as_str()),
        (Some("PRELEVEMENT"), Statut::Annule, "2026/01/12/345")
    );
    assert_eq!(row.motif, "Émargement annulé");
    let row = reglement_row(StatusEvent::Reversed(&reversed), &ctx());
    assert_eq!(
        (row.canal, row.reference.as_str()),
        (Some("GUICHET"), "2026/12/345/1/1")
    );
}

#[test]
fn titre_events_carry_the_pes_reference() {
    let accepted = TitreAccepted {
        schema_version: 1,
        invoice: invoice(),
        titre: titre(),
        source: TitreSource::Retour,
        accepted_at: at("2026-02-05T08:00:00+01:00"),
        file: "PES_Retour.xml".into(),
    };
    assert_eq!(
        line(StatusEvent::TitreAccepted(&accepted), &ctx()),
        b"F2026-000101;FAM000123;05/02/2026;62,95;;TITRE_PRIS_EN_CHARGE;2026/01/12/345;;\r\n"
    );
    let rejected = TitreRejected {
        schema_version: 1,
        invoice: invoice(),
        titre: Some(titre()),
        source: TitreSource::Acquit,
        code: "12".into(),
        text: "Débiteur inconnu; adresse \"incomplète\"\nà revoir".into(),
        rejected_at: at("2026-02-05T08:00:00+01:00"),
        file: "PES_ACQUIT.xml".into(),
    };
    let no_total = RowContext {
        invoice_total: None,
        ..ctx()
    };
    let bytes = line(StatusEvent::TitreRejected(&rejected), &no_total);
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert_eq!(
        text,
        "F2026-000101;FAM000123;05/02/2026;;;TITRE_REJETE;2026/01/12/345;\"12 Débiteur inconnu; adresse \"\"incomplète\"\" à revoir\";\r\n"
    );
}

#[test]
fn header_file_and_name() {
    let format = ReglementsFormat::default();
    assert_eq!(
        format.header(),
        b"NumFacture;CodeFamille;DateEvenement;Montant;Canal;Statut;Reference;Motif;Frais\r\n"
    );
    assert_eq!(COLUMNS.len(), 9);
    let row = reglement_row(StatusEvent::Received(&received()), &ctx());
    let file = format.file(&[row.clone(), row]);
    assert_eq!(
        file.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        3
    );
    assert!(file.starts_with(&format.header()));
    assert_eq!(
        file_name(&tenant(), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(), 2),
        "REGLEMENTS_vitry_20260201_002.csv"
    );
}

#[test]
fn a_utf8_source_gets_its_own_dialect_back() {
    let mut mapping = SourceMapping::polyfac_default();
    mapping.encoding = SourceEncoding::Utf8;
    mapping.separator = ',';
    mapping.decimal_separator = '.';
    mapping.date_format = "%Y-%m-%d".into();
    mapping.line_ending = LineEnding::Lf;
    let format = ReglementsFormat::from_mapping(&mapping);
    let mut event = received();
    event.reference = "réf 1,2".into();
    let bytes = format.rows(&[reglement_row(StatusEvent::Received(&event), &ctx())]);
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "F2026-000101,FAM000123,2026-02-01,62.95,CB,PAYE,\"réf 1,2\",,0.05\n"
    );
}

#[test]
fn characters_outside_windows_1252_become_question_marks() {
    let mut event = received();
    event.reference = "Ref→1 €".into();
    let bytes = line(StatusEvent::Received(&event), &ctx());
    assert!(
        bytes.windows(7).any(|w| w == b"Ref?1 \x80"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn credit_note_events_are_titre_reduit_or_avoir_rejete() {
    let avoir = RowContext {
        invoice_total: Some(eur("6,20")),
        credit_note_of: Some("F2026-000101".into()),
        ..ctx()
    };
    let mut note = invoice();
    note.number = "A2026-000007".into();
    let reduction = TitreRef {
        bordereau_type: "02".into(),
        id_bord: 3,
        id_pce: 412,
        ..titre()
    };
    let accepted = TitreAccepted {
        schema_version: 1,
        invoice: note.clone(),
        titre: reduction.clone(),
        source: TitreSource::Retour,
        accepted_at: at("2026-03-30T08:00:00+02:00"),
        file: "PES_Retour.xml".into(),
    };
    assert_eq!(
        line(StatusEvent::TitreAccepted(&accepted), &avoir),
        b"A2026-000007;FAM000123;30/03/2026;6,20;;TITRE_REDUIT;2026/02/3/412;FactureOrigine F2026-000101;\r\n"
    );
    let refused = TitreRejected {
        schema_version: 1,
        invoice: note.clone(),
        titre: None,
        source: TitreSource::Local,
        code: "LOCAL-AVOIR".into(),
        text: "Not sent to Hélios: credit_note: too much".into(),
        rejected_at: at("2026-03-30T08:00:00+02:00"),
        file: String::new(),
    };
    let bytes = line(StatusEvent::TitreRejected(&refused), &avoir);
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert_eq!(
        text,
        "A2026-000007;FAM000123;30/03/2026;6,20;;AVOIR_REJETE;;LOCAL-AVOIR Not sent to Hélios: credit_note: too much;\r\n"
    );
    // The Trésorerie rejecting the réduction titre: TITRE_REJETE, with its reference.
    let rejected = TitreRejected {
        titre: Some(reduction),
        source: TitreSource::Retour,
        code: "04".into(),
        text: "Titre d'origine soldé".into(),
        ..refused
    };
    let row = reglement_row(StatusEvent::TitreRejected(&rejected), &avoir);
    assert_eq!(row.statut.as_str(), "TITRE_REJETE");
    assert_eq!(row.reference, "2026/02/3/412");
}

#[test]
fn formula_cells_are_text_and_a_negative_amount_stays_a_number() {
    // A credit note: its titre line carries the negative total.
    let accepted = TitreAccepted {
        schema_version: 1,
        invoice: InvoiceRef {
            number: "-1+1".into(),
            ..invoice()
        },
        titre: titre(),
        source: TitreSource::Retour,
        accepted_at: at("2026-02-05T08:00:00+01:00"),
        file: "PES_Retour.xml".into(),
    };
    let hostile = RowContext {
        family_code: "@SUM(A1)".into(),
        invoice_total: Some(eur("-12,50")),
        reversed_payment: None,
        credit_note_of: None,
    };
    assert_eq!(
        line(StatusEvent::TitreAccepted(&accepted), &hostile),
        b"'-1+1;'@SUM(A1);05/02/2026;-12,50;;TITRE_PRIS_EN_CHARGE;2026/01/12/345;;\r\n"
    );
    let rejected = rejected_debit("", "\t=cmd|' /C calc'!A0");
    let bytes = line(StatusEvent::Rejected(&rejected), &ctx());
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.contains(";'=cmd|' /C calc'!A0;"),
        "a leading tab is still a formula: {text}"
    );
}

#[test]
fn a_source_names_the_reglements_columns_its_own_way() {
    let mut mapping: SourceMapping = toml::from_str(
        "separator = \",\"\nline_ending = \"lf\"\n[reglements_columns]\nNumFacture = \"facture\"\nMontant = \"montant\"\n",
    )
    .unwrap();
    assert!(mapping.validate("sources.creche").is_empty());
    let format = ReglementsFormat::from_mapping(&mapping);
    assert_eq!(
        format.header(),
        b"facture,CodeFamille,DateEvenement,montant,Canal,Statut,Reference,Motif,Frais\n"
    );
    mapping
        .reglements_columns
        .insert("Amount".into(), "x".into());
    mapping
        .reglements_columns
        .insert("Frais".into(), "MONTANT".into());
    let fields: Vec<String> = mapping
        .validate("sources.creche")
        .into_iter()
        .map(|i| i.field)
        .collect();
    assert_eq!(
        fields,
        [
            "sources.creche.reglements_columns.Amount",
            "sources.creche.reglements_columns.Montant"
        ]
    );
}
