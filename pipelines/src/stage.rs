//! What a stage is, seen from the code that writes one.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use encaisse_schemas::{DecodeError, Event, InvoiceRef};
use futures::future::BoxFuture;

pub use encaisse_schemas::ErrorClass;

/// A stage's failure: a class that drives the runtime, a short machine-readable `kind`
/// (used to group parked messages: `unknown_tenant`, `gateway_unavailable`), and a message
/// for people.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub class: ErrorClass,
    pub kind: String,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StageError {
    pub fn new(class: ErrorClass, kind: impl Into<String>, message: impl Into<String>) -> Self {
        StageError {
            class,
            kind: kind.into(),
            message: message.into(),
            source: None,
        }
    }

    pub fn transient(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, kind, message)
    }

    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, kind, message)
    }

    pub fn poison(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Poison, kind, message)
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl From<DecodeError> for StageError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Malformed { .. } => StageError::poison("undecodable", e.to_string()),
            DecodeError::UnsupportedVersion { .. } => {
                StageError::permanent("unsupported_schema_version", e.to_string())
            }
        }
    }
}

impl From<encaisse_ledger::LedgerError> for StageError {
    fn from(e: encaisse_ledger::LedgerError) -> Self {
        let class = if e.is_transient() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        StageError::new(class, e.kind(), e.to_string())
    }
}

/// A header value as stages see it (AMQP field tables reduced to what encaisse uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A message delivered to a stage.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub message_id: Option<String>,
    /// AMQP `type` property (`invoice.issued`).
    pub message_type: Option<String>,
    pub exchange: String,
    pub routing_key: String,
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Bytes,
    /// Set by the broker when this is a redelivery after a lost ack.
    pub redelivered: bool,
    /// 1 for the first try, then counted by the runtime across delay tiers.
    pub attempt: u32,
}

impl Incoming {
    /// Decodes the body as the canonical event `E` (poison if undecodable).
    pub fn decode<E: Event>(&self) -> Result<E, StageError> {
        Ok(encaisse_schemas::decode::<E>(&self.body)?)
    }

    pub fn header_text(&self, name: &str) -> Option<&str> {
        match self.headers.get(name) {
            Some(HeaderValue::Text(s)) => Some(s),
            _ => None,
        }
    }
}

/// A message a stage (or a source) wants published, with publisher confirms.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// `None` = the work exchange.
    pub exchange: Option<String>,
    pub routing_key: String,
    /// Deterministic id: a replay or a redelivery publishes the same id again.
    pub message_id: String,
    pub message_type: String,
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Bytes,
}

impl Outgoing {
    /// The canonical event `event`, on the work exchange, with its deterministic id.
    pub fn event<E: Event>(event: &E) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert(
            "encaisse-schema-version".to_string(),
            HeaderValue::Int(i64::from(E::SCHEMA_VERSION)),
        );
        headers.insert(
            "encaisse-tenant".to_string(),
            HeaderValue::Text(event.tenant().to_string()),
        );
        if let Some(invoice) = event.invoice() {
            headers.insert(
                "encaisse-invoice".to_string(),
                HeaderValue::Text(invoice.key()),
            );
        }
        Outgoing {
            exchange: None,
            routing_key: event.routing_key(),
            message_id: event.message_id(),
            message_type: E::TYPE.to_string(),
            headers,
            body: Bytes::from(encaisse_schemas::encode(event)),
        }
    }
}

/// What a stage returns on success: the messages to publish (confirmed before the input is
/// acked), when the message concerned an invoice, which one (for the trace), and optionally
/// ledger writes to commit atomically with the deduplication record.
///
/// Build it with [`Handled::none`], [`Handled::publish`] and the `with`/`about` methods (a
/// struct literal needs `..Default::default()`: fields may be added).
#[derive(Debug, Default)]
pub struct Handled {
    pub outputs: Vec<Outgoing>,
    pub invoice: Option<InvoiceRef>,
    /// Ledger writes committed by the runtime in the same transaction as the
    /// `processed_message` record (see [`Handled::commit_with`]).
    pub ledger_effect: Option<LedgerEffect>,
}

impl Handled {
    pub fn none() -> Self {
        Handled::default()
    }

    pub fn publish(outputs: Vec<Outgoing>) -> Self {
        Handled {
            outputs,
            ..Handled::default()
        }
    }

    pub fn about(mut self, invoice: InvoiceRef) -> Self {
        self.invoice = Some(invoice);
        self
    }

    /// Makes `effect` (ledger writes) atomic with the record that the message was processed:
    /// the runtime runs it inside the transaction that inserts `processed_message`, and runs
    /// it **only if** that insert is new. A crash can then never leave the effect without the
    /// record (which would run the stage twice on redelivery), and two concurrent deliveries
    /// of the same message commit the effect once. Prefer this to writing the ledger from the
    /// handler whenever the stage's effect is a ledger write.
    ///
    /// The effect may run more than once: the items of a bundle are first committed together
    /// and, if one of them fails, all are rolled back and run again, each alone. So it must
    /// not consume what it captured, and what it does besides writing through `tx` (a metric,
    /// a log line) may happen twice.
    pub fn commit_with<F>(mut self, effect: F) -> Self
    where
        F: FnMut(&mut encaisse_ledger::Tx<'_>) -> Result<(), encaisse_ledger::LedgerError>
            + Send
            + 'static,
    {
        self.ledger_effect = Some(LedgerEffect(Box::new(effect)));
        self
    }
}

/// The function behind a [`LedgerEffect`].
pub type LedgerEffectFn =
    Box<dyn FnMut(&mut encaisse_ledger::Tx<'_>) -> Result<(), encaisse_ledger::LedgerError> + Send>;

/// Ledger writes of a stage, committed atomically with its deduplication record.
pub struct LedgerEffect(pub LedgerEffectFn);

impl fmt::Debug for LedgerEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LedgerEffect(..)")
    }
}

/// A stage: a name (its queue is `<prefix>.<name>`), the routing keys it binds, and the
/// handler. Handlers must be idempotent in their effects: the runtime deduplicates by
/// message id, but a crash between an effect and its record replays the handler.
pub trait Stage: Send + Sync + 'static {
    /// `helios.titres`: lower case, dots.
    fn name(&self) -> &str;
    /// Topic patterns bound to the stage's work queue (`invoice.issued.titres`).
    fn bindings(&self) -> Vec<String>;
    /// Handles one message.
    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>>;
    /// How many messages of this stage may be handled at once (its prefetch follows).
    fn concurrency(&self) -> Option<usize> {
        None
    }
    /// Handles the items of one bundle ([`crate::bundle`]) together, for a stage that does
    /// better than one by one (one ledger transaction for all of them, say): one result per
    /// message, in order, each with the meaning [`Stage::handle`]'s would have. `None` (the
    /// default): the runtime calls `handle` for each. Items that fail transiently are run
    /// again one by one with `handle` (the runtime's in-process retries), and a panic here
    /// makes the runtime handle every item alone.
    fn handle_many<'a>(
        &'a self,
        _messages: &'a [Incoming],
    ) -> Option<BoxFuture<'a, Vec<Result<Handled, StageError>>>> {
        None
    }
}

struct FnStage<F> {
    name: String,
    bindings: Vec<String>,
    handler: F,
}

impl<F, Fut> Stage for FnStage<F>
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Handled, StageError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn bindings(&self) -> Vec<String> {
        self.bindings.clone()
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Handled, StageError>> {
        Box::pin((self.handler)(message.clone()))
    }
}

/// Builds a stage from an async function: `stage_fn("demo.echo", ["demo.#"], |msg| async { … })`.
pub fn stage_fn<F, Fut, B, S>(name: impl Into<String>, bindings: B, handler: F) -> Arc<dyn Stage>
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Handled, StageError>> + Send + 'static,
    B: IntoIterator<Item = S>,
    S: Into<String>,
{
    Arc::new(FnStage {
        name: name.into(),
        bindings: bindings.into_iter().map(Into::into).collect(),
        handler,
    })
}
