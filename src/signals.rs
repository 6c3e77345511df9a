//! SIGTERM and SIGINT → a cancellation token: the first signal asks for a graceful stop,
//! a second one (an impatient operator) exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::exit;

/// Spawns the task that cancels `shutdown` on the first SIGTERM/SIGINT and exits the
/// process on the second. Fails only if the signal handlers cannot be installed.
pub fn spawn(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = shutdown.cancelled() => return,
        };
        tracing::info!(
            signal = name,
            "Shutdown requested; finishing in-flight work (send it again to exit at once)."
        );
        shutdown.cancel();
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(
            signal = name,
            "Second signal; exiting without waiting for in-flight work (it will be redelivered)."
        );
        std::process::exit(i32::from(exit::FAILURE));
    });
    Ok(())
}
