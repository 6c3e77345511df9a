//! A bundle delivered to a stage ([`crate::bundle`]): every item is handled as the message
//! it stands for — deduplicated on its own id, the stage's handler, its own processed record
//! and ledger effect, all the items' records and effects committed in one ledger
//! transaction (one failing effect undoes only its item) — then the outputs of all items
//! are published (confirmed), the items that failed are moved one by one to their delay tier or to the parking lot (as single
//! messages, so ops see, and replay, one invoice), and only then is the bundle acked.
//!
//! A crash or a lost ack anywhere before that ack redelivers the whole bundle: the items
//! already committed are recognised by their processed records and only republish their
//! stored outputs, the others run again. A bundle that cannot be read at all is parked
//! whole, like any undecodable message.

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;

use super::handling::{
    Committed, Moved, Settled, StageRunner, ack, dedupe_id, first_delivery, refused_output,
    requeue, resolve, stored_outputs,
};
use super::metrics;
use super::publisher::Wire;
use crate::bundle;
use crate::stage::{ErrorClass, Handled, Incoming, Outgoing, StageError};

/// Items of one bundle whose handlers run at once (a handler may read the ledger or write
/// on its own: this keeps one bundle from taking every ledger connection).
const ITEM_CONCURRENCY: usize = 16;

/// One item before the bundle's commit.
enum Run {
    /// Processed before: its stored outputs.
    Known(Incoming, Committed),
    /// Handled now (with its dedupe id): to commit.
    Handled(Incoming, String, Handled),
    Failed(Incoming, StageError),
}

/// Items that failed, with why.
type Failed = Vec<(Incoming, StageError)>;

impl StageRunner {
    /// Handles a bundle to the end; like [`StageRunner::handle`], never fails: the bundle is
    /// acked once every item is committed or moved, or left for redelivery.
    pub(super) async fn handle_bundle(&self, delivery: Delivery, bundle: Incoming) {
        let items = match bundle::unpack(&bundle) {
            Ok(items) => items,
            Err(error) => {
                let moved = self.failure_move(
                    &delivery.properties,
                    &bundle,
                    delivery.exchange.as_str(),
                    delivery.routing_key.as_str(),
                    &error,
                );
                self.move_then_ack(&delivery, vec![(moved, error)]).await;
                return;
            }
        };
        let fresh = first_delivery(&bundle);
        let runs = self.run_items(items, fresh).await;
        let (done, mut failed) = self.commit_runs(runs).await;
        let Some(mut unpublishable) = self.publish_outputs(&done).await else {
            tracing::warn!(
                "Outputs of the bundle not confirmed; the bundle goes back to the queue and its items' outputs will be republished."
            );
            requeue(&delivery).await;
            return;
        };
        let mut processed = 0;
        for (place, (message, committed)) in done.into_iter().enumerate() {
            match unpublishable.iter().position(|(p, _)| *p == place) {
                Some(at) => failed.push((message, unpublishable.swap_remove(at).1)),
                None if !committed.duplicate => processed += 1,
                None => {}
            }
        }
        let moves = failed
            .into_iter()
            .map(|(item, error)| {
                // The properties the item would have had, published alone.
                let properties = Wire::from_outgoing(&bundle::as_outgoing(&item), "")
                    .map(|wire| wire.properties)
                    .unwrap_or_default();
                let moved = self.failure_move(
                    &properties,
                    &item,
                    &item.exchange,
                    &item.routing_key,
                    &error,
                );
                (moved, error)
            })
            .collect();
        if self.move_then_ack(&delivery, moves).await == Settled::Acked {
            for _ in 0..processed {
                metrics::processed(&self.name);
            }
        }
    }

    /// Every item up to its commit: its stored outputs when it was processed before, else
    /// what the stage's handler made of it (the stage's `handle_many` when it has one).
    async fn run_items(&self, items: Vec<Incoming>, fresh: bool) -> Vec<Run> {
        let known: Vec<(Incoming, String, Result<Option<Committed>, StageError>)> =
            futures::stream::iter(items)
                .map(|message| async move {
                    let id = dedupe_id(message.message_id.as_deref(), &message.body);
                    let known = if fresh {
                        Ok(None)
                    } else {
                        self.known(&id).await
                    };
                    (message, id, known)
                })
                .buffered(ITEM_CONCURRENCY)
                .collect()
                .await;
        let mut runs: Vec<Option<Run>> = Vec::with_capacity(known.len());
        let mut fresh_items = Vec::new();
        for (message, id, known) in known {
            match known {
                Ok(Some(committed)) => runs.push(Some(Run::Known(message, committed))),
                Ok(None) => {
                    fresh_items.push((runs.len(), message, id));
                    runs.push(None);
                }
                Err(error) => runs.push(Some(Run::Failed(message, error))),
            }
        }
        let messages: Vec<Incoming> = fresh_items.iter().map(|(_, m, _)| m.clone()).collect();
        let results = self.handle_items(&messages).await;
        for ((slot, message, id), result) in fresh_items.into_iter().zip(results) {
            runs[slot] = Some(match result {
                Ok(handled) => Run::Handled(message, id, handled),
                Err(error) => Run::Failed(message, error),
            });
        }
        runs.into_iter().flatten().collect()
    }

    /// The stored outputs of an item processed before.
    async fn known(&self, id: &str) -> Result<Option<Committed>, StageError> {
        match self.ledger.processed(&self.name, id).await {
            Ok(Some(record)) => stored_outputs(&record).map(|outputs| {
                Some(Committed {
                    outputs,
                    duplicate: true,
                })
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(StageError::from(e)),
        }
    }

    /// The handler's results for `messages`, in order: the stage's `handle_many` (the
    /// transient failures run again one by one, with the in-process retries), or `handle`
    /// for each — also when `handle_many` panicked, so the panicking item fails alone.
    async fn handle_items(&self, messages: &[Incoming]) -> Vec<Result<Handled, StageError>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let together = match self.stage.handle_many(messages) {
            Some(future) => AssertUnwindSafe(future).catch_unwind().await.ok(),
            None => None,
        };
        let results: Vec<Option<Result<Handled, StageError>>> = match together {
            Some(results) if results.len() == messages.len() => results
                .into_iter()
                .map(|r| match r {
                    Err(e) if e.class == ErrorClass::Transient => None,
                    other => Some(other),
                })
                .collect(),
            Some(_) => {
                tracing::error!(
                    "handle_many returned a result count other than its messages'; handling them one by one."
                );
                messages.iter().map(|_| None).collect()
            }
            None => messages.iter().map(|_| None).collect(),
        };
        futures::stream::iter(messages.iter().cloned().zip(results))
            .map(|(message, result)| async move {
                match result {
                    Some(result) => result,
                    None => self.run_handler(&message).await,
                }
            })
            .buffered(ITEM_CONCURRENCY)
            .collect()
            .await
    }

    /// Commits the handled items together (one ledger transaction on SQLite; one failing
    /// leaves the others); returns the settled items and the failed ones.
    async fn commit_runs(&self, runs: Vec<Run>) -> (Vec<(Incoming, Committed)>, Failed) {
        let mut done = Vec::with_capacity(runs.len());
        let mut failed = Vec::new();
        let mut units = Vec::new();
        let mut waiting = Vec::new();
        for run in runs {
            match run {
                Run::Known(message, committed) => {
                    metrics::duplicate(&self.name);
                    done.push((message, committed));
                }
                Run::Handled(message, id, handled) => match self.unit_for(&message, &id, handled) {
                    Ok((unit, outputs)) => {
                        units.push(unit);
                        waiting.push((message, outputs));
                    }
                    Err(error) => failed.push((message, error)),
                },
                Run::Failed(message, error) => failed.push((message, error)),
            }
        }
        let outcomes = self.committer.commit_all(units).await;
        for ((message, outputs), outcome) in waiting.into_iter().zip(outcomes) {
            match resolve(outcome, outputs) {
                Ok(committed) => {
                    if committed.duplicate {
                        metrics::duplicate(&self.name);
                    }
                    done.push((message, committed));
                }
                Err(error) => failed.push((message, error)),
            }
        }
        (done, failed)
    }

    /// Publishes the outputs of the committed items (confirmed). `None`: not confirmed,
    /// the bundle must come back. `Some(refused)`: published, except the outputs of the
    /// items at those places in `done`, which no queue takes or which cannot be put on the
    /// wire (each such item then fails as a single message would).
    async fn publish_outputs(
        &self,
        done: &[(Incoming, Committed)],
    ) -> Option<Vec<(usize, StageError)>> {
        let all: Vec<Outgoing> = done
            .iter()
            .flat_map(|(_, c)| c.outputs.iter().cloned())
            .collect();
        match self
            .publish_with_retries(|| self.publisher.publish(&all))
            .await
        {
            Ok(()) => return Some(Vec::new()),
            Err(e) if refused_output(&e).is_none() => return None,
            Err(_) => {}
        }
        // One output is refused for good: find whose, item by item.
        let mut refused = Vec::new();
        for (place, (_, committed)) in done.iter().enumerate() {
            if let Err(e) = self
                .publish_with_retries(|| self.publisher.publish(&committed.outputs))
                .await
            {
                refused.push((place, refused_output(&e)?));
            }
        }
        Some(refused)
    }

    /// Moves the failed items (or the unreadable bundle) to their tiers or the parking
    /// lot, confirmed, then acks the bundle; if a move is not confirmed, the bundle goes
    /// back to its queue.
    async fn move_then_ack(&self, delivery: &Delivery, moves: Vec<(Moved, StageError)>) -> Settled {
        if !moves.is_empty() {
            let wires: Vec<_> = moves.iter().map(|(m, _)| m.wire.clone()).collect();
            let published = self
                .publish_with_retries(|| self.publisher.publish_wire(&wires))
                .await;
            if let Err(e) = published {
                tracing::warn!(error = %e, failed = moves.len(), "Could not move the failed items of a bundle; the bundle goes back to the queue.");
                return requeue(delivery).await;
            }
            for (moved, error) in &moves {
                self.count_move(moved, error);
            }
        }
        ack(delivery).await
    }
}
