//! `ledtrad-agent`: runs the agent on a device.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ledtrad_agent::{Config, SystemClock};

/// The ledtrad agent: local offers from signed catalogues, with on-device consent.
#[derive(Parser)]
#[command(name = "ledtrad-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent with a TOML config until interrupted (Ctrl-C or SIGTERM).
    Run {
        /// The config file (see deploy/agent.example.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Also start an in-process MQTT broker on the config's broker port (loopback only),
        /// so a demo needs nothing installed. It keeps retained messages in memory only.
        #[arg(long)]
        embedded_broker: bool,
    },
    /// Explain a recent decision of a running agent: what was shown and why, the score parts of
    /// the best candidates, and why every other candidate was not shown.
    Explain {
        /// The decision's number (from GET /v1/offer, or the ledtrad-decision header).
        decision: u64,
        /// The agent's local API.
        #[arg(long, default_value = "127.0.0.1:7878")]
        api: std::net::SocketAddr,
    },
    /// Check a config file and print what it configures.
    CheckConfig {
        /// The config file.
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttc=warn,rumqttd=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { config } => {
            let c = Config::from_path(&config)?;
            println!(
                "ok: device '{}' ({}) in fleet '{}', broker {}, database {}, API {}, {} operator key(s) pinned",
                c.device,
                c.kind,
                c.fleet,
                c.broker,
                c.database.display(),
                c.api.map_or("off".to_string(), |a| a.to_string()),
                c.keys.len()
            );
            Ok(())
        }
        Command::Explain { decision, api } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let text = runtime.block_on(async {
                let url = format!("http://{api}/v1/decisions/{decision}");
                let response = reqwest::get(&url)
                    .await
                    .with_context(|| format!("no agent answered at {api}; is it running with `api` set?"))?;
                let status = response.status();
                let body: serde_json::Value = response.json().await.context("the agent's answer is not JSON")?;
                if !status.is_success() {
                    anyhow::bail!("{}", body["error"].as_str().unwrap_or("the agent refused"));
                }
                let decision: ledtrad_protocol::decision::Decision =
                    serde_json::from_value(body).context("the agent's answer is not a decision")?;
                anyhow::Ok(ledtrad_agent::explain::explain(&decision))
            })?;
            print!("{text}");
            Ok(())
        }
        Command::Run { config, embedded_broker } => {
            let config = Config::from_path(&config)?;
            if embedded_broker {
                let host = config.broker.host.as_str();
                if !matches!(host, "127.0.0.1" | "localhost") {
                    anyhow::bail!(
                        "--embedded-broker listens on 127.0.0.1 only, but the config's broker is {}; set broker = \"mqtt://127.0.0.1:{}\"",
                        config.broker,
                        config.broker.port
                    );
                }
                let broker = ledtrad_agent::broker::EmbeddedBroker::start_on(config.broker.port, 64)?;
                tracing::info!(broker = %broker.url(), "embedded broker listening");
                std::mem::forget(broker);
            }
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(async {
                let agent = ledtrad_agent::spawn(config, Arc::new(SystemClock)).await?;
                shutdown_signal().await;
                tracing::info!("shutting down");
                agent.shutdown().await;
                anyhow::Ok(())
            })
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
