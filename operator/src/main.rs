//! `ledtrad-op`: operator tools for ledtrad fleets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ledtrad_model::RuntimeKind;
use ledtrad_operator::load::LoadError;
use ledtrad_operator::model::{default_manifest, load_model, sign_model, CheckedModel, ModelLoadError};
use ledtrad_operator::mqtt::read_login;
use ledtrad_operator::reports::DEFAULT_MIN_DEVICES;
use ledtrad_operator::{load_catalogue, publish_retained_as, KeepEnd, OperatorKey, SignOptions};
use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use ledtrad_protocol::envelope::Rollout;
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{CampaignId, FleetId, KeyId, UnixTime};

/// Write, check, sign and push ledtrad offer catalogues and scoring models.
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
struct ServeArgs {
    /// The broker, as mqtt://HOST:PORT (MQTT 5).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: BrokerUrl,
    #[command(flatten)]
    login: LoginArgs,
    /// Answer offer requests from this catalogue (TOML or JSON; checked as by `catalogue check`).
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// The most candidates in one answer (devices take at most 32).
    #[arg(long, default_value_t = ledtrad_operator::serve::DEFAULT_MAX_OFFERS)]
    max_offers: usize,
    /// Store the fleets' reports in this SQLite file (created if missing). Reports are not
    /// shared among instances: run one collector per broker.
    #[arg(long, value_name = "FILE")]
    reports: Option<PathBuf>,
    /// A name for this instance, unique among those on the broker (default: `collector` with
    /// --reports, whose broker session keeps the reports sent while it is stopped and so must
    /// keep its name from run to run; otherwise from the process id).
    /// Reports flow only while a collector is present: it announces itself, retained, on
    /// ledtrad/v1/collector/NAME, and devices keep their reports while none does.
    #[arg(long)]
    instance: Option<ledtrad_protocol::InstanceId>,
}

/// Which campaign's reports to read, and how to show them.
#[derive(clap::Args)]
struct ReportArgs {
    /// The report database, written by `ledtrad-op serve --reports FILE`.
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// The campaign.
    #[arg(long)]
    campaign: CampaignId,
    /// Only the reports of this fleet (default: every fleet's).
    #[arg(long)]
    fleet: Option<FleetId>,
    /// The fewest devices an arm, or an arm's day, needs to be shown.
    #[arg(
        long,
        default_value_t = DEFAULT_MIN_DEVICES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    min_devices: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page: the table and a plot of the daily rates.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// Which fleet's statuses to read, where, and for how long.
#[derive(clap::Args)]
struct WatchArgs {
    /// The fleet.
    #[arg(long)]
    fleet: FleetId,
    /// The broker, as mqtt://HOST:PORT.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: BrokerUrl,
    #[command(flatten)]
    login: LoginArgs,
    /// Seconds to collect statuses for (retained ones arrive at once; the rest as devices
    /// report).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=3600))]
    wait: u64,
    /// Stop as soon as this many of the fleet's devices have reported.
    #[arg(long)]
    expect: Option<usize>,
}

impl WatchArgs {
    /// Collects the statuses, with a progress bar (a spinner without --expect).
    fn collect(&self) -> anyhow::Result<ledtrad_operator::status::Statuses> {
        let login = self.login.credentials()?;
        let progress = match self.expect {
            Some(n) => indicatif::ProgressBar::new(u64::try_from(n).unwrap_or(u64::MAX)),
            None => indicatif::ProgressBar::new_spinner(),
        };
        progress.enable_steady_tick(std::time::Duration::from_millis(120));
        progress.set_message(format!("reading statuses of fleet '{}' on {}", self.fleet, self.broker));
        let client = format!("ledtrad-op-status-{}", std::process::id());
        let statuses = block_on(ledtrad_operator::status::watch_statuses_as(
            &self.broker,
            login.as_ref(),
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
enum RolloutCommand {
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
    Status {
        #[command(flatten)]
        watch: WatchArgs,
        /// The version rolling out.
        #[arg(long)]
        version: u64,
        /// Abort when more than this share of the devices reached refused it, e.g. 2%.
        #[arg(long, value_parser = parse_share, requires_all = ["previous", "key", "abort_version"])]
        abort_if_refused: Option<f64>,
        /// Abort when the devices on --version dismiss offers more than this many times as often
        /// as the rest of the fleet, e.g. 1.5x (from the reports in --reports).
        #[arg(long, value_parser = parse_ratio, requires_all = ["reports", "previous", "key", "abort_version"])]
        abort_if_dismissals: Option<f64>,
        /// The report database `ledtrad-op serve --reports FILE` writes, for --abort-if-dismissals.
        #[arg(long, value_name = "FILE")]
        reports: Option<PathBuf>,
        /// The impressions each side (the version's devices, the rest) needs before
        /// --abort-if-dismissals judges.
        #[arg(long, default_value_t = ledtrad_operator::canary::DEFAULT_MIN_IMPRESSIONS)]
        min_impressions: f64,
        /// The catalogue to go back to on an abort.
        #[arg(long)]
        previous: Option<PathBuf>,
        /// The secret key to sign the abort with.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The version to sign the previous catalogue as on an abort (above --version).
        #[arg(long)]
        abort_version: Option<u64>,
        /// Print one line of JSON instead.
        #[arg(long)]
        json: bool,
    },
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
enum KeysCommand {
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
enum ModelCommand {
    /// Check a model and its manifest the way devices will: prints a summary, or every problem and exits 1.
    Check {
        /// The .tflite file.
        file: PathBuf,
        /// The manifest naming the model's inputs (default: the file name with .toml).
        #[arg(long)]
        manifest: Option<PathBuf>,
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

/// Where and how to push a signed envelope.
#[derive(clap::Args)]
struct PushArgs {
    /// The fleet to push to.
    #[arg(long)]
    fleet: FleetId,
    /// The secret key file written by `keygen`.
    #[arg(long)]
    key: PathBuf,
    /// The version; must be higher than the version devices have applied.
    #[arg(long)]
    version: u64,
    /// The broker, as mqtt://HOST:PORT.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: BrokerUrl,
    #[command(flatten)]
    login: LoginArgs,
    /// Days until devices stop accepting this envelope (default: 30 for catalogues, 90 for models).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3650))]
    expires_in_days: Option<u64>,
    /// After the push, stay connected and publish the envelope again whenever the broker comes
    /// back without it (the embedded broker keeps retained messages in memory only, and loses
    /// them when it restarts), until Ctrl-C, or until another envelope is pushed in its place
    /// or the retained one is cleared.
    #[arg(long)]
    keep: bool,
}

impl PushArgs {
    /// The key and the signing options, with `default_days` of validity unless given.
    fn sign_with(&self, default_days: u64) -> anyhow::Result<(OperatorKey, SignOptions)> {
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

    /// Publishes `envelope` retained on `topic` with QoS 1, logged in where asked.
    fn publish(&self, topic: &Topic, envelope: Vec<u8>) -> anyhow::Result<()> {
        let login = self.login.credentials()?;
        let client = format!("ledtrad-op-{}", std::process::id());
        Ok(block_on(publish_retained_as(&self.broker, login.as_ref(), topic, envelope, &client))??)
    }

    /// With --keep, keeps `envelope` (`what`, pushed already) retained on `topic` until Ctrl-C
    /// or until it is replaced or cleared, and says how that went.
    fn keep_if_asked(&self, topic: &Topic, envelope: Vec<u8>, what: &str) -> anyhow::Result<()> {
        if !self.keep {
            return Ok(());
        }
        let login = self.login.credentials()?;
        let client = format!("ledtrad-op-keep-{}", std::process::id());
        let broker = &self.broker;
        eprintln!("keeping {what} retained on {broker} until Ctrl-C");
        let again = |n: u64| eprintln!("the broker came back without {what}; pushed it again ({n} so far)");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let kept = block_on(ledtrad_operator::keep_retained(
            broker,
            login.as_ref(),
            topic,
            envelope,
            &client,
            again,
            shutdown,
        ))??;
        let why = match kept.ended {
            KeepEnd::Stopped => "stopped".to_string(),
            KeepEnd::Replaced => format!("another envelope was pushed to '{topic}' in its place"),
            KeepEnd::Cleared => format!("the retained message on '{topic}' was cleared"),
        };
        println!("kept {what} retained on {broker}; pushed it again {} time(s); {why}", kept.republished);
        Ok(())
    }
}

/// How to log in to the broker.
#[derive(clap::Args)]
struct LoginArgs {
    /// The broker username (e.g. operator); needs --password-file. Without both, no login.
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// A file holding the broker password on one line (mode 0600); needs --username.
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
}

impl LoginArgs {
    /// The broker login, if --username and --password-file were given.
    fn credentials(&self) -> anyhow::Result<Option<Credentials>> {
        match (&self.username, &self.password_file) {
            (Some(username), Some(file)) => Ok(Some(read_login(username, file)?)),
            _ => Ok(None),
        }
    }
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

/// Signs the catalogue in `file` (for a share of the fleet in a staged rollout) and publishes
/// it retained on the fleet's catalogue topic.
fn push_catalogue(file: &std::path::Path, push: &PushArgs, rollout: Option<Rollout>) -> anyhow::Result<ExitCode> {
    let catalogue = load_catalogue(file, Some(now()))?;
    let (key, options) = push.sign_with(30)?;
    let (fleet, version, broker) = (&push.fleet, push.version, &push.broker);
    let envelope = ledtrad_operator::sign::sign_rollout(&catalogue, &key, &options, rollout)?;
    let size = envelope.len();
    let topic = Topic::Catalogue(fleet.clone());
    push.publish(&topic, envelope.clone())?;
    let reach =
        rollout.map_or_else(|| "every device".to_string(), |r| format!("{:.0}% of the devices", r.share * 100.0));
    println!(
        "pushed catalogue '{}' version {version} ({} offers, {size} bytes, key '{}', expires {}) to {reach} of fleet '{fleet}' on {broker}",
        file.display(),
        catalogue.offers.len(),
        key.id,
        options.expires_at
    );
    push.keep_if_asked(&topic, envelope, &format!("catalogue version {version}"))?;
    Ok(ExitCode::SUCCESS)
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
        Command::Keys(KeysCommand::Rotate { old, out, id }) => {
            let old = OperatorKey::load_public(&old)?;
            anyhow::ensure!(old.id != id, "the new key needs an id of its own; '{id}' is the old key's");
            let key = OperatorKey::generate(id);
            let (secret, public) = key.save(&out)?;
            println!("wrote {} (secret: keep it private) and {}\n", secret.display(), public.display());
            print!("{}", ledtrad_operator::keys::rotation_steps(&key.public_entry(), &secret, &old));
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { watch, json } => {
            let summary = ledtrad_operator::status::summarise(&watch.collect()?, &watch.fleet);
            if json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print!("{summary}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollout(RolloutCommand::Status {
            watch,
            version,
            abort_if_refused,
            abort_if_dismissals,
            reports,
            min_impressions,
            previous,
            key,
            abort_version,
            json,
        }) => {
            // The report database first: a wrong path fails before waiting on the broker.
            let dismissals = match &reports {
                None => None,
                Some(file) => {
                    let store = ledtrad_operator::report::open_existing(file)?;
                    let fleet_reports = store.fleet(&watch.fleet)?;
                    Some(ledtrad_operator::canary::compare_dismissals(&fleet_reports, version, min_impressions))
                }
            };
            let progress = ledtrad_operator::status::rollout_progress(&watch.collect()?, &watch.fleet, version);
            if json {
                let mut value = serde_json::to_value(&progress)?;
                if let (Some(d), Some(object)) = (&dismissals, value.as_object_mut()) {
                    object.insert("dismissals".into(), serde_json::to_value(d)?);
                }
                println!("{value}");
            } else {
                print!("{progress}");
                if let Some(d) = &dismissals {
                    print!("{d}");
                }
            }
            let refused = abort_if_refused.filter(|limit| progress.over_refusal_limit(*limit)).map(|limit| {
                format!(
                    "{:.1}% of the devices reached refused version {version}, over the {:.1}% limit",
                    progress.refused_share * 100.0,
                    limit * 100.0
                )
            });
            let dismissed = abort_if_dismissals
                .zip(dismissals.as_ref())
                .filter(|(limit, d)| d.over_dismiss_limit(*limit))
                .map(|(limit, d)| {
                    format!(
                        "the devices on version {version} dismiss {:.2}× as often as the rest, over the {limit}× limit",
                        d.ratio.unwrap_or_default()
                    )
                });
            let Some(why) = refused.or(dismissed) else { return Ok(ExitCode::SUCCESS) };
            // Over a limit: the previous catalogue goes back out to every device.
            let (Some(previous), Some(key), Some(abort_version)) = (previous, key, abort_version) else {
                anyhow::bail!("an abort needs --previous, --key and --abort-version");
            };
            eprintln!("{why}: aborting");
            let push = PushArgs {
                fleet: watch.fleet,
                key,
                version: abort_version,
                broker: watch.broker,
                login: watch.login,
                expires_in_days: None,
                keep: false,
            };
            push_catalogue(&previous, &push, None)?;
            Ok(ExitCode::from(1))
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
        Command::Catalogue(CatalogueCommand::Diff { old, new, json }) => {
            // Both are read as devices parse them; the old one may well have ended by now.
            let (old, new) = (load_catalogue(&old, None)?, load_catalogue(&new, None)?);
            let changes = ledtrad_operator::diff::diff(&old, &new);
            if json {
                println!("{}", serde_json::to_string(&changes)?);
            } else {
                print!("{changes}");
            }
            Ok(ExitCode::from(u8::from(!changes.is_empty())))
        }
        Command::Model(ModelCommand::Check { file, manifest }) => {
            let manifest = manifest.unwrap_or_else(|| default_manifest(&file));
            match load_model(&file, &manifest) {
                Ok(model) => {
                    println!("{}", model_summary(&file, &model));
                    Ok(ExitCode::SUCCESS)
                }
                Err(err @ ModelLoadError::Problems { .. }) => {
                    eprintln!("{err}");
                    Ok(ExitCode::from(1))
                }
                Err(err) => Err(err.into()),
            }
        }
        Command::Model(ModelCommand::Push { file, manifest, push }) => {
            let manifest = manifest.unwrap_or_else(|| default_manifest(&file));
            let model = load_model(&file, &manifest)?;
            let (key, options) = push.sign_with(90)?;
            let (fleet, version, broker) = (&push.fleet, push.version, &push.broker);
            let envelope = sign_model(&model, &key, &options)?;
            let size = envelope.len();
            let topic = Topic::Model(fleet.clone());
            push.publish(&topic, envelope.clone())?;
            println!(
                "pushed model '{}' ('{}', {} inputs) version {version} ({size} bytes, key '{}', expires {}) to fleet '{fleet}' on {broker}",
                file.display(),
                model.manifest.name,
                model.manifest.inputs.len(),
                key.id,
                options.expires_at
            );
            push.keep_if_asked(&topic, envelope, &format!("model version {version}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(args),
        Command::Report(args) => {
            let summary = ledtrad_operator::report::load_summary(
                &args.db,
                &args.campaign,
                args.fleet.as_ref(),
                args.min_devices,
            )?;
            if let Some(page) = &args.html {
                ledtrad_operator::html::write_page(page, &summary)?;
            }
            if args.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print!("{summary}");
            }
            if let Some(page) = &args.html {
                // On stderr, so that stdout stays one JSON object with --json.
                eprintln!("wrote the report page '{}'", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalogue(CatalogueCommand::Push { file, push }) => push_catalogue(&file, &push, None),
        Command::Rollout(RolloutCommand::Start { file, canary, push }) => {
            push_catalogue(&file, &push, Some(Rollout { share: canary }))
        }
        Command::Rollout(RolloutCommand::Advance { file, to, push }) => {
            push_catalogue(&file, &push, Some(Rollout { share: to }))
        }
        Command::Rollout(RolloutCommand::Complete { file, push } | RolloutCommand::Abort { previous: file, push }) => {
            push_catalogue(&file, &push, None)
        }
    }
}

/// `ledtrad-op serve`: the offer service and report collector, until Ctrl-C.
fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use ledtrad_operator::serve::{Counters, OfferService, ServeOptions};
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,rumqttc=warn".into()),
        )
        .init();
    let service = match &args.catalogue {
        None => None,
        Some(file) => {
            let catalogue = load_catalogue(file, Some(now()))?;
            let service = OfferService::new(catalogue, args.max_offers)
                .with_context(|| format!("catalogue '{}'", file.display()))?;
            tracing::info!(offers = service.len(), catalogue = %file.display(), "answering offer requests");
            Some(service)
        }
    };
    let reports = match &args.reports {
        None => None,
        Some(file) => {
            let store = ledtrad_operator::collect::ReportStore::open(file)?;
            tracing::info!(stored = store.count()?, reports = %file.display(), "collecting reports");
            Some(store)
        }
    };
    let instance = match (&args.instance, &args.reports) {
        (Some(instance), _) => instance.clone(),
        (None, Some(_)) => "collector".parse()?,
        (None, None) => std::process::id().to_string().parse()?,
    };
    let options = ServeOptions {
        broker: args.broker.clone(),
        login: args.login.credentials()?,
        instance,
        service,
        reports,
        session_secs: ledtrad_operator::serve::COLLECTOR_SESSION_SECS,
    };
    let counters = std::sync::Arc::new(Counters::default());
    let (shown, serving) = (counters.clone(), counters.clone());
    let broker = args.broker.clone();
    block_on(async move {
        let ready = move || tracing::info!(%broker, "subscribed; serving until Ctrl-C");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let report = async {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                let s = shown.snapshot();
                tracing::info!(s.requests, s.answered, s.refused, s.reports, s.reports_refused, "so far");
            }
        };
        tokio::select! {
            done = ledtrad_operator::serve::serve(options, serving, ready, shutdown) => done,
            () = report => Ok(()),
        }
    })??;
    println!("{}", serde_json::to_string(&counters.snapshot())?);
    Ok(ExitCode::SUCCESS)
}

/// Runs one MQTT operation to completion.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}

fn model_summary(file: &std::path::Path, model: &CheckedModel) -> String {
    let runtimes = if RuntimeKind::Tflite.available() { "tract and tflite" } else { "tract" };
    format!(
        "ok: '{}' — model '{}', {} inputs ({}), ops {}, {} bytes; runs on {runtimes}; a row of missing values scores {:.4}",
        file.display(),
        model.manifest.name,
        model.manifest.inputs.len(),
        model.manifest.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
        model.shape.ops.join(", "),
        model.tflite.len(),
        model.baseline
    )
}

fn summary(file: &std::path::Path, catalogue: &ledtrad_protocol::catalogue::Catalogue) -> String {
    let count = |kind| catalogue.offers.iter().filter(|o| o.device_kinds.contains(&kind)).count();
    let personalised = catalogue.offers.iter().filter(|o| o.personalised).count();
    let campaigns: std::collections::BTreeSet<_> = catalogue.offers.iter().map(|o| o.campaign.as_str()).collect();
    let journeys = catalogue.campaigns.iter().filter(|c| !c.steps.is_empty()).count();
    format!(
        "ok: '{}' — {} offers in {} campaigns ({journeys} of them journeys; fridge {}, ereader {}, lock_screen {}; {} need personalise), {} consent prompts",
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
