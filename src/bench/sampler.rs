//! Sampling while a phase runs: the daemon's resident memory (every 100 ms, from `/proc`) and
//! the depth of every work queue of the run (every 250 ms, passive `queue.declare` on one
//! AMQP channel: cheap, unlike `rabbitmqctl`), so the report can give each phase's peak RSS
//! and each queue's deepest backlog.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use encaisse_pipelines::runtime::backlog::ready_messages;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::broker::{self, Rabbitmqctl};
use super::error::Result;
use super::procstat;

const RSS_EVERY: Duration = Duration::from_millis(100);
/// Queue depths are read every this many RSS samples.
const DEPTH_EVERY_N: u32 = 3;

/// What a sampler saw.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// (seconds since the sampler's start, resident bytes).
    pub rss: Vec<(f64, u64)>,
    /// Deepest ready-message count seen per queue.
    pub max_depth: BTreeMap<String, u64>,
}

impl Samples {
    /// Largest RSS sampled in `(from, to]` seconds, in bytes.
    pub fn peak_rss_between(&self, from: f64, to: f64) -> Option<u64> {
        self.rss
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, rss)| *rss)
            .max()
    }
}

/// A running sampler; [`Sampler::stop`] returns what it saw.
pub struct Sampler {
    stop: CancellationToken,
    task: JoinHandle<()>,
    samples: Arc<Mutex<Samples>>,
}

/// The queues whose depth the backlog bound concerns: every queue of the run but the
/// daemon's claim (`<prefix>.instance*`), the delay tiers, the parking lots and the
/// baseline's own queue.
pub fn work_queues(ctl: &Rabbitmqctl, prefix: &str) -> Result<Vec<String>> {
    let instance = format!("{prefix}.instance");
    let baseline = format!("{prefix}.baseline");
    Ok(ctl
        .queues(prefix)?
        .into_iter()
        .map(|q| q.name)
        .filter(|name| {
            !name.starts_with(&instance)
                && *name != baseline
                && !name.ends_with(".parked")
                && !name.contains(".retry.")
        })
        .collect())
}

impl Sampler {
    /// Samples `pid`'s RSS, and the depth of `queues` through `amqp_url` (none: RSS only).
    pub async fn start(pid: u32, amqp_url: &str, queues: Vec<String>) -> Result<Self> {
        let connection = if queues.is_empty() {
            None
        } else {
            Some(broker::connect(amqp_url).await?)
        };
        let samples = Arc::new(Mutex::new(Samples::default()));
        let stop = CancellationToken::new();
        let task = {
            let (samples, stop) = (samples.clone(), stop.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut channel = None;
                let mut tick = 0u32;
                loop {
                    if let Some(rss) = procstat::rss_bytes(pid)
                        && let Ok(mut s) = samples.lock()
                    {
                        s.rss.push((started.elapsed().as_secs_f64(), rss));
                    }
                    if tick.is_multiple_of(DEPTH_EVERY_N)
                        && let Some(conn) = &connection
                    {
                        if channel.is_none() {
                            channel = conn.create_channel().await.ok();
                        }
                        if let Some(ch) = &channel {
                            for queue in &queues {
                                let declared = ready_messages(ch, queue).await;
                                match declared {
                                    Ok(count) => {
                                        if let Ok(mut s) = samples.lock() {
                                            let max = s.max_depth.entry(queue.clone()).or_insert(0);
                                            *max = (*max).max(u64::from(count));
                                        }
                                    }
                                    Err(_) => {
                                        // The channel is closed by the error: a new one next time.
                                        channel = None;
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    tick = tick.wrapping_add(1);
                    tokio::select! {
                        _ = tokio::time::sleep(RSS_EVERY) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                if let Some(conn) = connection {
                    let _ = conn.close(200, "OK".into()).await;
                }
            })
        };
        Ok(Sampler {
            stop,
            task,
            samples,
        })
    }

    /// Stops sampling and returns the samples.
    pub async fn stop(self) -> Samples {
        self.stop.cancel();
        let _ = self.task.await;
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_peak_takes_only_its_own_samples() {
        let s = Samples {
            rss: vec![(0.1, 10), (0.5, 30), (1.0, 20), (1.5, 50), (2.0, 40)],
            max_depth: BTreeMap::new(),
        };
        assert_eq!(s.peak_rss_between(0.0, 1.0), Some(30));
        assert_eq!(s.peak_rss_between(1.0, 2.0), Some(50));
        assert_eq!(s.peak_rss_between(2.0, 3.0), None);
    }

    #[tokio::test]
    async fn this_process_memory_is_sampled_until_stopped() {
        let sampler = Sampler::start(std::process::id(), "unused", Vec::new())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        let samples = sampler.stop().await;
        assert!(samples.rss.len() >= 3, "{} samples", samples.rss.len());
        assert!(samples.rss.iter().all(|(_, rss)| *rss > 1 << 20));
        assert!(samples.max_depth.is_empty());
    }
}
