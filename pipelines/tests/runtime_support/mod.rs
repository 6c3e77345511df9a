//! Helpers shared by the runtime's integration tests (real RabbitMQ on 127.0.0.1:5672).
//! Each test gets its own prefix `t-<uuid>` and deletes its queues and exchange when done,
//! even when it fails, so the tests run in parallel without seeing each other.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use encaisse_ledger::Ledger;
use encaisse_pipelines::runtime::{BrokerState, Health, Runtime, RuntimeConfig, StageQueues};
use encaisse_schemas::{
    BillingRunClosed, CollectionPath, Event, InvoiceIssued, Money, RunBudgetCount,
};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const BROKER: &str = "127.0.0.1:5672";

pub fn broker_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// A test's own namespace on the broker; deletes what it knows of on drop.
pub struct Namespace {
    pub prefix: String,
    queues: std::sync::Mutex<Vec<String>>,
}

impl Namespace {
    pub fn new() -> Self {
        Namespace {
            prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
            queues: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Registers the queues of `stage` for deletion.
    pub fn stage(&self, stage: &str, tiers: &[u64]) -> StageQueues {
        let queues = StageQueues::new(&self.prefix, stage, tiers);
        let mut list = self.queues.lock().unwrap();
        list.push(queues.work.clone());
        list.push(queues.parked.clone());
        list.extend(queues.tiers.iter().map(|(_, q)| q.clone()));
        queues
    }

    pub fn track(&self, queue: &str) {
        self.queues.lock().unwrap().push(queue.to_string());
    }

    /// A runtime configuration for tests: short tiers, fast reconnection.
    pub fn config(&self, url: &str, tiers: &[u64]) -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        config.broker.url = url.to_string();
        config.broker.prefix = self.prefix.clone();
        config.broker.prefetch = 16;
        config.broker.heartbeat_secs = 5;
        config.broker.reconnect_min_delay_ms = 100;
        config.broker.reconnect_max_delay_ms = 1_000;
        config.broker.publish_wait_ms = 15_000;
        config.retry.tiers_secs = tiers.to_vec();
        config.retry.max_attempts = 5;
        config.retry.in_process_retries = 0;
        config.retry.in_process_min_delay_ms = 50;
        config.shutdown_grace_secs = 10;
        config
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let queues = self.queues.lock().map(|q| q.clone()).unwrap_or_default();
        let exchange = self.prefix.clone();
        // Drop cannot be async: a small runtime of its own on a plain thread.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(conn) = connect(BROKER).await else {
                    return;
                };
                for queue in queues {
                    if let Ok(ch) = conn.create_channel().await {
                        let _ = ch
                            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                }
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
                let _ = conn.close(200, "OK".into()).await;
            });
        });
        let _ = cleanup.join();
    }
}

pub async fn connect(addr: &str) -> lapin::Result<Connection> {
    Connection::connect(&broker_url(addr), ConnectionProperties::default()).await
}

/// A direct client to the broker (not through any proxy), for publishing test input and
/// reading queues.
pub struct Client {
    pub conn: Connection,
    pub channel: Channel,
}

impl Client {
    pub async fn new() -> Self {
        let conn = connect(BROKER).await.expect("RabbitMQ on 127.0.0.1:5672");
        let channel = conn.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        Client { conn, channel }
    }

    /// A classic queue bound to `exchange` with `pattern`, to collect a stage's outputs.
    pub async fn sink(&self, ns: &Namespace, name: &str, pattern: &str) -> String {
        let queue = format!("{}.{name}", ns.prefix);
        ns.track(&queue);
        self.channel
            .exchange_declare(
                ns.prefix.as_str().into(),
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .queue_bind(
                queue.as_str().into(),
                ns.prefix.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        queue
    }

    /// Publishes (confirmed, persistent) to `exchange`.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        props: BasicProperties,
        body: &[u8],
    ) {
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props.with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "test input must be confirmed");
        assert!(
            confirm.take_message().is_none(),
            "test input must be routed"
        );
    }

    /// Publishes a canonical event as a producer does: to `exchange` with its routing key,
    /// [`event_props`] under `message_id` (its deterministic id, or another one to play a
    /// replay), its JSON body.
    pub async fn publish_event<E: Event>(&self, exchange: &str, event: &E, message_id: &str) {
        self.publish(
            exchange,
            &event.routing_key(),
            event_props(event, message_id),
            &encaisse_schemas::encode(event),
        )
        .await;
    }

    /// Ready messages of `queue`.
    pub async fn count(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = ch.close(200, "OK".into()).await;
        q.message_count()
    }

    /// Takes every ready message of `queue` (acked).
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        {
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            out.push(message.delivery);
        }
        out
    }
}

pub fn text_header(props: &BasicProperties, name: &str) -> Option<String> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

pub fn int_header(props: &BasicProperties, name: &str) -> Option<i64> {
    match props.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(i) => Some(*i),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortInt(i) => Some(i64::from(*i)),
        _ => None,
    }
}

/// Properties of a canonical test message.
pub fn message_props(id: &str, tenant: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "encaisse-tenant".into(),
        AMQPValue::LongString(LongString::from(tenant)),
    );
    BasicProperties::default()
        .with_message_id(ShortString::from(id))
        .with_type("test.item".into())
        .with_content_type("application/json".into())
        .with_timestamp(1_790_000_000)
        .with_headers(headers)
}

/// AMQP properties a producer sets on a canonical event: id, type, JSON, and the
/// `encaisse-tenant` header.
pub fn event_props<E: Event>(event: &E, message_id: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "encaisse-tenant".into(),
        AMQPValue::LongString(LongString::from(event.tenant().as_str())),
    );
    BasicProperties::default()
        .with_message_id(ShortString::from(message_id))
        .with_type(ShortString::from(E::TYPE))
        .with_content_type("application/json".into())
        .with_headers(headers)
}

/// The stage's view of a delivery of `event`, to call a handler directly (no broker).
pub fn incoming<E: Event>(event: &E) -> encaisse_pipelines::Incoming {
    encaisse_pipelines::Incoming {
        message_id: Some(event.message_id()),
        message_type: Some(E::TYPE.to_string()),
        exchange: String::new(),
        routing_key: event.routing_key(),
        headers: Default::default(),
        body: bytes::Bytes::from(encaisse_schemas::encode(event)),
        redelivered: false,
        attempt: 1,
    }
}

/// `billing_run.closed` announcing `invoices` of budget `principal`, exercice 2026, collected
/// by `collection`.
pub fn run_closed_by(
    collection: CollectionPath,
    tenant: &encaisse_schemas::TenantId,
    run: &str,
    invoices: &[InvoiceIssued],
) -> BillingRunClosed {
    let total = Money::sum(invoices.iter().map(|i| &i.total)).unwrap();
    BillingRunClosed {
        schema_version: 1,
        tenant: tenant.clone(),
        run_id: run.into(),
        application: "polyfac".into(),
        file: Some(format!("{run}.csv")),
        exercice: 2026,
        budgets: vec![RunBudgetCount {
            budget: "principal".into(),
            collection,
            invoices: invoices.len() as u32,
            total,
        }],
        rejected_invoices: 0,
    }
}

pub fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

/// One integer from the ledger (`SELECT count(*) …`).
pub async fn count(ledger: &Ledger, sql: &'static str) -> i64 {
    ledger
        .read(move |c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Files of a directory (not hidden), sorted; none when it does not exist.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| !file_name(p).starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Waits until `dir` holds at least `n` files whose names start with `prefix`; returns them.
pub async fn wait_files(dir: &Path, prefix: &str, n: usize) -> Vec<PathBuf> {
    let matching = || {
        list(dir)
            .into_iter()
            .filter(|p| file_name(p).starts_with(prefix))
            .collect::<Vec<_>>()
    };
    wait_until(
        &format!("{n} {prefix}* file(s) in {}", dir.display()),
        Duration::from_secs(30),
        || async { matching().len() >= n },
    )
    .await;
    matching()
}

/// Drops a partner's file in an inbox the way a transfer tool should: written under a
/// hidden name, then renamed.
pub fn drop_into(inbox: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(inbox).unwrap();
    let tmp = inbox.join(format!(".{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

/// Waits until `name` left `<area>/inbox` for `archive/` or `rejected/` (under its name, or
/// with the watcher's suffix when the name was taken); returns where.
pub async fn wait_handled(area: &Path, name: &str) -> &'static str {
    let inbox = area.join("inbox").join(name);
    wait_until(
        &format!("{name} handled"),
        Duration::from_secs(30),
        || async { !inbox.exists() },
    )
    .await;
    let moved_to = |sub: &str| {
        list(&area.join(sub)).iter().any(|p| {
            let file = file_name(p);
            file == name || file.starts_with(&format!("{name}."))
        })
    };
    if moved_to("archive") {
        "archive"
    } else if moved_to("rejected") {
        "rejected"
    } else {
        "nowhere"
    }
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_connected(health: &Health) {
    wait_until("the broker connection", Duration::from_secs(30), || async {
        health.state() == BrokerState::Connected
    })
    .await;
}

/// A running runtime.
pub struct Running {
    pub token: CancellationToken,
    pub handle: JoinHandle<Result<(), encaisse_pipelines::runtime::RuntimeError>>,
    pub health: Health,
}

impl Running {
    pub fn start(runtime: Runtime) -> Self {
        let token = CancellationToken::new();
        let health = runtime.health();
        let handle = tokio::spawn(runtime.run(token.clone()));
        Running {
            token,
            handle,
            health,
        }
    }

    pub async fn stop(self) {
        self.token.cancel();
        let result = tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("runtime stops within its grace period")
            .unwrap();
        assert!(result.is_ok(), "runtime stopped with {result:?}");
    }
}

/// An effect table in the ledger: one row per key, `n` = how many times the effect ran.
pub async fn create_effect_table(ledger: &Ledger) {
    ledger
        .write(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS test_effect (key TEXT PRIMARY KEY, n INTEGER NOT NULL)",
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

/// The effect: counts a run for `key` (not idempotent on purpose: a second run shows).
pub fn count_effect(
    tx: &mut encaisse_ledger::Tx<'_>,
    key: &str,
) -> Result<(), encaisse_ledger::LedgerError> {
    tx.execute(
        "INSERT INTO test_effect (key, n) VALUES (?1, 1) ON CONFLICT (key) DO UPDATE SET n = n + 1",
        &[&key],
    )?;
    Ok(())
}

pub async fn effects(ledger: &Ledger) -> BTreeMap<String, i64> {
    ledger
        .read(|c| {
            let mut stmt = c.prepare("SELECT key, n FROM test_effect")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<BTreeMap<_, _>, _>>()?)
        })
        .await
        .unwrap()
}

/// A TCP proxy between the runtime and the broker that can sever every connection.
pub struct Proxy {
    pub addr: String,
    connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let connections: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let list = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                list.lock().unwrap().push(task);
            }
        });
        Proxy {
            addr,
            connections,
            accept,
        }
    }

    /// Cuts every open connection (both sockets dropped).
    pub fn sever(&self) -> usize {
        let mut list = self.connections.lock().unwrap();
        let n = list.iter().filter(|t| !t.is_finished()).count();
        for task in list.drain(..) {
            task.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

/// The metrics recorder of this test binary, and the counters accumulated so far (a
/// snapshot resets the recorder's counters, so every read goes through here).
static METRICS: OnceLock<(
    metrics_util::debugging::Snapshotter,
    Mutex<BTreeMap<String, u64>>,
)> = OnceLock::new();

/// Installs the debugging recorder (once per test binary), before a runtime starts.
pub fn install_metrics() {
    METRICS.get_or_init(|| {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in the test binary");
        (snapshotter, Mutex::default())
    });
}

fn metric_key(name: &str, labels: &mut [(String, String)]) -> String {
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// The value of counter `name` with exactly these labels.
pub fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let (snapshotter, totals) = METRICS.get().expect("install_metrics() first");
    let mut totals = totals.lock().unwrap();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let metrics_util::debugging::DebugValue::Counter(n) = value {
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            *totals
                .entry(metric_key(key.key().name(), &mut labels))
                .or_default() += n;
        }
    }
    let mut wanted: Vec<_> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    totals
        .get(&metric_key(name, &mut wanted))
        .copied()
        .unwrap_or(0)
}
