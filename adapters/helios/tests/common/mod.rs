//! Shared fixtures of the integration tests: a commune's configuration and budget, invoices
//! as Polyfac would send them, XSD validation against the official schemas, and the
//! adapter's simulated Trésorerie (`encaisse_helios::sim`) answering with `PES_ACQUIT` and
//! `PES_Retour` files shaped as the DGFiP schemas say (each one is validated against its XSD
//! before use).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use encaisse_helios::aller::{Bordereau, Titre};
use encaisse_helios::codes::BordereauKind;
use encaisse_helios::config::{AsapMode, HeliosTenantConfig, PeriodRule, PostalAddress};
use encaisse_helios::events::{
    BordereauQuery, BudgetCodes, EmargementStore, KnownTitre, TitreLookup,
};
use encaisse_helios::reconcile::{LineKey, Sighting};
use encaisse_schemas::Money;
use encaisse_schemas::events::{
    Address, Civilite, InvoiceIssued, InvoiceLine, InvoiceRef, Mandate, Payer, PaymentMode,
    SequenceType, SourceRef, TitreRef,
};
use encaisse_schemas::identifiers::{Bic, Iban, Ics, Rum};
use encaisse_schemas::tenant::{Budget, CollectionPath, TenantId};
use rust_decimal::Decimal;

pub fn specs() -> PathBuf {
    encaisse_xml::specs::specs_dir()
}

pub fn sample(path: &str) -> Vec<u8> {
    let p = specs().join("pes-v2/samples").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn money(s: &str) -> Money {
    Money::parse(s).unwrap()
}

/// Validates `bytes` against `schema`, failing the test with xmllint's report (skipped,
/// and recorded, when the official schema is absent: `encaisse_xml::specs`).
pub fn assert_valid(schema: &std::path::Path, name: &str, bytes: &[u8]) {
    if let Err(e) = encaisse_xml::specs::validate_bytes_or_skip(schema, name, bytes) {
        panic!("{e}\n--- document ---\n{}", String::from_utf8_lossy(bytes));
    }
}

pub fn budget() -> Budget {
    Budget {
        code: "principal".into(),
        cod_bud: "00".into(),
        cod_col: "123".into(),
        siret: "21940000000017".into(),
        label: "Commune de Test".into(),
        payfip_numcli: Some("008112".into()),
    }
}

pub fn config(kind: BordereauKind) -> HeliosTenantConfig {
    let mut config = HeliosTenantConfig {
        id_post: "094000".into(),
        bordereau_kind: kind,
        ..HeliosTenantConfig::default()
    };
    config.ormc.period_rule = PeriodRule::Fixed;
    config.ormc.fixed_period = 1;
    config
}

/// A configuration whose ASAP are printed by the DGFiP (`mode`).
pub fn config_with_asap(kind: BordereauKind, mode: AsapMode) -> HeliosTenantConfig {
    let mut config = config(kind);
    let asap = &mut config.asap;
    asap.mode = mode;
    asap.emitter_name = "Mairie de Test".into();
    asap.emitter_address = PostalAddress {
        complement: None,
        street: "1 place de l'Hôtel de Ville".into(),
        locality: None,
        postal_code: "94000".into(),
        city: "Créteil".into(),
    };
    asap.phone = Some("01 23 45 67 89".into());
    asap.email = Some("facturation@mairie-test.fr".into());
    asap.ics = Some(Ics::parse("FR72ZZZ123456").unwrap());
    asap.issuer_number = Some("940033".into());
    asap.signatory_last_name = "Durand".into();
    asap.signatory_first_name = "Claire".into();
    asap.signatory_role = "Le Maire".into();
    asap.payment_centre = PostalAddress {
        complement: None,
        street: String::new(),
        locality: Some("TSA 12345".into()),
        postal_code: "59041".into(),
        city: "Lille Cedex".into(),
    };
    asap.public_finance_centre_name = "SGC de Créteil".into();
    asap.public_finance_centre_address = PostalAddress {
        complement: None,
        street: "2 rue de la Trésorerie".into(),
        locality: None,
        postal_code: "94000".into(),
        city: "Créteil".into(),
    };
    asap.dispute_terms = Some("Tribunal administratif de Melun".into());
    assert!(
        config.validate("test").is_empty(),
        "{:?}",
        config.validate("test")
    );
    config
}

pub fn line(
    number: u32,
    product: &str,
    cod: &str,
    label: &str,
    quantity: i64,
    unit: &str,
) -> InvoiceLine {
    let unit_price = money(unit);
    let amount =
        Money::round_half_up(unit_price.times(Decimal::new(quantity, 0)).unwrap()).unwrap();
    InvoiceLine {
        number,
        product: product.into(),
        cod_prod_loc: cod.into(),
        nature: "7067".into(),
        fonction: Some("251".into()),
        label: label.into(),
        quantity: Decimal::new(quantity, 0),
        unit_price,
        amount,
    }
}

/// An invoice of the 2024 exercice, September, for family `n`.
pub fn invoice(n: u32, mode: PaymentMode) -> InvoiceIssued {
    let lines = vec![
        line(
            1,
            "CANTINE",
            "RS01",
            "Restauration scolaire septembre 2024",
            15,
            "3.02",
        ),
        line(
            2,
            "SOIR",
            "PS01",
            "Accueil du soir septembre 2024",
            6,
            "2.00",
        ),
    ];
    let total = Money::sum(lines.iter().map(|l| &l.amount)).unwrap();
    let mandate = (mode == PaymentMode::Prelevement || mode == PaymentMode::Tip).then(|| Mandate {
        rum: Rum::parse(&format!("FAM{n:06}-001")).unwrap(),
        signed_on: date(2023, 8, 28),
        iban: Iban::parse("FR7630004000031234567890143").unwrap(),
        bic: Some(Bic::parse("BNPAFRPPXXX").unwrap()),
        holder: "Dupont Marie".into(),
        sequence: Some(SequenceType::Rcur),
    });
    InvoiceIssued {
        schema_version: 1,
        invoice: InvoiceRef {
            tenant: TenantId::new("test").unwrap(),
            exercice: 2024,
            number: format!("F2024{n:06}"),
        },
        source: SourceRef {
            application: "polyfac".into(),
            run_id: "run-2024-09".into(),
            file: Some("export.csv".into()),
            lines: Some((2, 3)),
        },
        content_hash: format!("{n:064}"),
        issued_on: date(2024, 10, 1),
        period: 9,
        activity: "PERISCOLAIRE".into(),
        budget: "principal".into(),
        collection: CollectionPath::Titres,
        regie: None,
        family_code: format!("FAM{n:06}"),
        payer: Payer {
            civilite: Civilite::Mme,
            last_name: "Dupont".into(),
            first_name: "Marie".into(),
            address: Address {
                complement: Some("Bâtiment B".into()),
                street: "10 rue des Écoles".into(),
                locality: None,
                postal_code: "94000".into(),
                city: "Créteil".into(),
            },
            email: Some("marie.dupont@example.org".into()),
        },
        lines,
        total,
        due_date: date(2024, 10, 15),
        payment_mode: mode,
        mandate,
        online_payable: true,
    }
}

pub fn bordereau<'a>(
    config: &'a HeliosTenantConfig,
    budget: &'a Budget,
    id_bord: u32,
) -> Bordereau<'a> {
    Bordereau {
        config,
        budget,
        exercice: 2024,
        id_bord,
        date: date(2024, 10, 5),
    }
}

pub fn titre(invoice: &InvoiceIssued, id_pce: u32) -> Titre<'_> {
    Titre {
        invoice,
        id_pce,
        sequence: None,
        asap_pdf: None,
    }
}

/// The ledger's knowledge of what was sent, as the `helios.returns` stage would answer.
#[derive(Default)]
pub struct Sent {
    /// (exercice, typ_bord, id_bord) → titres; file name → typ_bord.
    pub bordereaux: BTreeMap<(u16, String, u64), Vec<KnownTitre>>,
    pub files: BTreeMap<String, String>,
    pub dettes: BTreeMap<(String, String), KnownTitre>,
}

impl Sent {
    pub fn record(
        &mut self,
        file: &str,
        kind: BordereauKind,
        exercice: u16,
        id_bord: u32,
        titres: &[Titre<'_>],
    ) {
        let typ_bord = kind.typ_bord().to_string();
        self.files.insert(file.to_string(), typ_bord.clone());
        let known: Vec<KnownTitre> = titres
            .iter()
            .map(|t| KnownTitre {
                invoice: t.invoice.invoice.clone(),
                titre: TitreRef {
                    budget: t.invoice.budget.clone(),
                    exercice,
                    bordereau_type: typ_bord.clone(),
                    id_bord,
                    id_pce: t.id_pce,
                },
                payment_mode: t.invoice.payment_mode,
            })
            .collect();
        self.bordereaux
            .insert((exercice, typ_bord, u64::from(id_bord)), known);
    }
}

impl TitreLookup for Sent {
    fn bordereau(&self, q: &BordereauQuery<'_>) -> Vec<KnownTitre> {
        let typ = match (q.typ_bord, q.sent_file) {
            (Some(t), _) => t.to_string(),
            (None, Some(file)) => match self.files.get(file) {
                Some(t) => t.clone(),
                None => return Vec::new(),
            },
            (None, None) => return Vec::new(),
        };
        self.bordereaux
            .get(&(q.exercice, typ, q.id_bord))
            .cloned()
            .unwrap_or_default()
    }

    fn piece(&self, q: &BordereauQuery<'_>, id_pce: u64) -> Option<KnownTitre> {
        self.bordereau(q)
            .into_iter()
            .find(|t| u64::from(t.titre.id_pce) == id_pce)
    }

    fn dette(&self, _budget: BudgetCodes<'_>, num_dette: &str, per: &str) -> Option<KnownTitre> {
        self.dettes
            .get(&(num_dette.to_string(), per.to_string()))
            .cloned()
    }
}

/// Émargements remembered per line, as the ledger would after each file.
#[derive(Default)]
pub struct Known(pub BTreeMap<LineKey, Vec<Sighting>>);

impl EmargementStore for Known {
    fn known(&self, line: &LineKey) -> Vec<Sighting> {
        self.0.get(line).cloned().unwrap_or_default()
    }
}

impl Known {
    pub fn remember(&mut self, states: &[(LineKey, Vec<Sighting>)]) {
        for (k, v) in states {
            self.0.insert(k.clone(), v.clone());
        }
    }
}

/// The simulated Trésorerie (the adapter's `encaisse_helios::sim`), with the header of the
/// test commune (codique 094000, SIRET 21940000000017, CodCol 123, budget 00) and the
/// tests' shapes: a bordereau known by its numbers, pièces and lines given with their
/// amounts.
pub mod tresorerie {
    use encaisse_helios::sim::{
        self, Emargement, RetourLine, RetourPiece, Sent, SentBordereau, SentLine, SentPiece,
    };

    use super::*;

    fn parse_date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn sent(nom_fic: &str, bordereaux: Vec<SentBordereau>) -> Sent {
        Sent {
            nom_fic: nom_fic.to_string(),
            id_post: "094000".into(),
            id_coll: "21940000000017".into(),
            cod_col: "123".into(),
            cod_bud: "00".into(),
            bordereaux,
        }
    }

    /// A `PES_ACQUIT` for bordereau `exercice/id_bord` of file `nom_fic`: accepted, or
    /// rejected with `(IdPce, IdLigne, code, text)` errors.
    pub fn acquit(
        nom_fic: &str,
        exercice: u16,
        id_bord: u32,
        errors: &[(u32, u32, &str, &str)],
    ) -> Vec<u8> {
        let file = sent(
            nom_fic,
            vec![SentBordereau {
                exercice,
                id_bord,
                typ_bord: "01".into(),
                nbr_pce: 0,
                pieces: Vec::new(),
            }],
        );
        let rejected = if errors.is_empty() {
            Vec::new()
        } else {
            let errors = errors.iter().map(sim::LineError::from).collect();
            vec![(id_bord, errors)]
        };
        sim::acquit(&file, date(2024, 10, 6), &rejected).unwrap()
    }

    /// A line of a PES Retour: state and émargements `(OrgEma, date, amount)`.
    pub struct RLine<'a> {
        pub id_ligne: u32,
        pub state: &'a str,
        pub amount: &'a str,
        pub emargements: Vec<(&'a str, &'a str, &'a str)>,
    }

    /// A pièce of a PES Retour.
    pub struct RPiece<'a> {
        pub id_pce: u32,
        pub state: &'a str,
        pub obs: Option<&'a str>,
        pub taken_on: Option<&'a str>,
        pub rejected_on: Option<&'a str>,
        pub lines: Vec<RLine<'a>>,
    }

    /// A `PES_Retour` recette with one bordereau (exercice 2024), dated 2024-10-31.
    pub fn retour(
        name: &str,
        typ_restit: &str,
        typ_bord: &str,
        id_bord: u32,
        pieces: &[RPiece<'_>],
    ) -> Vec<u8> {
        let typ_pce = if typ_bord == "06" { "15" } else { "01" };
        let bordereau = SentBordereau {
            exercice: 2024,
            id_bord,
            typ_bord: typ_bord.into(),
            nbr_pce: pieces.len() as u32,
            pieces: pieces
                .iter()
                .map(|p| SentPiece {
                    id_pce: p.id_pce,
                    typ_pce: typ_pce.into(),
                    object: None,
                    num_dette: None,
                    per: None,
                    cle1: None,
                    cle2: None,
                    lines: p
                        .lines
                        .iter()
                        .map(|l| SentLine {
                            id_ligne: l.id_ligne,
                            amount: l.amount.into(),
                            sequence: None,
                        })
                        .collect(),
                })
                .collect(),
        };
        let answers: Vec<RetourPiece> = pieces
            .iter()
            .map(|p| RetourPiece {
                id_pce: p.id_pce,
                state: p.state.into(),
                obs: p.obs.map(str::to_string),
                taken_on: p.taken_on.map(parse_date),
                rejected_on: p.rejected_on.map(parse_date),
                lines: p
                    .lines
                    .iter()
                    .map(|l| RetourLine {
                        id_ligne: l.id_ligne,
                        state: l.state.into(),
                        emargements: l
                            .emargements
                            .iter()
                            .map(|(org, day, amount)| Emargement {
                                org_ema: org.to_string(),
                                date: parse_date(day),
                                amount: money(amount),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let file = sent("PESALR1_TEST.xml", vec![bordereau.clone()]);
        sim::retour(
            &file,
            &bordereau,
            name,
            typ_restit,
            date(2024, 10, 31),
            &answers,
        )
        .unwrap()
    }
}
