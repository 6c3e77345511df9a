//! The classic TIPI/PayFiP URL (`paiement.web`) used for titres, and its result (spec §2).
//!
//! The browser is sent to `paiement.web?numcli=…&refdet=…&montant=…`; the gateway sends the
//! result to `urlcl` as form fields (POST, or a GET query — both are accepted, spec §2.5).
//! **That channel has no signature**: anyone can post a `resultrans=P`. A result is therefore
//! only accepted by [`verify`], against what the ledger expects for that debt: our numcli, the
//! refdet (and exer) of a payment we initiated, the exact amount, the configured mode — and
//! never a test result in production.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset};
use encaisse_schemas::{InvoiceRef, Money, PaymentFailed, PaymentReceived};
use url::Url;

use crate::config::{PayfipMode, SaisieCodes, http_url};
use crate::datetime::parse_paris;
use crate::fields::{
    AmountBounds, Email, Exer, FieldError, NumCli, Objet, Refdet, Saisie, check_numauto,
    parse_montant,
};
use crate::result::{Resultrans, Sighting};

/// The parameters of a classic payment request (spec §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicRequest {
    pub numcli: NumCli,
    /// The titre's exercice (optional in the protocol; always sent for titres).
    pub exer: Option<Exer>,
    /// The debt's reference as DGFiP knows it (titres: from the ASAP, spec §4.1).
    pub refdet: Refdet,
    pub amount: Money,
    pub mel: Email,
    pub objet: Option<Objet>,
    /// Where the result is sent (our `…/payfip/<tenant>/classic` endpoint).
    pub urlcl: Option<Url>,
    pub saisie: Saisie,
}

impl ClassicRequest {
    /// The URL to send the browser to: `base?numcli&refdet&montant&mel&saisie&exer&objet&urlcl`
    /// (eopayment's parameter order, spec §6.1), form-encoded.
    pub fn url(&self, base: &Url, bounds: AmountBounds) -> Result<Url, FieldError> {
        let montant = bounds.montant(self.amount)?;
        if let Some(urlcl) = &self.urlcl {
            http_url(urlcl.as_str()).map_err(|rule| FieldError::new("urlcl", rule))?;
        }
        let mut url = base.clone();
        url.set_query(None);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("numcli", self.numcli.as_str())
                .append_pair("refdet", self.refdet.as_str())
                .append_pair("montant", &format!("{montant:03}"))
                .append_pair("mel", self.mel.as_str())
                .append_pair("saisie", self.saisie.as_str());
            if let Some(exer) = self.exer {
                query.append_pair("exer", &exer.to_string());
            }
            if let Some(objet) = &self.objet {
                query.append_pair("objet", objet.as_str());
            }
            if let Some(urlcl) = &self.urlcl {
                query.append_pair("urlcl", urlcl.as_str());
            }
        }
        Ok(url)
    }
}

/// Why a classic result is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassicError {
    #[error("result field `{0}` is missing")]
    Missing(&'static str),
    #[error("result field `{field}` appears twice with different values")]
    Conflicting { field: String },
    #[error("result field `{field}`: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("result is for numcli {got}, not ours ({expected})")]
    WrongNumcli { expected: String, got: String },
    #[error("result is for refdet {got}, not the expected {expected}")]
    WrongRefdet { expected: String, got: String },
    #[error("result is for exercice {got:?}, not the expected {expected}")]
    WrongExer {
        expected: String,
        got: Option<String>,
    },
    #[error("result amount {got} EUR differs from the expected {expected} EUR")]
    WrongAmount { expected: Money, got: Money },
    #[error("result carries the test mode letter {got:?} while the commune is in production")]
    TestModeInProduction { got: String },
    #[error("result mode {got:?} differs from the configured {expected:?}")]
    WrongMode { expected: String, got: String },
}

impl ClassicError {
    /// Every refusal is permanent: the same bytes will be refused again. Mismatches
    /// ([`ClassicError::WrongAmount`], [`ClassicError::TestModeInProduction`], …) may be
    /// tampering and deserve an alert.
    pub fn is_transient(&self) -> bool {
        false
    }

    /// The result field the refusal is about.
    pub fn field(&self) -> &str {
        match self {
            ClassicError::Missing(field) | ClassicError::Invalid { field, .. } => field,
            ClassicError::Conflicting { field } => field,
            ClassicError::WrongNumcli { .. } => "numcli",
            ClassicError::WrongRefdet { .. } => "refdet",
            ClassicError::WrongExer { .. } => "exer",
            ClassicError::WrongAmount { .. } => "montant",
            ClassicError::TestModeInProduction { .. } | ClassicError::WrongMode { .. } => "saisie",
        }
    }

    /// What the caller may be told: *which* field is wrong, never the value we expected (the
    /// channel is unsigned: echoing our amount, client number or mode letter would teach a
    /// forger how to make the next try match). The full [`fmt::Display`] is for the log.
    pub fn public_reason(&self) -> String {
        match self {
            ClassicError::Missing(field) => format!("result field `{field}` is missing"),
            ClassicError::Conflicting { field } => {
                format!("result field `{field}` appears twice with different values")
            }
            ClassicError::Invalid { field, .. } => format!("result field `{field}` is not valid"),
            _ => format!("result field `{}` does not match the payment", self.field()),
        }
    }

    /// Whether the refusal suggests a forged or tampered result rather than a malformed one.
    pub fn is_suspicious(&self) -> bool {
        matches!(
            self,
            ClassicError::WrongNumcli { .. }
                | ClassicError::WrongRefdet { .. }
                | ClassicError::WrongExer { .. }
                | ClassicError::WrongAmount { .. }
                | ClassicError::TestModeInProduction { .. }
                | ClassicError::WrongMode { .. }
        )
    }
}

/// A result received on `urlcl`, parsed but **not yet trusted** (see [`verify`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ClassicResult {
    pub numcli: String,
    pub exer: Option<String>,
    pub refdet: String,
    pub objet: Option<String>,
    pub amount: Money,
    /// Echoed payer address, kept clear for nothing but display masking (`Debug` masks it).
    pub mel: Option<String>,
    pub saisie: String,
    pub resultrans: Resultrans,
    pub numauto: Option<String>,
    /// `dattrans` + `heurtrans` in Europe/Paris, when present and readable.
    pub transaction_at: Option<DateTime<FixedOffset>>,
}

impl fmt::Debug for ClassicResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassicResult")
            .field("numcli", &self.numcli)
            .field("exer", &self.exer)
            .field("refdet", &self.refdet)
            .field("objet", &self.objet)
            .field("amount", &self.amount)
            .field(
                "mel",
                &self.mel.as_deref().map(encaisse_schemas::mask::email),
            )
            .field("saisie", &self.saisie)
            .field("resultrans", &self.resultrans)
            .field("numauto", &self.numauto)
            .field("transaction_at", &self.transaction_at)
            .finish()
    }
}

impl ClassicResult {
    /// `tipi:<refdet>`: the payment id of events about this result.
    pub fn payment_id(&self) -> String {
        format!("tipi:{}", self.refdet)
    }

    /// The `payment.received` of a **verified** paid result (`None` otherwise); `observed_at`
    /// dates it when `dattrans`/`heurtrans` were absent or unreadable.
    pub fn payment_received(
        &self,
        invoice: InvoiceRef,
        commission: Option<Money>,
        observed_at: DateTime<FixedOffset>,
    ) -> Option<PaymentReceived> {
        self.sighting().received(invoice, commission, observed_at)
    }

    /// The `payment.failed` of a **verified** result that did not pay (`None` when paid).
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
            own_reference: self.refdet.clone(),
            transaction_at: self.transaction_at,
            origin: "PayFiP classic result",
        }
    }

    /// Parses the url-encoded fields of a result: the query string of a GET or the body of a
    /// POST. Names are matched case-insensitively (DGFiP prose writes them upper-case);
    /// a field repeated with different values is refused.
    pub fn parse(encoded: &str) -> Result<Self, ClassicError> {
        let encoded = encoded.strip_prefix('?').unwrap_or(encoded);
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(encoded.as_bytes()) {
            let key = key.to_ascii_lowercase();
            match fields.get(&key) {
                Some(previous) if previous != value.as_ref() => {
                    return Err(ClassicError::Conflicting { field: key });
                }
                _ => {
                    fields.insert(key, value.into_owned());
                }
            }
        }
        let take = |name: &str| {
            fields
                .get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let require = |name: &'static str| take(name).ok_or(ClassicError::Missing(name));
        let refdet = require("refdet")?;
        let letter = require("resultrans")?;
        let resultrans = Resultrans::parse(&letter).ok_or_else(|| ClassicError::Invalid {
            field: "resultrans",
            rule: format!("{letter:?} is not one of P, V, R, Z, A"),
        })?;
        let amount = parse_montant(&require("montant")?).map_err(|e| ClassicError::Invalid {
            field: "montant",
            rule: e.rule,
        })?;
        let transaction_at = match (take("dattrans"), take("heurtrans")) {
            (Some(d), Some(h)) => parse_paris(&d, &h).ok(),
            _ => None,
        };
        Ok(ClassicResult {
            numcli: require("numcli")?,
            exer: take("exer"),
            refdet,
            objet: take("objet"),
            amount,
            mel: take("mel"),
            saisie: require("saisie")?,
            resultrans,
            numauto: take("numauto")
                .map(|n| check_numauto(&n))
                .transpose()
                .map_err(|e| ClassicError::Invalid {
                    field: "numauto",
                    rule: e.rule,
                })?,
            transaction_at,
        })
    }
}

/// What the ledger expects of a classic payment it initiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicExpectation {
    pub numcli: NumCli,
    /// When set, the result's `exer` must be this year.
    pub exer: Option<Exer>,
    pub refdet: Refdet,
    pub amount: Money,
    /// The tenant's mode.
    pub mode: PayfipMode,
}

/// Accepts a result only if it matches the expectation; returns its outcome.
///
/// Checks, in order: numcli, refdet, exer, amount (exact), mode — a test-mode letter is
/// refused outright when the tenant is in production, whatever else matches.
pub fn verify(
    result: &ClassicResult,
    expected: &ClassicExpectation,
    codes: &SaisieCodes,
) -> Result<Resultrans, ClassicError> {
    if result.numcli != expected.numcli.as_str() {
        return Err(ClassicError::WrongNumcli {
            expected: expected.numcli.to_string(),
            got: result.numcli.clone(),
        });
    }
    if result.refdet != expected.refdet.as_str() {
        return Err(ClassicError::WrongRefdet {
            expected: expected.refdet.to_string(),
            got: result.refdet.clone(),
        });
    }
    if let Some(exer) = expected.exer
        && result.exer.as_deref().map(str::trim) != Some(exer.to_string().as_str())
    {
        return Err(ClassicError::WrongExer {
            expected: exer.to_string(),
            got: result.exer.clone(),
        });
    }
    if result.amount != expected.amount {
        return Err(ClassicError::WrongAmount {
            expected: expected.amount,
            got: result.amount,
        });
    }
    if expected.mode == PayfipMode::Production && result.saisie == codes.test {
        return Err(ClassicError::TestModeInProduction {
            got: result.saisie.clone(),
        });
    }
    let wanted = codes
        .code(expected.mode)
        .map_err(|e| ClassicError::Invalid {
            field: "saisie",
            rule: format!("configured letter: {}", e.rule),
        })?;
    if result.saisie != wanted.as_str() {
        return Err(ClassicError::WrongMode {
            expected: wanted.to_string(),
            got: result.saisie.clone(),
        });
    }
    Ok(result.resultrans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;

    fn oca_payload() -> &'static str {
        // Spec §6.2, OCA test ("typical data posted by payfip after a successful payment").
        "numcli=099999&exer=2021&refdet=xxxxxxxxxx0001&objet=test_ref20&montant=10522&mel=norbert.buyer%40example.com&saisie=T&resultrans=P&numauto=00000001&dattrans=04052021&heurtrans=1325"
    }

    fn expectation(mode: PayfipMode) -> ClassicExpectation {
        ClassicExpectation {
            numcli: NumCli::new("099999").unwrap(),
            exer: Some(Exer::new(2021).unwrap()),
            refdet: Refdet::new("xxxxxxxxxx0001").unwrap(),
            amount: Money::parse("105.22").unwrap(),
            mode,
        }
    }

    #[test]
    fn parses_and_verifies_a_paid_result() {
        let codes = GatewayConfig::default().classic_saisie;
        let result = ClassicResult::parse(oca_payload()).unwrap();
        assert_eq!(result.amount, Money::parse("105.22").unwrap());
        assert_eq!(result.numauto.as_deref(), Some("00000001"));
        assert_eq!(
            result.transaction_at.unwrap().to_rfc3339(),
            "2021-05-04T13:25:00+02:00"
        );
        assert!(!format!("{result:?}").contains("norbert"));
        assert_eq!(
            verify(&result, &expectation(PayfipMode::Test), &codes),
            Ok(Resultrans::P)
        );
        assert_eq!(result.payment_id(), "tipi:xxxxxxxxxx0001");
        let invoice = InvoiceRef {
            tenant: encaisse_schemas::TenantId::new("vitry").unwrap(),
            exercice: 2021,
            number: "T0001".into(),
        };
        let now = DateTime::parse_from_rfc3339("2021-05-04T14:00:00+02:00").unwrap();
        let received = result
            .payment_received(invoice.clone(), Some(Money::parse("0.36").unwrap()), now)
            .unwrap();
        assert_eq!(received.paid_at.to_rfc3339(), "2021-05-04T13:25:00+02:00");
        assert_eq!(received.reference, "00000001 xxxxxxxxxx0001");
        assert_eq!(received.channel, encaisse_schemas::Channel::Cb);
        assert!(result.payment_failed(invoice.clone(), now).is_none());
        let refused =
            ClassicResult::parse(&oca_payload().replace("resultrans=P", "resultrans=R")).unwrap();
        assert!(
            refused
                .payment_received(invoice.clone(), None, now)
                .is_none()
        );
        let failed = refused.payment_failed(invoice, now).unwrap();
        assert_eq!(failed.result, encaisse_schemas::PayfipFailure::R);
        assert_eq!(failed.payment_id, "tipi:xxxxxxxxxx0001");
    }

    #[test]
    fn mismatches_are_refused() {
        let codes = GatewayConfig::default().classic_saisie;
        let tampered = oca_payload().replace("montant=10522", "montant=105");
        let r = ClassicResult::parse(&tampered).unwrap();
        let err = verify(&r, &expectation(PayfipMode::Test), &codes).unwrap_err();
        assert!(matches!(err, ClassicError::WrongAmount { .. }));
        assert!(err.is_suspicious());

        let other = oca_payload().replace("numcli=099999", "numcli=099998");
        let r = ClassicResult::parse(&other).unwrap();
        assert!(matches!(
            verify(&r, &expectation(PayfipMode::Test), &codes),
            Err(ClassicError::WrongNumcli { .. })
        ));

        let r = ClassicResult::parse(
            &oca_payload().replace("refdet=xxxxxxxxxx0001", "refdet=xxxxxxxxxx0002"),
        )
        .unwrap();
        assert!(matches!(
            verify(&r, &expectation(PayfipMode::Test), &codes),
            Err(ClassicError::WrongRefdet { .. })
        ));

        let r = ClassicResult::parse(&oca_payload().replace("exer=2021", "exer=2020")).unwrap();
        assert!(matches!(
            verify(&r, &expectation(PayfipMode::Test), &codes),
            Err(ClassicError::WrongExer { .. })
        ));

        // A test result (saisie=T) is refused in production, even if everything else matches.
        let r = ClassicResult::parse(oca_payload()).unwrap();
        assert_eq!(
            verify(&r, &expectation(PayfipMode::Production), &codes),
            Err(ClassicError::TestModeInProduction { got: "T".into() })
        );
        // An activation result is not a production one either.
        let r = ClassicResult::parse(&oca_payload().replace("saisie=T", "saisie=X")).unwrap();
        assert!(matches!(
            verify(&r, &expectation(PayfipMode::Production), &codes),
            Err(ClassicError::WrongMode { .. })
        ));
        let r = ClassicResult::parse(&oca_payload().replace("saisie=T", "saisie=A")).unwrap();
        assert_eq!(
            verify(&r, &expectation(PayfipMode::Production), &codes),
            Ok(Resultrans::P)
        );
    }

    #[test]
    fn malformed_results() {
        // Spec §6.2: eopayment refuses `foo=bar` ("missing refdet or resultrans").
        assert_eq!(
            ClassicResult::parse("foo=bar"),
            Err(ClassicError::Missing("refdet"))
        );
        assert!(matches!(
            ClassicResult::parse(&oca_payload().replace("resultrans=P", "resultrans=Q")),
            Err(ClassicError::Invalid {
                field: "resultrans",
                ..
            })
        ));
        assert!(matches!(
            ClassicResult::parse(&format!("{}&montant=1", oca_payload())),
            Err(ClassicError::Conflicting { .. })
        ));
        // Upper-case names (DGFiP prose) are read too; a repeated identical field is fine.
        let upper = "NUMCLI=099999&REFDET=xxxxxxxxxx0001&MONTANT=10522&SAISIE=T&RESULTRANS=R&refdet=xxxxxxxxxx0001";
        let r = ClassicResult::parse(upper).unwrap();
        assert_eq!(r.resultrans, Resultrans::R);
        assert_eq!(r.numauto, None);
    }

    #[test]
    fn eopayment_query_string_vector() {
        // Spec §6.2 (EOP tests): paid, test mode; numcli 12345 is only 5 digits, so it is
        // parsed but can never match one of our (6-digit) client numbers.
        let q = "objet=tout+a+fait&montant=12312&saisie=T&mel=info%40entrouvert.com&numcli=12345&exer=9999&refdet=999900000000999999&resultrans=P";
        let r = ClassicResult::parse(q).unwrap();
        assert_eq!(r.objet.as_deref(), Some("tout a fait"));
        assert_eq!(r.amount, Money::parse("123.12").unwrap());
        assert_eq!(r.resultrans, Resultrans::P);
        let expected = ClassicExpectation {
            numcli: NumCli::new("012345").unwrap(),
            exer: Some(Exer::new(9999).unwrap()),
            refdet: Refdet::new("999900000000999999").unwrap(),
            amount: Money::parse("123.12").unwrap(),
            mode: PayfipMode::Test,
        };
        assert!(matches!(
            verify(&r, &expected, &GatewayConfig::default().classic_saisie),
            Err(ClassicError::WrongNumcli { .. })
        ));
    }
}
