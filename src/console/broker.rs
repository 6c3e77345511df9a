//! Queue depths for the overview: one short-lived AMQP connection per look, each stage's work
//! and parking queues declared passively (which only reads their counts).

use std::time::Duration;

use encaisse_pipelines::runtime::RuntimeConfig;
use encaisse_pipelines::runtime::backlog::ready_messages;
use encaisse_pipelines::runtime::supervisor::broker_uri;
use lapin::{Connection, ConnectionProperties};

/// How long a look at the broker may take before the overview shows it as unavailable.
const LOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready messages of each queue in `queues` (a queue that does not exist yet counts 0).
pub async fn depths(
    config: &RuntimeConfig,
    queues: &[String],
) -> Result<Vec<(String, u32)>, String> {
    let uri = broker_uri(config).map_err(|e| e.to_string())?;
    let look = async {
        let properties =
            ConnectionProperties::default().with_connection_name("encaisse console".into());
        let conn = Connection::connect_uri(uri, properties)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            // A passive declare of a missing queue closes its channel: one channel each.
            let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
            let declared = ready_messages(&channel, queue).await;
            match declared {
                Ok(count) => {
                    out.push((queue.clone(), count));
                    let _ = channel.close(200, "OK".into()).await;
                }
                Err(_) => out.push((queue.clone(), 0)),
            }
        }
        let _ = conn.close(200, "OK".into()).await;
        Ok(out)
    };
    tokio::time::timeout(LOOK_TIMEOUT, look)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", LOOK_TIMEOUT.as_secs())))
}
