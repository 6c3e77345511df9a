//! Payment results: the `resultrans` letter, the web service's result record, what an
//! operation's state means over time, and the canonical events it turns into.

use std::fmt;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use encaisse_schemas::{
    Channel, InvoiceRef, Money, PayfipFailure, PaymentFailed, PaymentReceived, PaymentSource,
};

use crate::datetime::parse_paris;
use crate::error::{PayfipError, RetryClass};
use crate::fields::{Email, IdOp, check_numauto, parse_montant};
use crate::xml::Element;

/// `resultrans`: the outcome of a payment (spec §2.5, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resultrans {
    /// Paid by card.
    P,
    /// Paid by SEPA one-off debit ("prélèvement unique"; the debit settles later).
    V,
    /// Card payment refused.
    R,
    /// SEPA one-off debit refused.
    Z,
    /// Abandoned by the user.
    A,
}

impl Resultrans {
    pub const ALL: [Resultrans; 5] = [
        Resultrans::P,
        Resultrans::V,
        Resultrans::R,
        Resultrans::Z,
        Resultrans::A,
    ];

    /// Reads the letter; anything else is `None` (an error for every known client).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "P" => Some(Resultrans::P),
            "V" => Some(Resultrans::V),
            "R" => Some(Resultrans::R),
            "Z" => Some(Resultrans::Z),
            "A" => Some(Resultrans::A),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resultrans::P => "P",
            Resultrans::V => "V",
            Resultrans::R => "R",
            Resultrans::Z => "Z",
            Resultrans::A => "A",
        }
    }

    /// `P` and `V` pay.
    pub fn is_paid(self) -> bool {
        matches!(self, Resultrans::P | Resultrans::V)
    }

    /// The REGLEMENTS channel of a paid result.
    pub fn channel(self) -> Option<Channel> {
        match self {
            Resultrans::P => Some(Channel::Cb),
            Resultrans::V => Some(Channel::PrelevementUnique),
            _ => None,
        }
    }

    /// The failure of a result that did not pay.
    pub fn failure(self) -> Option<PayfipFailure> {
        match self {
            Resultrans::R => Some(PayfipFailure::R),
            Resultrans::Z => Some(PayfipFailure::Z),
            Resultrans::A => Some(PayfipFailure::A),
            Resultrans::P | Resultrans::V => None,
        }
    }

    /// A short French/English label for people (`paid by card`, …).
    pub fn label(self) -> &'static str {
        match self {
            Resultrans::P => "paid by card",
            Resultrans::V => "paid by SEPA one-off debit",
            Resultrans::R => "card payment refused",
            Resultrans::Z => "SEPA one-off debit refused",
            Resultrans::A => "abandoned by the user",
        }
    }
}

impl fmt::Display for Resultrans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of an operation, as `recupererDetailPaiementSecurise` returns it (spec §3.3,
/// §6.4). Only this record is trusted: notifications carry nothing but the idOp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentDetail {
    pub idop: IdOp,
    pub resultrans: Resultrans,
    pub numcli: String,
    /// The `exer` echo, kept as sent: the recorded fixture shows `20` for a request with
    /// `2019` (truncation or fixture edit, spec §9.8), so nothing relies on it.
    pub exer: String,
    pub refdet: String,
    pub amount: Money,
    /// The payer's address echoed back (masked in `Debug`); `None` when absent or malformed.
    pub mel: Option<Email>,
    pub objet: Option<String>,
    pub saisie: String,
    /// Authorisation number, present when paid.
    pub numauto: Option<String>,
    /// `dattrans` + `heurtrans` in Europe/Paris; `None` when absent or unreadable.
    pub transaction_at: Option<DateTime<FixedOffset>>,
}

impl PaymentDetail {
    /// Reads the `return` element. `requested` is the idOp asked for: an answer about another
    /// operation is refused.
    pub fn from_return(ret: &Element, requested: &IdOp) -> Result<Self, String> {
        let required = |name: &str| {
            ret.child_value(name)
                .ok_or_else(|| format!("result has no <{name}>"))
        };
        let idop = IdOp::new(required("idOp")?).map_err(|e| e.to_string())?;
        if &idop != requested {
            return Err(format!(
                "result is about idOp {idop}, not the requested {requested}"
            ));
        }
        let letter = required("resultrans")?;
        let resultrans =
            Resultrans::parse(letter).ok_or_else(|| format!("unknown resultrans {letter:?}"))?;
        let amount = parse_montant(required("montant")?).map_err(|e| e.to_string())?;
        let transaction_at = match (ret.child_value("dattrans"), ret.child_value("heurtrans")) {
            (Some(d), Some(h)) => parse_paris(d, h).ok(),
            _ => None,
        };
        Ok(PaymentDetail {
            idop,
            resultrans,
            numcli: required("numcli")?.to_string(),
            exer: ret.child_value("exer").unwrap_or("").to_string(),
            refdet: required("refdet")?.to_string(),
            amount,
            mel: ret.child_value("mel").and_then(|m| Email::new(m).ok()),
            objet: ret.child_value("objet").map(str::to_string),
            saisie: ret.child_value("saisie").unwrap_or("").to_string(),
            numauto: ret
                .child_value("numauto")
                .map(check_numauto)
                .transpose()
                .map_err(|e| e.to_string())?,
            transaction_at,
        })
    }

    /// `payfip:<idop>`: the payment id of events about this operation.
    pub fn payment_id(&self) -> String {
        payment_id(&self.idop)
    }

    /// The `payment.received` for a paid result (`None` otherwise). `commission` comes from
    /// [`crate::commission::commission`]; `observed_at` dates the payment when the gateway
    /// gave no readable transaction time (never seen, but a paid result must not be lost).
    pub fn payment_received(
        &self,
        invoice: InvoiceRef,
        commission: Option<Money>,
        observed_at: DateTime<FixedOffset>,
    ) -> Option<PaymentReceived> {
        self.sighting().received(invoice, commission, observed_at)
    }

    /// The `payment.failed` for a result that did not pay (`None` when paid).
    pub fn payment_failed(
        &self,
        invoice: InvoiceRef,
        observed_at: DateTime<FixedOffset>,
    ) -> Option<PaymentFailed> {
        self.sighting().failed(invoice, observed_at)
    }

    fn sighting(&self) -> Sighting {
        Sighting {
            payment_id: self.payment_id(),
            resultrans: self.resultrans,
            amount: self.amount,
            numauto: self.numauto.clone(),
            own_reference: self.idop.to_string(),
            transaction_at: self.transaction_at,
            origin: "PayFiP result",
        }
    }
}

/// What the events of a gateway result are made of, whichever channel brought it (web
/// service or classic URL).
pub(crate) struct Sighting {
    pub payment_id: String,
    pub resultrans: Resultrans,
    pub amount: Money,
    pub numauto: Option<String>,
    /// The idOp (web service) or refdet (classic URL), after `numauto` in the reference.
    pub own_reference: String,
    pub transaction_at: Option<DateTime<FixedOffset>>,
    /// Start of the failure reason (`PayFiP result`).
    pub origin: &'static str,
}

impl Sighting {
    pub(crate) fn received(
        self,
        invoice: InvoiceRef,
        commission: Option<Money>,
        observed_at: DateTime<FixedOffset>,
    ) -> Option<PaymentReceived> {
        let channel = self.resultrans.channel()?;
        let reference = match &self.numauto {
            Some(numauto) => format!("{numauto} {}", self.own_reference),
            None => self.own_reference,
        };
        Some(PaymentReceived {
            schema_version: 1,
            invoice,
            payment_id: self.payment_id,
            amount: self.amount,
            channel,
            source: PaymentSource::Payfip,
            paid_at: self.transaction_at.unwrap_or(observed_at),
            reference,
            commission,
        })
    }

    pub(crate) fn failed(
        self,
        invoice: InvoiceRef,
        observed_at: DateTime<FixedOffset>,
    ) -> Option<PaymentFailed> {
        let failure = self.resultrans.failure()?;
        Some(PaymentFailed {
            schema_version: 1,
            invoice,
            payment_id: self.payment_id,
            result: failure,
            amount: self.amount,
            failed_at: self.transaction_at.unwrap_or(observed_at),
            reason: format!(
                "{} {}: {}.",
                self.origin,
                self.resultrans,
                self.resultrans.label()
            ),
        })
    }
}

/// `payfip:<idop>`.
pub fn payment_id(idop: &IdOp) -> String {
    format!("payfip:{idop}")
}

/// The `payment.failed` of an operation that expired without a result.
pub fn expired_payment(
    invoice: InvoiceRef,
    idop: &IdOp,
    amount: Money,
    at: DateTime<FixedOffset>,
    reason: impl Into<String>,
) -> PaymentFailed {
    PaymentFailed {
        schema_version: 1,
        invoice,
        payment_id: payment_id(idop),
        result: PayfipFailure::Expired,
        amount,
        failed_at: at,
        reason: reason.into(),
    }
}

/// The labels of a client number, as `recupererDetailClient` returns them (spec §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDetail {
    pub numcli: String,
    pub libelle_n1: String,
    pub libelle_n2: String,
    pub libelle_n3: String,
}

impl ClientDetail {
    pub fn from_return(ret: &Element) -> Result<Self, String> {
        let text = |name: &str| ret.child_value(name).unwrap_or("").to_string();
        let numcli = text("numcli");
        if numcli.is_empty() {
            return Err("client detail has no <numcli>".into());
        }
        Ok(ClientDetail {
            numcli,
            libelle_n1: text("libelleN1"),
            libelle_n2: text("libelleN2"),
            libelle_n3: text("libelleN3"),
        })
    }
}

/// How long to wait for an operation's result (configuration, spec §3.4; eopayment's values
/// by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultPolicy {
    /// `P5` ("result not known") means "still waiting" until this long after the operation
    /// was created, "expired" afterwards.
    pub result_wait: Duration,
    /// An `A` (abandoned) result is not final during this long after its transaction time:
    /// the idOp may still be used to pay.
    pub abandon_grace: Duration,
}

/// What an operation's state means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    /// A result to act on.
    Final(Box<PaymentDetail>),
    /// No final result yet: ask again later (`P5` within the window, or a fresh `A`).
    Waiting { reason: String },
    /// The operation ended without a result: `P1`, or `P5` past the window.
    Expired { reason: String },
}

/// `120 minutes`, or `45 seconds` for a window that is not a whole number of minutes.
fn duration_words(d: Duration) -> String {
    if d.num_seconds() % 60 == 0 && d.num_minutes() > 0 {
        format!("{} minutes", d.num_minutes())
    } else {
        format!("{} seconds", d.num_seconds())
    }
}

/// Interprets a result query made at `now` for an operation created at `created_at`.
/// Failures other than `P1`/`P5` are returned as they are (retry or park by their class).
pub fn interpret(
    fetched: Result<PaymentDetail, PayfipError>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: ResultPolicy,
) -> Result<OperationStatus, PayfipError> {
    match fetched {
        Ok(detail) => {
            if detail.resultrans == Resultrans::A {
                let at = detail
                    .transaction_at
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(created_at);
                if now - at < policy.abandon_grace {
                    return Ok(OperationStatus::Waiting {
                        reason: "abandoned moments ago; the idOp may still be used".into(),
                    });
                }
            }
            Ok(OperationStatus::Final(Box::new(detail)))
        }
        Err(e) if e.class() == RetryClass::UnknownOperation => Ok(OperationStatus::Expired {
            reason: format!("the gateway no longer knows the operation ({e})"),
        }),
        Err(e) if e.fault_code() == Some("P5") => {
            if now - created_at < policy.result_wait {
                Ok(OperationStatus::Waiting {
                    reason: "the gateway does not know the result yet (P5)".into(),
                })
            } else {
                Ok(OperationStatus::Expired {
                    reason: format!(
                        "no result {} after creation (P5)",
                        duration_words(policy.result_wait)
                    ),
                })
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Fault, FaultKind};
    use chrono::TimeZone;

    fn detail(resultrans: Resultrans, at: Option<&str>) -> PaymentDetail {
        PaymentDetail {
            idop: IdOp::new("cc0cb210-1cd4-11ea-8cca-0213ad91a103").unwrap(),
            resultrans,
            numcli: "090909".into(),
            exer: "2019".into(),
            refdet: "201912261758460053903194".into(),
            amount: Money::parse("10.00").unwrap(),
            mel: None,
            objet: None,
            saisie: "T".into(),
            numauto: resultrans.is_paid().then(|| "112233445566-tip".to_string()),
            transaction_at: at.map(|s| DateTime::parse_from_rfc3339(s).unwrap()),
        }
    }

    fn fault(code: &str) -> PayfipError {
        PayfipError::Fault {
            operation: "recupererDetailPaiementSecurise",
            fault: Box::new(Fault {
                kind: FaultKind::Fonctionnelle,
                faultcode: "S:Server".into(),
                faultstring: String::new(),
                code: Some(code.into()),
                libelle: None,
                descriptif: None,
                message: None,
                severite: Some(2),
            }),
        }
    }

    const POLICY: ResultPolicy = ResultPolicy {
        result_wait: Duration::minutes(120),
        abandon_grace: Duration::minutes(2),
    };

    #[test]
    fn p1_and_p5_follow_eopayment_policy() {
        let created = Utc.with_ymd_and_hms(2019, 12, 12, 12, 11, 0).unwrap();
        let status = |e, minutes| {
            interpret(
                Err(e),
                created,
                created + Duration::minutes(minutes),
                POLICY,
            )
            .unwrap()
        };
        assert!(matches!(
            status(fault("P1"), 0),
            OperationStatus::Expired { .. }
        ));
        assert!(matches!(
            status(fault("P5"), 119),
            OperationStatus::Waiting { .. }
        ));
        assert_eq!(
            status(fault("P5"), 125),
            OperationStatus::Expired {
                reason: "no result 120 minutes after creation (P5)".into()
            }
        );
        let other = interpret(Err(fault("A2")), created, created, POLICY);
        assert!(matches!(other, Err(e) if e.fault_code() == Some("A2")));
    }

    #[test]
    fn abandoned_is_waiting_for_two_minutes() {
        let created = Utc.with_ymd_and_hms(2019, 12, 12, 12, 0, 0).unwrap();
        let d = detail(Resultrans::A, Some("2019-12-12T13:11:00+01:00"));
        let at = Utc.with_ymd_and_hms(2019, 12, 12, 12, 11, 0).unwrap();
        assert!(matches!(
            interpret(Ok(d.clone()), created, at + Duration::seconds(30), POLICY),
            Ok(OperationStatus::Waiting { .. })
        ));
        assert!(matches!(
            interpret(
                Ok(d),
                created,
                at + Duration::minutes(20) + Duration::seconds(1),
                POLICY
            ),
            Ok(OperationStatus::Final(_))
        ));
        let paid = detail(Resultrans::P, Some("2019-12-12T13:11:00+01:00"));
        assert!(matches!(
            interpret(Ok(paid), created, at, POLICY),
            Ok(OperationStatus::Final(_))
        ));
    }

    #[test]
    fn events_from_results() {
        let invoice = InvoiceRef {
            tenant: encaisse_schemas::TenantId::new("vitry").unwrap(),
            exercice: 2019,
            number: "F0001".into(),
        };
        let now = DateTime::parse_from_rfc3339("2019-12-12T14:00:00+01:00").unwrap();
        let paid = detail(Resultrans::P, Some("2019-12-12T13:11:00+01:00"));
        let received = paid
            .payment_received(invoice.clone(), Some(Money::parse("0.13").unwrap()), now)
            .unwrap();
        assert_eq!(
            received.payment_id,
            "payfip:cc0cb210-1cd4-11ea-8cca-0213ad91a103"
        );
        assert_eq!(received.channel, Channel::Cb);
        assert_eq!(received.paid_at.to_rfc3339(), "2019-12-12T13:11:00+01:00");
        assert_eq!(
            received.reference,
            "112233445566-tip cc0cb210-1cd4-11ea-8cca-0213ad91a103"
        );
        assert!(paid.payment_failed(invoice.clone(), now).is_none());
        let sepa = detail(Resultrans::V, None);
        let received = sepa.payment_received(invoice.clone(), None, now).unwrap();
        assert_eq!(received.channel, Channel::PrelevementUnique);
        assert_eq!(received.paid_at, now);
        for (r, f) in [
            (Resultrans::R, PayfipFailure::R),
            (Resultrans::Z, PayfipFailure::Z),
            (Resultrans::A, PayfipFailure::A),
        ] {
            let d = detail(r, Some("2019-12-12T13:11:00+01:00"));
            assert!(d.payment_received(invoice.clone(), None, now).is_none());
            assert_eq!(d.payment_failed(invoice.clone(), now).unwrap().result, f);
        }
    }
}
