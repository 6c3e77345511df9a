//! `payfip.confirm`: fetches an operation's result from the gateway and publishes exactly one
//! `payment.received` or `payment.failed` for it.
//!
//! The command (`payfip.confirm`, published by the notification route, the browser return
//! and the reconciliation job) carries only the idOp, and its message id is derived from the
//! tenant and the idOp: however many notifications arrive, the runtime's deduplication runs
//! this stage's effect once per operation, and the ledger's `outcome` column (set in the
//! same transaction) makes any later command about a resolved operation a no-op.
//!
//! What the gateway says (`recupererDetailPaiementSecurise`, through
//! `encaisse_payfip::result::interpret`):
//! * a final result `P`/`V` → `payment.received` with `numauto`, the Paris transaction time
//!   and the commission of the dated tariff; `R`/`Z`/`A` → `payment.failed`;
//! * `P5` (result unknown) within the gateway's window, or an `A` a moment ago → transient
//!   (`payfip_result_pending`): the delay tiers ask again later;
//! * `P1`, or `P5` past the window → `payment.failed` with `Expired`;
//! * an outage (HTTP 5xx, timeout, network) → transient with the gateway's failure kind,
//!   then parked with that reason once the attempts are spent.

use std::sync::Arc;

use encaisse_ledger::{CoreStore, InvoiceFact, Ledger, LedgerError};
use encaisse_payfip::result::{OperationStatus, expired_payment, interpret};
use encaisse_payfip::{FeeChannel, IdOp, PaymentDetail, RetryClass};
use encaisse_schemas::{Event, PayfipConfirm};
use futures::future::BoxFuture;

use super::gateway::Gateway;
use super::settings::PayfipSettings;
use super::store::{self, Operation, Outcome, Resolution};
use super::{CONFIRM_STAGE, paris_now};
use crate::stage::{ErrorClass, Handled, Incoming, Outgoing, Stage, StageError};

/// The `payfip.confirm` stage.
pub struct ConfirmStage {
    settings: Arc<PayfipSettings>,
    ledger: Ledger,
    gateway: Gateway,
}

impl ConfirmStage {
    pub fn new(settings: Arc<PayfipSettings>, ledger: Ledger, gateway: Gateway) -> Self {
        ConfirmStage {
            settings,
            ledger,
            gateway,
        }
    }

    async fn confirm(&self, command: PayfipConfirm) -> Result<Handled, StageError> {
        let idop = IdOp::new(&command.idop).map_err(|e| {
            StageError::permanent("payfip_invalid_idop", format!("payfip.confirm: {e}"))
        })?;
        let key = command.idop.clone();
        let Some(op) = self
            .ledger
            .inspect(move |tx| store::operation_by_idop(tx, &key))
            .await?
        else {
            // Only our routes and job publish this command, for operations they found in
            // the ledger: a command about an unknown idOp changes nothing.
            tracing::warn!(tenant = %command.tenant, idop = %idop, "Confirmation asked for an unknown PayFiP operation; ignored.");
            return Ok(Handled::none());
        };
        if op.invoice.tenant != command.tenant {
            tracing::warn!(tenant = %command.tenant, idop = %idop, "Confirmation asked for another tenant's PayFiP operation; ignored.");
            return Ok(Handled::none());
        }
        if op.outcome.is_some() {
            return Ok(Handled::none().about(op.invoice));
        }
        let fetched = self.gateway.payment_detail(&idop).await;
        let now = paris_now();
        let status = interpret(
            fetched,
            op.created_at,
            now.to_utc(),
            self.settings.gateway.result_policy(),
        );
        let retried = match &status {
            Ok(OperationStatus::Waiting { .. }) => true,
            Ok(_) => false,
            Err(e) => e.is_transient(),
        };
        if retried {
            self.note_asked(&op).await;
        }
        let status = status.map_err(|e| {
            let class = match e.class() {
                RetryClass::Transient => ErrorClass::Transient,
                RetryClass::Permanent | RetryClass::UnknownOperation => ErrorClass::Permanent,
            };
            StageError::new(
                class,
                e.kind(),
                format!("PayFiP result of operation {idop} could not be fetched: {e}"),
            )
        })?;
        match status {
            OperationStatus::Final(detail) => self.final_result(op, *detail, now),
            OperationStatus::Waiting { reason } => Err(StageError::transient(
                "payfip_result_pending",
                format!("PayFiP operation {idop} has no final result yet: {reason}"),
            )),
            OperationStatus::Expired { reason } => {
                let failed = expired_payment(op.invoice.clone(), &idop, op.amount, now, &reason);
                tracing::info!(invoice = %op.invoice.key(), idop = %idop, reason = %reason, "PayFiP operation expired.");
                Ok(resolved(
                    op,
                    Outgoing::event(&failed),
                    Resolution {
                        outcome: Outcome::Expired,
                        numauto: None,
                        commission: None,
                    },
                    now,
                ))
            }
        }
    }

    /// Records that the gateway was just asked about `op` and will be asked again by this
    /// command's delay tiers: the reconciliation job leaves it alone meanwhile (no second
    /// copy of the command circulating). Best effort: a failure only means an extra question.
    async fn note_asked(&self, op: &Operation) {
        let (idop, now) = (
            op.idop.clone().unwrap_or_default(),
            store::ts(chrono::Utc::now()),
        );
        if let Err(e) = self
            .ledger
            .transact(move |tx| store::mark_requested(tx, &[idop], &now))
            .await
        {
            tracing::debug!(error = %e, "Could not note the PayFiP question.");
        }
    }

    fn final_result(
        &self,
        op: Operation,
        detail: PaymentDetail,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Handled, StageError> {
        check_matches(&op, &detail)?;
        let outcome = Outcome::Result(detail.resultrans);
        if let Some(channel) = FeeChannel::of(detail.resultrans) {
            let paid_on = detail
                .transaction_at
                .unwrap_or(now)
                .with_timezone(&chrono_tz::Europe::Paris)
                .date_naive();
            let commission = self
                .settings
                .gateway
                .commission(detail.amount, channel, paid_on)
                .map_err(|e| {
                    // A paid result must not go out with a wrong commission: parked until the
                    // tariff table is fixed, then replayed.
                    StageError::permanent(
                        "payfip_commission",
                        format!(
                            "commission of PayFiP operation {} unknown: {e}",
                            detail.idop
                        ),
                    )
                })?;
            let received = detail
                .payment_received(op.invoice.clone(), Some(commission), now)
                .ok_or_else(|| {
                    StageError::permanent("payfip_result", "paid result without a channel")
                })?;
            tracing::info!(invoice = %op.invoice.key(), idop = %detail.idop, resultrans = %detail.resultrans, amount = %detail.amount, commission = %commission, "PayFiP payment received.");
            Ok(resolved(
                op,
                Outgoing::event(&received),
                Resolution {
                    outcome,
                    numauto: detail.numauto.clone(),
                    commission: Some(commission),
                },
                now,
            ))
        } else {
            let failed = detail
                .payment_failed(op.invoice.clone(), now)
                .ok_or_else(|| {
                    StageError::permanent("payfip_result", "unpaid result without a failure")
                })?;
            tracing::info!(invoice = %op.invoice.key(), idop = %detail.idop, resultrans = %detail.resultrans, "PayFiP payment did not go through.");
            Ok(resolved(
                op,
                Outgoing::event(&failed),
                Resolution {
                    outcome,
                    numauto: None,
                    commission: None,
                },
                now,
            ))
        }
    }
}

/// The gateway's record must be about the attempt we made: same client number, reference
/// and amount. A difference is not something a retry fixes (parked, for a person).
fn check_matches(op: &Operation, detail: &PaymentDetail) -> Result<(), StageError> {
    let mismatch = if detail.numcli != op.numcli {
        Some(format!("numcli {} instead of {}", detail.numcli, op.numcli))
    } else if detail.refdet != op.refdet {
        Some(format!("refdet {} instead of {}", detail.refdet, op.refdet))
    } else if detail.amount != op.amount {
        Some(format!("amount {} instead of {}", detail.amount, op.amount))
    } else {
        None
    };
    match mismatch {
        Some(what) => Err(StageError::permanent(
            "payfip_result_mismatch",
            format!(
                "PayFiP result of operation {} does not match the attempt: {what}",
                detail.idop
            ),
        )),
        None => Ok(()),
    }
}

/// The event, with the ledger writes committed with the deduplication record: the outcome
/// (only if still unresolved) and a journal fact for `encaisse trace`.
fn resolved(
    op: Operation,
    event: Outgoing,
    resolution: Resolution,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Handled {
    let at = store::ts(now.to_utc());
    let invoice = op.invoice.clone();
    let payment_id = op.payment_id.clone().unwrap_or_default();
    let fact = InvoiceFact {
        invoice_key: invoice.key(),
        tenant: invoice.tenant.to_string(),
        at: at.clone(),
        kind: if resolution.outcome.is_paid() {
            "payfip_paid".into()
        } else {
            "payfip_failed".into()
        },
        detail: serde_json::json!({
            "payment_id": payment_id,
            "outcome": resolution.outcome.as_str(),
            "channel": resolution.outcome.channel(),
            "reference": resolution.numauto,
            "amount": op.amount.to_dot_string(),
            "commission": resolution.commission.map(|m| m.to_dot_string()),
        })
        .to_string(),
        dedupe_key: Some(format!("{CONFIRM_STAGE}#{payment_id}")),
    };
    let op_id = op.op_id;
    Handled::publish(vec![event])
        .about(invoice)
        .commit_with(move |tx| {
            if store::resolve(tx, &op_id, &resolution, false, &at)? {
                tx.record_fact(&fact)?;
            }
            Ok::<(), LedgerError>(())
        })
}

impl Stage for ConfirmStage {
    fn name(&self) -> &str {
        CONFIRM_STAGE
    }

    fn bindings(&self) -> Vec<String> {
        vec![PayfipConfirm::TYPE.into()]
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin(async move { self.confirm(message.decode()?).await })
    }
}

/// The `payfip.confirm` command for an operation (deterministic id: tenant + idOp).
pub fn command(tenant: &encaisse_schemas::TenantId, idop: &str) -> Outgoing {
    Outgoing::event(&PayfipConfirm {
        schema_version: 1,
        tenant: tenant.clone(),
        idop: idop.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use encaisse_payfip::{PayfipMode, Resultrans};
    use encaisse_schemas::{InvoiceRef, Money, TenantId};

    #[test]
    fn results_must_match_the_attempt() {
        let op = Operation {
            op_id: "a".into(),
            invoice: InvoiceRef {
                tenant: TenantId::new("vitry").unwrap(),
                exercice: 2026,
                number: "F1".into(),
            },
            channel: store::OpChannel::Ws,
            state: store::OpState::Open,
            active: true,
            idop: Some("cc0cb210-1cd4-11ea-8cca-0213ad91a103".into()),
            payment_id: Some("payfip:cc0cb210-1cd4-11ea-8cca-0213ad91a103".into()),
            numcli: "090909".into(),
            exer: 2026,
            refdet: "201912261758460053903194".into(),
            amount: Money::parse("10.00").unwrap(),
            mode: PayfipMode::Test,
            return_url: None,
            created_at: Utc::now(),
            notified_at: None,
            requested_at: None,
            outcome: None,
            numauto: None,
            commission: None,
            resolved_at: None,
            claim: None,
        };
        let detail = PaymentDetail {
            idop: IdOp::new("cc0cb210-1cd4-11ea-8cca-0213ad91a103").unwrap(),
            resultrans: Resultrans::P,
            numcli: "090909".into(),
            exer: "20".into(),
            refdet: "201912261758460053903194".into(),
            amount: Money::parse("10.00").unwrap(),
            mel: None,
            objet: None,
            saisie: "T".into(),
            numauto: Some("112233445566-tip".into()),
            transaction_at: None,
        };
        assert!(check_matches(&op, &detail).is_ok());
        let other = PaymentDetail {
            amount: Money::parse("1.00").unwrap(),
            ..detail.clone()
        };
        let e = check_matches(&op, &other).unwrap_err();
        assert_eq!(e.kind, "payfip_result_mismatch");
        assert_eq!(e.class, ErrorClass::Permanent);
        let other = PaymentDetail {
            refdet: "X".repeat(10),
            ..detail
        };
        assert!(check_matches(&op, &other).is_err());
    }

    #[test]
    fn commands_have_one_id_per_operation() {
        let vitry = TenantId::new("vitry").unwrap();
        let a = command(&vitry, "idop-1");
        assert_eq!(a.message_id, command(&vitry, "idop-1").message_id);
        assert_ne!(a.message_id, command(&vitry, "idop-2").message_id);
        assert_eq!(a.routing_key, "payfip.confirm");
    }
}
