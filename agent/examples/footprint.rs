//! The footprint workload, as its own process so that it can be built like a device's agent
//! (`--profile device --no-default-features --features device`) and like the full one:
//! `ledtrad-sim bench footprint` prepares the agent's config and database (a signed catalogue,
//! and the fleet's model, stored as after a restart), runs this once per build, and reads the
//! line of JSON it prints.
//!
//! ```text
//! footprint --config agent.toml --days 30 --seed 1 --start 1795428000
//! ```
//!
//! It drives the agent through `days` simulated days on a manual clock (96 moments a day: a
//! signal, a decision, an answer to every offer shown, a tick every 24 moments) and reads the
//! process's resident memory from `/proc/self/status` while the agent still runs: at the end,
//! and at the end of the second day (for how flat it stays over a long run, `--days 365`).

use std::sync::Arc;

use anyhow::Context as _;
use ledtrad_agent::{Config, ConsentChange, ManualClock};
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{Moment, Purpose, UnixTime};
use rand::{Rng, SeedableRng};

/// Moments per simulated day (one every 15 minutes).
const MOMENTS_PER_DAY: u64 = 96;

/// The workload's parameters, from the command line.
struct Args {
    config: std::path::PathBuf,
    days: u64,
    seed: u64,
    start: UnixTime,
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match Args::try_from(args.as_slice()).and_then(run) {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("footprint: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

impl TryFrom<&[String]> for Args {
    type Error = anyhow::Error;

    fn try_from(args: &[String]) -> anyhow::Result<Self> {
        let value = |name: &str| -> anyhow::Result<&String> {
            let at = args.iter().position(|a| a == name).with_context(|| format!("{name} is missing"))?;
            args.get(at + 1).with_context(|| format!("{name} needs a value"))
        };
        let number = |name: &str| -> anyhow::Result<u64> {
            let v = value(name)?;
            v.parse().with_context(|| format!("{name} {v:?} is not a whole number"))
        };
        Ok(Self {
            config: value("--config")?.into(),
            days: number("--days")?,
            seed: number("--seed")?,
            start: UnixTime(number("--start")?),
        })
    }
}

/// Runs the workload; the figures as one line of JSON.
fn run(args: Args) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let baseline = [proc_status("VmRSS")?, proc_status("RssAnon")?, proc_status("RssFile")?];
    let (Driven { decisions, shown, offers, day2_rss }, end) = runtime.block_on(drive(&args))?;
    let line = serde_json::json!({
        "offers": offers,
        "decisions": decisions,
        "shown": shown,
        "baseline_rss_bytes": baseline[0],
        "baseline_anon_bytes": baseline[1],
        "baseline_file_bytes": baseline[2],
        "rss_bytes": end[0],
        "rss_day2_bytes": day2_rss,
        "anon_bytes": end[1],
        "file_bytes": end[2],
        "peak_rss_bytes": proc_status("VmHWM")?,
    });
    Ok(line.to_string())
}

/// What the workload did.
struct Driven {
    decisions: u64,
    shown: u64,
    offers: usize,
    /// Resident memory at the end of the second simulated day, if it ran that long.
    day2_rss: Option<u64>,
}

async fn drive(args: &Args) -> anyhow::Result<(Driven, [u64; 3])> {
    let config = Config::from_path(&args.config)?;
    let clock = ManualClock::new(args.start);
    let agent = ledtrad_agent::spawn(config, Arc::new(clock.clone())).await?;
    let handle = agent.handle();
    let offers = handle.status().await?.offers;
    anyhow::ensure!(offers > 0, "no catalogue was applied from the database the config names");
    for purpose in [Purpose::Personalise, Purpose::Measure] {
        let change = ConsentChange { granted: true, source: ConsentSource::Api, text_version: "bench".into() };
        handle.set_consent(purpose, change).await?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let features: Vec<FeatureName> = ledtrad_protocol::feature::signal_features().collect();
    let (mut decisions, mut shown, mut day2_rss) = (0, 0, None);
    for k in 0..args.days * MOMENTS_PER_DAY {
        clock.set(args.start.plus_secs(k * 86_400 / MOMENTS_PER_DAY));
        let feature = features[usize::try_from(k).unwrap_or(0) % features.len()];
        handle.signals(vec![Signal { feature, value: rng.random_range(0.0..1.0) }]).await?;
        let outcome = handle.offer(Moment::DoorOpened).await?;
        decisions += 1;
        if outcome.decision.shown.is_some() {
            shown += 1;
            let kind = if rng.random_bool(0.3) { FeedbackKind::Accepted } else { FeedbackKind::Dismissed };
            handle.feedback(Feedback { decision: outcome.decision.id, kind }).await?;
        }
        if k % 24 == 0 {
            handle.tick().await?;
        }
        if k + 1 == 2 * MOMENTS_PER_DAY {
            day2_rss = Some(proc_status("VmRSS")?);
        }
    }
    let end = [proc_status("VmRSS")?, proc_status("RssAnon")?, proc_status("RssFile")?];
    agent.shutdown().await;
    Ok((Driven { decisions, shown, offers, day2_rss }, end))
}

/// A field of `/proc/self/status` in bytes (e.g. `VmRSS`).
fn proc_status(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (the footprint is measured on Linux)")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kib: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{field} in /proc/self/status is not a size: {line:?}"))?;
    Ok(kib * 1024)
}
