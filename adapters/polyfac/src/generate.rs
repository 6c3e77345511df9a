//! Realistic Polyfac exports of any size, for tests and benchmarks: several invoices per
//! family, every payment mode, titres and régie activities, accented names (Windows-1252),
//! quoted labels with `;` and `""`, decimal quantities and reduction lines.
//!
//! Deterministic for a seed. The generator keeps its own tally of what it wrote
//! ([`GeneratedExport`]), so a test can compare it with what the reader found.

use std::collections::BTreeMap;
use std::io::{self, Write};

use chrono::{Datelike, NaiveDate};
use encaisse_schemas::tenant::{Activity, Budget, ConfigIssue, Product, Regie};
use encaisse_schemas::{CollectionPath, Money, TenantId};
use rust_decimal::Decimal;

use crate::catalogue::TenantCatalogue;
use crate::field::Field;

/// Encoding of a generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedEncoding {
    Windows1252,
    Utf8,
    Utf8WithBom,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// Data lines (header excluded).
    pub lines: u64,
    /// Whole invoices at most (`None`: only `lines` bounds the file). With a number, the
    /// file ends after that many invoices, none of them cut short.
    pub invoices: Option<u64>,
    pub seed: u64,
    pub exercice: u16,
    /// Billed month, 1–12.
    pub period: u8,
    pub encoding: GeneratedEncoding,
}

impl ExportSpec {
    pub fn new(lines: u64) -> Self {
        ExportSpec {
            lines,
            invoices: None,
            seed: 42,
            exercice: 2026,
            period: 1,
            encoding: GeneratedEncoding::Windows1252,
        }
    }

    /// An export of exactly `invoices` whole invoices (about two lines each).
    pub fn with_invoices(invoices: u64) -> Self {
        ExportSpec {
            lines: u64::MAX,
            invoices: Some(invoices),
            ..ExportSpec::new(0)
        }
    }
}

/// The generator's own tally of a written export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratedExport {
    pub lines: u64,
    pub invoices: u64,
    pub total: Money,
    /// Invoices per activity code.
    pub invoices_per_activity: BTreeMap<String, u64>,
    /// Invoices per payment mode as written (`PRELEVEMENT`…).
    pub invoices_per_mode: BTreeMap<String, u64>,
    /// Distinct family codes.
    pub families: u64,
}

/// The catalogue of the example tenant the generator bills for: the products of the
/// example configuration (issue 3), PERISCOLAIRE/SEJOUR/CLASSE_DECOUVERTE as titres,
/// CRECHE/ANTENNE_QUARTIER through régies, the caisse des écoles as its own budget.
pub fn example_catalogue(tenant: TenantId) -> Result<TenantCatalogue, Vec<ConfigIssue>> {
    let budget = |code: &str, cod_bud: &str, label: &str| Budget {
        code: code.into(),
        cod_bud: cod_bud.into(),
        cod_col: "081".into(),
        siret: "21940081700014".into(),
        label: label.into(),
        payfip_numcli: Some("012345".into()),
    };
    let activity = |code: &str, budget: &str, regie: Option<&str>| Activity {
        code: code.into(),
        budget: budget.into(),
        collection: if regie.is_some() {
            CollectionPath::Regie
        } else {
            CollectionPath::Titres
        },
        regie: regie.map(Into::into),
        online_payment: true,
    };
    let product = |code: &str, activity: &str, cod: &str, nature: &str| Product {
        code: code.into(),
        activity: activity.into(),
        cod_prod_loc: cod.into(),
        nature: nature.into(),
        fonction: Some("213".into()),
    };
    let regie = |code: &str, label: &str| Regie {
        code: code.into(),
        label: label.into(),
        payfip_numcli: Some("054321".into()),
        ics: None,
        creditor_name: None,
        creditor_iban: None,
        creditor_bic: None,
    };
    TenantCatalogue::new(
        tenant,
        vec![
            budget("principal", "00", "Budget principal"),
            budget("caisse-ecoles", "01", "Caisse des écoles"),
        ],
        vec![
            activity("PERISCOLAIRE", "principal", None),
            activity("CRECHE", "principal", Some("regie-creche")),
            activity("SEJOUR", "caisse-ecoles", None),
            activity("CLASSE_DECOUVERTE", "caisse-ecoles", None),
            activity("ANTENNE_QUARTIER", "principal", Some("regie-antennes")),
        ],
        vec![
            product("CANTINE", "PERISCOLAIRE", "CANT", "7067"),
            product("ETUDE", "PERISCOLAIRE", "ETUD", "7067"),
            product("ACCUEIL_MATIN", "PERISCOLAIRE", "ACCM", "7066"),
            product("ACCUEIL_SOIR", "PERISCOLAIRE", "ACCS", "7066"),
            product("CENTRE_LOISIRS", "PERISCOLAIRE", "CLSH", "7066"),
            product("CRECHE_HEURE", "CRECHE", "CRCH", "7064"),
            product("SEJOUR", "SEJOUR", "SEJ", "7067"),
            product("CLASSE_DECOUVERTE", "CLASSE_DECOUVERTE", "CLDE", "7067"),
            product("ATELIER", "ANTENNE_QUARTIER", "ATEL", "7062"),
        ],
        vec![
            regie("regie-creche", "Régie petite enfance"),
            regie("regie-antennes", "Régie des antennes de quartier"),
        ],
    )
}

/// SplitMix64: small, fast, deterministic; no dependency for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Hélène",
    "François",
    "Zoé",
    "Noël",
    "Anaïs",
    "Jérôme",
    "Maëlle",
    "Loïc",
    "Amina",
    "Karim",
    "Céline",
    "Ophélie",
    "Björn",
    "Inès",
];
const LAST_NAMES: &[&str] = &[
    "Œuvray",
    "Dupont",
    "Lefèvre",
    "N'Diaye",
    "Martin-Gaël",
    "Benaïssa",
    "Nguyen",
    "Lœb",
    "Garçon",
    "Da Silva",
    "Müller",
    "Boulanger",
];
const STREETS: &[&str] = &[
    "12 rue de la République",
    "3 bis avenue Paul Vaillant-Couturier",
    "45 boulevard de Stalingrad",
    "8 allée des Marronniers",
    "101 rue Édouard Vaillant",
];
/// Valid IBAN (MOD 97 and clé RIB) and BIC pairs (spec sepa.md §4.5–4.6).
const BANK: &[(&str, &str)] = &[
    ("FR76 3000 6000 0112 3456 7890 189", "AGRIFRPP882"),
    ("FR1420041010050500013M02606", "PSSTFRPPPAR"),
    ("fr7630001007941234567890185", "BDFEFRPPCCT"),
    ("MC5811222000010123456789030", "CEPAFRPP751"),
];
/// Activities of every third invoice (the others are PERISCOLAIRE then CRECHE).
const OTHER_ACTIVITIES: [&str; 4] = [
    "SEJOUR",
    "CLASSE_DECOUVERTE",
    "ANTENNE_QUARTIER",
    "PERISCOLAIRE",
];
const MODES: [&str; 4] = ["PRELEVEMENT", "TIP", "TIPI", "AUTRE"];

/// One generated line, in Polyfac column order.
type Row = Vec<String>;

/// The generator writes no credit note: the columns of the invoice's own total and of a
/// credit note's original are left out (all optional).
fn header() -> Row {
    Field::ALL
        .iter()
        .filter(|f| {
            !matches!(
                f,
                Field::InvoiceTotal | Field::OriginInvoice | Field::OriginExercice
            )
        })
        .map(|f| f.polyfac_column().to_string())
        .collect()
}

fn fr_date(d: NaiveDate) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), d.month(), d.year())
}

fn comma(d: Decimal) -> String {
    d.normalize().to_string().replace('.', ",")
}

/// Quotes a field when it holds the separator, a quote or a line break.
fn quoted(field: &str) -> String {
    if field.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

struct InvoiceRows {
    activity: &'static str,
    mode: &'static str,
    rows: Vec<(Row, Money)>,
}

fn invoice(rng: &mut Rng, spec: &ExportSpec, index: u64) -> InvoiceRows {
    let family = index / 3;
    let mode = MODES[(family % 4) as usize];
    let activity: &'static str = match index % 3 {
        0 => "PERISCOLAIRE",
        1 => "CRECHE",
        _ => OTHER_ACTIVITIES[rng.below(OTHER_ACTIVITIES.len() as u64) as usize],
    };
    let issued = NaiveDate::from_ymd_opt(i32::from(spec.exercice), u32::from(spec.period), 28)
        .unwrap_or_default();
    let due = issued + chrono::Duration::days(20);
    let mut frng = Rng(spec.seed ^ family.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let first = *frng.pick(FIRST_NAMES);
    let last = *frng.pick(LAST_NAMES);
    let (iban, bic) = *frng.pick(BANK);
    let street = *frng.pick(STREETS);
    let email = if family % 5 == 4 {
        String::new()
    } else {
        format!("famille{family}@exemple.fr")
    };
    let products: Vec<(&str, &str, Decimal, Decimal)> = match activity {
        "PERISCOLAIRE" => {
            let all = [
                ("CANTINE", "Restauration scolaire", Decimal::new(335, 2)),
                ("ETUDE", "Étude surveillée", Decimal::new(250, 2)),
                ("ACCUEIL_MATIN", "Accueil du matin", Decimal::new(180, 2)),
                (
                    "ACCUEIL_SOIR",
                    "Accueil du soir; goûter \"bio\"",
                    Decimal::new(215, 2),
                ),
                (
                    "CENTRE_LOISIRS",
                    "Centre de loisirs (mercredi)",
                    Decimal::new(1240, 2),
                ),
            ];
            let count = 1 + rng.below(5) as usize;
            let mut lines: Vec<_> = all[..count]
                .iter()
                .map(|(c, l, p)| (*c, *l, Decimal::from(1 + rng.below(20)), *p))
                .collect();
            if rng.below(4) == 0 {
                lines.push((
                    "CANTINE",
                    "Réduction quotient familial",
                    Decimal::ONE,
                    Decimal::new(-50, 2),
                ));
            }
            lines
        }
        "CRECHE" => vec![(
            "CRECHE_HEURE",
            "Accueil crèche (heures)",
            Decimal::new(1000 + rng.below(16000) as i64, 2).round_dp(1),
            Decimal::new(187, 2),
        )],
        "SEJOUR" => vec![(
            "SEJOUR",
            "Séjour été — Oléron",
            Decimal::ONE,
            Decimal::new(42000, 2),
        )],
        "CLASSE_DECOUVERTE" => vec![(
            "CLASSE_DECOUVERTE",
            "Classe de découverte",
            Decimal::ONE,
            Decimal::new(18550, 2),
        )],
        _ => vec![(
            "ATELIER",
            "Atelier théâtre",
            Decimal::from(1 + rng.below(4)),
            Decimal::new(800, 2),
        )],
    };
    let number = format!("F{}-{:07}", spec.exercice, index + 1);
    let mut rows = Vec::with_capacity(products.len());
    for (code, label, quantity, price) in products {
        let price = Money::new(price).unwrap_or(Money::ZERO);
        let amount = price
            .times(quantity)
            .and_then(Money::round_half_up)
            .unwrap_or(Money::ZERO);
        let prelevement = mode == "PRELEVEMENT";
        let opt = |b: bool, v: String| if b { v } else { String::new() };
        let row = vec![
            number.clone(),
            fr_date(issued),
            spec.exercice.to_string(),
            spec.period.to_string(),
            activity.to_string(),
            format!("FAM{family:06}"),
            (if family.is_multiple_of(2) { "MME" } else { "M" }).to_string(),
            last.to_string(),
            first.to_string(),
            opt(family.is_multiple_of(7), "Bâtiment C".into()),
            street.to_string(),
            opt(family.is_multiple_of(11), "Lieu-dit Les Ardoines".into()),
            "94400".to_string(),
            "Vitry-sur-Seine".to_string(),
            email.clone(),
            code.to_string(),
            label.to_string(),
            comma(quantity),
            price.to_comma_string(),
            amount.to_comma_string(),
            mode.to_string(),
            opt(prelevement, format!("VITRY-{family:08}")),
            opt(prelevement, "15/09/2024".into()),
            opt(prelevement && family.is_multiple_of(3), "RCUR".into()),
            opt(prelevement, iban.to_string()),
            opt(prelevement, bic.to_string()),
            opt(prelevement, format!("{first} {last}")),
            fr_date(due),
        ];
        rows.push((row, amount));
    }
    InvoiceRows {
        activity,
        mode,
        rows,
    }
}

fn encode_line(fields: &[String], encoding: GeneratedEncoding, out: &mut Vec<u8>) {
    let line: String = fields
        .iter()
        .map(|f| quoted(f))
        .collect::<Vec<_>>()
        .join(";");
    match encoding {
        GeneratedEncoding::Windows1252 => {
            let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&line);
            out.extend_from_slice(&bytes);
        }
        GeneratedEncoding::Utf8 | GeneratedEncoding::Utf8WithBom => {
            out.extend_from_slice(line.as_bytes())
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes an export of exactly `spec.lines` data lines (plus the header) to `out`.
pub fn write_export<W: Write>(spec: &ExportSpec, mut out: W) -> io::Result<GeneratedExport> {
    let mut rng = Rng(spec.seed);
    let mut tally = GeneratedExport::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    if spec.encoding == GeneratedEncoding::Utf8WithBom {
        buf.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
    }
    encode_line(&header(), spec.encoding, &mut buf);
    let mut index = 0u64;
    let mut last_family = None;
    while tally.lines < spec.lines && spec.invoices.is_none_or(|max| tally.invoices < max) {
        let inv = invoice(&mut rng, spec, index);
        let room = (spec.lines - tally.lines) as usize;
        let mut total = Money::ZERO;
        for (row, amount) in inv.rows.iter().take(room) {
            encode_line(row, spec.encoding, &mut buf);
            total = total.checked_add(*amount).unwrap_or(total);
            tally.lines += 1;
        }
        tally.invoices += 1;
        tally.total = tally.total.checked_add(total).unwrap_or(tally.total);
        *tally
            .invoices_per_activity
            .entry(inv.activity.to_string())
            .or_insert(0) += 1;
        *tally
            .invoices_per_mode
            .entry(inv.mode.to_string())
            .or_insert(0) += 1;
        if last_family != Some(index / 3) {
            tally.families += 1;
            last_family = Some(index / 3);
        }
        index += 1;
        if buf.len() >= 60 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_count_ends_the_file_after_whole_invoices() {
        let mut by_invoices = Vec::new();
        let tally = write_export(&ExportSpec::with_invoices(1_000), &mut by_invoices).unwrap();
        assert_eq!(tally.invoices, 1_000);
        assert!(tally.lines > 1_000, "most invoices have several lines");
        // The same lines asked by count: the same bytes, so no invoice was cut short.
        let mut by_lines = Vec::new();
        let same = write_export(&ExportSpec::new(tally.lines), &mut by_lines).unwrap();
        assert_eq!(same, tally);
        assert_eq!(by_lines, by_invoices);
        // One more line starts invoice 1001.
        let more = write_export(&ExportSpec::new(tally.lines + 1), &mut Vec::new()).unwrap();
        assert_eq!(more.invoices, 1_001);
    }
}
