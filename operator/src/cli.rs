//! `ledtrad-op`'s command line: the commands and their arguments (clap), and the small steps
//! they share (signing options, publishing, keeping, the broker login).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ledtrad_mqtt::{Access, ClientCert, ClientTls, TlsFiles};
use ledtrad_operator::collect::ReportsAt;
use ledtrad_operator::mqtt::read_login;
use ledtrad_operator::reports::DEFAULT_MIN_DEVICES;
use ledtrad_operator::{publish_retained_as, KeepEnd, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{CampaignId, FleetId, KeyId, UnixTime};

/// Write, check, sign and push ledtrad offer catalogues and scoring models.
#[derive(Parser)]
#[command(name = "ledtrad-op", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate an Ed25519 operator key: ID.key (secret, mode 0600) and ID.pub (pin it in agent configs).
    Keygen {
        /// Directory to write the key files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The key id agents pin the public key under.
        #[arg(long, default_value = "operator")]
        id: KeyId,
    },
    /// Rotate operator keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with catalogues.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// Work with the fleet's scoring model (a TensorFlow Lite file and its manifest).
    #[command(subcommand)]
    Model(ModelCommand),
    /// Roll a catalogue out in stages: a canary share of the fleet first, wider, then all, or
    /// back to the previous catalogue. Watch it with `ledtrad-op status`.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// The fleet's PKI for mutual TLS: a CA, and certificates for the broker, devices, the
    /// operator and report collectors (keys written 0600, never over an existing file).
    #[command(subcommand)]
    Certs(crate::certs_cli::CertsCommand),
    /// Publish a pre-signed envelope (from `catalogue sign` or `model sign`) retained on its
    /// fleet's topic, after showing what it is; refused when it has expired or is not newer
    /// than what the fleet's devices report.
    Publish(PublishArgs),
    /// Read the fleet's devices' retained statuses and count them by catalogue and model
    /// version, connection, and refusal reason.
    Status {
        #[command(flatten)]
        watch: WatchArgs,
        /// Print one line of JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Read what worked: a campaign's devices, accept and conversion rates per arm with 95%
    /// intervals, and its uplift over the holdout, from the reports the fleet sent. Arms and
    /// days with fewer than --min-devices devices are suppressed.
    Report(ReportArgs),
    /// Run the offer service: answer devices' offer requests (MQTT 5 request/response, shared
    /// among instances as $share/ledtrad-offers/ledtrad/v1/offers/request) from a catalogue,
    /// and/or collect the fleets' reports into SQLite for `ledtrad-op report`. Runs until
    /// Ctrl-C, then prints what it did as JSON.
    Serve(ServeArgs),
}

/// What the offer service answers with and where it stores reports.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("work").required(true).multiple(true).args(["catalogue", "reports"])))]
pub(crate) struct ServeArgs {
    /// The broker, as mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (MQTT 5).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub(crate) broker: BrokerUrl,
    #[command(flatten)]
    pub(crate) login: LoginArgs,
    /// Answer offer requests from this catalogue (TOML or JSON; checked as by `catalogue check`).
    #[arg(long)]
    pub(crate) catalogue: Option<PathBuf>,
    /// The most candidates in one answer (devices take at most 32).
    #[arg(long, default_value_t = ledtrad_operator::serve::DEFAULT_MAX_OFFERS)]
    pub(crate) max_offers: usize,
    /// Store the fleets' reports in this SQLite file (created if missing; one collector per
    /// broker), or in PostgreSQL as postgres://USER@HOST:PORT/DATABASE (the database must
    /// exist; its table is made on first use). Collectors on PostgreSQL share the reports
    /// through the broker's shared subscription $share/ledtrad-collectors/…, so several can
    /// run at once, each with its own --instance; each report is stored once.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) reports: Option<ReportsAt>,
    /// A name for this instance, unique among those on the broker (default: `collector` with
    /// --reports, whose broker session keeps the reports sent while it is stopped and so must
    /// keep its name from run to run; otherwise from the process id).
    /// Reports flow only while a collector is present: it announces itself, retained, on
    /// ledtrad/v1/collector/NAME, and devices keep their reports while none does.
    #[arg(long)]
    pub(crate) instance: Option<ledtrad_protocol::InstanceId>,
}

/// Which campaign's reports to read, and how to show them.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// The report database, written by `ledtrad-op serve --reports FILE`: that file, or the
    /// PostgreSQL URL the collectors write into (postgres://USER@HOST:PORT/DATABASE).
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) db: ReportsAt,
    /// The campaign (without it: the campaigns in the database, with their reports and days).
    #[arg(long)]
    pub(crate) campaign: Option<CampaignId>,
    /// Only the reports of this fleet (default: every fleet's).
    #[arg(long)]
    pub(crate) fleet: Option<FleetId>,
    /// The fewest devices an arm, or an arm's day, needs to be shown.
    #[arg(
        long,
        default_value_t = DEFAULT_MIN_DEVICES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub(crate) min_devices: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write a self-contained HTML page: the table and a plot of the daily rates.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
}

/// Which fleet's statuses to read, where, and for how long.
#[derive(clap::Args)]
pub(crate) struct WatchArgs {
    /// The fleet.
    #[arg(long)]
    pub(crate) fleet: FleetId,
    /// The broker, as mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (with --ca-file).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub(crate) broker: BrokerUrl,
    #[command(flatten)]
    pub(crate) login: LoginArgs,
    /// Seconds to collect statuses for (retained ones arrive at once; the rest as devices
    /// report).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) wait: u64,
    /// Stop as soon as this many of the fleet's devices have reported.
    #[arg(long)]
    pub(crate) expect: Option<usize>,
}

impl WatchArgs {
    /// Collects the statuses, with a progress bar (a spinner without --expect).
    pub(crate) fn collect(&self) -> anyhow::Result<ledtrad_operator::status::Statuses> {
        let access = self.login.access(&self.broker)?;
        let progress = match self.expect {
            Some(n) => indicatif::ProgressBar::new(u64::try_from(n).unwrap_or(u64::MAX)),
            None => indicatif::ProgressBar::new_spinner(),
        };
        progress.enable_steady_tick(std::time::Duration::from_millis(120));
        progress.set_message(format!("reading statuses of fleet '{}' on {}", self.fleet, self.broker));
        let client = format!("ledtrad-op-status-{}", std::process::id());
        let statuses = block_on(ledtrad_operator::status::watch_statuses_as(
            &self.broker,
            &access,
            &client,
            std::time::Duration::from_secs(self.wait),
            |seen| {
                let n = seen.values().filter(|s| s.fleet == self.fleet).count();
                progress.set_position(u64::try_from(n).unwrap_or(u64::MAX));
                progress.set_message(format!("{n} device(s) of fleet '{}' reported", self.fleet));
                self.expect.is_some_and(|e| n >= e)
            },
        ))??;
        progress.finish_and_clear();
        Ok(statuses)
    }
}

#[derive(Subcommand)]
pub(crate) enum RolloutCommand {
    /// Sign FILE as --version for a canary share of the fleet and publish it: the devices whose
    /// pseudonym hashes below the share apply it, the others keep their catalogue.
    Start {
        /// The catalogue file.
        file: PathBuf,
        /// The share of devices that apply it, e.g. 5% or 0.05.
        #[arg(long, value_parser = parse_share)]
        canary: f64,
        #[command(flatten)]
        push: PushArgs,
    },
    /// Widen the rollout: the same FILE and --version to a larger share (the devices already
    /// in keep it).
    Advance {
        /// The catalogue file being rolled out.
        file: PathBuf,
        /// The new share, e.g. 50%.
        #[arg(long, value_parser = parse_share)]
        to: f64,
        #[command(flatten)]
        push: PushArgs,
    },
    /// Complete the rollout: the same FILE and --version to every device.
    Complete {
        /// The catalogue file being rolled out.
        file: PathBuf,
        #[command(flatten)]
        push: PushArgs,
    },
    /// How the rollout of --version stands: devices that applied it, wait for their share,
    /// refused it, have not heard of it, or are offline. With --abort-if-refused, aborts when
    /// more of the devices it reached refused it (exit code 1 after an abort).
    Status(RolloutStatusArgs),
    /// Abort the rollout: the PREVIOUS catalogue, signed with a --version above the rollout's,
    /// to every device, so the canary returns to the previous offers.
    Abort {
        /// The catalogue devices had before the rollout.
        previous: PathBuf,
        #[command(flatten)]
        push: PushArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a new key to take over from OLD and print the steps, with the agent config
    /// entries for each: pin both, sign with the new one, retire the old one.
    Rotate {
        /// The old key's public file (ID.pub, as written by keygen).
        #[arg(long)]
        old: PathBuf,
        /// Directory to write the new key files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The new key's id.
        #[arg(long)]
        id: KeyId,
    },
}

#[derive(Subcommand)]
pub(crate) enum ModelCommand {
    /// Check a model and its manifest the way devices will: prints a summary, or every problem and exits 1.
    Check {
        /// The .tflite file.
        file: PathBuf,
        /// The manifest naming the model's inputs (default: the file name with .toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
    },
    /// Check and sign a model into an envelope file, on a machine without a broker; publish it
    /// later with `ledtrad-op publish`.
    Sign {
        /// The .tflite file.
        file: PathBuf,
        /// The manifest naming the model's inputs (default: the file name with .toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        sign: SignArgs,
        /// The envelope file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check, sign and publish a model retained (QoS 1) on the fleet's model topic.
    Push {
        /// The .tflite file.
        file: PathBuf,
        /// The manifest naming the model's inputs (default: the file name with .toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        push: PushArgs,
    },
}

/// How to sign an envelope: for which fleet, with which key, as which version, for how long.
#[derive(clap::Args)]
pub(crate) struct SignArgs {
    /// The fleet it is for.
    #[arg(long)]
    pub(crate) fleet: FleetId,
    /// The secret key file written by `keygen`.
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// The version; must be higher than the version devices have applied.
    #[arg(long)]
    pub(crate) version: u64,
    /// Days until devices stop accepting this envelope (default: 30 for catalogues, 90 for models).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub(crate) expires_in_days: Option<u64>,
}

impl SignArgs {
    /// The key and the signing options, with `default_days` of validity unless given.
    pub(crate) fn sign_with(&self, default_days: u64) -> anyhow::Result<(OperatorKey, SignOptions)> {
        let key = OperatorKey::load(&self.key)?;
        let issued_at = now();
        let days = self.expires_in_days.unwrap_or(default_days);
        let options = SignOptions {
            fleet: self.fleet.clone(),
            version: self.version,
            issued_at,
            expires_at: issued_at.plus_secs(days * 86_400),
        };
        Ok((key, options))
    }
}

/// Where and how to push a signed envelope: signed here and now, then published.
#[derive(clap::Args)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    pub(crate) sign: SignArgs,
    #[command(flatten)]
    pub(crate) to: BrokerArgs,
}

/// The broker an envelope is published on, and whether to keep it there.
#[derive(clap::Args)]
pub(crate) struct BrokerArgs {
    /// The broker, as mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (with --ca-file).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub(crate) broker: BrokerUrl,
    #[command(flatten)]
    pub(crate) login: LoginArgs,
    /// After the push, stay connected and publish the envelope again whenever the broker comes
    /// back without it (the embedded broker keeps retained messages in memory only, and loses
    /// them when it restarts), until Ctrl-C, or until another envelope is pushed in its place
    /// or the retained one is cleared.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// `ledtrad-op publish`: a pre-signed envelope, and how long to read the fleet's statuses.
#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    /// The envelope file, written by `catalogue sign` or `model sign`.
    pub(crate) envelope: PathBuf,
    #[command(flatten)]
    pub(crate) to: BrokerArgs,
    /// Seconds to read the fleet's retained statuses for, to refuse an envelope that is not
    /// newer than what its devices report.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) wait: u64,
}

impl BrokerArgs {
    /// Publishes `envelope` retained on `topic` with QoS 1, logged in where asked.
    pub(crate) fn publish(&self, topic: &Topic, envelope: Vec<u8>) -> anyhow::Result<()> {
        let access = self.login.access(&self.broker)?;
        let client = format!("ledtrad-op-{}", std::process::id());
        Ok(block_on(publish_retained_as(&self.broker, &access, topic, envelope, &client))??)
    }

    /// With --keep, keeps `envelope` (`what`, pushed already) retained on `topic` until Ctrl-C
    /// or until it is replaced or cleared, and says how that went.
    pub(crate) fn keep_if_asked(&self, topic: &Topic, envelope: Vec<u8>, what: &str) -> anyhow::Result<()> {
        if !self.keep {
            return Ok(());
        }
        let access = self.login.access(&self.broker)?;
        let client = format!("ledtrad-op-keep-{}", std::process::id());
        let broker = &self.broker;
        eprintln!("keeping {what} retained on {broker} until Ctrl-C");
        let again = |n: u64| eprintln!("the broker came back without {what}; pushed it again ({n} so far)");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let kept =
            block_on(ledtrad_operator::keep_retained(broker, &access, topic, envelope, &client, again, shutdown))??;
        let why = match kept.ended {
            KeepEnd::Stopped => "stopped".to_string(),
            KeepEnd::Replaced => format!("another envelope was pushed to '{topic}' in its place"),
            KeepEnd::Cleared => format!("the retained message on '{topic}' was cleared"),
        };
        println!("kept {what} retained on {broker}; pushed it again {} time(s); {why}", kept.republished);
        Ok(())
    }
}

/// How to log in to the broker: a password, a client certificate (mutual TLS), or neither.
#[derive(Clone, clap::Args)]
pub(crate) struct LoginArgs {
    /// The broker username (e.g. operator); needs --password-file. Without both, no login.
    #[arg(long, requires = "password_file")]
    pub(crate) username: Option<String>,
    /// A file holding the broker password on one line (mode 0600); needs --username.
    #[arg(long, requires = "username")]
    pub(crate) password_file: Option<PathBuf>,
    /// For an mqtts:// broker: the CA certificate (PEM) that signed the broker's certificate.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
    /// For mutual TLS: this client's certificate (PEM; `ledtrad-op certs operator` or
    /// `certs collector` writes one); needs --key-file and --ca-file.
    #[arg(long, value_name = "PEM", requires_all = ["key_file", "ca_file"])]
    pub(crate) cert_file: Option<PathBuf>,
    /// For mutual TLS: the private key of --cert-file (PEM, mode 0600).
    #[arg(long, value_name = "PEM", requires = "cert_file")]
    pub(crate) key_file: Option<PathBuf>,
}

impl LoginArgs {
    /// What to present to `broker`: the login, if --username and --password-file were given,
    /// and the TLS files, read and checked (and fitting the broker's scheme).
    pub(crate) fn access(&self, broker: &BrokerUrl) -> anyhow::Result<Access> {
        let login = match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => Some(read_login(username, file)?),
            _ => None,
        };
        let tls = match &self.ca_file {
            None => None,
            Some(ca) => {
                let client =
                    self.cert_file.clone().zip(self.key_file.clone()).map(|(cert, key)| ClientCert { cert, key });
                Some(ClientTls::load(&TlsFiles { ca: ca.clone(), client })?)
            }
        };
        let access = Access { login, tls };
        access.check(broker)?;
        Ok(access)
    }
}

#[derive(Subcommand)]
pub(crate) enum CatalogueCommand {
    /// Check a catalogue (TOML or JSON): prints a summary, or every problem and exits 1.
    Check {
        /// The catalogue file.
        file: PathBuf,
    },
    /// Check and sign a catalogue into an envelope file, on a machine without a broker;
    /// publish it later with `ledtrad-op publish`. With --share, a staged rollout's stage.
    Sign {
        /// The catalogue file.
        file: PathBuf,
        #[command(flatten)]
        sign: SignArgs,
        /// For a staged rollout: the share of devices that apply it, e.g. 5% (sign one
        /// envelope per stage, and the last without --share).
        #[arg(long, value_parser = parse_share)]
        share: Option<f64>,
        /// The envelope file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a catalogue and publish it retained (QoS 1) on the fleet's catalogue topic.
    Push {
        /// The catalogue file.
        file: PathBuf,
        #[command(flatten)]
        push: PushArgs,
    },
    /// Show what changes for devices from OLD to NEW: offers, campaigns and prompts added,
    /// removed or changed field by field, the policy, and the device kinds reached. Exits 0
    /// when nothing changes, 1 when something does (as diff does).
    Diff {
        /// The catalogue devices have now.
        old: PathBuf,
        /// The catalogue to push.
        new: PathBuf,
        /// Print one line of JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of `rollout status`.
#[derive(clap::Args)]
pub(crate) struct RolloutStatusArgs {
    #[command(flatten)]
    pub(crate) watch: WatchArgs,
    /// The version rolling out.
    #[arg(long)]
    pub(crate) version: u64,
    /// Abort when more than this share of the devices reached refused it, e.g. 2%.
    #[arg(long, value_parser = parse_share, requires_all = ["previous", "key", "abort_version"])]
    pub(crate) abort_if_refused: Option<f64>,
    /// Abort when the devices on --version dismiss offers more than this many times as often
    /// as the rest of the fleet, e.g. 1.5x (from the reports in --reports).
    #[arg(long, value_parser = parse_ratio, requires_all = ["reports", "previous", "key", "abort_version"])]
    pub(crate) abort_if_dismissals: Option<f64>,
    /// The report database `ledtrad-op serve --reports FILE|URL` writes, for
    /// --abort-if-dismissals.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) reports: Option<ReportsAt>,
    /// The impressions each side (the version's devices, the rest) needs before
    /// --abort-if-dismissals judges.
    #[arg(long, default_value_t = ledtrad_operator::canary::DEFAULT_MIN_IMPRESSIONS)]
    pub(crate) min_impressions: f64,
    /// The catalogue to go back to on an abort.
    #[arg(long)]
    pub(crate) previous: Option<PathBuf>,
    /// The secret key to sign the abort with.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// The version to sign the previous catalogue as on an abort (above --version).
    #[arg(long)]
    pub(crate) abort_version: Option<u64>,
    /// Print one line of JSON instead.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A share of the fleet, as `5%` or `0.05`.
fn parse_share(text: &str) -> Result<f64, String> {
    let share = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a share; write it as 5% or 0.05"))?;
    if share > 0.0 && share <= 1.0 {
        Ok(share)
    } else {
        Err(format!("{text:?} is not above 0% and at most 100%"))
    }
}

/// A ratio such as 1.5x or 1.5, above 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix(['x', '×']).unwrap_or(text.trim());
    match number.trim().parse::<f64>() {
        Ok(ratio) if ratio.is_finite() && ratio > 1.0 => Ok(ratio),
        Ok(_) => Err(format!("{text:?} is not above 1; write how many times as often, e.g. 1.5x")),
        Err(_) => Err(format!("{text:?} is not a ratio; write it as 1.5x or 1.5")),
    }
}

pub(crate) fn now() -> UnixTime {
    UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// Runs one MQTT operation to completion.
pub(crate) fn block_on<T>(future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}
