//! From an invoice to the values of its PES pièce: every rule the XSD does not check
//! (amounts, dates, character sets, lengths, keys, payment blocks) is applied here, and a
//! broken rule names the invoice, the field and the rule.

use chrono::{Datelike, Days, NaiveDate};
use encaisse_schemas::Money;
use encaisse_schemas::events::{Civilite, InvoiceIssued, PaymentMode, SequenceType};
use encaisse_schemas::identifiers::BicFlavour;
use encaisse_schemas::tenant::{Budget, CollectionPath};

use super::netting::{Gross, net_lines};
use super::talon::{TalonInput, TalonOptique, talon_optique_lines};
use super::{Bordereau, InvoiceError, MAX_ID_PCE, Titre, month_name};
use crate::codes::BordereauKind;
use crate::config::{
    AsapMode, Cle1NatureSource, HeliosTenantConfig, NatureSource, NumDetteRule, PeriodRule,
};
use crate::keys::OrmcKeyInput;
use crate::template::{self, Value};
use crate::text::{pes_text, sepa_text};

/// Largest total of an ASAP printed with a TIP (`ModeRecouvrement 0`): 150 000,00 €.
const TIP_MAX_CENTS: i64 = 15_000_000;

/// The ORMC identification of an article, as written and as Hélios returns it in
/// `InfoORMC` (the ledger keeps it to find the article by debt number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrmcKeys {
    pub num_dette: String,
    pub per: u8,
    pub cle1: u8,
    pub cle2: char,
}

/// The ORMC keys `titre` gets in `bordereau` (`None` for titres ordinaires).
pub fn ormc_keys(
    bordereau: &Bordereau<'_>,
    titre: &Titre<'_>,
) -> Result<Option<OrmcKeys>, InvoiceError> {
    let ctx = Ctx {
        bordereau,
        invoice: titre.invoice,
    };
    match bordereau.config.bordereau_kind {
        BordereauKind::Ormc => prepare_ormc(&ctx, titre).map(Some),
        BordereauKind::Ordinaire => Ok(None),
    }
}

/// The debtor (`Tiers`), identical on every line (one debtor per titre).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Debtor {
    pub ref_tiers: Option<String>,
    pub civilite: String,
    pub nom: String,
    pub prenom: String,
    pub adr1: Option<String>,
    pub adr2: String,
    pub adr3: Option<String>,
    pub cp: String,
    pub ville: String,
}

/// The bank account of a direct debit (`CpteBancaire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BankAccount<'a> {
    pub bic: Option<&'a str>,
    pub iban: &'a str,
    pub holder: String,
}

/// `InfoPrelevementSEPA` (the amount is each line's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Debit<'a> {
    pub periodicity: &'a str,
    pub due: String,
    pub sequence: &'static str,
    pub signed_on: String,
    pub rum: &'a str,
    pub label: Option<String>,
    pub holder_differs: bool,
}

/// A line of the pièce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    pub id_ligne: u32,
    pub object: Option<String>,
    pub cod_prod_loc: &'a str,
    pub nature: &'a str,
    pub fonction: Option<&'a str>,
    pub amount: Money,
    /// Index in the invoice's `lines`.
    pub source: usize,
}

/// What the ASAP of this titre carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asap<'a> {
    /// `Edition` (01 titre ordinaire with a PES Facture, 06 ORMC with the invoice PDF).
    pub edition: &'static str,
    /// PJ referenced by the titre.
    pub id_unique: String,
    pub pj_name: String,
    /// `TypePJ` (006 PES Facture, 010 ORMC PDF).
    pub pj_type: &'static str,
    /// With a TIP SEPA (`ModeRecouvrement 0`), else the talon optique (1).
    pub tip: bool,
    /// `RefBdf`: ICS with a TIP, numéro émetteur with the talon.
    pub ref_bdf: String,
    /// `CodeTipi` when the invoice is payable online.
    pub code_tipi: Option<&'a str>,
    pub talon: Option<TalonOptique>,
    pub pdf: Option<&'a [u8]>,
}

/// Everything the writer needs for one pièce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    pub invoice: &'a InvoiceIssued,
    pub id_pce: u32,
    pub object: Option<String>,
    pub ormc: Option<OrmcKeys>,
    pub debtor: Debtor,
    pub bank: Option<BankAccount<'a>>,
    pub debit: Option<Debit<'a>>,
    pub lines: Vec<Line<'a>>,
    pub total: Money,
    pub asap: Option<Asap<'a>>,
}

/// Checks that `titre` can be written in `bordereau`: every rule an invoice must meet to
/// become a titre (the writer applies the same ones).
pub fn check_titre(bordereau: &Bordereau<'_>, titre: &Titre<'_>) -> Result<(), InvoiceError> {
    prepare(bordereau, titre).map(|_| ())
}

/// A line of a titre as written: `IdLigne` and the invoice line it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitreLine {
    /// `IdLigne` (1, 2, … over the written lines).
    pub id_ligne: u32,
    /// `InvoiceLine::number` of the invoice line.
    pub invoice_line: u32,
    /// `MtHT`.
    pub amount: Money,
}

/// What a stage keeps of a titre to find it again when the Trésorerie answers: its lines
/// as written (free lines and reductions are not written, reductions are netted into the
/// other lines, so `IdLigne` may differ from the invoice line number and `amount` from the
/// invoice line's) and, for ORMC, its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitreShape {
    pub lines: Vec<TitreLine>,
    pub total: Money,
    pub ormc: Option<OrmcKeys>,
}

/// [`check_titre`], and the titre's shape when it passes.
pub fn titre_shape(
    bordereau: &Bordereau<'_>,
    titre: &Titre<'_>,
) -> Result<TitreShape, InvoiceError> {
    let piece = prepare(bordereau, titre)?;
    Ok(TitreShape {
        lines: piece
            .lines
            .iter()
            .map(|l| TitreLine {
                id_ligne: l.id_ligne,
                invoice_line: piece
                    .invoice
                    .lines
                    .get(l.source)
                    .map_or(0, |source| source.number),
                amount: l.amount,
            })
            .collect(),
        total: piece.total,
        ormc: piece.ormc,
    })
}

struct Ctx<'b, 'a> {
    bordereau: &'b Bordereau<'a>,
    invoice: &'a InvoiceIssued,
}

impl<'a> Ctx<'_, 'a> {
    fn error(&self, field: impl Into<String>, rule: impl Into<String>) -> InvoiceError {
        InvoiceError {
            invoice: self.invoice.invoice.key(),
            field: field.into(),
            rule: rule.into(),
        }
    }

    fn config(&self) -> &'a HeliosTenantConfig {
        self.bordereau.config
    }

    /// A mandatory free text, normalised.
    fn text(&self, field: &str, value: &str, max: usize) -> Result<String, InvoiceError> {
        pes_text(value, max, self.config().text_style).ok_or_else(|| {
            self.error(
                field,
                format!("{value:?} leaves no acceptable text (empty, '.', 'nc' or zeros)"),
            )
        })
    }

    /// An optional free text: omitted when nothing acceptable is left.
    fn text_opt(&self, value: Option<&str>, max: usize) -> Option<String> {
        value.and_then(|v| pes_text(v, max, self.config().text_style))
    }

    fn render(&self, field: &str, template_text: &str) -> Result<String, InvoiceError> {
        let invoice = self.invoice;
        let period = format!("{:02}", invoice.period);
        template::render(template_text, |name| {
            Some(match name {
                "invoice" => Value::Text(&invoice.invoice.number),
                "activity" => Value::Text(&invoice.activity),
                "exercice" => Value::Number(u64::from(invoice.invoice.exercice)),
                "period" => Value::Text(&period),
                "month_name" => Value::Text(month_name(invoice.period)),
                "budget_label" => Value::Text(&self.bordereau.budget.label),
                _ => return None,
            })
        })
        .map_err(|e| self.error(field, format!("template: {e}")))
    }
}

fn is_alnum(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn is_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

/// Builds the pièce of `titre`, or says which rule it breaks.
pub(crate) fn prepare<'a>(
    bordereau: &Bordereau<'a>,
    titre: &Titre<'a>,
) -> Result<Piece<'a>, InvoiceError> {
    let invoice = titre.invoice;
    let ctx = Ctx { bordereau, invoice };
    let config = bordereau.config;
    let kind = config.bordereau_kind;

    if titre.id_pce == 0 || titre.id_pce > MAX_ID_PCE {
        return Err(ctx.error(
            "IdPce",
            format!("{} is outside 1..={MAX_ID_PCE}", titre.id_pce),
        ));
    }
    if invoice.invoice.exercice != bordereau.exercice {
        return Err(ctx.error(
            "invoice.exercice",
            format!(
                "{} differs from the bordereau's exercice {}",
                invoice.invoice.exercice, bordereau.exercice
            ),
        ));
    }
    if invoice.budget != bordereau.budget.code {
        return Err(ctx.error(
            "budget",
            format!(
                "{:?} differs from the bordereau's budget {:?}",
                invoice.budget, bordereau.budget.code
            ),
        ));
    }
    if invoice.collection != CollectionPath::Titres {
        return Err(ctx.error(
            "collection",
            "a régie invoice is not sent to Hélios as a titre",
        ));
    }
    if !(1..=12).contains(&invoice.period) {
        return Err(ctx.error("period", format!("{} is not a month", invoice.period)));
    }

    let lines = prepare_lines(&ctx, kind)?;
    let total = super::sum_cents(lines.iter().map(|l| l.amount))
        .map_err(|e| ctx.error("total", e.to_string()))?;
    if total != invoice.total {
        return Err(ctx.error(
            "total",
            format!("{} is not the sum of the lines ({total})", invoice.total),
        ));
    }

    let object = {
        let rendered = ctx.render("piece_object", &config.piece_object)?;
        ctx.text_opt(Some(&rendered), 160)
    };
    let debtor = prepare_debtor(&ctx)?;
    let (bank, debit) = match invoice.payment_mode {
        PaymentMode::Prelevement => {
            let (bank, debit) = prepare_debit(&ctx, titre, &debtor)?;
            (Some(bank), Some(debit))
        }
        _ => (None, None),
    };
    let ormc = match kind {
        BordereauKind::Ormc => Some(prepare_ormc(&ctx, titre)?),
        BordereauKind::Ordinaire => None,
    };
    let asap = prepare_asap(&ctx, titre, total, ormc.as_ref())?;

    Ok(Piece {
        invoice,
        id_pce: titre.id_pce,
        object,
        ormc,
        debtor,
        bank,
        debit,
        lines,
        total,
        asap,
    })
}

fn prepare_lines<'a>(
    ctx: &Ctx<'_, 'a>,
    kind: BordereauKind,
) -> Result<Vec<Line<'a>>, InvoiceError> {
    let config = ctx.config();
    // Every line that owes or takes off something, checked; free lines are not sous-articles.
    let mut checked: Vec<Line<'a>> = Vec::with_capacity(ctx.invoice.lines.len());
    for (i, line) in ctx.invoice.lines.iter().enumerate() {
        let field = |name: &str| format!("lines[{i}].{name}");
        if line.amount.cents() == 0 {
            continue;
        }
        if !is_alnum(&line.cod_prod_loc)
            || line.cod_prod_loc.len() > 4
            || line.cod_prod_loc.bytes().all(|b| b == b'0')
        {
            return Err(ctx.error(
                field("cod_prod_loc"),
                format!(
                    "{:?} is not a CodProdLoc (1-4 letters or digits)",
                    line.cod_prod_loc
                ),
            ));
        }
        let nature: &'a str = match (kind, config.ormc.nature_source) {
            (BordereauKind::Ormc, NatureSource::Fixed) => &config.ormc.nature,
            _ => &line.nature,
        };
        if !is_digits(nature) || nature.len() > 12 || nature.bytes().all(|b| b == b'0') {
            return Err(ctx.error(
                field("nature"),
                format!("{nature:?} is not a nature account (1-12 digits)"),
            ));
        }
        let fonction = line.fonction.as_deref().filter(|f| !f.is_empty());
        if let Some(f) = fonction
            && (!is_digits(f) || f.len() > 10)
        {
            return Err(ctx.error(
                field("fonction"),
                format!("{f:?} is not a fonction account (1-10 digits)"),
            ));
        }
        checked.push(Line {
            id_ligne: 0,
            object: ctx.text_opt(Some(&line.label), 160),
            cod_prod_loc: &line.cod_prod_loc,
            nature,
            fonction,
            amount: line.amount,
            source: i,
        });
    }
    let gross: Vec<Gross<(&str, Option<&str>, &str)>> = checked
        .iter()
        .map(|l| Gross {
            imputation: (l.nature, l.fonction, l.cod_prod_loc),
            cents: l.amount.cents(),
        })
        .collect();
    let net = net_lines(&gross).ok_or_else(|| {
        ctx.error(
            "lines",
            "the lines add up to 0 or less: nothing to collect (a correction of an invoice \
             already sent is a credit note naming its FactureOrigine)",
        )
    })?;
    let mut lines = Vec::with_capacity(checked.len());
    for (mut line, cents) in checked.into_iter().zip(net) {
        if cents <= 0 {
            // A reduction, or a line its reductions took in full: nothing left to owe.
            continue;
        }
        let id_ligne = u32::try_from(lines.len() + 1).unwrap_or(u32::MAX);
        if id_ligne > 999_999 {
            return Err(ctx.error("lines", "more than 999 999 lines"));
        }
        line.id_ligne = id_ligne;
        line.amount = Money::from_cents(cents).map_err(|e| ctx.error("lines", e.to_string()))?;
        lines.push(line);
    }
    Ok(lines)
}

/// The debtor of `invoice` as a titre of `bordereau` names it.
pub(crate) fn debtor(
    bordereau: &Bordereau<'_>,
    invoice: &InvoiceIssued,
) -> Result<Debtor, InvoiceError> {
    prepare_debtor(&Ctx { bordereau, invoice })
}

fn prepare_debtor(ctx: &Ctx<'_, '_>) -> Result<Debtor, InvoiceError> {
    let config = ctx.config();
    let payer = &ctx.invoice.payer;
    let address = &payer.address;
    let ref_tiers = if config.send_family_code {
        let code = ctx.invoice.family_code.trim();
        if code.chars().count() > 30 {
            return Err(ctx.error(
                "family_code",
                format!("{code:?} is longer than 30 characters (RefTiers)"),
            ));
        }
        ctx.text_opt(Some(code), 30)
    } else {
        None
    };
    let civilite = match payer.civilite {
        Civilite::M => config.civilite_m.clone(),
        Civilite::Mme => config.civilite_mme.clone(),
    };
    let cp = address.postal_code.trim();
    if cp.len() != 5 || !is_digits(cp) {
        return Err(ctx.error(
            "payer.address.postal_code",
            format!("{cp:?} is not a 5-digit postal code"),
        ));
    }
    Ok(Debtor {
        ref_tiers,
        civilite,
        nom: ctx.text("payer.last_name", &payer.last_name, 38)?,
        prenom: ctx.text("payer.first_name", &payer.first_name, 38)?,
        adr1: ctx.text_opt(address.complement.as_deref(), 38),
        adr2: ctx.text("payer.address.street", &address.street, 38)?,
        adr3: ctx.text_opt(address.locality.as_deref(), 38),
        cp: cp.to_string(),
        ville: ctx.text("payer.address.city", &address.city, 38)?,
    })
}

fn sequence_code(sequence: SequenceType) -> &'static str {
    match sequence {
        SequenceType::Ooff => "01",
        SequenceType::Frst => "02",
        SequenceType::Rcur => "03",
        SequenceType::Fnal => "04",
    }
}

fn prepare_debit<'a>(
    ctx: &Ctx<'_, 'a>,
    titre: &Titre<'a>,
    debtor: &Debtor,
) -> Result<(BankAccount<'a>, Debit<'a>), InvoiceError> {
    let config = ctx.config();
    let invoice = ctx.invoice;
    let mandate = invoice
        .mandate
        .as_ref()
        .ok_or_else(|| ctx.error("mandate", "payment by direct debit without a mandate"))?;
    let sequence = titre.sequence.or(mandate.sequence).ok_or_else(|| {
        ctx.error(
            "mandate.sequence",
            "the SEPA sequence (FRST/RCUR/OOFF/FNAL) of the debit is unknown",
        )
    })?;
    let date = ctx.bordereau.date;
    let earliest = date
        .checked_add_days(Days::new(u64::from(config.debit.min_lead_days)))
        .unwrap_or(NaiveDate::MAX);
    if invoice.due_date < earliest {
        return Err(ctx.error(
            "due_date",
            format!(
                "debit date {} is before {earliest} (bordereau date + debit.min_lead_days = {})",
                invoice.due_date, config.debit.min_lead_days
            ),
        ));
    }
    if mandate.signed_on > date {
        return Err(ctx.error(
            "mandate.signed_on",
            format!("{} is after the bordereau date {date}", mandate.signed_on),
        ));
    }
    let bic = mandate.bic.as_ref();
    if let Some(bic) = bic
        && !bic.satisfies(BicFlavour::Iso2009)
    {
        return Err(ctx.error(
            "mandate.bic",
            format!("{bic} does not match the PES BIC pattern (Base_Texte11BIC)"),
        ));
    }
    let iban = mandate.iban.as_str();
    if bic.is_none() && !matches!(mandate.iban.country(), "FR" | "MC") {
        return Err(ctx.error(
            "mandate.bic",
            "the BIC is mandatory for an account outside France",
        ));
    }
    let holder = ctx.text("mandate.holder", &mandate.holder, 32)?;
    let label = {
        let rendered = ctx.render("debit.label", &config.debit.label)?;
        sepa_text(&rendered, 140)
    };
    let holder_differs = holder != format!("{} {}", debtor.nom, debtor.prenom)
        && holder != format!("{} {}", debtor.prenom, debtor.nom);
    Ok((
        BankAccount {
            bic: bic.map(|b| b.as_str()),
            iban,
            holder,
        },
        Debit {
            periodicity: &config.debit.periodicity,
            due: crate::xmlw::date(invoice.due_date),
            sequence: sequence_code(sequence),
            signed_on: crate::xmlw::date(mandate.signed_on),
            rum: mandate.rum.as_str(),
            label,
            holder_differs,
        },
    ))
}

fn num_dette(ctx: &Ctx<'_, '_>, titre: &Titre<'_>) -> Result<String, InvoiceError> {
    let invoice = ctx.invoice;
    match ctx.config().ormc.num_dette {
        NumDetteRule::InvoiceDigits => {
            let digits: String = invoice
                .invoice
                .number
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let significant = digits.trim_start_matches('0');
            if significant.is_empty() || significant.len() > 13 {
                return Err(ctx.error(
                    "invoice.number",
                    format!(
                        "{:?} gives NumDette {significant:?}: 1 to 13 significant digits needed (the ORMC keys use 13)",
                        invoice.invoice.number
                    ),
                ));
            }
            Ok(significant.to_string())
        }
        NumDetteRule::ExerciceAndPiece => Ok(format!(
            "{:04}{:08}",
            invoice.invoice.exercice, titre.id_pce
        )),
    }
}

fn prepare_ormc(ctx: &Ctx<'_, '_>, titre: &Titre<'_>) -> Result<OrmcKeys, InvoiceError> {
    let config = ctx.config();
    let ormc = &config.ormc;
    let num_dette = num_dette(ctx, titre)?;
    let month = ctx.invoice.period;
    let per = match ormc.period_rule {
        PeriodRule::MonthFirstDigit => {
            if month >= 10 {
                month / 10
            } else {
                month
            }
        }
        PeriodRule::MonthLastDigit => month % 10,
        PeriodRule::Fixed => ormc.fixed_period,
    };
    let id_bord = ctx.bordereau.id_bord.to_string();
    let nature_code = match ormc.cle1_nature_source {
        Cle1NatureSource::Fixed => ormc.cle1_nature_code.as_str(),
        Cle1NatureSource::IdBord => id_bord.as_str(),
    };
    let input = OrmcKeyInput {
        cod_col: &ctx.bordereau.budget.cod_col,
        nature_code,
        exercice: ctx.bordereau.exercice,
        period: per,
        num_dette: &num_dette,
    };
    let cle2 = input
        .cle2()
        .ok_or_else(|| ctx.error("Cle2", "the key input holds a non-digit"))?;
    Ok(OrmcKeys {
        cle1: input.cle1(ormc.mod11_zero_remainder),
        cle2,
        num_dette,
        per,
    })
}

/// `IdUnique` of a titre's ASAP PJ: unique forever because (exercice, type, bordereau,
/// pièce) never repeats for a budget, and the SIRET tells budgets apart.
fn asap_id_unique(bordereau: &Bordereau<'_>, id_pce: u32) -> String {
    format!(
        "{}A{}{}{:07}{:08}",
        bordereau.budget.siret,
        bordereau.exercice,
        bordereau.config.bordereau_kind.typ_bord(),
        bordereau.id_bord,
        id_pce
    )
}

fn prepare_asap<'a>(
    ctx: &Ctx<'_, 'a>,
    titre: &Titre<'a>,
    total: Money,
    ormc: Option<&OrmcKeys>,
) -> Result<Option<Asap<'a>>, InvoiceError> {
    let config = ctx.config();
    let invoice = ctx.invoice;
    let tip = invoice.payment_mode == PaymentMode::Tip;
    if tip && config.asap.mode == AsapMode::None {
        return Err(ctx.error(
            "payment_mode",
            "TIP needs an ASAP printed by the DGFiP: set [tenants.helios.asap] mode to \"tip_only\", \"tip_and_online\" or \"all\"",
        ));
    }
    if !config
        .asap
        .mode
        .wants_asap(invoice.payment_mode, invoice.online_payable)
    {
        return Ok(None);
    }
    let bordereau = ctx.bordereau;
    let budget: &'a Budget = bordereau.budget;
    let id_unique = asap_id_unique(bordereau, titre.id_pce);
    if ormc.is_some() {
        // ORMC: the DGFiP prints the invoice PDF the commune made (Edition 06, PJ 010); the
        // TIP and the PayFiP reference are on that PDF.
        let pdf = titre.asap_pdf.filter(|p| !p.is_empty()).ok_or_else(|| {
            ctx.error(
                "asap_pdf",
                "an ORMC article printed by the DGFiP (Edition 06) needs the invoice PDF (PJ 010)",
            )
        })?;
        return Ok(Some(Asap {
            edition: "06",
            pj_name: format!("FACTURE_{}.pdf", id_unique),
            id_unique,
            pj_type: "010",
            tip,
            ref_bdf: String::new(),
            code_tipi: None,
            talon: None,
            pdf: Some(pdf),
        }));
    }
    if tip && total.cents() > TIP_MAX_CENTS {
        return Err(ctx.error(
            "total",
            format!("{total} is above 150000.00, the limit of an ASAP with a TIP"),
        ));
    }
    let ref_bdf = if tip {
        config
            .asap
            .ics_for(&budget.code)
            .map(|ics| ics.as_str().to_string())
            .ok_or_else(|| {
                ctx.error(
                    "asap.ics",
                    "no ICS configured for this budget (RefBdf of a TIP ASAP)",
                )
            })?
    } else {
        config
            .asap
            .issuer_number_for(&budget.code)
            .map(str::to_string)
            .ok_or_else(|| {
                ctx.error(
                    "asap.issuer_number",
                    "no numéro émetteur configured for this budget (RefBdf of a talon ASAP)",
                )
            })?
    };
    let code_tipi = match (&budget.payfip_numcli, invoice.online_payable) {
        (Some(numcli), true) => {
            if !is_digits(numcli) || numcli.len() > 7 {
                return Err(ctx.error(
                    "budget.payfip_numcli",
                    format!("{numcli:?} is not a PayFiP identifier (CodeTipi, ≤ 7 digits)"),
                ));
            }
            Some(numcli.as_str())
        }
        _ => None,
    };
    let invoice_digits: String = invoice
        .invoice
        .number
        .chars()
        .filter(char::is_ascii_digit)
        .take(18)
        .collect();
    let talon = talon_optique_lines(
        &config.asap.talon,
        &TalonInput {
            codique: &config.id_post,
            cod_col: &budget.cod_col,
            cod_bud: &budget.cod_bud,
            exercice: bordereau.exercice,
            typ_bord: config.bordereau_kind.typ_bord(),
            id_bord: bordereau.id_bord,
            id_pce: titre.id_pce,
            amount_cents: total.cents().unsigned_abs(),
            ref_bdf: &ref_bdf,
            invoice_digits: &invoice_digits,
            tip,
        },
    )
    .map_err(|e| ctx.error("TalonOptique2Lignes", e.to_string()))?;
    Ok(Some(Asap {
        edition: "01",
        pj_name: format!("ASAP_{id_unique}.xml"),
        id_unique,
        pj_type: "006",
        tip,
        ref_bdf,
        code_tipi,
        talon: Some(talon),
        pdf: None,
    }))
}

/// `DteAsp` of an ORMC bordereau, when configured.
pub(crate) fn ormc_asap_date(bordereau: &Bordereau<'_>) -> Option<NaiveDate> {
    bordereau
        .config
        .ormc
        .asap_sent_after_days
        .and_then(|days| bordereau.date.checked_add_days(Days::new(u64::from(days))))
}

/// Whether the bordereau's own fields are acceptable (numbers, dates, budget codes).
pub(crate) fn check_bordereau(bordereau: &Bordereau<'_>) -> Result<(), String> {
    let budget = bordereau.budget;
    if bordereau.id_bord == 0 || bordereau.id_bord > super::MAX_ID_BORD {
        return Err(format!(
            "IdBord {} is outside 1..={}",
            bordereau.id_bord,
            super::MAX_ID_BORD
        ));
    }
    let year = bordereau.date.year();
    let exer = i32::from(bordereau.exercice);
    if !(1000..=9999).contains(&exer) || !(exer..=exer + 1).contains(&year) {
        return Err(format!(
            "bordereau date {} does not belong to exercice {} (same year, or the next one during the journée complémentaire)",
            bordereau.date, bordereau.exercice
        ));
    }
    let cc = budget.cod_col.as_bytes();
    if cc.len() != 3 || !is_digits(&budget.cod_col) || budget.cod_col == "000" {
        return Err(format!(
            "budget {}: CodCol {:?} is not 3 digits",
            budget.code, budget.cod_col
        ));
    }
    let cb = budget.cod_bud.as_bytes();
    if cb.len() != 2
        || !(cb[0].is_ascii_digit() || cb[0].is_ascii_uppercase())
        || !cb[1].is_ascii_digit()
    {
        return Err(format!(
            "budget {}: CodBud {:?} is not [0-9A-Z][0-9]",
            budget.code, budget.cod_bud
        ));
    }
    if budget.siret.len() != 14 || !is_digits(&budget.siret) {
        return Err(format!(
            "budget {}: SIRET {:?} is not 14 digits",
            budget.code, budget.siret
        ));
    }
    if !crate::config::is_codique(&bordereau.config.id_post) {
        return Err(format!(
            "IdPost {:?} is not a codique",
            bordereau.config.id_post
        ));
    }
    Ok(())
}
