//! Helpers of the binary's integration tests: a configuration derived from the shipped
//! example, the `encaisse` process with its standard error captured line by line.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The shipped example configuration.
pub const EXAMPLE: &str = include_str!("../../config/encaisse.toml");

/// The broker of the test machine (CI starts it with scripts/setup.sh).
pub const BROKER_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The payment API tokens the tests give the daemon (32 characters at least, as `check` asks).
pub const VITRY_TOKEN: &str = "test-token-vitry-0123456789abcdefghij";
pub const IVRY_TOKEN: &str = "test-token-ivry-0123456789abcdefghijk";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_encaisse")
}

/// A broker prefix no other test uses, so tests never share an exchange or queue.
pub fn unique_prefix(test: &str) -> String {
    format!("test-platform-{}-{test}", std::process::id())
}

/// The example configuration with its data directory, listen address and broker prefix
/// replaced, written to `dir/encaisse.toml`.
pub fn write_config(dir: &Path, prefix: &str, broker_url: &str) -> PathBuf {
    let data_dir = dir.join("data");
    let text = EXAMPLE
        .replace(
            "data_dir = \"var/encaisse\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        )
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("prefix = \"encaisse\"", &format!("prefix = {prefix:?}"))
        .replace(
            "url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"",
            &format!("url = {broker_url:?}"),
        );
    assert_ne!(
        text, EXAMPLE,
        "the example's shape changed: update the helper"
    );
    let path = dir.join("encaisse.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A command for the binary with a clean environment of encaisse variables.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("ENCAISSE_CONFIG")
        .env_remove("ENCAISSE_DATA_DIR")
        .env_remove("ENCAISSE_AMQP_URL")
        .env_remove("ENCAISSE_LOG")
        .env("ENCAISSE_TOKEN_VITRY", VITRY_TOKEN)
        .env("ENCAISSE_TOKEN_IVRY", IVRY_TOKEN);
    cmd
}

/// Runs `encaisse --config <config> <args>` to completion.
pub fn run_with(config: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    command(&all).output().unwrap()
}

/// Bytes of an output, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `encaisse run`, its standard error read on a thread.
pub struct Daemon {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts `encaisse --config <config> <extra args> run`.
    pub fn start(config: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec!["--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push("run");
        let mut child = command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "no log line with {needle:?} within {timeout:?}; seen:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// The HTTP base URL, from the `HTTP server listening.` line (human or JSON format).
    pub fn http_base(&mut self) -> String {
        let line = self.wait_for_line("HTTP server listening.", Duration::from_secs(30));
        let addr = if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
            json["addr"].as_str().unwrap().to_string()
        } else {
            line.split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        };
        format!("http://{addr}")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait(timeout)
    }

    /// Waits for the process to exit, collecting the rest of its log.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "encaisse did not exit within {timeout:?}; log:\n{}",
                    self.seen.join("\n")
                );
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(50));
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

/// GET `url`; returns status and body.
pub async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Polls `url` until it answers `status`, within `timeout`; returns the last body.
pub async fn wait_for_status(url: &str, status: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (got, body) = get(url).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {got} after {timeout:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes every queue and the work exchange of a test's prefix when dropped, so a test
/// leaves nothing in the broker even when it fails (the example configuration's stages
/// declare 35 queues per prefix).
pub struct Topology(pub String);

impl Drop for Topology {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let listed = std::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "name"])
            .output();
        let queues: Vec<String> = listed
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|q| q.starts_with(&format!("{prefix}.")))
            .map(str::to_string)
            .collect();
        // Its own thread and runtime: a drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(conn) =
                    lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default())
                        .await
                else {
                    return;
                };
                if let Ok(ch) = conn.create_channel().await {
                    for queue in queues {
                        let _ = ch
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await;
                    }
                    let _ = ch
                        .exchange_delete(prefix.as_str().into(), Default::default())
                        .await;
                }
                let _ = conn.close(200, "test cleanup".into()).await;
            });
        })
        .join();
    }
}

/// Publishes a canonical event as a producer does (confirmed, persistent, `mandatory`, with
/// its deterministic id, type and the `encaisse-*` headers).
pub async fn publish_event<E: encaisse_schemas::Event>(prefix: &str, body: &serde_json::Value) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let bytes = serde_json::to_vec(body).unwrap();
    let event: E = encaisse_schemas::decode(&bytes).unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        "encaisse-tenant".into(),
        AMQPValue::LongString(LongString::from(event.tenant().to_string())),
    );
    if let Some(invoice) = event.invoice() {
        headers.insert(
            "encaisse-invoice".into(),
            AMQPValue::LongString(LongString::from(invoice.key())),
        );
    }
    headers.insert(
        "encaisse-schema-version".into(),
        AMQPValue::LongLongInt(i64::from(E::SCHEMA_VERSION)),
    );
    let conn = lapin::Connection::connect(BROKER_URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = channel
        .basic_publish(
            prefix.into(),
            event.routing_key().as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &bytes,
            lapin::BasicProperties::default()
                .with_message_id(event.message_id().as_str().into())
                .with_type(E::TYPE.into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack() && confirm.take_message().is_none());
    let _ = conn.close(200, "OK".into()).await;
}

/// A console serving `ledger` on a free port, for tenant `vitry`, with `settings`; returns
/// its base URL and the token that stops it.
pub async fn start_console(
    ledger: &encaisse_ledger::Ledger,
    data_dir: &Path,
    settings: encaisse::config::console::ConsoleConfig,
) -> (String, tokio_util::sync::CancellationToken) {
    use encaisse_pipelines::runtime::{Runtime, RuntimeConfig};
    let health = Runtime::new(RuntimeConfig::default(), ledger.clone()).health();
    let state = encaisse::console::Console::new(
        settings,
        ledger.clone(),
        health,
        RuntimeConfig::default(),
        data_dir.to_path_buf(),
        vec![encaisse::console::TenantView {
            id: "vitry".into(),
            name: "Vitry-sur-Seine".into(),
        }],
        vec![],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(encaisse::console::serve(
        state,
        listener,
        encaisse::http::HttpLimits::default(),
        shutdown.clone(),
    ));
    (format!("http://{addr}"), shutdown)
}

/// A console user with `password`.
pub fn console_user(
    name: &str,
    password: &str,
    role: encaisse::config::console::Role,
) -> encaisse::config::console::ConsoleUser {
    encaisse::config::console::ConsoleUser {
        name: name.into(),
        password_hash: encaisse::console::password::hash(password).unwrap(),
        role,
        tenants: vec![],
    }
}

/// The number after `label` in `line` (`"…, 1775 titres (…"`, `"titres"` → 1775): the chaos
/// runs' summaries.
/// Runs `scripts/chaos.sh` with `args` and this build's binaries, and returns what it printed
/// once it passed every check (panics with both outputs otherwise).
pub fn chaos_script(args: &[&str]) -> String {
    let output = std::process::Command::new("bash")
        .arg("scripts/chaos.sh")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHAOS_ENCAISSE_BIN", env!("CARGO_BIN_EXE_encaisse"))
        .env("CHAOS_BENCH_BIN", env!("CARGO_BIN_EXE_encaisse-bench"))
        .env_remove("CHAOS_ARGS")
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "chaos.sh {args:?} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("chaos: all checks passed"), "{stdout}");
    stdout
}

pub fn count_before(line: &str, label: &str) -> u64 {
    let at = line
        .find(&format!(" {label}"))
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    line[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {label:?} in {line:?}"))
}
