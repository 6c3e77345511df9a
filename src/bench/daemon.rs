//! The daemon under test: a real `encaisse run` process with the run's configuration, its
//! log in the work directory, its readiness from `/readyz`, its memory from `/proc`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::error::{BenchError, Result};
use super::procstat;
use super::settings::TOKEN_ENV;

/// Which program runs the daemon.
#[derive(Debug, Clone)]
pub enum DaemonProgram {
    /// The `encaisse` binary: `<path> --config <file> run`.
    Encaisse(PathBuf),
    /// This harness itself, re-executed as `<path> daemon --config <file>`: the same library
    /// code as `encaisse run`, always the build being measured (`cargo run --bin
    /// encaisse-bench` does not rebuild the `encaisse` binary).
    Harness(PathBuf),
}

impl DaemonProgram {
    /// `encaisse` when given, else this process's own executable.
    pub fn choose(encaisse: Option<PathBuf>) -> Result<Self> {
        match encaisse {
            Some(path) => Ok(DaemonProgram::Encaisse(path)),
            None => std::env::current_exe()
                .map(DaemonProgram::Harness)
                .map_err(|e| BenchError::io("the harness's own executable", e)),
        }
    }

    fn command(&self, config: &Path) -> Command {
        match self {
            DaemonProgram::Encaisse(path) => {
                let mut cmd = Command::new(path);
                cmd.arg("--config").arg(config).arg("run");
                cmd
            }
            DaemonProgram::Harness(path) => {
                let mut cmd = Command::new(path);
                cmd.arg("daemon").arg("--config").arg(config);
                cmd
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DaemonProgram::Encaisse(path) => format!("{} run", path.display()),
            DaemonProgram::Harness(path) => format!("{} daemon", path.display()),
        }
    }
}

/// How to start (and restart) a run's daemon.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: DaemonProgram,
    pub config: PathBuf,
    /// `http://127.0.0.1:<port>`, the configuration's `[http] listen`.
    pub base_url: String,
    /// Its standard error, appended to at each start.
    pub log: PathBuf,
}

impl Launch {
    /// Starts the daemon and waits until it is ready.
    pub async fn start(&self, http: &reqwest::Client, timeout: Duration) -> Result<Daemon> {
        let mut daemon = Daemon::start(&self.program, &self.config, &self.base_url, &self.log)?;
        daemon.wait_ready(http, timeout).await?;
        Ok(daemon)
    }
}

/// The token the harness gives the daemon's payment API.
pub const TOKEN: &str = "bench-token-0123456789abcdefghijklmn";

/// A running daemon.
pub struct Daemon {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl Daemon {
    /// Starts the daemon; its standard error is appended to `log`.
    pub fn start(
        program: &DaemonProgram,
        config: &Path,
        base_url: &str,
        log: &Path,
    ) -> Result<Daemon> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| BenchError::io(log.display().to_string(), e))?;
        let mut cmd = program.command(config);
        cmd.env_remove("ENCAISSE_DATA_DIR")
            .env_remove("ENCAISSE_AMQP_URL")
            .env(TOKEN_ENV, TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", program.describe()), e))?;
        Ok(Daemon {
            child,
            log: log.to_path_buf(),
            base_url: base_url.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        procstat::peak_rss_bytes(self.pid())
    }

    /// The last lines of the daemon's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Fails if the process has exited.
    pub fn ensure_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Daemon(format!(
                "the daemon exited ({status}); last log lines:\n{}",
                self.log_tail(20)
            ))),
            Err(e) => Err(BenchError::io("waiting for the daemon", e)),
        }
    }

    /// Waits until `/readyz` answers 200 (broker connected, directories writable, ledger up).
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/readyz", self.base_url);
        loop {
            self.ensure_alive()?;
            if let Ok(response) = http.get(&url).send().await
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Daemon(format!(
                    "not ready within {timeout:?}; last log lines:\n{}",
                    self.log_tail(20)
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(mut self, timeout: Duration) -> Result<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| BenchError::io("kill -TERM", e))?;
        if !sent.success() {
            return Err(BenchError::Daemon("kill -TERM failed".into()));
        }
        self.wait(timeout)
    }

    /// SIGKILL (no chance to finish anything), then reaps the process.
    pub fn kill(mut self) -> Result<ExitStatus> {
        self.child
            .kill()
            .map_err(|e| BenchError::io("kill -KILL", e))?;
        self.child
            .wait()
            .map_err(|e| BenchError::io("waiting for the daemon", e))
    }

    fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(BenchError::Daemon(format!(
                        "did not stop within {timeout:?}; killed"
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(BenchError::io("waiting for the daemon", e)),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last `lines` lines of a file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
