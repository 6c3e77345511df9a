//! The canonical fields of an invoice export: what a source's columns are mapped to.
//!
//! Each field has the column name of the default Polyfac contract (`../shared/specs/polyfac.md`
//! §1), a requiredness, and a level: *header* fields describe the invoice and must be identical
//! on every line of it, *line* fields describe one invoice line.

use serde::{Deserialize, Serialize};

/// A canonical field of an export line. In TOML the field is written in snake case
/// (`invoice_number = "NumFacture"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `NumFacture`: invoice number, unique per tenant and exercice (≤ 20 characters).
    InvoiceNumber,
    /// `DateFacture`: issue date.
    IssueDate,
    /// `Exercice`: budget year, 4 digits.
    Exercice,
    /// `Periode`: billed month, 1–12.
    Period,
    /// `Activite`: activity code, known to the tenant.
    Activity,
    /// `CodeFamille`: family account in the source (≤ 30 characters).
    FamilyCode,
    /// `Civilite`: `M` or `MME` (through the civilité value map).
    Civilite,
    /// `Nom`: payer's last name.
    LastName,
    /// `Prenom`: payer's first name.
    FirstName,
    /// `Adresse1`: address complement (building, c/o). Optional.
    AddressComplement,
    /// `Adresse2`: number and street.
    Street,
    /// `Adresse3`: lieu-dit. Optional.
    Locality,
    /// `CodePostal`: 5 digits.
    PostalCode,
    /// `Ville`: city.
    City,
    /// `Email`: payer's e-mail. Optional.
    Email,
    /// `CodeProduit`: product code, known to the tenant.
    Product,
    /// `Libelle`: line text.
    Label,
    /// `Quantite`: decimal quantity.
    Quantity,
    /// `PrixUnitaire`: unit price, may be negative (a reduction).
    UnitPrice,
    /// `MontantLigne`: = quantity × unit price, rounded to the cent.
    LineAmount,
    /// `ModeReglement`: `PRELEVEMENT`, `TIP`, `TIPI`, `AUTRE` (through the payment-mode value map).
    PaymentMode,
    /// `RUM`: mandate reference. Required for direct debit.
    Rum,
    /// `DateSignatureMandat`: mandate signature date. Required for direct debit.
    MandateSignedOn,
    /// `SequencePrelevement`: `FRST`, `RCUR`, `FNAL`, `OOFF`. Optional: derived from the
    /// mandate's history when absent.
    Sequence,
    /// `IBAN`: debtor's account. Required for direct debit.
    Iban,
    /// `BIC`: debtor's bank. Required for direct debit unless `bic_required = false`.
    Bic,
    /// `TitulaireCompte`: account holder. Required for direct debit.
    AccountHolder,
    /// `DateEcheance`: due date; for direct debit, the debit date.
    DueDate,
    /// `MontantFacture`: invoice total, when the source gives one (not in the Polyfac contract).
    /// When present it must equal the sum of the lines.
    InvoiceTotal,
    /// `FactureOrigine`: only on a credit note (avoir), the number of the invoice it reduces
    /// or cancels. Optional.
    OriginInvoice,
    /// `ExerciceOrigine`: the original invoice's exercice when it is not `Exercice`.
    /// Optional, only with `FactureOrigine`.
    OriginExercice,
}

/// When a field must have a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// On every line; its column must be in the header.
    Always,
    /// Only when the invoice is paid by direct debit (`PRELEVEMENT`).
    DirectDebit,
    /// Never.
    Optional,
}

impl Field {
    /// Every field, in the order of the default Polyfac contract.
    pub const ALL: [Field; 31] = [
        Field::InvoiceNumber,
        Field::IssueDate,
        Field::Exercice,
        Field::Period,
        Field::Activity,
        Field::FamilyCode,
        Field::Civilite,
        Field::LastName,
        Field::FirstName,
        Field::AddressComplement,
        Field::Street,
        Field::Locality,
        Field::PostalCode,
        Field::City,
        Field::Email,
        Field::Product,
        Field::Label,
        Field::Quantity,
        Field::UnitPrice,
        Field::LineAmount,
        Field::PaymentMode,
        Field::Rum,
        Field::MandateSignedOn,
        Field::Sequence,
        Field::Iban,
        Field::Bic,
        Field::AccountHolder,
        Field::DueDate,
        Field::InvoiceTotal,
        Field::OriginInvoice,
        Field::OriginExercice,
    ];

    /// Number of fields (size of per-field tables).
    pub const COUNT: usize = Field::ALL.len();

    /// Position in [`Field::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Column name in the default Polyfac contract.
    pub fn polyfac_column(self) -> &'static str {
        match self {
            Field::InvoiceNumber => "NumFacture",
            Field::IssueDate => "DateFacture",
            Field::Exercice => "Exercice",
            Field::Period => "Periode",
            Field::Activity => "Activite",
            Field::FamilyCode => "CodeFamille",
            Field::Civilite => "Civilite",
            Field::LastName => "Nom",
            Field::FirstName => "Prenom",
            Field::AddressComplement => "Adresse1",
            Field::Street => "Adresse2",
            Field::Locality => "Adresse3",
            Field::PostalCode => "CodePostal",
            Field::City => "Ville",
            Field::Email => "Email",
            Field::Product => "CodeProduit",
            Field::Label => "Libelle",
            Field::Quantity => "Quantite",
            Field::UnitPrice => "PrixUnitaire",
            Field::LineAmount => "MontantLigne",
            Field::PaymentMode => "ModeReglement",
            Field::Rum => "RUM",
            Field::MandateSignedOn => "DateSignatureMandat",
            Field::Sequence => "SequencePrelevement",
            Field::Iban => "IBAN",
            Field::Bic => "BIC",
            Field::AccountHolder => "TitulaireCompte",
            Field::DueDate => "DateEcheance",
            Field::InvoiceTotal => "MontantFacture",
            Field::OriginInvoice => "FactureOrigine",
            Field::OriginExercice => "ExerciceOrigine",
        }
    }

    /// The snake-case name used in configuration and in reports (`invoice_number`).
    pub fn name(self) -> &'static str {
        match self {
            Field::InvoiceNumber => "invoice_number",
            Field::IssueDate => "issue_date",
            Field::Exercice => "exercice",
            Field::Period => "period",
            Field::Activity => "activity",
            Field::FamilyCode => "family_code",
            Field::Civilite => "civilite",
            Field::LastName => "last_name",
            Field::FirstName => "first_name",
            Field::AddressComplement => "address_complement",
            Field::Street => "street",
            Field::Locality => "locality",
            Field::PostalCode => "postal_code",
            Field::City => "city",
            Field::Email => "email",
            Field::Product => "product",
            Field::Label => "label",
            Field::Quantity => "quantity",
            Field::UnitPrice => "unit_price",
            Field::LineAmount => "line_amount",
            Field::PaymentMode => "payment_mode",
            Field::Rum => "rum",
            Field::MandateSignedOn => "mandate_signed_on",
            Field::Sequence => "sequence",
            Field::Iban => "iban",
            Field::Bic => "bic",
            Field::AccountHolder => "account_holder",
            Field::DueDate => "due_date",
            Field::InvoiceTotal => "invoice_total",
            Field::OriginInvoice => "origin_invoice",
            Field::OriginExercice => "origin_exercice",
        }
    }

    /// When the field must have a value (spec §1 "required").
    pub fn requirement(self) -> Requirement {
        match self {
            Field::AddressComplement
            | Field::Locality
            | Field::Email
            | Field::Sequence
            | Field::InvoiceTotal
            | Field::OriginInvoice
            | Field::OriginExercice => Requirement::Optional,
            Field::Rum
            | Field::MandateSignedOn
            | Field::Iban
            | Field::Bic
            | Field::AccountHolder => Requirement::DirectDebit,
            _ => Requirement::Always,
        }
    }

    /// Whether the field describes one invoice line rather than the invoice (line fields may
    /// differ between the lines of an invoice; every other field must be identical).
    pub fn is_line_level(self) -> bool {
        matches!(
            self,
            Field::Product | Field::Label | Field::Quantity | Field::UnitPrice | Field::LineAmount
        )
    }

    /// Whether the value is personal data that must never be copied into a report or a log
    /// message (bank details, names, e-mail).
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            Field::Iban
                | Field::Bic
                | Field::AccountHolder
                | Field::LastName
                | Field::FirstName
                | Field::Email
                | Field::Street
                | Field::AddressComplement
                | Field::Locality
        )
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_complete() {
        for (i, field) in Field::ALL.iter().enumerate() {
            assert_eq!(field.index(), i, "{field}");
        }
        let names: std::collections::HashSet<_> =
            Field::ALL.iter().map(|f| f.polyfac_column()).collect();
        assert_eq!(names.len(), Field::COUNT, "column names must be distinct");
    }

    #[test]
    fn serde_name_matches_name() {
        for field in Field::ALL {
            let json = serde_json::to_string(&field).unwrap();
            assert_eq!(json, format!("\"{}\"", field.name()));
        }
    }
}
