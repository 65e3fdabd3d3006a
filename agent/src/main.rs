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
    /// Print the local API's OpenAPI 3.1 description as JSON (the same as a running agent's
    /// GET /v1/openapi.json), e.g. to validate it or generate a client.
    Openapi,
    /// Follow a running agent's events (GET /v1/events): one line of JSON per event, e.g. an
    /// offer to show the moment the agent raises it, until interrupted.
    Events {
        /// The agent's local API.
        #[arg(long, default_value = "127.0.0.1:7878")]
        api: std::net::SocketAddr,
        /// Start after this event id (what a reconnecting client sends as Last-Event-ID).
        #[arg(long)]
        after: Option<String>,
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
            let tls = match c.mqtt.tls.as_ref().map(|tls| tls.files()) {
                None => String::new(),
                Some(files) => match &files.client {
                    Some(client) => format!(" (mutual TLS, certificate '{}')", client.cert.display()),
                    None => format!(" (TLS, CA '{}')", files.ca.display()),
                },
            };
            println!(
                "ok: device '{}' ({}) in fleet '{}', broker {}{tls}, database {}, API {}, {} operator key(s) pinned",
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
        Command::Openapi => {
            println!("{}", ledtrad_agent::api::description_json());
            Ok(())
        }
        Command::Events { api, after } => client::follow_events(api, after.as_deref()),
        Command::Explain { decision, api } => client::explain(decision, api),
        Command::Run { config, embedded_broker } => {
            let config = Config::from_path(&config)?;
            if embedded_broker {
                start_embedded_broker(&config)?;
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

/// Starts the in-process broker on the config's broker port (loopback only), for the rest of
/// the process's life.
#[cfg(feature = "embedded-broker")]
fn start_embedded_broker(config: &Config) -> anyhow::Result<()> {
    let host = config.broker.host.as_str();
    if config.broker.tls {
        anyhow::bail!(
            "--embedded-broker speaks plain TCP only, but the config's broker is {} (TLS); set broker = \"mqtt://127.0.0.1:{}\" and drop ca_file, cert_file and key_file to try things locally, or run a TLS broker such as Mosquitto with deploy/mosquitto/fleet-tls.conf",
            config.broker,
            config.broker.port
        );
    }
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
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn start_embedded_broker(_config: &Config) -> anyhow::Result<()> {
    anyhow::bail!(
        "this build of ledtrad-agent has no embedded broker (the device build leaves it out); drop --embedded-broker and point `broker` at a broker such as Mosquitto, or build with the default features"
    )
}

/// `explain` and `events`: a client of a running agent's local API (the `client` feature).
#[cfg(feature = "client")]
mod client {
    use anyhow::Context as _;

    /// Prints a decision of the agent at `api` explained as text.
    pub fn explain(decision: u64, api: std::net::SocketAddr) -> anyhow::Result<()> {
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

    /// Prints each event of the agent at `api` as a line of JSON: `{"event", "id", "data"}`.
    pub fn follow_events(api: std::net::SocketAddr, after: Option<&str>) -> anyhow::Result<()> {
        use std::io::Write as _;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let mut stream =
                ledtrad_agent::events::client::EventStream::connect(&format!("http://{api}"), after).await?;
            while let Some(event) = stream.next().await? {
                let data: serde_json::Value =
                    serde_json::from_str(&event.data).unwrap_or(serde_json::Value::String(event.data.clone()));
                let line = serde_json::json!({ "event": event.event, "id": event.id, "data": data });
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            anyhow::bail!("the agent at {api} closed its event stream (it stopped)")
        })
    }
}

/// Without the `client` feature (the device build): the commands say what to use instead.
#[cfg(not(feature = "client"))]
mod client {
    const WHY: &str = "this build of ledtrad-agent has no API client (the device build leaves it out)";

    pub fn explain(decision: u64, api: std::net::SocketAddr) -> anyhow::Result<()> {
        anyhow::bail!("{WHY}; read the decision with `curl http://{api}/v1/decisions/{decision}`, or use a build with the default features")
    }

    pub fn follow_events(api: std::net::SocketAddr, _after: Option<&str>) -> anyhow::Result<()> {
        anyhow::bail!(
            "{WHY}; follow the events with `curl -N http://{api}/v1/events`, or use a build with the default features"
        )
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
