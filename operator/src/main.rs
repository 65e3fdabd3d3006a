//! `ledtrad-op`: operator tools for ledtrad fleets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ledtrad_operator::load::LoadError;
use ledtrad_operator::{load_catalogue, push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::{FleetId, KeyId, UnixTime};

/// Write, check, sign and push ledtrad offer catalogues.
#[derive(Parser)]
#[command(name = "ledtrad-op", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 operator key: ID.key (secret, mode 0600) and ID.pub (pin it in agent configs).
    Keygen {
        /// Directory to write the key files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The key id agents pin the public key under.
        #[arg(long, default_value = "operator")]
        id: KeyId,
    },
    /// Work with catalogues.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
}

#[derive(Subcommand)]
enum CatalogueCommand {
    /// Check a catalogue (TOML or JSON): prints a summary, or every problem and exits 1.
    Check {
        /// The catalogue file.
        file: PathBuf,
    },
    /// Sign a catalogue and publish it retained (QoS 1) on the fleet's catalogue topic.
    Push {
        /// The catalogue file.
        file: PathBuf,
        /// The fleet to push to.
        #[arg(long)]
        fleet: FleetId,
        /// The secret key file written by `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// The catalogue version; must be higher than the version devices have applied.
        #[arg(long)]
        version: u64,
        /// The broker, as mqtt://HOST:PORT.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerUrl,
        /// Days until devices stop accepting this envelope.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3650))]
        expires_in_days: u64,
    },
}

fn now() -> UnixTime {
    UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen { out, id } => {
            let key = OperatorKey::generate(id);
            let (secret, public) = key.save(&out)?;
            println!("wrote {} (secret: keep it private) and {}", secret.display(), public.display());
            println!(
                "pin it in each agent config:\n\n[[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"",
                key.id,
                key.public_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalogue(CatalogueCommand::Check { file }) => match load_catalogue(&file, Some(now())) {
            Ok(catalogue) => {
                println!("{}", summary(&file, &catalogue));
                Ok(ExitCode::SUCCESS)
            }
            Err(err @ LoadError::Problems { .. }) => {
                eprintln!("{err}");
                Ok(ExitCode::from(1))
            }
            Err(err) => Err(err.into()),
        },
        Command::Catalogue(CatalogueCommand::Push { file, fleet, key, version, broker, expires_in_days }) => {
            let catalogue = load_catalogue(&file, Some(now()))?;
            let key = OperatorKey::load(&key)?;
            let issued_at = now();
            let options = SignOptions {
                fleet: fleet.clone(),
                version,
                issued_at,
                expires_at: issued_at.plus_secs(expires_in_days * 86_400),
            };
            let envelope = sign_catalogue(&catalogue, &key, &options)?;
            let size = envelope.len();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(push_envelope(
                &broker,
                &fleet,
                envelope,
                &format!("ledtrad-op-{}", std::process::id()),
            ))?;
            println!(
                "pushed catalogue '{}' version {version} ({} offers, {size} bytes, key '{}', expires {}) to fleet '{fleet}' on {broker}",
                file.display(),
                catalogue.offers.len(),
                key.id,
                options.expires_at
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn summary(file: &std::path::Path, catalogue: &ledtrad_protocol::catalogue::Catalogue) -> String {
    let count = |kind| catalogue.offers.iter().filter(|o| o.device_kinds.contains(&kind)).count();
    let personalised = catalogue.offers.iter().filter(|o| o.personalised).count();
    let campaigns: std::collections::BTreeSet<_> = catalogue.offers.iter().map(|o| o.campaign.as_str()).collect();
    format!(
        "ok: '{}' — {} offers in {} campaigns (fridge {}, ereader {}, lock_screen {}; {} need personalise), {} consent prompts",
        file.display(),
        catalogue.offers.len(),
        campaigns.len(),
        count(ledtrad_protocol::DeviceKind::Fridge),
        count(ledtrad_protocol::DeviceKind::Ereader),
        count(ledtrad_protocol::DeviceKind::LockScreen),
        personalised,
        catalogue.prompts.len()
    )
}
