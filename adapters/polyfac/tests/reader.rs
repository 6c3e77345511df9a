//! The export reader end to end: encodings, quoting, grouping, every validation rule with
//! one bad invoice among good ones, unreadable files.

mod common;

use common::*;
use encaisse_polyfac::records::DetectedEncoding;
use encaisse_polyfac::{FileError, Rule, SourceMapping, content_hash};
use encaisse_schemas::seen::SeenFilter;
use encaisse_schemas::{Civilite, Money, PaymentMode};

#[test]
fn two_invoice_sample_in_windows_1252() {
    let read = read(&sample("polyfac-2-invoices.csv")).unwrap();
    assert!(read.rejected.is_empty(), "{:#?}", read.rejected);
    assert_eq!(read.valid_numbers(), ["F2026-000101", "F2026-000102"]);
    let first = &read.valid[0];
    assert_eq!(first.payer.last_name, "Œuvray");
    assert_eq!(first.payer.first_name, "Hélène");
    assert_eq!(first.payer.civilite, Civilite::Mme);
    assert_eq!(
        first.payer.address.complement.as_deref(),
        Some("Bâtiment C")
    );
    assert_eq!(first.payer.address.locality, None, "empty field = absent");
    assert_eq!(first.lines.len(), 3);
    assert_eq!(first.lines[1].label, "Accueil du soir; goûter \"bio\"");
    assert_eq!(first.lines[2].amount, Money::parse("-4,50").unwrap());
    assert_eq!(first.total, Money::parse("62,95").unwrap());
    assert_eq!(first.file_lines, (2, 4));
    let mandate = first.mandate.as_ref().unwrap();
    assert_eq!(mandate.iban.as_str(), "FR7630006000011234567890189");
    assert_eq!(mandate.sequence, None);
    let second = &read.valid[1];
    assert_eq!(second.payment_mode, PaymentMode::Tipi);
    assert!(second.mandate.is_none());
    assert_eq!(second.lines[0].quantity.to_string(), "37.5");
    assert_eq!(second.activity.code, "CRECHE");
    assert_eq!(second.file_lines, (5, 5));

    let s = &read.summary;
    assert_eq!(s.encoding, DetectedEncoding::Windows1252);
    assert_eq!((s.lines, s.valid_invoices, s.rejected_invoices), (4, 2, 0));
    assert_eq!(s.valid_total, Money::parse("133,08").unwrap());
    assert_eq!(s.exercice, Some(2026));
    assert_eq!(s.activities["PERISCOLAIRE"].invoices, 1);
    assert_eq!(s.activities["CRECHE"].total, Money::parse("70,13").unwrap());
}

#[test]
fn utf8_with_and_without_bom_and_lf_give_the_same_invoices() {
    let original = sample("polyfac-2-invoices.csv");
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&original);
    let utf8 = text.as_bytes().to_vec();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(&utf8);
    let lf = text.replace("\r\n", "\n").into_bytes();

    let reference = read(&original).unwrap();
    for (name, bytes, encoding) in [
        ("utf-8", utf8, DetectedEncoding::Utf8),
        ("utf-8 + BOM", bom, DetectedEncoding::Utf8),
        ("utf-8, LF", lf, DetectedEncoding::Utf8),
    ] {
        let other = read(&bytes).unwrap();
        assert_eq!(other.valid, reference.valid, "{name}");
        assert_eq!(other.summary.encoding, encoding, "{name}");
        let hashes: Vec<_> = other.valid.iter().map(content_hash).collect();
        let expected: Vec<_> = reference.valid.iter().map(content_hash).collect();
        assert_eq!(
            hashes, expected,
            "{name}: content hash is encoding-independent"
        );
        assert_ne!(other.summary.file_sha256, reference.summary.file_sha256);
    }
}

#[test]
fn declared_encodings_are_enforced() {
    let original = sample("polyfac-2-invoices.csv");
    let mut utf8_only = SourceMapping::polyfac_default();
    utf8_only.encoding = encaisse_polyfac::config::SourceEncoding::Utf8;
    let err = read_with(&original, &utf8_only, "latin.csv").unwrap_err();
    assert!(
        matches!(
            &err,
            FileError::NotDecodable {
                line: 2,
                encoding: "utf-8",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("latin.csv: line 2"), "{err}");

    // Forcing Windows-1252 on UTF-8 bytes decodes (every byte is a character) but garbles.
    let mut cp = SourceMapping::polyfac_default();
    cp.encoding = encaisse_polyfac::config::SourceEncoding::Windows1252;
    let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&original);
    let read = read_with(text.as_bytes(), &cp, "x.csv").unwrap();
    assert_eq!(read.valid[0].payer.first_name, "HÃ©lÃ¨ne");
}

#[test]
fn auto_refuses_mixed_encodings() {
    let mut text = export(&[row("F1")]).into_bytes(); // UTF-8 accents on line 2
    let mut second = row("F2");
    second.insert("Nom".into(), "Lefèvre".into());
    let line = export(&[second]);
    let line = line.split_once("\r\n").unwrap().1;
    text.extend(cp1252(line));
    let err = read(&text).unwrap_err();
    assert!(
        matches!(&err, FileError::NotDecodable { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("mixed encodings"), "{err}");
}

#[test]
fn quoted_fields_keep_separators_quotes_and_line_breaks() {
    let mut a = row("F1");
    a.insert("Libelle".into(), "Repas; \"bio\"\nmidi".into());
    a.insert("Adresse2".into(), "12 rue \"des Lilas\"".into());
    let b = row("F2");
    let read = read(export(&[a, b]).as_bytes()).unwrap();
    assert!(read.rejected.is_empty(), "{:#?}", read.rejected);
    assert_eq!(read.valid[0].lines[0].label, "Repas; \"bio\"\nmidi");
    assert_eq!(read.valid[0].payer.address.street, "12 rue \"des Lilas\"");
    // The quoted line break spans lines 2–3: the next invoice starts on line 4.
    assert_eq!(read.valid[1].file_lines, (4, 4));
}

#[test]
fn blank_lines_are_skipped() {
    let text = export(&[row("F1"), row("F2")]).replace("\r\nF2", "\r\n;;;\r\n\r\nF2");
    let read = read(text.as_bytes()).unwrap();
    assert_eq!(read.valid_numbers(), ["F1", "F2"]);
    assert_eq!(read.summary.lines, 2);
}

/// The invoice `B` sits between two good invoices (`G1` lines 2–3, `B` lines 4–5, `G2`
/// lines 6–7); `mutate` breaks its second line (line 5) or its header.
fn one_bad_invoice(mutate: impl Fn(&mut Vec<Row>)) -> Read {
    one_bad_invoice_with(&SourceMapping::polyfac_default(), &COLUMNS, mutate)
}

fn one_bad_invoice_with(
    mapping: &SourceMapping,
    columns: &[&str],
    mutate: impl Fn(&mut Vec<Row>),
) -> Read {
    let mut bad = vec![row("B"), row("B")];
    mutate(&mut bad);
    let mut rows = vec![row("G1"), row("G1")];
    rows.extend(bad);
    rows.extend([row("G2"), row("G2")]);
    let text = export_with(columns, &rows);
    read_with(text.as_bytes(), mapping, "export.csv").unwrap()
}

fn set(rows: &mut [Row], i: usize, column: &str, value: &str) {
    rows[i].insert(column.into(), value.into());
}

fn set_all(rows: &mut [Row], column: &str, value: &str) {
    for r in rows {
        r.insert(column.into(), value.into());
    }
}

/// Asserts the good invoices passed and `B` was rejected with `rule` at `line`, `column`.
fn assert_rejected(read: &Read, rule: Rule, line: u64, column: &str) {
    assert_eq!(
        read.valid_numbers(),
        ["G1", "G2"],
        "{rule}: {:#?}",
        read.rejected
    );
    let bad = read.rejected("B");
    assert_eq!(bad.file_lines, (4, 5));
    assert!(
        bad.errors.iter().any(|e| e.rule == rule
            && e.line == line
            && e.column == column
            && e.file == "export.csv"),
        "expected {rule} at line {line} column {column}, got {:#?}",
        bad.errors
    );
    assert_eq!(read.summary.rejected_invoices, 1);
    assert_eq!(read.summary.rejected_lines, 2);
    assert!(read.summary.rules[&rule] >= 1);
}

#[test]
fn every_rule_rejects_only_its_invoice() {
    type Case = (Rule, u64, &'static str, fn(&mut Vec<Row>));
    let cases: Vec<Case> = vec![
        (Rule::MissingField, 5, "Libelle", |r| {
            set(r, 1, "Libelle", " ")
        }),
        (Rule::MissingField, 4, "Ville", |r| set_all(r, "Ville", "")),
        (Rule::ColumnCount, 5, "", |r| set(r, 1, "__drop_last", "x")),
        (Rule::TooLong, 4, "CodeFamille", |r| {
            set_all(r, "CodeFamille", &"F".repeat(31))
        }),
        (Rule::InvalidDate, 4, "DateFacture", |r| {
            set_all(r, "DateFacture", "31/02/2026")
        }),
        (Rule::InvalidDate, 4, "DateEcheance", |r| {
            set_all(r, "DateEcheance", "2026-02-10")
        }),
        (Rule::InvalidNumber, 5, "Quantite", |r| {
            set(r, 1, "Quantite", "quatre")
        }),
        (Rule::InvalidNumber, 5, "PrixUnitaire", |r| {
            set(r, 1, "PrixUnitaire", "3,355")
        }),
        (Rule::InvalidNumber, 5, "MontantLigne", |r| {
            set(r, 1, "MontantLigne", "1.340")
        }),
        (Rule::LineAmountMismatch, 5, "MontantLigne", |r| {
            set(r, 1, "MontantLigne", "13,41")
        }),
        (Rule::TotalNotPositive, 4, "MontantLigne", |r| {
            for row in r.iter_mut() {
                row.insert("PrixUnitaire".into(), "-3,35".into());
                row.insert("MontantLigne".into(), "-13,40".into());
            }
        }),
        (Rule::HeaderMismatch, 5, "DateEcheance", |r| {
            set(r, 1, "DateEcheance", "11/02/2026")
        }),
        (Rule::HeaderMismatch, 5, "IBAN", |r| {
            set(r, 1, "IBAN", "FR1420041010050500013M02606")
        }),
        (Rule::InvalidPeriod, 4, "Periode", |r| {
            set_all(r, "Periode", "13")
        }),
        (Rule::InvalidExercice, 4, "Exercice", |r| {
            set_all(r, "Exercice", "26")
        }),
        (Rule::ExerciceMismatch, 4, "Exercice", |r| {
            set_all(r, "Exercice", "2025")
        }),
        (Rule::UnknownActivity, 4, "Activite", |r| {
            set_all(r, "Activite", "PISCINE")
        }),
        (Rule::UnknownProduct, 5, "CodeProduit", |r| {
            set(r, 1, "CodeProduit", "PISCINE")
        }),
        (Rule::ProductActivityMismatch, 5, "CodeProduit", |r| {
            set(r, 1, "CodeProduit", "SEJOUR")
        }),
        (Rule::UnknownValue, 4, "Civilite", |r| {
            set_all(r, "Civilite", "DR")
        }),
        (Rule::UnknownValue, 4, "ModeReglement", |r| {
            set_all(r, "ModeReglement", "CHEQUE")
        }),
        (Rule::UnknownValue, 4, "SequencePrelevement", |r| {
            set_all(r, "SequencePrelevement", "FIRST")
        }),
        (Rule::InvalidPostalCode, 4, "CodePostal", |r| {
            set_all(r, "CodePostal", "9440")
        }),
        (Rule::InvalidEmail, 4, "Email", |r| {
            set_all(r, "Email", "helene@exemple")
        }),
        (Rule::InvalidIban, 4, "IBAN", |r| {
            set_all(r, "IBAN", "FR0630006000011234567890188")
        }),
        (Rule::InvalidIban, 4, "IBAN", |r| {
            set_all(r, "IBAN", "FR7630006000011234567890188")
        }),
        (Rule::InvalidBic, 4, "BIC", |r| {
            set_all(r, "BIC", "AGRIFRPPX")
        }),
        (Rule::MissingField, 4, "BIC", |r| set_all(r, "BIC", "")),
        (Rule::MissingField, 4, "RUM", |r| set_all(r, "RUM", "")),
        (Rule::InvalidRum, 4, "RUM", |r| {
            set_all(r, "RUM", "VITRY//123")
        }),
        (Rule::InvalidRum, 4, "RUM", |r| {
            set_all(r, "RUM", "VITRY 123")
        }),
        (Rule::MandateSignedInFuture, 4, "DateSignatureMandat", |r| {
            set_all(r, "DateSignatureMandat", "02/02/2026")
        }),
    ];
    for (rule, line, column, mutate) in cases {
        let read = one_bad_invoice(mutate);
        assert_rejected(&read, rule, line, column);
    }
}

#[test]
fn non_direct_debit_invoices_need_no_bank_details() {
    let read = one_bad_invoice(|r| {
        set_all(r, "ModeReglement", "TIP");
        for column in [
            "RUM",
            "IBAN",
            "BIC",
            "TitulaireCompte",
            "DateSignatureMandat",
        ] {
            set_all(r, column, "");
        }
    });
    assert_eq!(read.valid_numbers(), ["G1", "B", "G2"]);
    assert!(read.valid[1].mandate.is_none());
}

#[test]
fn messages_never_repeat_bank_details_or_names() {
    let read = one_bad_invoice(|r| {
        set(r, 1, "IBAN", "FR1420041010050500013M02606");
        set(r, 1, "Nom", "Lefèvre");
        set_all(r, "Email", "helene@exemple");
    });
    let bad = read.rejected("B");
    assert!(bad.errors.iter().any(|e| e.column == "IBAN"));
    for e in &bad.errors {
        for secret in ["2004101005", "3000600001", "Lefèvre", "Œuvray", "helene@"] {
            assert!(!e.message.contains(secret), "{secret} leaked in {e}");
        }
    }
}

#[test]
fn invoice_total_column_is_checked_when_the_source_has_one() {
    let mut columns = COLUMNS.to_vec();
    columns.push("MontantFacture");
    let fill = |rows: &mut Vec<Row>, total: &str| set_all(rows, "MontantFacture", total);
    let mapping = SourceMapping::polyfac_default();
    let read = one_bad_invoice_with(&mapping, &columns, |r| fill(r, "26,81"));
    // G1 and G2 have no total (empty = absent): accepted.
    assert_rejected(&read, Rule::TotalMismatch, 4, "MontantFacture");
    let read = one_bad_invoice_with(&mapping, &columns, |r| fill(r, "26,80"));
    assert_eq!(read.valid_numbers(), ["G1", "B", "G2"]);
}

#[test]
fn too_many_lines_rejects_the_invoice_and_keeps_memory_bounded() {
    let mut mapping = SourceMapping::polyfac_default();
    mapping.max_invoice_lines = 3;
    let mut rows = vec![row("G1")];
    rows.extend(std::iter::repeat_n(row("B"), 10));
    rows.push(row("G2"));
    let read = read_with(export(&rows).as_bytes(), &mapping, "export.csv").unwrap();
    assert_eq!(read.valid_numbers(), ["G1", "G2"]);
    let bad = read.rejected("B");
    assert_eq!(bad.line_count, 10);
    assert_eq!(bad.file_lines, (3, 12));
    assert_eq!(bad.errors[0].rule, Rule::TooManyLines);
    assert!(bad.errors[0].message.contains("10 lines, at most 3"));
}

#[test]
fn split_invoice_is_rejected_whole_with_prescan() {
    let rows = [row("F1"), row("F2"), row("F1"), row("F3")];
    let text = export(&rows);
    let read = read(text.as_bytes()).unwrap();
    assert_eq!(read.valid_numbers(), ["F2", "F3"]);
    assert_eq!(read.rejected.len(), 2);
    for (r, other) in read.rejected.iter().zip([4, 2]) {
        assert_eq!(r.number, "F1");
        assert_eq!(r.errors[0].rule, Rule::InvoiceNotContiguous);
        assert!(
            r.errors[0].message.contains(&format!("line {other}")),
            "{}",
            r.errors[0].message
        );
    }
    // A single pass cannot take back the first part: only the later one is rejected.
    let single = read_single_pass(text.as_bytes(), &SourceMapping::polyfac_default(), "e").unwrap();
    assert_eq!(single.valid_numbers(), ["F1", "F2", "F3"]);
    assert_eq!(single.rejected[0].file_lines, (4, 4));
}

#[test]
fn split_invoices_are_found_exactly_whatever_the_prefilter_suspects() {
    // Lines: F1 2, F2 3-4, F1 5, F3 6, F4 7-8 (one run), F5 9, F2 10, F6 11.
    let numbers = ["F1", "F2", "F2", "F1", "F3", "F4", "F4", "F5", "F2", "F6"];
    let rows: Vec<Row> = numbers.iter().map(|n| row(n)).collect();
    let text = export(&rows);
    let bytes = text.as_bytes();
    let mapping = SourceMapping::polyfac_default();
    let scan = encaisse_polyfac::prescan(bytes, &mapping, "e").unwrap();
    assert_eq!(
        scan.suspects.into_iter().collect::<Vec<_>>(),
        [("F1".to_string(), vec![5]), ("F2".to_string(), vec![10])]
    );
    // The worst a Bloom filter can do: every run a suspect.
    let every =
        encaisse_polyfac::prescan_with(bytes, &mapping, "e", SeenFilter::always_maybe()).unwrap();
    assert_eq!(every.suspects.len(), 6);
    assert_eq!(every.suspects["F2"], [3, 10]);
    for read in [
        read(bytes).unwrap(),
        read_with_filter(bytes, SeenFilter::always_maybe()).unwrap(),
    ] {
        assert_eq!(read.valid_numbers(), ["F3", "F4", "F5", "F6"]);
        let rejected: Vec<_> = read
            .rejected
            .iter()
            .map(|r| {
                (
                    r.number.as_str(),
                    r.file_lines,
                    r.errors[0].message.as_str(),
                )
            })
            .collect();
        let message = |n: &str, other: u64| {
            format!(
                "invoice {n:?} also has lines at line {other}, separated by other invoices; \
                 lines of one invoice must be contiguous"
            )
        };
        assert_eq!(
            rejected,
            [
                ("F1", (2, 2), message("F1", 5).as_str()),
                ("F2", (3, 4), message("F2", 10).as_str()),
                ("F1", (5, 5), message("F1", 2).as_str()),
                ("F2", (10, 10), message("F2", 3).as_str()),
            ]
        );
        assert_eq!(read.summary.rules[&Rule::InvoiceNotContiguous], 4);
    }
}

#[test]
fn a_line_without_invoice_number_invalidates_the_invoice_it_sits_in() {
    let mut orphan = row("");
    orphan.insert("NumFacture".into(), String::new());
    let read = read(export(&[row("G1"), row("B"), orphan, row("G2")]).as_bytes()).unwrap();
    assert_eq!(read.valid_numbers(), ["G1", "G2"]);
    let bad = read.rejected("B");
    assert_eq!(bad.file_lines, (3, 4));
    assert_eq!(bad.errors[0].rule, Rule::MissingField);
    assert_eq!(
        (bad.errors[0].line, bad.errors[0].column.as_str()),
        (4, "NumFacture")
    );
}

#[test]
fn unreadable_files_are_one_clear_error() {
    let utf16: Vec<u8> = export(&[row("F1")])
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let no_header = export(&[row("F1")])
        .split_once("\r\n")
        .unwrap()
        .1
        .to_string();
    let missing = export(&[row("F1")]).replacen("Periode", "Mois", 1);
    let mut long = export(&[row("F1")]);
    long.push_str(&"x".repeat(70 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("empty", Vec::new(), "no_header", "the file is empty"),
        (
            "blank",
            b"\r\n\r\n".to_vec(),
            "no_header",
            "the file is empty",
        ),
        (
            "no header",
            no_header.into_bytes(),
            "no_header",
            "none of the expected columns",
        ),
        (
            "missing columns",
            missing.into_bytes(),
            "missing_columns",
            "missing required columns: Periode",
        ),
        ("utf-16", utf16, "not_decodable", "NUL byte"),
        (
            "line too long",
            long.into_bytes(),
            "line_too_long",
            "line 3: longer than 65536 bytes",
        ),
        (
            "binary",
            vec![0x89, b'P', b'N', b'G', 0, 0, 0, 0x0d],
            "not_decodable",
            "NUL byte",
        ),
    ];
    for (name, bytes, kind, text) in cases {
        let err = read(&bytes).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert!(err.to_string().contains(text), "{name}: {err}");
        assert!(err.to_string().starts_with("export.csv:"), "{name}: {err}");
        assert!(!err.is_transient(), "{name}");
        // The single-pass reader reports the same error, once, then stops.
        let single =
            read_single_pass(&bytes, &SourceMapping::polyfac_default(), "export.csv").unwrap_err();
        assert_eq!(single.kind(), kind, "{name}");
    }
}

#[test]
fn read_errors_are_transient() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "nfs timeout",
            ))
        }
    }
    let err =
        encaisse_polyfac::prescan(Failing, &SourceMapping::polyfac_default(), "f").unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.is_transient());
}

#[test]
fn credit_notes_name_their_original_and_take_off() {
    let mut columns = COLUMNS.to_vec();
    columns.extend(["FactureOrigine", "ExerciceOrigine"]);
    let credit = |number: &str, origin: &str, exercice: &str, amount: &str| {
        let mut r = row(number);
        r.insert("FactureOrigine".into(), origin.into());
        r.insert("ExerciceOrigine".into(), exercice.into());
        r.insert("Quantite".into(), "1".into());
        r.insert("PrixUnitaire".into(), amount.into());
        r.insert("MontantLigne".into(), amount.into());
        r
    };
    let rows = vec![
        row("G1"),
        credit("A1", "F0001", "", "-6,70"),
        credit("A2", "F0002", "2025", "-13,40"),
        // Not negative: refused.
        credit("A3", "F0003", "", "6,70"),
        // Exercice without invoice.
        credit("A4", "", "2025", "-1,00"),
        // Names itself.
        credit("A5", "A5", "", "-1,00"),
        // A negative total without FactureOrigine is not a credit note: refused.
        credit("A6", "", "", "-1,00"),
    ];
    let text = export_with(&columns, &rows);
    let read = read_with(
        text.as_bytes(),
        &SourceMapping::polyfac_default(),
        "export.csv",
    )
    .unwrap();
    assert_eq!(
        read.valid_numbers(),
        ["G1", "A1", "A2"],
        "{:#?}",
        read.rejected
    );
    assert_eq!(read.valid[0].origin, None);
    let origin = |i: usize| read.valid[i].origin.clone().map(|o| (o.number, o.exercice));
    assert_eq!(origin(1), Some(("F0001".to_string(), 2026)));
    assert_eq!(origin(2), Some(("F0002".to_string(), 2025)));
    assert_eq!(read.valid[1].total, Money::parse("-6,70").unwrap());
    let rule = |n: &str| read.rejected(n).errors[0].rule;
    assert_eq!(rule("A3"), Rule::CreditNoteNotNegative);
    assert_eq!(rule("A4"), Rule::InvalidOrigin);
    assert_eq!(rule("A5"), Rule::InvalidOrigin);
    assert_eq!(rule("A6"), Rule::TotalNotPositive);
    assert_eq!(read.rejected("A4").errors[0].column, "ExerciceOrigine");
}
