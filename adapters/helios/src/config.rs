//! Configuration of the Hélios adapter: `[tenants.helios]` in `encaisse.toml`.
//!
//! Budget codes (`CodCol`, `CodBud`, SIRET, label, PayFiP client number) are not here: they
//! come from the tenant's `[[tenants.budgets]]` (`encaisse_schemas::tenant::Budget`). What is
//! here is what the Trésorerie gives a commune or what the PES lets it choose, and every fact
//! the specs mark as unconfirmed, so that it can be changed without a new release
//! (`docs/helios.md` lists them).
//!
//! Every field has a default in a function except the codique (`id_post`): a default
//! configuration is not usable and [`HeliosTenantConfig::validate`] says so.

use std::collections::BTreeMap;

use encaisse_schemas::events::PaymentMode;
use encaisse_schemas::identifiers::Ics;
use encaisse_schemas::tenant::ConfigIssue;
use serde::{Deserialize, Serialize};

use crate::aller::talon::TalonOptiqueLayout;
use crate::codes::BordereauKind;
use crate::keys::Mod11ZeroRemainder;
use crate::template::{self, Value};
use crate::text::{TextStyle, is_forbidden_value};

/// `[tenants.helios]`: a commune's Hélios settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeliosTenantConfig {
    /// Codique of the Trésorerie (`EnTetePES/IdPost`): 6 or 7 digits, or `02A`/`02B` and 3–4
    /// digits (Corsica). Given by the Trésorerie; a wrong value rejects the whole file.
    #[serde(default)]
    pub id_post: String,
    /// Short name of the Trésorerie (`EnTetePES/LibellePoste`, ≤ 38 characters), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libelle_poste: Option<String>,
    /// `ordinaire` (titres ordinaires: `PESALR1`, 01/01/01) or `ormc` (ordre de recette
    /// multi-créanciers: `PESORMC`, 06/15/01). Chosen with the Trésorerie.
    #[serde(default)]
    pub bordereau_kind: BordereauKind,
    /// `Enveloppe/Parametres/TypFic`. Default: `PESALR1` for titres ordinaires, `PESORMC` for
    /// ORMC (`pes-v2.md` §2.2; some tiers de télétransmission use `PESALR2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ_fic: Option<String>,
    /// `Enveloppe/Emetteur/Sigle` (≤ 32): who produced the file.
    #[serde(default = "default_emitter_sigle")]
    pub emitter_sigle: String,
    /// `Enveloppe/Emetteur/Adresse` (≤ 38): "name + version" of the producing software.
    /// The default carries no version on purpose: a bordereau rewritten after a crash and an
    /// upgrade must keep the same bytes (the ledger refuses different bytes on a recorded
    /// path).
    #[serde(default = "default_emitter_adresse")]
    pub emitter_adresse: String,
    /// Name of the PES Aller file (also written in `NomFic`, ≤ 100 characters). Placeholders:
    /// `{typ_fic}`, `{siret}`, `{cod_col}`, `{cod_bud}`, `{id_post}`, `{exercice}`,
    /// `{typ_bord}`, `{id_bord}` (add a width to zero-pad: `{id_bord:7}`), `{date}`
    /// (`AAAAMMJJ` of the bordereau). Must contain `{exercice}`, `{id_bord}` and `{siret}` (or
    /// `{cod_col}` and `{cod_bud}`), so that two bordereaux never share a name. No
    /// timestamp: a bordereau rewritten after a crash gets the same name and bytes. Whether
    /// the Trésorerie imposes a pattern is not confirmed (`pes-v2.md` §2.1).
    #[serde(default = "default_file_name_pattern")]
    pub file_name_pattern: String,
    /// Encoding of the files written (`utf-8` or `iso-8859-1`); both validate, the
    /// Trésorerie's own files are ISO-8859-1.
    #[serde(default)]
    pub output_encoding: OutputEncoding,
    /// How names, addresses and objects are written: `upper_ascii` (postal norm: upper case,
    /// no accents; default), `ascii`, or `preserve`.
    #[serde(default)]
    pub text_style: TextStyle,
    /// Spaces of indentation per level in the files written (one element per line either
    /// way). 0 (default) keeps files ~40 % smaller; 2 gives the layout of the DGFiP samples.
    #[serde(default)]
    pub indent_spaces: u8,
    /// Largest PES_ACQUIT / PES_Retour file read, in bytes; larger files are refused.
    #[serde(default = "default_max_input_bytes")]
    pub max_input_bytes: u64,
    /// PES_ACQUIT / PES_Retour files with more XML elements than this are refused (default
    /// 1 000 000: a large commune's PES Retour holds some tens of thousands; the bound caps
    /// the memory one file takes).
    #[serde(default = "default_max_input_elements")]
    pub max_input_elements: usize,
    /// `Civilite` written for `M` payers. The DGFiP list is closed but not published
    /// (`pes-v2.md` §2.6): `M` is what Noethysweb sends.
    #[serde(default = "default_civilite_m")]
    pub civilite_m: String,
    /// `Civilite` written for `MME` payers (Noethysweb: `MME`).
    #[serde(default = "default_civilite_mme")]
    pub civilite_mme: String,
    /// Whether `InfoTiers/RefTiers` carries the family code (lets Hélios group a family's
    /// debts; ≤ 30 characters).
    #[serde(default = "default_true")]
    pub send_family_code: bool,
    /// Most pièces in one bordereau (`NbrPce`), 1 to 99 999 (the schema's limit, `Base_Num5`).
    /// A billing run with more titres is split into several consecutive bordereaux of the
    /// same PES Aller file (the `helios.titres` stage does it). Lower it if the Trésorerie
    /// asks for smaller bordereaux.
    #[serde(default = "default_max_pieces_per_bordereau")]
    pub max_pieces_per_bordereau: usize,
    /// Object of each titre (`ObjPce`, ≤ 160). Placeholders: `{invoice}`, `{activity}`,
    /// `{exercice}`, `{period}` (month, 2 digits), `{month_name}` (French, upper case),
    /// `{budget_label}`.
    #[serde(default = "default_piece_object")]
    pub piece_object: String,
    /// Direct-debit settings (invoices paid by `PRELEVEMENT`).
    #[serde(default)]
    pub debit: DebitConfig,
    /// ORMC settings (used when `bordereau_kind = "ormc"`).
    #[serde(default)]
    pub ormc: OrmcConfig,
    /// ASAP printed by the DGFiP (TIP SEPA, PayFiP identifier).
    #[serde(default)]
    pub asap: AsapConfig,
    /// Reading the Trésorerie's files.
    #[serde(default)]
    pub returns: ReturnsConfig,
}

impl Default for HeliosTenantConfig {
    fn default() -> Self {
        HeliosTenantConfig {
            id_post: String::new(),
            libelle_poste: None,
            bordereau_kind: BordereauKind::default(),
            typ_fic: None,
            emitter_sigle: default_emitter_sigle(),
            emitter_adresse: default_emitter_adresse(),
            file_name_pattern: default_file_name_pattern(),
            output_encoding: OutputEncoding::default(),
            text_style: TextStyle::default(),
            indent_spaces: 0,
            max_input_bytes: default_max_input_bytes(),
            max_input_elements: default_max_input_elements(),
            civilite_m: default_civilite_m(),
            civilite_mme: default_civilite_mme(),
            send_family_code: true,
            max_pieces_per_bordereau: default_max_pieces_per_bordereau(),
            piece_object: default_piece_object(),
            debit: DebitConfig::default(),
            ormc: OrmcConfig::default(),
            asap: AsapConfig::default(),
            returns: ReturnsConfig::default(),
        }
    }
}

/// Encoding of the XML files written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OutputEncoding {
    #[serde(rename = "utf-8")]
    Utf8,
    /// Characters outside Latin-1 (only possible with `text_style = "preserve"`) are written
    /// as character references.
    #[default]
    #[serde(rename = "iso-8859-1")]
    Iso88591,
}

impl OutputEncoding {
    /// The name in the XML declaration.
    pub fn xml_name(self) -> &'static str {
        match self {
            OutputEncoding::Utf8 => "UTF-8",
            OutputEncoding::Iso88591 => "ISO-8859-1",
        }
    }
}

/// `[tenants.helios.debit]`: how `InfoPrelevementSEPA` is filled (`pes-v2.md` §2.7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebitConfig {
    /// `PerPrel`: 01 bimestrielle … 06 annuelle, 07 unique (recommended by the DGFiP: one
    /// titre per invoice and due date).
    #[serde(default = "default_periodicity")]
    pub periodicity: String,
    /// Label on the debtor's bank statement (`LibPrel`, ≤ 140, SEPA characters).
    /// Placeholders as `piece_object`.
    #[serde(default = "default_debit_label")]
    pub label: String,
    /// Smallest number of days between the bordereau date and the debit date (`DtePrel`).
    /// The comptable must take the titre in charge before Hélios emits the debit; the real
    /// lead time is not published (ObsEtat 27 "date prélèvement incorrecte").
    #[serde(default = "default_min_lead_days")]
    pub min_lead_days: u32,
}

impl Default for DebitConfig {
    fn default() -> Self {
        DebitConfig {
            periodicity: default_periodicity(),
            label: default_debit_label(),
            min_lead_days: default_min_lead_days(),
        }
    }
}

/// Where an ORMC article's `Nature` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatureSource {
    /// `ormc.nature` on every line ("proposition de valorisation à 588", dossier).
    #[default]
    Fixed,
    /// The nature account of the line's product.
    Product,
}

/// How the one-digit ORMC period `Per` is derived from the invoice's billed month (1–12).
/// Not confirmed: the field is "un complément au numéro de dette".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodRule {
    /// First digit of the month (`str(mois)[:1]`, as Noethysweb): 1–9, then 1, 1, 1.
    #[default]
    MonthFirstDigit,
    /// Last digit of the month: 1–9, then 0, 1, 2.
    MonthLastDigit,
    /// Always `ormc.fixed_period`.
    Fixed,
}

/// How the ORMC debt number `NumDette` (digits only, ≤ 15) is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumDetteRule {
    /// The invoice number with every non-digit removed (`F2024000123` → `2024000123`); an
    /// invoice with no digit or more than 15 is refused. Two invoice numbers differing only
    /// by letters would collide: use `exercice_and_piece` if Polyfac numbers are like that.
    #[default]
    InvoiceDigits,
    /// Exercice (4 digits) and `IdPce` (8 digits): unique by construction, but not the
    /// number printed on the family's invoice.
    ExerciceAndPiece,
}

/// What the "code nature" of the `Cle1` input is (`pes-v2.md` §2.10, not confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cle1NatureSource {
    /// `ormc.cle1_nature_code` (the spec's vector uses `01`).
    #[default]
    Fixed,
    /// The bordereau number as written (what Noethys does).
    IdBord,
}

/// `[tenants.helios.ormc]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrmcConfig {
    /// Where `Nature` comes from: `fixed` (`nature` below) or `product`.
    #[serde(default)]
    pub nature_source: NatureSource,
    /// `Nature` of every ORMC line when `nature_source = "fixed"` (dossier: "proposition de
    /// valorisation à 588").
    #[serde(default = "default_ormc_nature")]
    pub nature: String,
    /// How `Per` is derived from the billed month.
    #[serde(default)]
    pub period_rule: PeriodRule,
    /// `Per` when `period_rule = "fixed"` (0–9).
    #[serde(default = "default_fixed_period")]
    pub fixed_period: u8,
    /// How `NumDette` is made.
    #[serde(default)]
    pub num_dette: NumDetteRule,
    /// What stands for the "code nature" in the `Cle1` input.
    #[serde(default)]
    pub cle1_nature_source: Cle1NatureSource,
    /// The "code nature" when `cle1_nature_source = "fixed"` (digits).
    #[serde(default = "default_cle1_nature_code")]
    pub cle1_nature_code: String,
    /// Modulo-11 key when the weighted sum is a multiple of 11: `one` (PES exports) or `zero`
    /// (ROLMRE).
    #[serde(default)]
    pub mod11_zero_remainder: Mod11ZeroRemainder,
    /// Object of the rôle (`BlocBordereau/Objet`, ≤ 160). Placeholders: `{exercice}`,
    /// `{period}`, `{month_name}`, `{budget_label}`. Empty: no object.
    #[serde(default = "default_ormc_object")]
    pub bordereau_object: String,
    /// When set, `BlocBordereau/DteAsp` = bordereau date + this many days: the date the
    /// commune sends its own invoices (start of pursuits). Unset: no `DteAsp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asap_sent_after_days: Option<u32>,
}

impl Default for OrmcConfig {
    fn default() -> Self {
        OrmcConfig {
            nature_source: NatureSource::default(),
            nature: default_ormc_nature(),
            period_rule: PeriodRule::default(),
            fixed_period: default_fixed_period(),
            num_dette: NumDetteRule::default(),
            cle1_nature_source: Cle1NatureSource::default(),
            cle1_nature_code: default_cle1_nature_code(),
            mod11_zero_remainder: Mod11ZeroRemainder::default(),
            bordereau_object: default_ormc_object(),
            asap_sent_after_days: None,
        }
    }
}

/// Which titres ask the DGFiP to print and send the ASAP (`BlocPiece/Edition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsapMode {
    /// None: the commune sends its own invoices. Invoices paid by TIP are then refused (the
    /// TIP would never be printed).
    #[default]
    None,
    /// Only invoices paid by TIP: their ASAP carries a TIP SEPA.
    TipOnly,
    /// Invoices paid by TIP (with a TIP SEPA) and invoices payable online (with the talon
    /// optique and the PayFiP identifier, `CodeTipi`, which only an ASAP can carry).
    TipAndOnline,
    /// Every titre: TIP invoices with a TIP SEPA, the others with the talon optique.
    All,
}

impl AsapMode {
    /// Whether an invoice paid by `payment_mode`, payable online or not, gets a
    /// DGFiP-printed ASAP.
    pub fn wants_asap(self, payment_mode: PaymentMode, online_payable: bool) -> bool {
        let tip = payment_mode == PaymentMode::Tip;
        match self {
            AsapMode::None => false,
            AsapMode::TipOnly => tip,
            AsapMode::TipAndOnline => tip || online_payable,
            AsapMode::All => true,
        }
    }
}

/// A postal address in the configuration (emitter, Trésorerie).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    /// Complement (`Adr1`), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    /// Number and street (`Adr2`).
    #[serde(default)]
    pub street: String,
    /// Lieu-dit or TSA (`Adr3`), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Postal code or CEDEX number (5 characters).
    #[serde(default)]
    pub postal_code: String,
    /// City or CEDEX label.
    #[serde(default)]
    pub city: String,
}

/// `[tenants.helios.asap]`: the "PES Facture ASAP" (TypeFact 09) sent as a PJ of type 006
/// with titres ordinaires (`Edition 01`), or the invoice PDF as a PJ 010 with ORMC articles
/// (`Edition 06`), `pes-v2.md` §5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsapConfig {
    /// Which titres get a DGFiP-printed ASAP: `none` (default), `tip_only`,
    /// `tip_and_online`, `all`.
    #[serde(default)]
    pub mode: AsapMode,
    /// Name of the issuing collectivité printed on the ASAP (`Emetteur/InfoTiers/Nom`, ≤ 38).
    #[serde(default)]
    pub emitter_name: String,
    /// `CatTiers` of the emitter (23 communes, 24 groupements, 25 caisses des écoles, 26 CCAS).
    #[serde(default = "default_emitter_cat_tiers")]
    pub emitter_cat_tiers: String,
    /// `NatJur` of the emitter (09 collectivité territoriale / EPL / EPS).
    #[serde(default = "default_emitter_nat_jur")]
    pub emitter_nat_jur: String,
    /// Address of the emitter (mandatory on an ASAP).
    #[serde(default)]
    pub emitter_address: PostalAddress,
    /// Telephone of the service families may call (`InfoSuppl/NumTel`, ≤ 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Opening hours (`InfoSuppl/HorairesOuv`, ≤ 38).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opening_hours: Option<String>,
    /// E-mail of the service (`InfoSuppl/AdresseMelEmetteur`, ≤ 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Address of the online-payment site printed with the PayFiP identifier
    /// (`InfoSuppl/AdrTipi`, ≤ 200). The identifier itself (`CodeTipi`) is the budget's
    /// `payfip_numcli`; both are written only for invoices payable online.
    #[serde(default = "default_payfip_url")]
    pub payfip_url: String,
    /// ICS of the budget, `RefBdf` of ASAP printed with a TIP SEPA (structure checked by the
    /// DGFiP). Per-budget values in `ics_by_budget` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ics: Option<Ics>,
    /// ICS per budget key (`[[tenants.budgets]] code`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ics_by_budget: BTreeMap<String, Ics>,
    /// "Numéro émetteur" of the budget, `RefBdf` of ASAP printed with the talon optique
    /// (≤ 13 letters or digits, given by the Trésorerie). Per-budget values in
    /// `issuer_number_by_budget` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_number: Option<String>,
    /// Numéro émetteur per budget key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issuer_number_by_budget: BTreeMap<String, String>,
    /// Signatory of the ASAP (`Signataire/Personne/Nom`).
    #[serde(default)]
    pub signatory_last_name: String,
    /// `Signataire/Personne/Prenom`.
    #[serde(default)]
    pub signatory_first_name: String,
    /// `Signataire/Role` (≤ 50), e.g. "LE MAIRE".
    #[serde(default)]
    pub signatory_role: String,
    /// Address of the DGFiP payment centre the TIP is mailed to (`Tiers` of type 25): only
    /// `locality` (the TSA), `postal_code` and `city` are used — the dossier forbids
    /// `Adr1`/`Adr2` there.
    #[serde(default)]
    pub payment_centre: PostalAddress,
    /// Name of the Centre des finances publiques (`Tiers` of type 26), e.g. "SGC DE CRETEIL".
    #[serde(default)]
    pub public_finance_centre_name: String,
    /// Its address (`Adr2` mandatory).
    #[serde(default)]
    pub public_finance_centre_address: PostalAddress,
    /// `ModalitesReglement` (≤ 250, printed on the back: how to set up direct debit).
    #[serde(default = "default_payment_terms")]
    pub payment_terms: String,
    /// `ModalitesContestation` (≤ 420): how to dispute the debt (competent court).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute_terms: Option<String>,
    /// `ConditionsGen` (≤ 250, mandatory, not printed).
    #[serde(default = "default_general_conditions")]
    pub general_conditions: String,
    /// Layout of the two talon optique lines. The DGFiP "norme HEL" is not public
    /// (`pes-v2.md` §5.2, §10.1): the default is an assumption to replace once the
    /// Trésorerie gives the layout (see `aller::talon`).
    #[serde(default)]
    pub talon: TalonOptiqueLayout,
}

impl Default for AsapConfig {
    fn default() -> Self {
        AsapConfig {
            mode: AsapMode::default(),
            emitter_name: String::new(),
            emitter_cat_tiers: default_emitter_cat_tiers(),
            emitter_nat_jur: default_emitter_nat_jur(),
            emitter_address: PostalAddress::default(),
            phone: None,
            opening_hours: None,
            email: None,
            payfip_url: default_payfip_url(),
            ics: None,
            ics_by_budget: BTreeMap::new(),
            issuer_number: None,
            issuer_number_by_budget: BTreeMap::new(),
            signatory_last_name: String::new(),
            signatory_first_name: String::new(),
            signatory_role: String::new(),
            payment_centre: PostalAddress::default(),
            public_finance_centre_name: String::new(),
            public_finance_centre_address: PostalAddress::default(),
            payment_terms: default_payment_terms(),
            dispute_terms: None,
            general_conditions: default_general_conditions(),
            talon: TalonOptiqueLayout::default(),
        }
    }
}

impl AsapConfig {
    /// ICS of a budget (per-budget value, else the tenant's).
    pub fn ics_for(&self, budget: &str) -> Option<&Ics> {
        self.ics_by_budget.get(budget).or(self.ics.as_ref())
    }

    /// Numéro émetteur of a budget.
    pub fn issuer_number_for(&self, budget: &str) -> Option<&str> {
        self.issuer_number_by_budget
            .get(budget)
            .map(String::as_str)
            .or(self.issuer_number.as_deref())
    }
}

/// `[tenants.helios.returns]`: reading PES_ACQUIT and PES_Retour files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnsConfig {
    /// `OrgEma` codes whose émargements are not payments and produce no
    /// `payment.received`: by default 06 (non-valeur: written off), 07 (titre correctif:
    /// reduction) and 09 (annulation de frais). They are still reconciled, so their
    /// disappearance reverses nothing.
    #[serde(default = "default_ignored_org_ema")]
    pub ignored_org_ema: Vec<String>,
    /// Name of the `PES_ACQUIT_RETOUR` answering a PES Retour. Placeholder: `{retour_file}`
    /// (the PES Retour's name without `.xml`), `{date}`. Pastell names acquits
    /// `ACQUIT_<file>`; the real convention is not confirmed.
    #[serde(default = "default_acquit_retour_name")]
    pub acquit_retour_file_name_pattern: String,
}

impl Default for ReturnsConfig {
    fn default() -> Self {
        ReturnsConfig {
            ignored_org_ema: default_ignored_org_ema(),
            acquit_retour_file_name_pattern: default_acquit_retour_name(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_emitter_sigle() -> String {
    "ENCAISSE".into()
}
fn default_emitter_adresse() -> String {
    "ENCAISSE".into()
}
fn default_file_name_pattern() -> String {
    "{typ_fic}_{siret}_{exercice}_{id_bord:7}.xml".into()
}
fn default_max_input_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_input_elements() -> usize {
    encaisse_xml::tree::DEFAULT_MAX_ELEMENTS
}
fn default_civilite_m() -> String {
    "M".into()
}
fn default_civilite_mme() -> String {
    "MME".into()
}
fn default_max_pieces_per_bordereau() -> usize {
    crate::aller::MAX_PIECES
}
fn default_piece_object() -> String {
    "FACTURE {invoice} {month_name} {exercice}".into()
}
fn default_periodicity() -> String {
    "07".into()
}
fn default_debit_label() -> String {
    "{budget_label} FACTURE {invoice}".into()
}
fn default_min_lead_days() -> u32 {
    1
}
fn default_ormc_nature() -> String {
    "588".into()
}
fn default_fixed_period() -> u8 {
    1
}
fn default_cle1_nature_code() -> String {
    "01".into()
}
fn default_ormc_object() -> String {
    "FACTURATION {month_name} {exercice}".into()
}
fn default_emitter_cat_tiers() -> String {
    "23".into()
}
fn default_emitter_nat_jur() -> String {
    "09".into()
}
fn default_payfip_url() -> String {
    "https://www.payfip.gouv.fr".into()
}
fn default_payment_terms() -> String {
    "Pour le prelevement automatique de vos prochaines factures, prenez contact avec le service facturation de la collectivite.".into()
}
fn default_general_conditions() -> String {
    "Facture emise selon les tarifs votes par la collectivite.".into()
}
fn default_ignored_org_ema() -> Vec<String> {
    vec!["06".into(), "07".into(), "09".into()]
}
fn default_acquit_retour_name() -> String {
    "ACQUIT_{retour_file}.xml".into()
}

/// Whether `value` is a codique (`Base_TexteCodique7`: `02[A-B][0-9]{3,4}` or 6–7 digits).
pub fn is_codique(value: &str) -> bool {
    let b = value.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    (matches!(b.len(), 6 | 7) && digits(b))
        || (matches!(b.len(), 6 | 7)
            && b.starts_with(b"02")
            && matches!(b[2], b'A' | b'B')
            && digits(&b[3..]))
}

/// Sample values to check that file-name templates render.
fn file_name_sample(name: &str) -> Option<Value<'static>> {
    Some(match name {
        "typ_fic" => Value::Text("PESORMC"),
        "siret" => Value::Text("21940000000017"),
        "cod_col" => Value::Text("123"),
        "cod_bud" => Value::Text("00"),
        "id_post" => Value::Text("094000"),
        "exercice" => Value::Number(2024),
        "typ_bord" => Value::Text("06"),
        "id_bord" => Value::Number(9_999_999),
        "date" => Value::Text("20241005"),
        _ => return None,
    })
}

/// Sample values for object and label templates.
pub(crate) fn text_template_sample(name: &str) -> Option<Value<'static>> {
    Some(match name {
        "invoice" => Value::Text("F2024000123"),
        "activity" => Value::Text("PERISCOLAIRE"),
        "exercice" => Value::Number(2024),
        "period" => Value::Text("09"),
        "month_name" => Value::Text("SEPTEMBRE"),
        "budget_label" => Value::Text("COMMUNE DE TEST"),
        _ => return None,
    })
}

fn is_file_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

impl HeliosTenantConfig {
    /// `TypFic` of the files written.
    pub fn typ_fic(&self) -> &str {
        self.typ_fic
            .as_deref()
            .unwrap_or(self.bordereau_kind.default_typ_fic())
    }

    /// Problems a person must fix, each naming its field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |field: &str, message: String| {
            issues.push(ConfigIssue::new(format!("{prefix}.{field}"), message));
        };
        if !is_codique(&self.id_post) {
            issue(
                "id_post",
                format!(
                    "{:?} is not a codique (6 or 7 digits, or 02A/02B and 3-4 digits)",
                    self.id_post
                ),
            );
        }
        if let Some(libelle) = &self.libelle_poste {
            check_text(&mut issue, "libelle_poste", libelle, 38);
        }
        if let Some(typ_fic) = &self.typ_fic {
            check_text(&mut issue, "typ_fic", typ_fic, 32);
        }
        check_text(&mut issue, "emitter_sigle", &self.emitter_sigle, 32);
        check_text(&mut issue, "emitter_adresse", &self.emitter_adresse, 38);
        self.validate_file_name(&mut issue);
        if self.indent_spaces > 8 {
            issue(
                "indent_spaces",
                format!("{} spaces, at most 8", self.indent_spaces),
            );
        }
        if self.max_input_bytes == 0 {
            issue("max_input_bytes", "must be greater than 0".into());
        }
        check_text(&mut issue, "civilite_m", &self.civilite_m, 10);
        check_text(&mut issue, "civilite_mme", &self.civilite_mme, 10);
        if !(1..=crate::aller::MAX_PIECES).contains(&self.max_pieces_per_bordereau) {
            issue(
                "max_pieces_per_bordereau",
                format!(
                    "{} is outside 1..={} (NbrPce is 5 digits)",
                    self.max_pieces_per_bordereau,
                    crate::aller::MAX_PIECES
                ),
            );
        }
        check_text_template(&mut issue, "piece_object", &self.piece_object);
        if !matches!(
            self.debit.periodicity.as_str(),
            "01" | "02" | "03" | "04" | "05" | "06" | "07"
        ) {
            issue(
                "debit.periodicity",
                format!(
                    "{:?} is not a PerPrel code (01 to 07)",
                    self.debit.periodicity
                ),
            );
        }
        check_text_template(&mut issue, "debit.label", &self.debit.label);
        self.validate_ormc(&mut issue);
        self.validate_asap(&mut issue);
        for (i, code) in self.returns.ignored_org_ema.iter().enumerate() {
            let ok = code.len() == 2 && code.parse::<u8>().is_ok_and(|n| (1..=12).contains(&n));
            if !ok {
                issue(
                    &format!("returns.ignored_org_ema[{i}]"),
                    format!("{code:?} is not an OrgEma code (01 to 12)"),
                );
            }
        }
        let pattern = &self.returns.acquit_retour_file_name_pattern;
        match template::render(pattern, |name| match name {
            "retour_file" => Some(Value::Text(
                "PES2R_RCE__PO_123_00_094000_20241031_20241101_20241101061502",
            )),
            "date" => Some(Value::Text("20241101")),
            _ => None,
        }) {
            Err(e) => issue("returns.acquit_retour_file_name_pattern", e.to_string()),
            Ok(name) if !pattern.contains("{retour_file}") => issue(
                "returns.acquit_retour_file_name_pattern",
                format!("{name:?} must contain {{retour_file}} to answer each file once"),
            ),
            Ok(_) => {}
        }
        issues
    }

    fn validate_file_name(&self, issue: &mut impl FnMut(&str, String)) {
        let pattern = &self.file_name_pattern;
        match template::render(pattern, file_name_sample) {
            Err(e) => issue("file_name_pattern", e.to_string()),
            Ok(name) => {
                let unique = pattern.contains("{exercice")
                    && pattern.contains("{id_bord")
                    && (pattern.contains("{siret")
                        || (pattern.contains("{cod_col") && pattern.contains("{cod_bud")));
                if !unique {
                    issue(
                        "file_name_pattern",
                        "must contain {exercice}, {id_bord} and {siret} (or {cod_col} and {cod_bud}) so that names never repeat".into(),
                    );
                }
                if name.chars().count() > 100 {
                    issue(
                        "file_name_pattern",
                        format!("gives names of {} characters, at most 100", name.len()),
                    );
                }
                if !name.chars().all(is_file_name_char) || !name.ends_with(".xml") {
                    issue(
                        "file_name_pattern",
                        format!("{name:?}: only letters, digits, '_', '-', '.' and a .xml suffix"),
                    );
                }
            }
        }
    }

    fn validate_ormc(&self, issue: &mut impl FnMut(&str, String)) {
        let ormc = &self.ormc;
        if ormc.nature.is_empty()
            || ormc.nature.len() > 12
            || !ormc.nature.bytes().all(|b| b.is_ascii_digit())
            || ormc.nature.bytes().all(|b| b == b'0')
        {
            issue(
                "ormc.nature",
                format!("{:?} is not a nature account (1-12 digits)", ormc.nature),
            );
        }
        if ormc.fixed_period > 9 {
            issue("ormc.fixed_period", "must be one digit (0 to 9)".into());
        }
        if ormc.cle1_nature_code.is_empty()
            || !ormc.cle1_nature_code.bytes().all(|b| b.is_ascii_digit())
        {
            issue(
                "ormc.cle1_nature_code",
                format!("{:?} must be digits", ormc.cle1_nature_code),
            );
        }
        // A bordereau holds many invoices: its object knows no `{invoice}` or `{activity}`
        // (what `aller::recette` renders it with).
        if !ormc.bordereau_object.is_empty()
            && let Err(e) = template::render(&ormc.bordereau_object, |name| match name {
                "invoice" | "activity" => None,
                other => text_template_sample(other),
            })
        {
            issue("ormc.bordereau_object", e.to_string());
        }
    }

    fn validate_asap(&self, issue: &mut impl FnMut(&str, String)) {
        let asap = &self.asap;
        if let Err(e) = asap.talon.check() {
            issue("asap.talon", e.to_string());
        }
        for (budget, number) in asap
            .issuer_number_by_budget
            .iter()
            .map(|(b, n)| (Some(b.as_str()), n))
            .chain(asap.issuer_number.iter().map(|n| (None, n)))
        {
            if number.is_empty()
                || number.len() > 13
                || !number.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                let field = match budget {
                    Some(b) => format!("asap.issuer_number_by_budget.{b}"),
                    None => "asap.issuer_number".into(),
                };
                issue(&field, format!("{number:?}: 1-13 letters or digits"));
            }
        }
        if asap.mode == AsapMode::None {
            return;
        }
        let required = [
            ("asap.emitter_name", asap.emitter_name.as_str(), 38),
            (
                "asap.emitter_address.street",
                &asap.emitter_address.street,
                38,
            ),
            ("asap.emitter_address.city", &asap.emitter_address.city, 38),
            ("asap.signatory_last_name", &asap.signatory_last_name, 38),
            ("asap.signatory_first_name", &asap.signatory_first_name, 38),
            ("asap.signatory_role", &asap.signatory_role, 50),
            ("asap.payment_centre.city", &asap.payment_centre.city, 38),
            (
                "asap.public_finance_centre_name",
                &asap.public_finance_centre_name,
                38,
            ),
            (
                "asap.public_finance_centre_address.street",
                &asap.public_finance_centre_address.street,
                38,
            ),
            (
                "asap.public_finance_centre_address.city",
                &asap.public_finance_centre_address.city,
                38,
            ),
            ("asap.payment_terms", &asap.payment_terms, 250),
            ("asap.general_conditions", &asap.general_conditions, 250),
        ];
        for (field, value, max) in required {
            if value.trim().is_empty() {
                issue(field, "required when asap.mode is not \"none\"".into());
            } else {
                check_text(issue, field, value, max);
            }
        }
        for (field, address) in [
            ("asap.emitter_address.postal_code", &asap.emitter_address),
            ("asap.payment_centre.postal_code", &asap.payment_centre),
            (
                "asap.public_finance_centre_address.postal_code",
                &asap.public_finance_centre_address,
            ),
        ] {
            if address.postal_code.chars().count() != 5 {
                issue(field, format!("{:?}: 5 characters", address.postal_code));
            }
        }
        if asap.ics.is_none() && asap.ics_by_budget.is_empty() {
            issue(
                "asap.ics",
                "required: the ICS is the RefBdf of ASAP printed with a TIP SEPA".into(),
            );
        }
        if matches!(asap.mode, AsapMode::All | AsapMode::TipAndOnline)
            && asap.issuer_number.is_none()
            && asap.issuer_number_by_budget.is_empty()
        {
            issue(
                "asap.issuer_number",
                "required with mode = \"all\" or \"tip_and_online\": it is the RefBdf of ASAP printed with the talon optique".into(),
            );
        }
        if asap.payfip_url.chars().count() > 200 {
            issue("asap.payfip_url", "at most 200 characters".into());
        }
        for (field, value, max) in [
            ("asap.phone", &asap.phone, 20),
            ("asap.opening_hours", &asap.opening_hours, 38),
            ("asap.email", &asap.email, 50),
            ("asap.dispute_terms", &asap.dispute_terms, 420),
        ] {
            if let Some(value) = value {
                check_text(issue, field, value, max);
            }
        }
        for (field, value) in [
            ("asap.emitter_cat_tiers", &asap.emitter_cat_tiers),
            ("asap.emitter_nat_jur", &asap.emitter_nat_jur),
        ] {
            if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
                issue(field, format!("{value:?}: a 2-digit code"));
            }
        }
    }
}

fn check_text(issue: &mut impl FnMut(&str, String), field: &str, value: &str, max: usize) {
    let len = value.chars().count();
    if is_forbidden_value(value.trim()) {
        issue(
            field,
            format!("{value:?} is empty or a value the PES refuses"),
        );
    } else if len > max {
        issue(field, format!("{len} characters, at most {max}"));
    }
}

fn check_text_template(issue: &mut impl FnMut(&str, String), field: &str, template: &str) {
    if let Err(e) = template::render(template, text_template_sample) {
        issue(field, e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(issues: &[ConfigIssue]) -> Vec<&str> {
        issues.iter().map(|i| i.field.as_str()).collect()
    }

    #[test]
    fn default_needs_a_codique() {
        let issues = HeliosTenantConfig::default().validate("tenants[0].helios");
        assert_eq!(fields(&issues), ["tenants[0].helios.id_post"]);
        let config = HeliosTenantConfig {
            id_post: "094000".into(),
            ..HeliosTenantConfig::default()
        };
        assert!(
            config.validate("t").is_empty(),
            "{:?}",
            config.validate("t")
        );
    }

    #[test]
    fn a_bordereau_object_names_no_invoice() {
        let mut config = HeliosTenantConfig {
            id_post: "094000".into(),
            ..HeliosTenantConfig::default()
        };
        config.ormc.bordereau_object = "CANTINE {month_name} {exercice}".into();
        assert!(
            config.validate("t").is_empty(),
            "{:?}",
            config.validate("t")
        );
        config.ormc.bordereau_object = "FACTURE {invoice} {activity}".into();
        assert_eq!(fields(&config.validate("t")), ["t.ormc.bordereau_object"]);
    }

    /// The example of `docs/helios.md` parses and validates (docs stay true).
    #[test]
    fn documented_example_is_valid() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/helios.md"))
                .unwrap();
        let start = doc.find("<!-- helios-config-example -->").unwrap();
        let end = doc.find("<!-- /helios-config-example -->").unwrap();
        let block = &doc[start..end];
        let toml_text = block
            .split("```toml")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .unwrap();
        let value: toml::Table = toml::from_str(toml_text).unwrap();
        let helios = value["tenants"]["helios"].clone();
        let config: HeliosTenantConfig = helios.try_into().unwrap();
        // Titres ordinaires with TIP ASAP: an ORMC article's ASAP needs the invoice PDF, which
        // the platform does not produce, so the example never pairs ORMC with a TIP mode.
        assert_eq!(config.bordereau_kind, BordereauKind::Ordinaire);
        assert_eq!(config.asap.mode, AsapMode::TipOnly);
        assert!(
            config.validate("h").is_empty(),
            "{:?}",
            config.validate("h")
        );
    }

    #[test]
    fn codiques() {
        for ok in ["094000", "0940001", "02A123", "02B1234"] {
            assert!(is_codique(ok), "{ok}");
        }
        for bad in ["94000", "02C123", "09400000", "02A12", "abcdef"] {
            assert!(!is_codique(bad), "{bad}");
        }
    }

    #[test]
    fn toml_is_parsed_and_unknown_fields_refused() {
        let text = r#"
            id_post = "094000"
            bordereau_kind = "ormc"
            output_encoding = "utf-8"
            [ormc]
            period_rule = "fixed"
            fixed_period = 3
            [asap]
            mode = "tip_only"
            ics = "FR72ZZZ123456"
        "#;
        let config: HeliosTenantConfig = toml::from_str(text).unwrap();
        assert_eq!(config.bordereau_kind, BordereauKind::Ormc);
        assert_eq!(config.typ_fic(), "PESORMC");
        assert_eq!(config.output_encoding, OutputEncoding::Utf8);
        assert_eq!(config.ormc.period_rule, PeriodRule::Fixed);
        assert_eq!(
            config.asap.ics_for("principal").map(Ics::as_str),
            Some("FR72ZZZ123456")
        );
        // ASAP on: every mandatory ASAP field is named.
        let issues = config.validate("h");
        let named = fields(&issues);
        assert!(named.contains(&"h.asap.emitter_name"), "{named:?}");
        assert!(named.contains(&"h.asap.signatory_role"), "{named:?}");
        assert!(!named.contains(&"h.asap.ics"), "{named:?}");

        let err = toml::from_str::<HeliosTenantConfig>("id_post = \"094000\"\ntypo = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("typo"), "{err}");
        assert!(toml::from_str::<HeliosTenantConfig>("[asap]\nics = \"FR12ZZZ123456\"").is_err());
    }

    #[test]
    fn file_names_must_be_unique_and_safe() {
        let mut config = HeliosTenantConfig {
            id_post: "094000".into(),
            ..HeliosTenantConfig::default()
        };
        config.file_name_pattern = "PES_{exercice}.xml".into();
        assert_eq!(fields(&config.validate("h")), ["h.file_name_pattern"]);
        config.file_name_pattern = "PES {siret}_{exercice}_{id_bord}.xml".into();
        assert_eq!(fields(&config.validate("h")), ["h.file_name_pattern"]);
        config.file_name_pattern = "{cod_col}{cod_bud}_{exercice}_{id_bord}_{when}.xml".into();
        assert_eq!(fields(&config.validate("h")), ["h.file_name_pattern"]);
        config.file_name_pattern = "{cod_col}{cod_bud}_{exercice}_{id_bord}.xml".into();
        assert!(config.validate("h").is_empty());
    }

    #[test]
    fn pieces_per_bordereau_stay_within_nbrpce() {
        let mut config = HeliosTenantConfig {
            id_post: "094000".into(),
            ..HeliosTenantConfig::default()
        };
        assert_eq!(config.max_pieces_per_bordereau, 99_999);
        for bad in [0, 100_000] {
            config.max_pieces_per_bordereau = bad;
            assert_eq!(
                fields(&config.validate("h")),
                ["h.max_pieces_per_bordereau"]
            );
        }
        config.max_pieces_per_bordereau = 500;
        assert!(config.validate("h").is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let mut config = HeliosTenantConfig {
            id_post: "094000".into(),
            ..HeliosTenantConfig::default()
        };
        config.debit.periodicity = "08".into();
        config.ormc.nature = "58A".into();
        config.ormc.fixed_period = 12;
        config.returns.ignored_org_ema = vec!["6".into(), "13".into()];
        config.piece_object = "{nope}".into();
        config.asap.issuer_number = Some("TOO-LONG".into());
        let issues = config.validate("h");
        assert_eq!(
            fields(&issues),
            [
                "h.piece_object",
                "h.debit.periodicity",
                "h.ormc.nature",
                "h.ormc.fixed_period",
                "h.asap.issuer_number",
                "h.returns.ignored_org_ema[0]",
                "h.returns.ignored_org_ema[1]",
            ]
        );
    }
}
