//! The demo's own broker topology (`<prefix>.*`, default prefix `encaisse-demo`): emptied
//! before a run, like its data directory, so that nothing a previous run left in a queue
//! (a retry waiting in a delay tier) reaches this one; removed after it.

use std::time::Duration;

use encaisse_pipelines::runtime::StageQueues;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

use crate::config::Config;
use crate::wiring::{Kind, REGISTRY};

/// How long connecting may take before the demo says the broker is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker cannot be reached or refused an operation.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// Every queue the daemon declares with this configuration's prefix and delay tiers.
pub fn queue_names(config: &Config) -> Vec<String> {
    let prefix = &config.broker.prefix;
    let mut names = vec![format!("{prefix}.feature-probe")];
    for component in REGISTRY.iter().filter(|c| c.kind == Kind::Stage) {
        let queues = StageQueues::new(prefix, component.name, &config.retry.tiers_secs);
        names.push(queues.work);
        names.push(queues.parked);
        names.extend(queues.tiers.into_iter().map(|(_, name)| name));
    }
    names
}

async fn connect(url: &str) -> Result<Connection, BrokerError> {
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(BrokerError(e.to_string())),
        Err(_) => Err(BrokerError(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Deletes the work exchange and every queue of the configuration's prefix (with their
/// messages); returns how many queue names were cleared. Deleting a queue that does not
/// exist is not an error.
pub async fn reset(config: &Config) -> Result<usize, BrokerError> {
    let connection = connect(&config.broker.url).await?;
    let names = queue_names(config);
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| BrokerError(e.to_string()))?;
    for name in &names {
        channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await
            .map_err(|e| BrokerError(format!("deleting {name}: {e}")))?;
    }
    channel
        .exchange_delete(
            config.broker.prefix.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .map_err(|e| BrokerError(format!("deleting {}: {e}", config.broker.prefix)))?;
    let _ = connection.close(200, "OK".into()).await;
    Ok(names.len())
}
