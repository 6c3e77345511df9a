//! The canonical messages (DESIGN §1). Every body carries `schema_version`; a breaking change
//! bumps it and adds a new JSON Schema file, never edits the old one in place.

use chrono::{DateTime, FixedOffset, NaiveDate};
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::identifiers::{Bic, Iban, Rum};
use crate::money::Money;
use crate::tenant::{CollectionPath, TenantId};

/// Identifies an invoice: (tenant, exercice, invoice number). Unique per tenant and exercice.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRef {
    pub tenant: TenantId,
    /// Budget year of the invoice.
    pub exercice: u16,
    /// Invoice number in the source application (≤ 20 characters).
    pub number: String,
}

impl InvoiceRef {
    /// `vitry/2026/F000123`: the form used in logs, business keys and the CLI.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.tenant, self.exercice, self.number)
    }
}

/// How the family pays (Polyfac `ModeReglement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMode {
    /// SEPA direct debit under a recurrent mandate.
    Prelevement,
    /// TIP SEPA slip printed on the invoice (ASAP).
    Tip,
    /// Online payment (card or one-off debit) through TIPI / PayFiP.
    Tipi,
    /// Cheque, cash, CESU at the régie or the Trésorerie.
    Autre,
}

/// SEPA sequence type of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SequenceType {
    Frst,
    Rcur,
    Fnal,
    Ooff,
}

impl SequenceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SequenceType::Frst => "FRST",
            SequenceType::Rcur => "RCUR",
            SequenceType::Fnal => "FNAL",
            SequenceType::Ooff => "OOFF",
        }
    }
}

/// Civilité of the payer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Civilite {
    M,
    Mme,
}

/// Postal address of the payer (French layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Complement (building, c/o).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
    /// Number and street.
    pub street: String,
    /// Lieu-dit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// 5-digit postal code.
    pub postal_code: String,
    pub city: String,
}

/// The person who pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Payer {
    pub civilite: Civilite,
    pub last_name: String,
    pub first_name: String,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A SEPA direct-debit mandate, for invoices paid by `PRELEVEMENT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    pub rum: Rum,
    pub signed_on: NaiveDate,
    pub iban: Iban,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<Bic>,
    /// Account holder's name.
    pub holder: String,
    /// Sequence type given by the source, or derived from the mandate's history in the
    /// ledger when the source does not give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceType>,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceLine {
    /// 1-based line number within the invoice.
    pub number: u32,
    /// Source product code (`CANTINE`).
    pub product: String,
    /// Hélios `CodProdLoc` from the tenant's product table.
    pub cod_prod_loc: String,
    /// Budget nature account from the tenant's product table.
    pub nature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fonction: Option<String>,
    pub label: String,
    /// Decimal quantity, as a string (`"1.5"`).
    #[serde(with = "rust_decimal::serde::str")]
    #[schemars(with = "String")]
    pub quantity: Decimal,
    pub unit_price: Money,
    /// = quantity × unit price, rounded to the cent.
    pub amount: Money,
}

/// Where an invoice came from, for tracing it back to the export line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Source application (`polyfac`, `creche-xyz`, or an integrator's name).
    pub application: String,
    /// The billing run this invoice belongs to (one export file = one run).
    pub run_id: String,
    /// Export file name, when the invoice came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// First and last line numbers of the invoice in that file (1-based, header = line 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<(u64, u64)>,
}

/// `invoice.issued` v1 — an invoice was issued by a source application, validated and
/// enriched from the tenant configuration. Routing key `invoice.issued.<collection>`
/// (`invoice.issued.titres` / `invoice.issued.regie`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceIssued {
    /// Always 1 for this version.
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    pub source: SourceRef,
    /// SHA-256 (hex) of the invoice content as read; part of the message id, so the same
    /// invoice re-sent unchanged is deduplicated and a changed one is detected.
    pub content_hash: String,
    pub issued_on: NaiveDate,
    /// Billed month, 1–12.
    pub period: u8,
    pub activity: String,
    /// Key of the tenant budget (from the activity).
    pub budget: String,
    pub collection: CollectionPath,
    /// Régie key when `collection` is `regie`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regie: Option<String>,
    /// Family account in the source application.
    pub family_code: String,
    pub payer: Payer,
    pub lines: Vec<InvoiceLine>,
    /// Sum of the lines, > 0.
    pub total: Money,
    /// Due date; for direct debit, the debit date.
    pub due_date: NaiveDate,
    pub payment_mode: PaymentMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate: Option<Mandate>,
    /// Whether the family may pay it online (PayFiP).
    pub online_payable: bool,
}

impl Event for InvoiceIssued {
    const TYPE: &'static str = "invoice.issued";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.invoice.key(), self.content_hash)
    }
    fn routing_key(&self) -> String {
        match self.collection {
            CollectionPath::Titres => "invoice.issued.titres".into(),
            CollectionPath::Regie => "invoice.issued.regie".into(),
        }
    }
}

/// `credit_note.issued` v1 — a credit note (avoir) was issued by a source application: it
/// reduces or cancels an invoice issued before (`origin`). Routing key
/// `credit_note.issued.<collection>` (the original's collection path).
///
/// `note` is the credit note as read and enriched like any invoice (its own number, payer,
/// product codes), except that its lines are reductions and its `total` is < 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteIssued {
    /// Always 1 for this version.
    pub schema_version: u16,
    /// The original invoice (same tenant; its exercice from `ExerciceOrigine`, else the
    /// credit note's).
    pub origin: InvoiceRef,
    pub note: InvoiceIssued,
}

impl CreditNoteIssued {
    /// What the credit note takes off, > 0.
    pub fn credited(&self) -> Money {
        Money::from_cents(-self.note.total.cents()).unwrap_or(Money::ZERO)
    }
}

impl Event for CreditNoteIssued {
    const TYPE: &'static str = "credit_note.issued";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.note.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.note.invoice)
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.note.invoice.key(), self.note.content_hash)
    }
    fn routing_key(&self) -> String {
        match self.note.collection {
            CollectionPath::Titres => "credit_note.issued.titres".into(),
            CollectionPath::Regie => "credit_note.issued.regie".into(),
        }
    }
}

/// Invoices a billing run published for one budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBudgetCount {
    pub budget: String,
    pub collection: CollectionPath,
    /// Number of `invoice.issued` published for this budget in the run.
    pub invoices: u32,
    /// Sum of their totals.
    pub total: Money,
}

/// `billing_run.closed` v1 — the source finished publishing a billing run: how many invoices
/// it published per budget. Lets the titres stage close exactly one bordereau per run and
/// know when it has everything, even after a crash or a redelivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingRunClosed {
    pub schema_version: u16,
    pub tenant: TenantId,
    pub run_id: String,
    /// Source application.
    pub application: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Exercice of the run's invoices.
    pub exercice: u16,
    pub budgets: Vec<RunBudgetCount>,
    /// Invoices of the run rejected by validation (not published).
    pub rejected_invoices: u32,
}

impl Event for BillingRunClosed {
    const TYPE: &'static str = "billing_run.closed";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        None
    }
    fn business_key(&self) -> String {
        format!("{}/{}", self.tenant, self.run_id)
    }
}

/// Payment channel as Polyfac's REGLEMENTS file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    /// Card, through PayFiP.
    Cb,
    /// One-off SEPA debit through PayFiP.
    PrelevementUnique,
    /// Recurrent SEPA direct debit.
    Prelevement,
    /// TIP SEPA slip.
    Tip,
    /// Recorded by the Trésorerie (cash, cheque at the counter, payment centre).
    Guichet,
    Autre,
}

/// Who reported a payment fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentSource {
    /// The PayFiP gateway (web service or classic URL result).
    Payfip,
    /// Hélios, through a PES Retour émargement.
    Helios,
    /// The bank, through pain.002 / camt.054 (régie direct debits).
    Bank,
    /// The régie's own pain.008 emission.
    Regie,
}

/// `payment.received` v1 — money was received for an invoice. The same payment may be
/// reported twice (PayFiP, then the Hélios émargement): consumers reconcile on the invoice
/// and amount, the second sighting confirms, it never doubles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentReceived {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    /// Stable id of this sighting: `payfip:<idop>`, `helios:<exer>/<bord>/<pce>/<ligne>/<n>`,
    /// `sepa:<end-to-end id>`.
    pub payment_id: String,
    pub amount: Money,
    pub channel: Channel,
    pub source: PaymentSource,
    /// When the payment happened, with its offset (Europe/Paris for PayFiP).
    pub paid_at: DateTime<FixedOffset>,
    /// External reference: PayFiP `numauto` (and idop), SEPA end-to-end id, PES reference.
    pub reference: String,
    /// Commission charged to the commune for this payment, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission: Option<Money>,
}

impl Event for PaymentReceived {
    const TYPE: &'static str = "payment.received";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.invoice.tenant, self.payment_id)
    }
}

/// Outcome of a PayFiP operation that did not pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PayfipFailure {
    /// `R`: card payment refused.
    R,
    /// `Z`: SEPA one-off debit refused.
    Z,
    /// `A`: abandoned by the user.
    A,
    /// No result before the operation expired.
    Expired,
}

/// `payment.failed` v1 — an online payment attempt did not pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentFailed {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    /// `payfip:<idop>` (or `tipi:<refdet>` for the classic URL).
    pub payment_id: String,
    pub result: PayfipFailure,
    pub amount: Money,
    pub failed_at: DateTime<FixedOffset>,
    /// Human-readable reason.
    pub reason: String,
}

impl Event for PaymentFailed {
    const TYPE: &'static str = "payment.failed";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.invoice.tenant, self.payment_id)
    }
}

/// `payment.rejected` v1 — a direct debit was rejected or returned by the bank (régie path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRejected {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    /// `sepa:<end-to-end id>` of the rejected collection.
    pub payment_id: String,
    pub end_to_end_id: String,
    pub amount: Money,
    /// ISO 20022 reason code (`AM04`).
    pub reason_code: String,
    pub reason_text: String,
    pub rejected_at: DateTime<FixedOffset>,
    /// Whether the collection will be re-presented (AM04 / MS03, once) or the rejection is
    /// final.
    pub will_represent: bool,
    /// The bank file that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Event for PaymentRejected {
    const TYPE: &'static str = "payment.rejected";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.invoice.tenant, self.payment_id, self.reason_code
        )
    }
}

/// `payment.reversed` v1 — a payment previously reported is cancelled (an Hélios
/// émargement disappeared: typically a bank-rejected debit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentReversed {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    /// The `payment_id` of the `payment.received` being reversed.
    pub payment_id: String,
    pub amount: Money,
    pub reversed_at: DateTime<FixedOffset>,
    pub reason: String,
}

impl Event for PaymentReversed {
    const TYPE: &'static str = "payment.reversed";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.invoice.tenant, self.payment_id)
    }
}

/// Where a titre sits in Hélios: exercice, bordereau, pièce.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TitreRef {
    /// Key of the tenant budget.
    pub budget: String,
    pub exercice: u16,
    /// `TypBord` (`01` titres ordinaires, `06` ORMC).
    pub bordereau_type: String,
    pub id_bord: u32,
    pub id_pce: u32,
}

impl TitreRef {
    /// `2026/06/12/345`: the PES reference written to Polyfac.
    pub fn reference(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.exercice, self.bordereau_type, self.id_bord, self.id_pce
        )
    }
}

/// Who told us: which Trésorerie file, or encaisse itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TitreSource {
    /// `PES_ACQUIT` (format / guichet acknowledgement).
    Acquit,
    /// `PES_Retour` recette (the comptable's decision).
    Retour,
    /// encaisse itself (`helios.titres`): the invoice was refused before any PES Aller file
    /// was written, so it never had a titre number. Only on `titre.rejected`, whose `titre`
    /// is then absent and whose `code` starts with `LOCAL-`.
    Local,
}

impl TitreSource {
    /// `acquit`, `retour`, `local`: the JSON value, also used in business keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TitreSource::Acquit => "acquit",
            TitreSource::Retour => "retour",
            TitreSource::Local => "local",
        }
    }
}

/// `titre.accepted` v1 — the Trésorerie accepted (acquit OK) or took in charge (PES Retour)
/// the titre of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TitreAccepted {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    pub titre: TitreRef,
    pub source: TitreSource,
    pub accepted_at: DateTime<FixedOffset>,
    /// The return file that said so.
    pub file: String,
}

impl Event for TitreAccepted {
    const TYPE: &'static str = "titre.accepted";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    fn business_key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.invoice.key(),
            self.titre.reference(),
            self.source.as_str()
        )
    }
}

/// `titre.rejected` v1 — the Trésorerie rejected the titre of an invoice (`source`
/// `acquit` or `retour`), or encaisse refused the invoice before writing any PES Aller file
/// (`source` `local`: no `titre`, `code` `LOCAL-…`).
///
/// v1 was widened, not broken: `titre` became optional and `local` was added to `source`,
/// so every message written before still reads the same; only a `local` one omits `titre`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TitreRejected {
    pub schema_version: u16,
    pub invoice: InvoiceRef,
    /// The titre the Trésorerie rejected; absent when `source` is `local` (no number was
    /// ever given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub titre: Option<TitreRef>,
    pub source: TitreSource,
    /// Error code (acquit), `ObsEtat` (PES Retour), or encaisse's own `LOCAL-MANDATE`,
    /// `LOCAL-RULES`, `LOCAL-SETUP` (local).
    pub code: String,
    /// For people: the Trésorerie's text, or the invoice field and the rule it breaks.
    pub text: String,
    pub rejected_at: DateTime<FixedOffset>,
    /// The return file that said so, or (local) the report of the run's refused invoices
    /// (`<tenant>/helios/rejected/<run>-<budget>.refused.txt`).
    pub file: String,
}

impl Event for TitreRejected {
    const TYPE: &'static str = "titre.rejected";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.invoice.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        Some(&self.invoice)
    }
    /// `<invoice>#<titre reference>#<code>`, or `<invoice>#local#<code>` for a local
    /// refusal: refusing the same invoice again for the same reason is the same fact.
    fn business_key(&self) -> String {
        match &self.titre {
            Some(titre) => format!("{}#{}#{}", self.invoice.key(), titre.reference(), self.code),
            None => format!("{}#local#{}", self.invoice.key(), self.code),
        }
    }
}

/// `payfip.confirm` v1 (command) — the gateway notified an operation; fetch its result.
/// Carries nothing from the notification but the idop: the result is always fetched back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PayfipConfirm {
    pub schema_version: u16,
    pub tenant: TenantId,
    pub idop: String,
}

impl Event for PayfipConfirm {
    const TYPE: &'static str = "payfip.confirm";
    const SCHEMA_VERSION: u16 = 1;
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    fn invoice(&self) -> Option<&InvoiceRef> {
        None
    }
    fn business_key(&self) -> String {
        format!("{}#{}", self.tenant, self.idop)
    }
}
