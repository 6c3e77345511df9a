//! Hostile input, in volume: every reader of outside data is fed random bytes and mutations
//! of real documents (the shared specs' samples, read through `encaisse_xml::specs`, and the
//! project's own generated files), and must answer each with a result or a typed error —
//! never a panic — while refusing what exceeds its size and element bounds.
//!
//! Readers: Polyfac CSV (the default contract and a mapped source, in each encoding,
//! separator, decimal and date dialect), PES_ACQUIT and PES Retour, pain.002, camt.054, the
//! gateway's SOAP answers (create, detail, client, faults), the PayFiP notification and
//! classic result forms, and the payment API's JSON body.
//!
//! The generator is seeded (a failure prints the seed, the reader and the input, and the
//! same run reproduces it). Each reader gets `ENCAISSE_HOSTILE_INPUTS` inputs (default
//! 2000, a few seconds in debug); the longer run of `docs/operating.md` sets it higher, and
//! `ENCAISSE_HOSTILE_SEED` picks another seed. The count tried per reader is printed.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use chrono::NaiveDate;
use encaisse_helios::read::read_return_file;
use encaisse_payfip::IdOp;
use encaisse_payfip::classic::ClassicResult;
use encaisse_payfip::client::{read_client_response, read_create_response, read_detail_response};
use encaisse_payfip::notification::idop_from_form;
use encaisse_pipelines::stages::payfip::routes::api::parse_request;
use encaisse_polyfac::config::SourceEncoding;
use encaisse_polyfac::generate::{ExportSpec, GeneratedEncoding, example_catalogue, write_export};
use encaisse_polyfac::{ExportReader, ReadOptions, SourceMapping, prescan};
use encaisse_schemas::TenantId;
use encaisse_sepa::read::ReadSettings;
use encaisse_sepa::{SepaTenantConfig, read_bank_file};
use encaisse_xml::specs::official;

/// Byte limit given to the XML readers: the seeds fit, the oversized input does not.
const XML_LIMIT: u64 = 256 * 1024;
/// Largest input generated (random inputs and grown mutations stop there).
const MAX_INPUT: usize = 64 * 1024;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that reach parser corners: declarations, references, markup, separators,
/// numbers and dates out of range, broken UTF-8.
const TOKENS: &[&[u8]] = &[
    b"<?xml version=\"1.0\" encoding=",
    b"encoding=\xC3\xA9",
    b"encoding=\"ISO-8859-1\"",
    b"<!DOCTYPE x>",
    b"<!ENTITY a \"b\">",
    b"&amp;",
    b"&#xFFFF;",
    b"&#0;",
    b"&unknown;",
    b"<![CDATA[",
    b"]]>",
    b"<a>",
    b"</a>",
    b"<x V=\"",
    b"\"/>",
    b"xmlns:n=\"",
    b";",
    b",",
    b"\"",
    b"\r\n",
    b"\n",
    b"\t",
    b"=cmd|",
    b"-",
    b"99999999999999999999999999",
    b"-0,005",
    b"1e308",
    b"31/02/2026",
    b"2026-13-45",
    b"\xEF\xBB\xBF",
    b"\xC3",
    b"\xFF\xFE",
    b"\xE2\x82",
    b"%",
    b"%ZZ",
    b"&idop=",
    b"+",
    b"{\"invoice\":",
    b"null",
    b"[",
    b"}",
    b"\\u0000",
    b"\\ud800",
];

/// One mutation of `seed`: a few byte flips, insertions of tokens or random bytes,
/// deletions, duplications and truncations.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            2 => {
                let n = rng.below(8) + 1;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if at < out.len() => {
                let end = (at + rng.below(64) + 1).min(out.len());
                out.drain(at..end);
            }
            4 if at < out.len() => {
                let end = (at + rng.below(256) + 1).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            5 => out.truncate(at),
            _ => {
                if let Some(i) = (!out.is_empty()).then(|| rng.below(out.len())) {
                    out[i] = TOKENS[rng.below(TOKENS.len())][0];
                }
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(2048);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn inputs_per_reader() -> usize {
    std::env::var("ENCAISSE_HOSTILE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn seed() -> u64 {
    std::env::var("ENCAISSE_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_E7CA_15E0)
}

/// Feeds `read` random inputs and mutations of `seeds`; `read` returns whether the input
/// was accepted (a result) or refused (a typed error). Panics name the input.
fn hammer(reader: &str, seeds: &[Vec<u8>], read: impl Fn(&[u8]) -> bool) {
    assert!(!seeds.is_empty(), "{reader}: no seed document");
    let seed = seed();
    let name_hash = reader
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng((seed ^ name_hash) | 1);
    for (i, document) in seeds.iter().enumerate() {
        assert!(read(document), "{reader}: seed {i} itself is refused");
    }
    let total = inputs_per_reader();
    let (mut accepted, mut refused) = (0usize, 0usize);
    for i in 0..total {
        let input = if i % 8 == 0 {
            random_input(&mut rng)
        } else {
            mutate(&mut rng, &seeds[i % seeds.len()])
        };
        match catch_unwind(AssertUnwindSafe(|| read(&input))) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "{reader}: input {i} (seed {seed}) panicked: {:?}",
                String::from_utf8_lossy(&input[..input.len().min(400)])
            ),
        }
    }
    println!(
        "hostile inputs: {reader}: {total} tried ({accepted} read, {refused} refused as errors)"
    );
}

/// The shared specs' samples at `paths`, as seeds; `None` (the check skipped visibly, or
/// failed under `ENCAISSE_REQUIRE_SPECS=1`) when one is absent, as on a bare clone.
fn samples(paths: &[&str]) -> Option<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|path| {
            let file = official(path, "hostile-input seeds from the official samples")?;
            Some(std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        })
        .collect()
}

/// Many tiny elements within the byte limit: every XML reader refuses them at its element
/// bound instead of holding them.
fn element_flood() -> Vec<u8> {
    let mut doc = b"<Document>".to_vec();
    while doc.len() < XML_LIMIT as usize - 20 {
        doc.extend_from_slice(b"<a/>");
    }
    doc.extend_from_slice(b"</Document>");
    doc
}

fn oversized() -> Vec<u8> {
    vec![b' '; XML_LIMIT as usize + 1]
}

#[test]
fn bank_returns_never_panic() {
    let settings = ReadSettings {
        max_input_bytes: XML_LIMIT,
        max_input_elements: 20_000,
        ..ReadSettings::from(&SepaTenantConfig::default())
    };
    let read = |bytes: &[u8]| read_bank_file("bank.xml", bytes, &settings).is_ok();
    if let Some(seeds) = samples(&["sepa/samples/oca_test-sepa-pain-unpaid.xml"]) {
        hammer("pain.002", &seeds, read);
    }
    if let Some(seeds) = samples(&[
        "sepa/samples/oca_test-sepa-camt-054-unpaid.xml",
        "sepa/samples/genkgo-camt_camt054.v2.xml",
    ]) {
        hammer("camt.054", &seeds, read);
    }
    for (name, bytes, expected) in [
        ("flood", element_flood(), "more than 20000 elements"),
        ("oversized", oversized(), "limit"),
    ] {
        let error = read_bank_file(name, &bytes, &settings).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
}

#[test]
fn pes_returns_never_panic() {
    let limits = encaisse_helios::read::Limits::new(XML_LIMIT).with_elements(20_000);
    let read = |bytes: &[u8]| read_return_file("pes.xml", bytes, limits).is_ok();
    if let Some(seeds) = samples(&[
        "pes-v2/samples/synthetic/PES_ACQUIT_recette_ko.xml",
        "pes-v2/samples/megalis-bretagne_pastell/connecteur/fakeTdt/fixtures/pes_acquit.xml",
    ]) {
        hammer("PES_ACQUIT", &seeds, read);
    }
    if let Some(seeds) = samples(&["pes-v2/samples/synthetic/PES2R_RCE_periodique_ormc.xml"]) {
        hammer("PES Retour", &seeds, read);
    }
    for (name, bytes, expected) in [
        ("flood", element_flood(), "more than 20000 elements"),
        ("oversized", oversized(), "limit"),
    ] {
        let error = read_return_file(name, &bytes, limits).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
}

/// The mapped source of the Polyfac samples (a crèche application's export).
fn creche_mapping() -> SourceMapping {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../adapters/polyfac/samples/creche-mapping.toml"),
    )
    .unwrap();
    toml::from_str(&text).unwrap()
}

fn polyfac_sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../adapters/polyfac/samples")
            .join(name),
    )
    .unwrap()
}

/// Reads an export through both passes; `true` when it has at least one valid invoice.
fn read_export(
    bytes: &[u8],
    mapping: &SourceMapping,
    catalogue: &Arc<encaisse_polyfac::catalogue::TenantCatalogue>,
) -> bool {
    let Ok(scan) = prescan(bytes, mapping, "FACT.csv") else {
        return false;
    };
    let options = ReadOptions {
        file_name: "FACT.csv".into(),
        today: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        prescan: Some(scan),
    };
    let mut valid = false;
    for item in ExportReader::new(bytes, mapping, catalogue.clone(), options) {
        match item {
            Ok(encaisse_polyfac::ExportItem::Valid(_)) => valid = true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    valid
}

#[test]
fn polyfac_exports_never_panic_whatever_the_mapping() {
    let catalogue = Arc::new(example_catalogue(TenantId::new("vitry").unwrap()).unwrap());
    let generated = |encoding: GeneratedEncoding| {
        let mut bytes = Vec::new();
        let spec = ExportSpec {
            seed: 7,
            encoding,
            ..ExportSpec::with_invoices(6)
        };
        write_export(&spec, &mut bytes).unwrap();
        bytes
    };
    let default_seeds = vec![
        polyfac_sample("polyfac-2-invoices.csv"),
        generated(GeneratedEncoding::Windows1252),
    ];
    let utf8_seeds = vec![
        generated(GeneratedEncoding::Utf8),
        generated(GeneratedEncoding::Utf8WithBom),
    ];

    let mut mappings: BTreeMap<&str, (SourceMapping, Vec<Vec<u8>>)> = BTreeMap::new();
    mappings.insert(
        "polyfac CSV (default contract)",
        (SourceMapping::polyfac_default(), default_seeds.clone()),
    );
    let mut utf8 = SourceMapping::polyfac_default();
    utf8.encoding = SourceEncoding::Utf8;
    mappings.insert("polyfac CSV (utf-8)", (utf8, utf8_seeds.clone()));
    let mut auto = SourceMapping::polyfac_default();
    auto.encoding = SourceEncoding::Auto;
    mappings.insert(
        "polyfac CSV (auto encoding)",
        (auto, [default_seeds.clone(), utf8_seeds].concat()),
    );
    mappings.insert(
        "polyfac CSV (mapped source: columns, fixed, ',' '.' ISO dates)",
        (
            creche_mapping(),
            vec![polyfac_sample("creche-2-invoices.csv")],
        ),
    );
    for (reader, (mapping, seeds)) in &mappings {
        let creche_catalogue = catalogue.clone();
        hammer(reader, seeds, |bytes| {
            read_export(bytes, mapping, &creche_catalogue)
        });
    }

    // A line longer than the mapping's bound is refused, not buffered.
    let mapping = SourceMapping::polyfac_default();
    let mut long = polyfac_sample("polyfac-2-invoices.csv");
    long.extend(std::iter::repeat_n(b'x', mapping.max_line_bytes + 10));
    assert!(!read_export(&long, &mapping, &catalogue));
    assert!(matches!(
        prescan(&long[..], &mapping, "long.csv"),
        Err(encaisse_polyfac::error::FileError::LineTooLong { .. })
    ));
}

/// The code blocks of `payfip.md` that hold a SOAP envelope: the recorded answers.
fn recorded_envelopes() -> Option<Vec<Vec<u8>>> {
    let [spec] = samples(&["payfip.md"])?.try_into().ok()?;
    let text = String::from_utf8(spec).unwrap();
    let envelopes = text
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|block| block.split_once('\n').map_or(block, |(_, body)| body))
        .filter(|body| body.contains("Envelope") && body.contains("Response"))
        .map(|body| body.as_bytes().to_vec())
        .collect();
    Some(envelopes)
}

#[test]
fn soap_answers_never_panic() {
    let requested = IdOp::new("cc0cb210-1cd4-11ea-8cca-0213ad91a103").unwrap();
    // Any answer shape is a typed error for the wrong operation: only no-panic matters.
    let any = |bytes: &[u8]| {
        let a = read_create_response(200, bytes, XML_LIMIT).is_ok();
        let b = read_detail_response(200, bytes, XML_LIMIT, &requested).is_ok();
        let c = read_client_response(500, bytes, XML_LIMIT).is_ok();
        a || b || c
    };
    if let Some(envelopes) = recorded_envelopes() {
        assert!(!envelopes.is_empty(), "payfip.md has recorded answers");
        let seeds: Vec<Vec<u8>> = envelopes.into_iter().filter(|e| any(e)).collect();
        hammer("SOAP answers", &seeds, any);
    }
    for bytes in [element_flood(), oversized()] {
        assert!(read_detail_response(200, &bytes, XML_LIMIT, &requested).is_err());
    }
}

#[test]
fn payfip_forms_never_panic() {
    hammer(
        "PayFiP notification form",
        &[b"idop=cc0cb210-1cd4-11ea-8cca-0213ad91a103".to_vec()],
        |bytes| idop_from_form(&String::from_utf8_lossy(bytes)).is_ok(),
    );
    hammer(
        "PayFiP classic result form",
        &[b"numcli=090909&exer=2026&refdet=EFEFAEFG&objet=Creche&montant=4560&mel=a%40b.fr&saisie=T&resultrans=P&numauto=00000001&dattrans=12122026&heurtrans=1311".to_vec()],
        |bytes| ClassicResult::parse(&String::from_utf8_lossy(bytes)).is_ok(),
    );
}

#[test]
fn payment_api_bodies_never_panic() {
    let mut json = HeaderMap::new();
    json.insert("content-type", "application/json".parse().unwrap());
    hammer(
        "payment API JSON",
        &[
            br#"{"invoice":"F2026-000102","exercice":2026,"email":"a@b.fr","return_url":"https://kiosque.example/retour"}"#.to_vec(),
            br#"{"invoice":"F2026-000102"}"#.to_vec(),
        ],
        |bytes| parse_request(&json, bytes).is_ok(),
    );
}
