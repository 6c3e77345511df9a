//! Runs the PayFiP gateway simulator until Ctrl-C (what `encaisse payfip-sim` will do):
//!
//! ```text
//! cargo run -p encaisse-payfip --example payfip_sim -- [--listen 127.0.0.1:8091] [--options sim.toml]
//! ```
//!
//! `--options` reads a TOML file of `SimulatorOptions` fields (`latency_ms = 200`,
//! `[notification] copies = 2`, …); every field has a default.

use std::net::SocketAddr;

use encaisse_payfip::sim::{SimulatorOptions, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENCAISSE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut listen: SocketAddr = "127.0.0.1:8091".parse()?;
    let mut options = SimulatorOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?.parse()?,
            "--options" => {
                let path = args.next().ok_or("--options needs FILE")?;
                options = toml::from_str(&std::fs::read_to_string(path)?)?;
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    serve(listen, options, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
