//! `ledtrad-op`: operator tools for ledtrad fleets. The command line is in `cli`; each command
//! is one function here.

mod certs_cli;
mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use cli::{
    block_on, now, BrokerArgs, CatalogueCommand, Cli, Command, KeysCommand, ModelCommand, PublishArgs, PushArgs,
    ReportArgs, RolloutCommand, RolloutStatusArgs, ServeArgs, SignArgs, WatchArgs,
};
use ledtrad_model::RuntimeKind;
use ledtrad_operator::collect::ReportsAt;
use ledtrad_operator::load::LoadError;
use ledtrad_operator::model::{default_manifest, load_model, sign_model, CheckedModel, ModelLoadError};
use ledtrad_operator::{load_catalogue, OperatorKey};
use ledtrad_protocol::envelope::Rollout;
use ledtrad_protocol::topic::Topic;

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
        Command::Keygen { out, id } => keygen(&out, id),
        Command::Keys(KeysCommand::Rotate { old, out, id }) => rotate_key(&old, &out, id),
        Command::Status { watch, json } => fleet_status(&watch, json),
        Command::Rollout(RolloutCommand::Status(args)) => rollout_status(args),
        Command::Catalogue(CatalogueCommand::Check { file }) => check_catalogue(&file),
        Command::Catalogue(CatalogueCommand::Diff { old, new, json }) => diff_catalogues(&old, &new, json),
        Command::Model(ModelCommand::Check { file, manifest }) => check_model(&file, manifest),
        Command::Model(ModelCommand::Push { file, manifest, push }) => push_model(&file, manifest, &push),
        Command::Model(ModelCommand::Sign { file, manifest, sign, out }) => {
            sign_model_offline(&file, manifest, &sign, &out)
        }
        Command::Catalogue(CatalogueCommand::Sign { file, sign, share, out }) => {
            sign_catalogue_offline(&file, &sign, share.map(|share| Rollout { share }), &out)
        }
        Command::Publish(args) => publish(&args),
        Command::Certs(command) => certs_cli::run(command),
        Command::Serve(args) => serve(args),
        Command::Report(args) => report(&args),
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

/// `ledtrad-op keygen`: a new operator key, and how to pin it.
fn keygen(out: &std::path::Path, id: ledtrad_protocol::KeyId) -> anyhow::Result<ExitCode> {
    let key = OperatorKey::generate(id);
    let (secret, public) = key.save(out)?;
    println!("wrote {} (secret: keep it private) and {}", secret.display(), public.display());
    println!(
        "pin it in each agent config:\n\n[[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"",
        key.id,
        key.public_hex()
    );
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op keys rotate`: a new key beside the old one, and the steps of the rotation.
fn rotate_key(old: &std::path::Path, out: &std::path::Path, id: ledtrad_protocol::KeyId) -> anyhow::Result<ExitCode> {
    let old = OperatorKey::load_public(old)?;
    anyhow::ensure!(old.id != id, "the new key needs an id of its own; '{id}' is the old key's");
    let key = OperatorKey::generate(id);
    let (secret, public) = key.save(out)?;
    println!("wrote {} (secret: keep it private) and {}\n", secret.display(), public.display());
    print!("{}", ledtrad_operator::keys::rotation_steps(&key.public_entry(), &secret, &old));
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op status`: the fleet's devices counted by what they report.
fn fleet_status(watch: &WatchArgs, json: bool) -> anyhow::Result<ExitCode> {
    let summary = ledtrad_operator::status::summarise(&watch.collect()?, &watch.fleet);
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op rollout status`: how the rollout stands, and an abort when it is over a limit.
fn rollout_status(args: RolloutStatusArgs) -> anyhow::Result<ExitCode> {
    let version = args.version;
    // The report database first: a wrong path fails before waiting on the broker.
    let dismissals = match &args.reports {
        None => None,
        Some(file) => {
            let store = ledtrad_operator::report::open_existing(file)?;
            let fleet_reports = store.fleet(&args.watch.fleet)?;
            Some(ledtrad_operator::canary::compare_dismissals(&fleet_reports, version, args.min_impressions))
        }
    };
    let progress = ledtrad_operator::status::rollout_progress(&args.watch.collect()?, &args.watch.fleet, version);
    if args.json {
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
    match over_limit(&args, &progress, dismissals.as_ref()) {
        None => Ok(ExitCode::SUCCESS),
        Some(why) => abort_rollout(args, &why),
    }
}

/// Why the rollout is over one of its limits, if it is.
fn over_limit(
    args: &RolloutStatusArgs,
    progress: &ledtrad_operator::status::RolloutProgress,
    dismissals: Option<&ledtrad_operator::canary::CanaryComparison>,
) -> Option<String> {
    let version = args.version;
    let refused = args.abort_if_refused.filter(|limit| progress.over_refusal_limit(*limit)).map(|limit| {
        format!(
            "{:.1}% of the devices reached refused version {version}, over the {:.1}% limit",
            progress.refused_share * 100.0,
            limit * 100.0
        )
    });
    let dismissed =
        args.abort_if_dismissals.zip(dismissals).filter(|(limit, d)| d.over_dismiss_limit(*limit)).map(|(limit, d)| {
            format!(
                "the devices on version {version} dismiss {:.2}× as often as the rest, over the {limit}× limit",
                d.ratio.unwrap_or_default()
            )
        });
    refused.or(dismissed)
}

/// Over a limit: the previous catalogue goes back out to every device (exit code 1).
fn abort_rollout(args: RolloutStatusArgs, why: &str) -> anyhow::Result<ExitCode> {
    let (Some(previous), Some(key), Some(abort_version)) = (args.previous, args.key, args.abort_version) else {
        anyhow::bail!("an abort needs --previous, --key and --abort-version");
    };
    eprintln!("{why}: aborting");
    let push = PushArgs {
        sign: SignArgs { fleet: args.watch.fleet, key, version: abort_version, expires_in_days: None },
        to: BrokerArgs { broker: args.watch.broker, login: args.watch.login, keep: false },
    };
    push_catalogue(&previous, &push, None)?;
    Ok(ExitCode::from(1))
}

/// `ledtrad-op catalogue check`: a summary, or every problem and exit code 1.
fn check_catalogue(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    match load_catalogue(file, Some(now())) {
        Ok(catalogue) => {
            println!("{}", summary(file, &catalogue));
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ LoadError::Problems { .. }) => {
            eprintln!("{err}");
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err.into()),
    }
}

/// `ledtrad-op catalogue diff`: what changes for devices (exit code 1 when something does).
fn diff_catalogues(old: &std::path::Path, new: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    // Both are read as devices parse them; the old one may well have ended by now.
    let (old, new) = (load_catalogue(old, None)?, load_catalogue(new, None)?);
    let changes = ledtrad_operator::diff::diff(&old, &new);
    if json {
        println!("{}", serde_json::to_string(&changes)?);
    } else {
        print!("{changes}");
    }
    Ok(ExitCode::from(u8::from(!changes.is_empty())))
}

/// `ledtrad-op model check`: a summary, or every problem and exit code 1.
fn check_model(file: &std::path::Path, manifest: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    let manifest = manifest.unwrap_or_else(|| default_manifest(file));
    match load_model(file, &manifest) {
        Ok(model) => {
            println!("{}", model_summary(file, &model));
            Ok(ExitCode::SUCCESS)
        }
        Err(err @ ModelLoadError::Problems { .. }) => {
            eprintln!("{err}");
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err.into()),
    }
}

/// `ledtrad-op model push`: signs the model and publishes it retained on the fleet's model topic.
fn push_model(
    file: &std::path::Path,
    manifest: Option<std::path::PathBuf>,
    push: &PushArgs,
) -> anyhow::Result<ExitCode> {
    let manifest = manifest.unwrap_or_else(|| default_manifest(file));
    let model = load_model(file, &manifest)?;
    let (key, options) = push.sign.sign_with(90)?;
    let (fleet, version, broker) = (&push.sign.fleet, push.sign.version, &push.to.broker);
    let envelope = sign_model(&model, &key, &options)?;
    let size = envelope.len();
    let topic = Topic::Model(fleet.clone());
    push.to.publish(&topic, envelope.clone())?;
    println!(
        "pushed model '{}' ('{}', {} inputs) version {version} ({size} bytes, key '{}', expires {}) to fleet '{fleet}' on {broker}",
        file.display(),
        model.manifest.name,
        model.manifest.inputs.len(),
        key.id,
        options.expires_at
    );
    push.to.keep_if_asked(&topic, envelope, &format!("model version {version}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op catalogue sign`: checks the catalogue and writes its signed envelope to `out`.
fn sign_catalogue_offline(
    file: &std::path::Path,
    sign: &SignArgs,
    rollout: Option<Rollout>,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let catalogue = load_catalogue(file, Some(now()))?;
    let (key, options) = sign.sign_with(30)?;
    let envelope = ledtrad_operator::sign::sign_rollout(&catalogue, &key, &options, rollout)?;
    wrote_envelope(out, &envelope)
}

/// `ledtrad-op model sign`: checks the model and writes its signed envelope to `out`.
fn sign_model_offline(
    file: &std::path::Path,
    manifest: Option<std::path::PathBuf>,
    sign: &SignArgs,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let model = load_model(file, &manifest.unwrap_or_else(|| default_manifest(file)))?;
    let (key, options) = sign.sign_with(90)?;
    wrote_envelope(out, &sign_model(&model, &key, &options)?)
}

/// Writes `envelope` to `out` and says what it holds.
fn wrote_envelope(out: &std::path::Path, envelope: &[u8]) -> anyhow::Result<ExitCode> {
    ledtrad_operator::offline::write(out, envelope)?;
    let signed = ledtrad_operator::offline::inspect(envelope, out)?;
    println!("wrote '{}': {}", out.display(), signed.describe());
    println!("publish it from a host that reaches the broker: ledtrad-op publish {} --broker …", out.display());
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op publish`: a pre-signed envelope, unless it has expired or the fleet's devices
/// report its version or a newer one.
fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let (envelope, signed) = ledtrad_operator::offline::read(&args.envelope)?;
    println!("{}: {}", args.envelope.display(), signed.describe());
    // Expired is known without the broker: say so before connecting.
    signed.check(now(), ledtrad_operator::offline::FleetReports::default())?;
    let watch = WatchArgs {
        fleet: signed.fleet.clone(),
        broker: args.to.broker.clone(),
        login: args.to.login.clone(),
        wait: args.wait,
        expect: None,
    };
    let statuses = watch.collect()?;
    let reports = signed.fleet_reports(statuses.values());
    signed.check(now(), reports)?;
    let topic = signed.topic();
    args.to.publish(&topic, envelope.clone())?;
    let before = reports
        .applied
        .map_or_else(|| "no device of it reported one".into(), |v| format!("its devices reported {v} at most"));
    println!("published {signed} on {} ({before})", args.to.broker);
    args.to.keep_if_asked(&topic, envelope, &signed.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op report`: a campaign's uplift from the collected reports, and its page.
fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(campaign) = &args.campaign else {
        anyhow::ensure!(
            args.html.is_none(),
            "--html writes one campaign's page: add --campaign NAME (`ledtrad-op report --db FILE` lists them)"
        );
        let list = ledtrad_operator::campaigns::list_campaigns(&args.db, args.fleet.as_ref())?;
        if args.json {
            println!("{}", serde_json::to_string(&list)?);
        } else {
            print!("{list}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let summary = ledtrad_operator::report::load_summary(&args.db, campaign, args.fleet.as_ref(), args.min_devices)?;
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

/// Signs the catalogue in `file` (for a share of the fleet in a staged rollout) and publishes
/// it retained on the fleet's catalogue topic.
fn push_catalogue(file: &std::path::Path, push: &PushArgs, rollout: Option<Rollout>) -> anyhow::Result<ExitCode> {
    let catalogue = load_catalogue(file, Some(now()))?;
    let (key, options) = push.sign.sign_with(30)?;
    let (fleet, version, broker) = (&push.sign.fleet, push.sign.version, &push.to.broker);
    let envelope = ledtrad_operator::sign::sign_rollout(&catalogue, &key, &options, rollout)?;
    let size = envelope.len();
    let topic = Topic::Catalogue(fleet.clone());
    push.to.publish(&topic, envelope.clone())?;
    let reach =
        rollout.map_or_else(|| "every device".to_string(), |r| format!("{:.0}% of the devices", r.share * 100.0));
    println!(
        "pushed catalogue '{}' version {version} ({} offers, {size} bytes, key '{}', expires {}) to {reach} of fleet '{fleet}' on {broker}",
        file.display(),
        catalogue.offers.len(),
        key.id,
        options.expires_at
    );
    push.to.keep_if_asked(&topic, envelope, &format!("catalogue version {version}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `ledtrad-op serve`: the offer service and report collector, until Ctrl-C.
fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Collectors on a shared store run side by side: each needs a name of its own, or they
    // would take over each other's broker session.
    if args.reports.as_ref().is_some_and(ReportsAt::is_shared) && args.instance.is_none() {
        anyhow::bail!(
            "--reports postgres://… needs --instance NAME, a name unique among the collectors (e.g. collector-a), \
             kept from run to run: its broker session holds the reports sent while it is stopped"
        );
    }
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
        Some(at) => {
            let store = ledtrad_operator::collect::ReportStore::connect(at)?;
            tracing::info!(stored = store.count()?, reports = store.name(), "collecting reports");
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
        access: args.login.access(&args.broker)?,
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
