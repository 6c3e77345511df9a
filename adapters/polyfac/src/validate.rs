//! Validation of one invoice (its contiguous export lines) into a typed [`Invoice`], or the
//! list of every rule it breaks. Nothing here reads a file: the reader hands in groups.

use std::sync::Arc;

use chrono::NaiveDate;
use encaisse_schemas::identifiers::{Bic, Iban, Rum};
use encaisse_schemas::tenant::{Activity, Product};
use encaisse_schemas::{Address, Civilite, Mandate, Money, Payer, PaymentMode};
use rust_decimal::Decimal;

use crate::catalogue::TenantCatalogue;
use crate::error::{Rule, ValidationError};
use crate::field::Field;
use crate::mapping::CompiledMapping;
use crate::records::RawLine;
use crate::values;

/// Longest invoice number (spec §1).
pub const MAX_INVOICE_NUMBER_CHARS: usize = 20;
/// Longest family code (spec §1).
pub const MAX_FAMILY_CODE_CHARS: usize = 30;
/// Errors kept per invoice: enough to fix it, bounded for a hopeless one.
pub const MAX_ERRORS_PER_INVOICE: usize = 50;

/// The lines of one invoice as read, before validation.
#[derive(Debug, Clone, Default)]
pub struct InvoiceGroup {
    /// The invoice number shared by the lines (may be empty when it is missing).
    pub number: String,
    /// The lines kept (at most `max_invoice_lines`).
    pub lines: Vec<RawLine>,
    /// Lines past `max_invoice_lines`, counted but not kept.
    pub dropped_lines: u64,
    /// Line number of the last line (kept or dropped).
    pub last_line: u64,
    /// Lines of this invoice number appear elsewhere in the file, separated by other
    /// invoices.
    pub not_contiguous_with: Option<u64>,
}

impl InvoiceGroup {
    pub fn first_line(&self) -> u64 {
        self.lines.first().map_or(self.last_line, |l| l.line)
    }

    /// Number of lines, dropped ones included.
    pub fn line_count(&self) -> u64 {
        self.lines.len() as u64 + self.dropped_lines
    }
}

/// One valid invoice line, typed and resolved against the tenant catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Line number in the file.
    pub file_line: u64,
    pub product: Arc<Product>,
    pub label: String,
    /// Normalised (no trailing zeros): `1.50` and `1.5` are the same quantity.
    pub quantity: Decimal,
    pub unit_price: Money,
    pub amount: Money,
}

/// A valid invoice: every rule checked, values typed, activity and products resolved. The
/// mandate's `sequence` is the one the source gave (enrichment may derive it).
#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub number: String,
    pub exercice: u16,
    pub issued_on: NaiveDate,
    pub period: u8,
    pub activity: Arc<Activity>,
    pub family_code: String,
    pub payer: Payer,
    pub lines: Vec<Line>,
    /// Sum of the lines: > 0, or < 0 for a credit note.
    pub total: Money,
    pub due_date: NaiveDate,
    pub payment_mode: PaymentMode,
    pub mandate: Option<Mandate>,
    /// First and last line numbers in the file.
    pub file_lines: (u64, u64),
    /// Set on a credit note: the invoice it reduces or cancels (its total is then < 0).
    pub origin: Option<Origin>,
}

/// The invoice a credit note reduces (`FactureOrigine`, `ExerciceOrigine`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub number: String,
    pub exercice: u16,
}

/// Validates groups of lines of one file against a mapping and a tenant catalogue.
pub struct Validator<'a> {
    pub mapping: &'a CompiledMapping,
    pub catalogue: &'a TenantCatalogue,
    /// Today's date, for the mandate signature rule.
    pub today: NaiveDate,
    /// File name, for error messages.
    pub file: &'a str,
}

/// Collects errors of one invoice, bounded.
struct Errors<'a> {
    mapping: &'a CompiledMapping,
    file: &'a str,
    list: Vec<ValidationError>,
}

impl Errors<'_> {
    fn push(&mut self, line: u64, field: Option<Field>, rule: Rule, message: impl Into<String>) {
        if self.list.len() >= MAX_ERRORS_PER_INVOICE {
            return;
        }
        self.list.push(ValidationError {
            file: self.file.to_string(),
            line,
            column: field.map_or(String::new(), |f| self.mapping.column_name(f).to_string()),
            field,
            rule,
            message: message.into(),
        });
    }
}

/// A value in an error message: personal data is never repeated.
fn shown(field: Field, value: &str) -> String {
    if field.is_personal() {
        "the value".to_string()
    } else {
        format!("{value:?}")
    }
}

impl Validator<'_> {
    /// Checks every rule of spec §1 on the group; the typed invoice when all pass.
    pub fn validate(&self, group: &InvoiceGroup) -> Result<Invoice, Vec<ValidationError>> {
        let mut errors = Errors {
            mapping: self.mapping,
            file: self.file,
            list: Vec::new(),
        };
        let Some(first) = group.lines.first() else {
            errors.push(
                group.last_line,
                None,
                Rule::MissingField,
                "invoice has no line",
            );
            return Err(errors.list);
        };
        if let Some(other) = group.not_contiguous_with {
            errors.push(
                first.line,
                Some(Field::InvoiceNumber),
                Rule::InvoiceNotContiguous,
                format!(
                    "invoice {:?} also has lines at line {other}, separated by other invoices; \
                     lines of one invoice must be contiguous",
                    group.number
                ),
            );
        }
        if group.dropped_lines > 0 {
            errors.push(
                first.line,
                None,
                Rule::TooManyLines,
                format!(
                    "{} lines, at most {} per invoice",
                    group.line_count(),
                    self.mapping.max_invoice_lines
                ),
            );
        }
        for line in &group.lines {
            if line.len() != self.mapping.header_len {
                errors.push(
                    line.line,
                    None,
                    Rule::ColumnCount,
                    format!(
                        "{} fields, the header has {}",
                        line.len(),
                        self.mapping.header_len
                    ),
                );
            }
        }
        let header = self.header(first, &mut errors);
        for line in &group.lines[1..] {
            self.same_header(first, line, &mut errors);
        }
        let activity_code = header.activity.as_ref().map(|a| a.code.as_str());
        let mut lines = Vec::with_capacity(group.lines.len());
        let mut total = Some(Money::ZERO);
        for raw in &group.lines {
            let line = self.line(raw, activity_code, &mut errors);
            match (line, total) {
                (Some(line), Some(sum)) => {
                    total = sum.checked_add(line.amount).ok();
                    if total.is_none() {
                        errors.push(
                            raw.line,
                            None,
                            Rule::InvalidNumber,
                            "invoice total overflows",
                        );
                    }
                    lines.push(line);
                }
                _ => total = None,
            }
        }
        if let Some(total) = total {
            if header.origin.is_some() && !total.is_negative() {
                errors.push(
                    first.line,
                    Some(Field::LineAmount),
                    Rule::CreditNoteNotNegative,
                    format!(
                        "credit note total {} must be less than zero (it takes off its FactureOrigine)",
                        total.to_comma_string()
                    ),
                );
            } else if header.origin.is_none() && !total.is_positive() {
                errors.push(
                    first.line,
                    Some(Field::LineAmount),
                    Rule::TotalNotPositive,
                    format!(
                        "invoice total {} must be greater than zero (a credit note names its FactureOrigine)",
                        total.to_comma_string()
                    ),
                );
            }
            if let Some(given) = header.total
                && given != total
            {
                errors.push(
                    first.line,
                    Some(Field::InvoiceTotal),
                    Rule::TotalMismatch,
                    format!(
                        "invoice total {} differs from the sum of the lines {}",
                        given.to_comma_string(),
                        total.to_comma_string()
                    ),
                );
            }
        }
        let origin = header.origin.clone().flatten();
        match (header.complete(), total) {
            (Some(h), Some(total)) if errors.list.is_empty() => Ok(Invoice {
                number: h.number,
                exercice: h.exercice,
                issued_on: h.issued_on,
                period: h.period,
                activity: h.activity,
                family_code: h.family_code,
                payer: h.payer,
                lines,
                total,
                due_date: h.due_date,
                payment_mode: h.payment_mode,
                mandate: h.mandate,
                file_lines: (group.first_line(), group.last_line),
                origin,
            }),
            _ => {
                if errors.list.is_empty() {
                    // Unreachable by construction (every `None` pushed an error); kept so that
                    // an invoice is never accepted half-parsed.
                    errors.push(first.line, None, Rule::MissingField, "incomplete invoice");
                }
                Err(errors.list)
            }
        }
    }

    fn required<'l>(
        &'l self,
        line: &'l RawLine,
        field: Field,
        errors: &mut Errors,
    ) -> Option<&'l str> {
        let value = self.mapping.get(line, field);
        if value.is_none() {
            errors.push(
                line.line,
                Some(field),
                Rule::MissingField,
                format!("{} is required", self.mapping.column_name(field)),
            );
        }
        value
    }

    fn text(&self, line: &RawLine, field: Field, errors: &mut Errors) -> Option<String> {
        self.required(line, field, errors).map(str::to_string)
    }

    fn bounded(
        &self,
        line: &RawLine,
        field: Field,
        max_chars: usize,
        errors: &mut Errors,
    ) -> Option<String> {
        let value = self.required(line, field, errors)?;
        if value.chars().count() > max_chars {
            errors.push(
                line.line,
                Some(field),
                Rule::TooLong,
                format!(
                    "{} is longer than {max_chars} characters",
                    shown(field, value)
                ),
            );
            return None;
        }
        Some(value.to_string())
    }

    fn date(&self, line: &RawLine, field: Field, errors: &mut Errors) -> Option<NaiveDate> {
        let value = self.required(line, field, errors)?;
        let date = values::parse_date(value, &self.mapping.date_format);
        if date.is_none() {
            errors.push(
                line.line,
                Some(field),
                Rule::InvalidDate,
                format!(
                    "{value:?} is not a date in the format {}",
                    self.mapping.date_format
                ),
            );
        }
        date
    }

    fn amount(&self, line: &RawLine, field: Field, errors: &mut Errors) -> Option<Money> {
        let value = self.required(line, field, errors)?;
        values::parse_amount(value, self.mapping.decimal_separator)
            .map_err(|m| errors.push(line.line, Some(field), Rule::InvalidNumber, m))
            .ok()
    }

    fn header(&self, line: &RawLine, errors: &mut Errors) -> Header {
        let m = self.mapping;
        let number = self.bounded(line, Field::InvoiceNumber, MAX_INVOICE_NUMBER_CHARS, errors);
        let issued_on = self.date(line, Field::IssueDate, errors);
        let exercice = self.required(line, Field::Exercice, errors).and_then(|v| {
            let ok = v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit());
            let parsed = if ok { v.parse::<u16>().ok() } else { None };
            if parsed.is_none() {
                errors.push(
                    line.line,
                    Some(Field::Exercice),
                    Rule::InvalidExercice,
                    format!("{v:?} is not a four-digit year"),
                );
            }
            parsed
        });
        let period = self.required(line, Field::Period, errors).and_then(|v| {
            let parsed = v.parse::<u8>().ok().filter(|p| (1..=12).contains(p));
            if parsed.is_none() {
                errors.push(
                    line.line,
                    Some(Field::Period),
                    Rule::InvalidPeriod,
                    format!("{v:?} is not a month 1-12"),
                );
            }
            parsed
        });
        let activity = self.required(line, Field::Activity, errors).and_then(|v| {
            let code = m.activity(v);
            let found = self.catalogue.activity(code).cloned();
            if found.is_none() {
                errors.push(
                    line.line,
                    Some(Field::Activity),
                    Rule::UnknownActivity,
                    format!(
                        "activity {code:?} is not configured for tenant {}",
                        self.catalogue.tenant()
                    ),
                );
            }
            found
        });
        let family_code = self.bounded(line, Field::FamilyCode, MAX_FAMILY_CODE_CHARS, errors);
        let civilite = self.required(line, Field::Civilite, errors).and_then(|v| {
            let c = m.civilite(v);
            if c.is_none() {
                errors.push(
                    line.line,
                    Some(Field::Civilite),
                    Rule::UnknownValue,
                    format!("civilité {v:?} is not in the civilité value map"),
                );
            }
            c
        });
        let last_name = self.text(line, Field::LastName, errors);
        let first_name = self.text(line, Field::FirstName, errors);
        let street = self.text(line, Field::Street, errors);
        let city = self.text(line, Field::City, errors);
        let postal_code = self
            .required(line, Field::PostalCode, errors)
            .and_then(|v| {
                if values::is_postal_code(v) {
                    Some(v.to_string())
                } else {
                    errors.push(
                        line.line,
                        Some(Field::PostalCode),
                        Rule::InvalidPostalCode,
                        format!("{v:?} is not five digits"),
                    );
                    None
                }
            });
        let email = m.get(line, Field::Email).map(|v| {
            if let Err(why) = values::check_email(v) {
                errors.push(
                    line.line,
                    Some(Field::Email),
                    Rule::InvalidEmail,
                    format!("e-mail address is not valid: {why}"),
                );
            }
            v.to_string()
        });
        let payment_mode = self
            .required(line, Field::PaymentMode, errors)
            .and_then(|v| {
                let mode = m.payment_mode(v);
                if mode.is_none() {
                    errors.push(
                        line.line,
                        Some(Field::PaymentMode),
                        Rule::UnknownValue,
                        format!("payment mode {v:?} is not in the payment-mode value map"),
                    );
                }
                mode
            });
        let due_date = self.date(line, Field::DueDate, errors);
        let mandate = match payment_mode {
            Some(PaymentMode::Prelevement) => Some(self.mandate(line, errors)),
            _ => None,
        };
        let total = m
            .get(line, Field::InvoiceTotal)
            .and_then(|_| self.amount(line, Field::InvoiceTotal, errors));
        let origin = self.origin(line, number.as_deref(), exercice, errors);
        let payer = match (civilite, last_name, first_name, street, postal_code, city) {
            (
                Some(civilite),
                Some(last_name),
                Some(first_name),
                Some(street),
                Some(pc),
                Some(city),
            ) => Some(Payer {
                civilite,
                last_name,
                first_name,
                address: Address {
                    complement: m.get(line, Field::AddressComplement).map(str::to_string),
                    street,
                    locality: m.get(line, Field::Locality).map(str::to_string),
                    postal_code: pc,
                    city,
                },
                email,
            }),
            _ => None,
        };
        Header {
            number,
            issued_on,
            exercice,
            period,
            activity,
            family_code,
            payer,
            due_date,
            payment_mode,
            mandate,
            total,
            origin,
        }
    }

    /// `FactureOrigine` / `ExerciceOrigine`: `None` for an invoice, `Some(None)` for a
    /// credit note whose origin breaks a rule.
    fn origin(
        &self,
        line: &RawLine,
        number: Option<&str>,
        exercice: Option<u16>,
        errors: &mut Errors,
    ) -> Option<Option<Origin>> {
        let m = self.mapping;
        let origin_exercice = m.get(line, Field::OriginExercice);
        let Some(origin) = m.get(line, Field::OriginInvoice) else {
            if origin_exercice.is_some() {
                errors.push(
                    line.line,
                    Some(Field::OriginExercice),
                    Rule::InvalidOrigin,
                    "ExerciceOrigine is set without FactureOrigine",
                );
            }
            return None;
        };
        let mut invalid = |field: Field, message: String| {
            errors.push(line.line, Some(field), Rule::InvalidOrigin, message);
            Some(None)
        };
        if origin.chars().count() > MAX_INVOICE_NUMBER_CHARS {
            return invalid(
                Field::OriginInvoice,
                format!("{origin:?} is longer than {MAX_INVOICE_NUMBER_CHARS} characters"),
            );
        }
        let origin_exercice = match origin_exercice {
            None => exercice,
            Some(v) => match v.parse::<u16>().ok().filter(|_| v.len() == 4) {
                Some(year) => Some(year),
                None => {
                    return invalid(
                        Field::OriginExercice,
                        format!("{v:?} is not a four-digit year"),
                    );
                }
            },
        };
        let Some(origin_exercice) = origin_exercice else {
            // The credit note's own exercice is invalid: reported on its column.
            return Some(None);
        };
        if Some(origin) == number && Some(origin_exercice) == exercice {
            return invalid(
                Field::OriginInvoice,
                format!("the credit note {origin:?} names itself as its original"),
            );
        }
        Some(Some(Origin {
            number: origin.to_string(),
            exercice: origin_exercice,
        }))
    }

    /// The mandate of a `PRELEVEMENT` invoice (`None` inside when a part is invalid).
    fn mandate(&self, line: &RawLine, errors: &mut Errors) -> Option<Mandate> {
        let m = self.mapping;
        let rum = self.required(line, Field::Rum, errors).and_then(|v| {
            Rum::parse(v)
                .map_err(|e| {
                    errors.push(line.line, Some(Field::Rum), Rule::InvalidRum, e.to_string())
                })
                .ok()
        });
        let signed_on = self
            .date(line, Field::MandateSignedOn, errors)
            .and_then(|d| {
                if d > self.today {
                    errors.push(
                        line.line,
                        Some(Field::MandateSignedOn),
                        Rule::MandateSignedInFuture,
                        format!("mandate signed on {d}, after today ({})", self.today),
                    );
                    None
                } else {
                    Some(d)
                }
            });
        // IdentifierError messages name the rule, never the value.
        let iban = self.required(line, Field::Iban, errors).and_then(|v| {
            Iban::parse(v)
                .map_err(|e| {
                    errors.push(
                        line.line,
                        Some(Field::Iban),
                        Rule::InvalidIban,
                        e.to_string(),
                    )
                })
                .ok()
        });
        let bic = match m.get(line, Field::Bic) {
            Some(v) => match Bic::parse(v) {
                Ok(bic) => Some(Some(bic)),
                Err(e) => {
                    errors.push(line.line, Some(Field::Bic), Rule::InvalidBic, e.to_string());
                    None
                }
            },
            None if m.bic_required => {
                self.required(line, Field::Bic, errors);
                None
            }
            None => Some(None),
        };
        let holder = self.text(line, Field::AccountHolder, errors);
        let sequence = match m.get(line, Field::Sequence) {
            Some(v) => match m.sequence(v) {
                Some(s) => Some(Some(s)),
                None => {
                    errors.push(
                        line.line,
                        Some(Field::Sequence),
                        Rule::UnknownValue,
                        format!("sequence {v:?} is not in the sequence value map"),
                    );
                    None
                }
            },
            None => Some(None),
        };
        Some(Mandate {
            rum: rum?,
            signed_on: signed_on?,
            iban: iban?,
            bic: bic?,
            holder: holder?,
            sequence: sequence?,
        })
    }

    /// Every header field of `line` must equal the invoice's first line.
    fn same_header(&self, first: &RawLine, line: &RawLine, errors: &mut Errors) {
        for field in Field::ALL {
            if field.is_line_level() {
                continue;
            }
            if field == Field::InvoiceNumber {
                // A line without number was grouped with the invoice it sits in.
                self.required(line, field, errors);
                continue;
            }
            let (a, b) = (
                self.mapping.get(first, field),
                self.mapping.get(line, field),
            );
            if a != b {
                let detail = if field.is_personal() {
                    String::new()
                } else {
                    format!(
                        " ({} vs {})",
                        shown(field, b.unwrap_or("")),
                        shown(field, a.unwrap_or(""))
                    )
                };
                errors.push(
                    line.line,
                    Some(field),
                    Rule::HeaderMismatch,
                    format!(
                        "{} differs from line {} of the same invoice{detail}",
                        self.mapping.column_name(field),
                        first.line
                    ),
                );
            }
        }
    }

    fn line(&self, raw: &RawLine, activity: Option<&str>, errors: &mut Errors) -> Option<Line> {
        let m = self.mapping;
        let product = self.required(raw, Field::Product, errors).and_then(|v| {
            let code = m.product(v);
            match self.catalogue.product(code) {
                None => {
                    errors.push(
                        raw.line,
                        Some(Field::Product),
                        Rule::UnknownProduct,
                        format!(
                            "product {code:?} is not configured for tenant {}",
                            self.catalogue.tenant()
                        ),
                    );
                    None
                }
                Some(p) => {
                    if let Some(activity) = activity
                        && p.activity != activity
                    {
                        errors.push(
                            raw.line,
                            Some(Field::Product),
                            Rule::ProductActivityMismatch,
                            format!(
                                "product {code:?} belongs to activity {:?}, the invoice is {activity:?}",
                                p.activity
                            ),
                        );
                    }
                    Some(p.clone())
                }
            }
        });
        let label = self.text(raw, Field::Label, errors);
        let quantity = self.required(raw, Field::Quantity, errors).and_then(|v| {
            values::parse_decimal(v, m.decimal_separator)
                .map_err(|msg| {
                    errors.push(raw.line, Some(Field::Quantity), Rule::InvalidNumber, msg)
                })
                .ok()
        });
        let unit_price = self.amount(raw, Field::UnitPrice, errors);
        let amount = self.amount(raw, Field::LineAmount, errors);
        let (quantity, unit_price, amount) = (quantity?, unit_price?, amount?);
        match values::line_amount(quantity, unit_price, m.line_rounding) {
            Ok(expected) if expected == amount => {}
            Ok(expected) => {
                errors.push(
                    raw.line,
                    Some(Field::LineAmount),
                    Rule::LineAmountMismatch,
                    format!(
                        "{} × {} = {} expected, {} given",
                        quantity.normalize(),
                        unit_price.to_comma_string(),
                        expected.to_comma_string(),
                        amount.to_comma_string()
                    ),
                );
                return None;
            }
            Err(e) => {
                errors.push(
                    raw.line,
                    Some(Field::LineAmount),
                    Rule::InvalidNumber,
                    e.to_string(),
                );
                return None;
            }
        }
        Some(Line {
            file_line: raw.line,
            product: product?,
            label: label?,
            quantity: quantity.normalize(),
            unit_price,
            amount,
        })
    }
}

/// Header fields as parsed from the first line (each `None` when invalid).
struct Header {
    number: Option<String>,
    issued_on: Option<NaiveDate>,
    exercice: Option<u16>,
    period: Option<u8>,
    activity: Option<Arc<Activity>>,
    family_code: Option<String>,
    payer: Option<Payer>,
    due_date: Option<NaiveDate>,
    payment_mode: Option<PaymentMode>,
    /// `Some(None)` = direct debit with an invalid mandate; `None` = not a direct debit.
    mandate: Option<Option<Mandate>>,
    total: Option<Money>,
    /// `Some(None)` = a credit note whose origin is invalid; `None` = an invoice.
    origin: Option<Option<Origin>>,
}

/// The header once every field is valid.
struct CompleteHeader {
    number: String,
    issued_on: NaiveDate,
    exercice: u16,
    period: u8,
    activity: Arc<Activity>,
    family_code: String,
    payer: Payer,
    due_date: NaiveDate,
    payment_mode: PaymentMode,
    mandate: Option<Mandate>,
}

impl Header {
    fn complete(self) -> Option<CompleteHeader> {
        let mandate = match self.mandate {
            Some(inner) => Some(inner?),
            None => None,
        };
        Some(CompleteHeader {
            number: self.number?,
            issued_on: self.issued_on?,
            exercice: self.exercice?,
            period: self.period?,
            activity: self.activity?,
            family_code: self.family_code?,
            payer: self.payer?,
            due_date: self.due_date?,
            payment_mode: self.payment_mode?,
            mandate,
        })
    }
}

/// Civilité as written in the canonical form (`M`, `MME`).
pub fn civilite_code(c: Civilite) -> &'static str {
    match c {
        Civilite::M => "M",
        Civilite::Mme => "MME",
    }
}
