//! The broker as the harness sees it: AMQP connections, confirmed publishing of canonical
//! events from outside the daemon, queue depths and clean-up (`rabbitmqctl`), and the broker
//! restart of the chaos run.

use std::process::Command;
use std::time::Duration;

use encaisse_pipelines::Outgoing;
use encaisse_pipelines::runtime::headers::to_field_table;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::error::{BenchError, Result};

/// Opens an AMQP connection.
pub async fn connect(url: &str) -> Result<Connection> {
    Ok(Connection::connect(url, ConnectionProperties::default()).await?)
}

/// A channel in confirm mode.
pub async fn confirm_channel(conn: &Connection) -> Result<Channel> {
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes events as a producer of encaisse does (`mandatory`, persistent, JSON, with the
/// deterministic id, type and `encaisse-*` headers) on the work exchange `exchange`, and
/// waits for every confirmation.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    messages: &[Outgoing],
) -> Result<()> {
    let mut confirms = Vec::with_capacity(messages.len());
    for m in messages {
        let headers = to_field_table(&m.headers).map_err(BenchError::Setup)?;
        let properties = BasicProperties::default()
            .with_message_id(m.message_id.as_str().into())
            .with_type(m.message_type.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let exchange = m.exchange.as_deref().unwrap_or(exchange);
        confirms.push(
            channel
                .basic_publish(
                    exchange.into(),
                    m.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &m.body,
                    properties,
                )
                .await?,
        );
    }
    for confirm in confirms {
        let confirmation = confirm.await?;
        if !confirmation.is_ack() || confirmation.take_message().is_some() {
            return Err(BenchError::Setup(
                "the broker refused or could not route an event (is the daemon's topology declared?)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// `rabbitmqctl`, on the default node or the one named by `node` (`-n`).
#[derive(Debug, Clone, Default)]
pub struct Rabbitmqctl {
    pub node: Option<String>,
}

/// Depth of one queue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct QueueDepth {
    pub name: String,
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
}

impl QueueDepth {
    pub fn total(&self) -> u64 {
        self.messages_ready + self.messages_unacknowledged
    }
}

impl Rabbitmqctl {
    fn command(&self) -> Command {
        let mut cmd = Command::new("rabbitmqctl");
        if let Some(node) = &self.node {
            cmd.args(["-n", node]);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command()
            .args(args)
            .output()
            .map_err(|e| BenchError::io("rabbitmqctl", e))?;
        if !output.status.success() {
            return Err(BenchError::Daemon(format!(
                "rabbitmqctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Every queue whose name starts with `<prefix>.`, with its depth.
    pub fn queues(&self, prefix: &str) -> Result<Vec<QueueDepth>> {
        let out = self.run(&[
            "list_queues",
            "-q",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--formatter",
            "json",
        ])?;
        let all: Vec<QueueDepth> = serde_json::from_str(out.trim())
            .map_err(|e| BenchError::Daemon(format!("rabbitmqctl list_queues: {e}")))?;
        let start = format!("{prefix}.");
        Ok(all
            .into_iter()
            .filter(|q| q.name.starts_with(&start))
            .collect())
    }

    /// [`Rabbitmqctl::queues`] without the daemon's claim on its prefix
    /// (`<prefix>.instance` and the one message naming the holder in
    /// `<prefix>.instance.holder`): the queues that must drain when the work is done.
    pub fn work_queues(&self, prefix: &str) -> Result<Vec<QueueDepth>> {
        use encaisse_pipelines::runtime::instance::{claim_queue, holder_queue};
        let claims = [claim_queue(prefix), holder_queue(prefix)];
        Ok(self
            .queues(prefix)?
            .into_iter()
            .filter(|q| !claims.contains(&q.name))
            .collect())
    }

    /// The operating-system pid of the node's Erlang VM (for its CPU time).
    pub fn os_pid(&self) -> Option<u32> {
        self.run(&["-q", "eval", "os:getpid()."])
            .ok()?
            .trim()
            .trim_matches('"')
            .parse()
            .ok()
    }

    /// Stops the RabbitMQ application (the Erlang node stays up).
    pub fn stop_app(&self) -> Result<()> {
        self.run(&["stop_app"]).map(drop)
    }

    /// Starts it again and waits until it accepts connections.
    pub fn start_app(&self) -> Result<()> {
        self.run(&["start_app"])?;
        self.run(&["await_startup"]).map(drop)
    }
}

/// Starts the broker application again when dropped, unless [`BrokerStopped::restore`] did:
/// a chaos run that fails half-way never leaves the machine without its broker.
pub struct BrokerStopped {
    ctl: Rabbitmqctl,
    restored: bool,
}

impl BrokerStopped {
    /// Stops the broker application.
    pub fn stop(ctl: &Rabbitmqctl) -> Result<Self> {
        let guard = BrokerStopped {
            ctl: ctl.clone(),
            restored: false,
        };
        ctl.stop_app()?;
        Ok(guard)
    }

    /// Starts it again (retried a few times: the node may still be stopping).
    pub fn restore(mut self) -> Result<()> {
        let result = self.start_with_retries();
        self.restored = result.is_ok();
        result
    }

    fn start_with_retries(&self) -> Result<()> {
        let mut last = None;
        for _ in 0..5 {
            match self.ctl.start_app() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_secs(2));
                }
            }
        }
        Err(last.unwrap_or_else(|| BenchError::Daemon("rabbitmqctl start_app failed".into())))
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if !self.restored && self.start_with_retries().is_err() {
            tracing::error!("The broker could not be started again: run `rabbitmqctl start_app`.");
        }
    }
}

/// Deletes every queue named `<prefix>.…` and the exchange `<prefix>`.
pub async fn delete_prefix(url: &str, ctl: &Rabbitmqctl, prefix: &str) -> Result<usize> {
    let queues = ctl.queues(prefix)?;
    let conn = connect(url).await?;
    let mut deleted = 0;
    for queue in &queues {
        // A channel per deletion: an error closes the channel it happened on.
        let channel = conn.create_channel().await?;
        if channel
            .queue_delete(queue.name.as_str().into(), Default::default())
            .await
            .is_ok()
        {
            deleted += 1;
        }
    }
    let channel = conn.create_channel().await?;
    let _ = channel
        .exchange_delete(prefix.into(), ExchangeDeleteOptions::default())
        .await;
    let _ = conn.close(200, "OK".into()).await;
    Ok(deleted)
}
