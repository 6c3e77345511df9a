//! The story the demo tells, invoice by invoice: what each export holds, which invoices are
//! paid online and how, what the Trésorerie and the bank answer, and therefore what must
//! come back to Polyfac. Every expectation the demo checks is written here, next to the
//! data it is about (`demo/exports/*.csv`).

use encaisse_payfip::Resultrans;

/// One export of the demo.
pub struct Export {
    pub tenant: &'static str,
    /// The file under `demo/` (for people).
    pub source: &'static str,
    /// Its bytes: Windows-1252, with `{{…}}` date placeholders ([`super::exports`]).
    pub template: &'static [u8],
    /// Name of the dropped file: `<stem>-<AAAAMM>.csv`.
    pub stem: &'static str,
    /// Invoices the export holds, valid ones.
    pub valid: u64,
    /// Invoices Polyfac's ingest must refuse, with the rule each one breaks.
    pub rejected: &'static [(&'static str, &'static str)],
}

/// Vitry's périscolaire run (titres) and Ivry's crèche run (régie).
pub const EXPORTS: [Export; 2] = [
    Export {
        tenant: "vitry",
        source: "demo/exports/vitry-periscolaire.csv",
        template: include_bytes!("../../demo/exports/vitry-periscolaire.csv"),
        stem: "vitry-periscolaire",
        valid: 6,
        rejected: &[
            ("PERI-000107", "line_amount_mismatch"),
            ("PERI-000108", "invalid_iban"),
            ("PERI-000109", "unknown_product"),
        ],
    },
    Export {
        tenant: "ivry",
        source: "demo/exports/ivry-creche.csv",
        template: include_bytes!("../../demo/exports/ivry-creche.csv"),
        stem: "ivry-creche",
        valid: 8,
        rejected: &[
            ("CRE-000209", "missing_field"),
            ("CRE-000210", "invalid_postal_code"),
        ],
    },
];

/// Vitry's credit note, dropped once the titres were taken in charge: two meals of
/// PERI-000102 not eaten (absences justified late), credited after its titre was sent. It
/// becomes a réduction titre (bordereau of type 02) the Trésorerie takes in charge.
pub const CREDIT_NOTE_EXPORT: Export = Export {
    tenant: "vitry",
    source: "demo/exports/vitry-avoirs.csv",
    template: include_bytes!("../../demo/exports/vitry-avoirs.csv"),
    stem: "vitry-avoirs",
    valid: 1,
    rejected: &[],
};

/// The credit note of [`CREDIT_NOTE_EXPORT`], the invoice it reduces, and the amount.
pub const CREDIT_NOTE: (&str, &str, &str) = ("AV-000101", "PERI-000102", "6.70");

/// Titres Vitry's PES Aller must hold (the valid invoices of its export).
pub const VITRY_TITRES: usize = 6;

/// Direct debits Ivry's first pain.008 must hold.
pub const IVRY_COLLECTIONS: usize = 3;

/// A payment made by a family on the Kiosque famille, through the PayFiP simulator.
pub struct OnlinePayment {
    pub tenant: &'static str,
    pub invoice: &'static str,
    /// What the family does on the gateway's page.
    pub outcome: Resultrans,
    pub what: &'static str,
}

/// Ivry's crèche invoices paid online (régie: PayFiP web service).
pub const IVRY_ONLINE: [OnlinePayment; 4] = [
    OnlinePayment {
        tenant: "ivry",
        invoice: "CRE-000204",
        outcome: Resultrans::P,
        what: "card, paid",
    },
    OnlinePayment {
        tenant: "ivry",
        invoice: "CRE-000205",
        outcome: Resultrans::V,
        what: "one-off debit, paid",
    },
    OnlinePayment {
        tenant: "ivry",
        invoice: "CRE-000206",
        outcome: Resultrans::R,
        what: "card refused",
    },
    OnlinePayment {
        tenant: "ivry",
        invoice: "CRE-000207",
        outcome: Resultrans::A,
        what: "page abandoned",
    },
];

/// Vitry's titre paid online once the Trésorerie took it in charge (classic PayFiP URL): the
/// unsigned result is recorded as an announcement; Hélios's TIPI émargement then confirms it
/// and makes it `PAYE` for Polyfac, once.
pub const VITRY_ONLINE: OnlinePayment = OnlinePayment {
    tenant: "vitry",
    invoice: "PERI-000104",
    outcome: Resultrans::P,
    what: "card, paid (titre, after prise en charge)",
};

/// How the Trésorerie answers each Vitry titre in its first PES Retour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitreFate {
    /// Taken in charge, nothing paid yet.
    Taken,
    /// Taken in charge and paid: every line émargée with `OrgEma`.
    Paid(&'static str),
    /// Rejected by the comptable with this `ObsEtat`.
    Rejected(&'static str),
}

/// The first PES Retour, titre by titre.
pub const VITRY_RETOUR: [(&str, TitreFate); 6] = [
    // Direct debits sent by Hélios: payment-centre flow (OrgEma 03).
    ("PERI-000101", TitreFate::Paid("03")),
    ("PERI-000102", TitreFate::Paid("03")),
    // TIP SEPA returned by the family: payment-centre flow too.
    ("PERI-000103", TitreFate::Paid("03")),
    // To be paid online by the family (below).
    ("PERI-000104", TitreFate::Taken),
    // "Absence d'indication du débiteur".
    ("PERI-000105", TitreFate::Rejected("03")),
    // Cash at the Trésorerie's counter (OrgEma 02, encaissement).
    ("PERI-000106", TitreFate::Paid("02")),
];

/// What the bank answers about Ivry's first pain.008: (invoice, ISO reason code).
pub const IVRY_BANK_REJECTS: [(&str, &str); 2] = [
    // Insufficient funds: presented again 10 days later (`[tenants.sepa.represent]`).
    ("CRE-000201", "AM04"),
    // Mandate cancelled: final, the mandate is closed.
    ("CRE-000202", "MD01"),
];

/// A line Polyfac must receive: (tenant, invoice, `Statut`, `Canal`).
pub type Reglement = (&'static str, &'static str, &'static str, &'static str);

/// Every REGLEMENTS line of the demo, and nothing else.
pub const REGLEMENTS: [Reglement; 19] = [
    // The PES Retour: the comptable took five titres in charge, once each (the next PES
    // Retour repeats it and adds no line) and rejected one. The acquit before it (the guichet
    // integrated the bordereau) is no prise en charge: no line, only the invoices' journal.
    ("vitry", "PERI-000101", "TITRE_PRIS_EN_CHARGE", ""),
    ("vitry", "PERI-000102", "TITRE_PRIS_EN_CHARGE", ""),
    ("vitry", "PERI-000103", "TITRE_PRIS_EN_CHARGE", ""),
    ("vitry", "PERI-000104", "TITRE_PRIS_EN_CHARGE", ""),
    ("vitry", "PERI-000106", "TITRE_PRIS_EN_CHARGE", ""),
    ("vitry", "PERI-000105", "TITRE_REJETE", ""),
    // The credit note's réduction titre, taken in charge: the reduction of PERI-000102.
    ("vitry", "AV-000101", "TITRE_REDUIT", ""),
    // Émargements: one per line (PERI-000101 has two lines).
    ("vitry", "PERI-000101", "PAYE", "PRELEVEMENT"),
    ("vitry", "PERI-000101", "PAYE", "PRELEVEMENT"),
    ("vitry", "PERI-000102", "PAYE", "PRELEVEMENT"),
    ("vitry", "PERI-000103", "PAYE", "TIP"),
    ("vitry", "PERI-000106", "PAYE", "GUICHET"),
    // Paid online: the classic result (unsigned) only announced it; the PES Retour's TIPI
    // émargement (OrgEma 10) is the proof and writes this line, once.
    ("vitry", "PERI-000104", "PAYE", "CB"),
    // Ivry's online payments.
    ("ivry", "CRE-000204", "PAYE", "CB"),
    ("ivry", "CRE-000205", "PAYE", "PRELEVEMENT_UNIQUE"),
    ("ivry", "CRE-000206", "REJETE", "CB"),
    ("ivry", "CRE-000207", "REJETE", "AUTRE"),
    // Ivry's direct debits rejected by the bank (AM04 re-presented, MD01 final).
    ("ivry", "CRE-000201", "REJETE", "PRELEVEMENT"),
    ("ivry", "CRE-000202", "REJETE", "PRELEVEMENT"),
];
