//! The PES code lists this adapter writes or interprets (`pes-v2.md` §2.8, §3, §4; DGFiP
//! dossier `*_codes.html`). Codes read from the Trésorerie's files are kept as their text
//! too, so an unknown future value is reported rather than lost.

use serde::{Deserialize, Serialize};

/// Which kind of bordereau a tenant sends (`[tenants.helios] bordereau_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BordereauKind {
    /// Titres ordinaires: `TypFic PESALR1`, triplet TypBord 01 / TypPce 01 / NatPce 01.
    #[default]
    Ordinaire,
    /// Ordre de recette multi-créanciers: `TypFic PESORMC`, triplet 06 / 15 / 01, with
    /// `NumDette`, `Per`, `Cle1`, `Cle2` on every article.
    Ormc,
}

impl BordereauKind {
    /// `TypBord`.
    pub fn typ_bord(self) -> &'static str {
        match self {
            BordereauKind::Ordinaire => "01",
            BordereauKind::Ormc => "06",
        }
    }

    /// `TypPce`.
    pub fn typ_pce(self) -> &'static str {
        match self {
            BordereauKind::Ordinaire => "01",
            BordereauKind::Ormc => "15",
        }
    }

    /// `NatPce` (fonctionnement).
    pub fn nat_pce(self) -> &'static str {
        "01"
    }

    /// Default `TypFic` of the file.
    pub fn default_typ_fic(self) -> &'static str {
        match self {
            BordereauKind::Ordinaire => "PESALR1",
            BordereauKind::Ormc => "PESORMC",
        }
    }

    /// The kind whose `TypBord` is `code`, if encaisse writes such bordereaux.
    pub fn from_typ_bord(code: &str) -> Option<Self> {
        match code {
            "01" => Some(BordereauKind::Ordinaire),
            "06" => Some(BordereauKind::Ormc),
            _ => None,
        }
    }
}

/// `EtatPce`: the state of a pièce in a PES Retour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EtatPce {
    /// 01 en instance (waiting for the comptable).
    EnInstance,
    /// 02 prise en charge.
    PriseEnCharge,
    /// 03 prise en charge partielle.
    PriseEnChargePartielle,
    /// 04 rejeté.
    Rejete,
    /// 05 annulé.
    Annule,
    /// A code the v5.17 dossier does not list.
    Other(String),
}

impl EtatPce {
    pub fn from_code(code: &str) -> Self {
        match code {
            "01" => EtatPce::EnInstance,
            "02" => EtatPce::PriseEnCharge,
            "03" => EtatPce::PriseEnChargePartielle,
            "04" => EtatPce::Rejete,
            "05" => EtatPce::Annule,
            other => EtatPce::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            EtatPce::EnInstance => "01",
            EtatPce::PriseEnCharge => "02",
            EtatPce::PriseEnChargePartielle => "03",
            EtatPce::Rejete => "04",
            EtatPce::Annule => "05",
            EtatPce::Other(code) => code,
        }
    }
}

/// `EtatLigPce`: the state of a line of a pièce in a PES Retour.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EtatLigPce {
    /// 01 rejeté.
    Rejetee,
    /// 02 annulé.
    Annulee,
    /// 03 mis en instance.
    EnInstance,
    /// 04 non soldée (still owed, in whole or in part).
    NonSoldee,
    /// 05 soldée (paid).
    Soldee,
    /// 06 soldée en non-valeur (written off).
    SoldeeEnNonValeur,
    Other(String),
}

impl EtatLigPce {
    pub fn from_code(code: &str) -> Self {
        match code {
            "01" => EtatLigPce::Rejetee,
            "02" => EtatLigPce::Annulee,
            "03" => EtatLigPce::EnInstance,
            "04" => EtatLigPce::NonSoldee,
            "05" => EtatLigPce::Soldee,
            "06" => EtatLigPce::SoldeeEnNonValeur,
            other => EtatLigPce::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            EtatLigPce::Rejetee => "01",
            EtatLigPce::Annulee => "02",
            EtatLigPce::EnInstance => "03",
            EtatLigPce::NonSoldee => "04",
            EtatLigPce::Soldee => "05",
            EtatLigPce::SoldeeEnNonValeur => "06",
            EtatLigPce::Other(code) => code,
        }
    }
}

/// `OrgEma`: where an encaissement / émargement of a titre line comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OrgEma {
    /// 01 encaissement avant émission de titre.
    AvantEmission,
    /// 02 encaissement (sur pièce): at the counter of the Trésorerie.
    Encaissement,
    /// 03 flux d'encaissement (sauf TIPI): the payment centre (TIP SEPA, talon + cheque) and,
    /// by inference (`pes-v2.md` §4, §10.4), direct debits emitted by Hélios.
    FluxEncaissement,
    /// 04 mandat correctif.
    MandatCorrectif,
    /// 05 mandat.
    Mandat,
    /// 06 liste de non-valeur (written off: no money).
    NonValeur,
    /// 07 titre correctif (reduction: no money).
    TitreCorrectif,
    /// 08 titre.
    Titre,
    /// 09 annulation de frais de poursuite.
    AnnulationFrais,
    /// 10 TIPI: online payment (PayFiP).
    Tipi,
    /// 11 encaissement technique (ORMC reversement).
    EncaissementTechnique,
    /// 12 divers.
    Divers,
    Other(String),
}

impl OrgEma {
    pub fn from_code(code: &str) -> Self {
        match code {
            "01" => OrgEma::AvantEmission,
            "02" => OrgEma::Encaissement,
            "03" => OrgEma::FluxEncaissement,
            "04" => OrgEma::MandatCorrectif,
            "05" => OrgEma::Mandat,
            "06" => OrgEma::NonValeur,
            "07" => OrgEma::TitreCorrectif,
            "08" => OrgEma::Titre,
            "09" => OrgEma::AnnulationFrais,
            "10" => OrgEma::Tipi,
            "11" => OrgEma::EncaissementTechnique,
            "12" => OrgEma::Divers,
            other => OrgEma::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            OrgEma::AvantEmission => "01",
            OrgEma::Encaissement => "02",
            OrgEma::FluxEncaissement => "03",
            OrgEma::MandatCorrectif => "04",
            OrgEma::Mandat => "05",
            OrgEma::NonValeur => "06",
            OrgEma::TitreCorrectif => "07",
            OrgEma::Titre => "08",
            OrgEma::AnnulationFrais => "09",
            OrgEma::Tipi => "10",
            OrgEma::EncaissementTechnique => "11",
            OrgEma::Divers => "12",
            OrgEma::Other(code) => code,
        }
    }
}

/// `TypRestit` of a PES Retour recette: which flow the file is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypRestit {
    /// 01: daily flow of rejected / suspended titres (carries no émargements).
    Rejet,
    /// 02: periodic flow (states and émargements of the lines that moved).
    Periodique,
    /// 03: stock (every line).
    Stock,
    Other(String),
}

impl TypRestit {
    pub fn from_code(code: &str) -> Self {
        match code {
            "01" => TypRestit::Rejet,
            "02" => TypRestit::Periodique,
            "03" => TypRestit::Stock,
            other => TypRestit::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            TypRestit::Rejet => "01",
            TypRestit::Periodique => "02",
            TypRestit::Stock => "03",
            TypRestit::Other(code) => code,
        }
    }

    /// Whether the lines of such a file carry their full émargement state, so that an
    /// émargement missing from a line that is present means it was neutralised. The daily
    /// rejection flow does not carry émargements at all ("ce bloc est absent des lignes de
    /// pièces du retour quotidien", `PES_RecetteRetour_blocs.html`).
    pub fn carries_emargements(&self) -> bool {
        matches!(self, TypRestit::Periodique | TypRestit::Stock)
    }
}

/// `DomaineAck` of an acquit element.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DomaineAck {
    Technique,
    SignatureTechnique,
    SignatureGlobale,
    SignatureBordereau,
    Pj,
    Depense,
    Recette,
    Role,
    Budget,
    EtatActif,
    EtatPassif,
    Marche,
    Facture,
    Parametrage,
    Other(String),
}

impl DomaineAck {
    pub fn from_code(code: &str) -> Self {
        match code {
            "0" => DomaineAck::Technique,
            "1" => DomaineAck::SignatureTechnique,
            "2" => DomaineAck::SignatureGlobale,
            "3" => DomaineAck::SignatureBordereau,
            "4" => DomaineAck::Pj,
            "5" => DomaineAck::Depense,
            "6" => DomaineAck::Recette,
            "7" => DomaineAck::Role,
            "8" => DomaineAck::Budget,
            "9" => DomaineAck::EtatActif,
            "10" => DomaineAck::EtatPassif,
            "11" => DomaineAck::Marche,
            "12" => DomaineAck::Facture,
            "99" => DomaineAck::Parametrage,
            other => DomaineAck::Other(other.to_string()),
        }
    }

    pub fn code(&self) -> &str {
        match self {
            DomaineAck::Technique => "0",
            DomaineAck::SignatureTechnique => "1",
            DomaineAck::SignatureGlobale => "2",
            DomaineAck::SignatureBordereau => "3",
            DomaineAck::Pj => "4",
            DomaineAck::Depense => "5",
            DomaineAck::Recette => "6",
            DomaineAck::Role => "7",
            DomaineAck::Budget => "8",
            DomaineAck::EtatActif => "9",
            DomaineAck::EtatPassif => "10",
            DomaineAck::Marche => "11",
            DomaineAck::Facture => "12",
            DomaineAck::Parametrage => "99",
            DomaineAck::Other(code) => code,
        }
    }
}

/// The wording of an `ObsEtat` reason code (`PES_RecetteRetour_codes.html`, `pes-v2.md` §4).
pub fn obs_etat_label(code: &str) -> Option<&'static str> {
    Some(match code {
        "01" => "absence de caractère exécutoire",
        "02" => "absence d'indication de la créance",
        "03" => "absence d'indication du débiteur",
        "04" => "imputation erronée",
        "05" => "prescription",
        "06" => "autres",
        "07" => "absence de référence à la pièce d'origine",
        "08" => "type de bordereau inexistant",
        "09" => "exercice non ouvert",
        "10" => "bordereau sans date d'émission",
        "11" => "montant du bordereau incohérent",
        "12" => "absence de signature",
        "13" => "absence de TVA",
        "14" => "incompétence du donneur d'ordre",
        "15" => "insuffisance des pièces justificatives",
        "16" => "absence ou invalidité des pièces justificatives",
        "17" => "domiciliation bancaire absente ou erronée",
        "18" => "numéro de bordereau en doublon",
        "19" => "complément d'information",
        "20" => "attente du titre récapitulatif",
        "21" => "titre incomplet",
        "22" => "exercice du rôle clôturé",
        "23" => "numéro de rôle non unique",
        "24" => "exercice du rôle initial clôturé",
        "25" => "rôle initial inexistant",
        "26" => "rôle initial non pris en compte",
        "27" => "date de prélèvement incorrecte",
        "28" => "numéro d'article non unique",
        "29" => "date d'ASP incorrecte",
        "30" => "code produit inconnu",
        "31" => "SIRET de la collectivité bénéficiaire inexistant",
        "32" => "collectivité non assujettie à la TVA",
        "33" => "montant majorable",
        "34" => "montant du prélèvement",
        "35" => "domiciliation erronée",
        "36" => "domiciliation inexistante",
        "37" => "rapprochement du rôle impossible",
        "38" | "39" | "40" => "forçage",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in ["01", "02", "03", "04", "05", "77"] {
            assert_eq!(EtatPce::from_code(code).code(), code);
        }
        for code in ["01", "02", "03", "04", "05", "06", "99"] {
            assert_eq!(EtatLigPce::from_code(code).code(), code);
        }
        for n in 1..=13 {
            let code = format!("{n:02}");
            assert_eq!(OrgEma::from_code(&code).code(), code);
        }
        for code in ["0", "4", "5", "6", "7", "12", "99", "42"] {
            assert_eq!(DomaineAck::from_code(code).code(), code);
        }
        assert_eq!(OrgEma::from_code("10"), OrgEma::Tipi);
        assert_eq!(OrgEma::from_code("03"), OrgEma::FluxEncaissement);
    }

    #[test]
    fn only_periodic_and_stock_flows_carry_emargements() {
        assert!(!TypRestit::from_code("01").carries_emargements());
        assert!(TypRestit::from_code("02").carries_emargements());
        assert!(TypRestit::from_code("03").carries_emargements());
        assert!(!TypRestit::from_code("AA").carries_emargements());
    }

    #[test]
    fn triplets() {
        assert_eq!(
            (
                BordereauKind::Ormc.typ_bord(),
                BordereauKind::Ormc.typ_pce(),
                BordereauKind::Ormc.nat_pce()
            ),
            ("06", "15", "01")
        );
        assert_eq!(BordereauKind::Ordinaire.typ_pce(), "01");
        assert_eq!(
            BordereauKind::from_typ_bord("06"),
            Some(BordereauKind::Ormc)
        );
        assert_eq!(
            obs_etat_label("17"),
            Some("domiciliation bancaire absente ou erronée")
        );
        assert_eq!(obs_etat_label("99"), None);
    }
}
