//! The agent's memory footprint: a real agent (SQLite, runtime, engine, the shipped scoring
//! model) with a large catalogue, driven through 30 simulated days of signals, decisions and
//! answers, then its process's resident memory read from `/proc/self/status`.

use std::sync::Arc;

use anyhow::Context as _;
use ledtrad_agent::store::Store;
use ledtrad_agent::{Config, ConsentChange, ManualClock, RawConfig, RawKey};
use ledtrad_operator::model::sign_model;
use ledtrad_operator::{sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{FleetId, KeyId, Moment, Purpose, UnixTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::bench::{build_catalogue, shipped_model};

/// Moments per simulated day (one every 15 minutes).
const MOMENTS_PER_DAY: u64 = 96;

/// What the footprint run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FootprintFigures {
    /// "footprint".
    pub bench: &'static str,
    /// Offers in the catalogue.
    pub offers: usize,
    /// Simulated days of history.
    pub days: u64,
    /// Decisions the agent made.
    pub decisions: u64,
    /// Offers it showed (each one an impression kept for caps).
    pub shown: u64,
    /// Whether the fleet's scoring model was applied.
    pub model: bool,
    /// The process's resident memory before the agent started (the binary, its libraries and
    /// the async runtime).
    pub baseline_rss_bytes: u64,
    /// The process's resident memory at the end.
    pub rss_bytes: u64,
    /// What the agent added: `rss_bytes - baseline_rss_bytes`.
    pub agent_rss_bytes: u64,
    /// Of that, anonymous memory (heap and stacks: what the agent allocates).
    pub agent_anon_bytes: u64,
    /// Of that, file-backed pages (mostly the code the agent ran, shared and evictable).
    pub agent_file_bytes: u64,
    /// The process's peak resident memory.
    pub peak_rss_bytes: u64,
}

/// A field of `/proc/self/status` in bytes (e.g. `VmRSS`).
pub(crate) fn proc_status(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status (the footprint bench measures resident memory on Linux)")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    let kib: u64 = line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().context("parsing the size")?;
    Ok(kib * 1024)
}

/// Runs a real agent with `offers` offers (and the shipped model, if `model`) through `days`
/// simulated days and measures it.
pub fn footprint(offers: usize, days: u64, seed: u64, model: bool) -> anyhow::Result<FootprintFigures> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let baseline = proc_status("VmRSS")?;
    let (anon_before, file_before) = (proc_status("RssAnon")?, proc_status("RssFile")?);
    // Read while the agent still runs (inside `drive`, before it stops).
    let (decisions, shown, [rss, anon, file]) = runtime.block_on(drive(offers, days, seed, model))?;
    Ok(FootprintFigures {
        bench: "footprint",
        offers,
        days,
        decisions,
        shown,
        model,
        baseline_rss_bytes: baseline,
        rss_bytes: rss,
        agent_rss_bytes: rss.saturating_sub(baseline),
        agent_anon_bytes: anon.saturating_sub(anon_before),
        agent_file_bytes: file.saturating_sub(file_before),
        peak_rss_bytes: proc_status("VmHWM")?,
    })
}

async fn drive(offers: usize, days: u64, seed: u64, model: bool) -> anyhow::Result<(u64, u64, [u64; 3])> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let catalogue = build_catalogue(offers, &mut rng);
    let key = OperatorKey::from_secret(KeyId::try_new("bench")?, [9; 32]);
    let start = UnixTime(1_795_428_000);
    let fleet = FleetId::try_new("bench")?;
    let options =
        SignOptions { fleet: fleet.clone(), version: 1, issued_at: start, expires_at: start.plus_secs(400 * 86_400) };
    let dir = tempfile::tempdir().context("creating a directory for the agent's database")?;
    let database = dir.path().join("agent.db");
    {
        // The agent verifies and applies what it finds stored, as after a restart.
        let store = Store::open(&database)?;
        store.save_catalogue(1, fleet.as_str(), &sign_catalogue(&catalogue, &key, &options)?, start)?;
        if model {
            store.save_model(1, fleet.as_str(), &sign_model(&shipped_model()?, &key, &options)?, start)?;
        }
    }
    let raw = RawConfig {
        device_id: "footprint".into(),
        kind: "fridge".into(),
        fleet: fleet.to_string(),
        // Nothing listens there: the agent decides offline and keeps its reports queued.
        broker: "mqtt://127.0.0.1:9".into(),
        mqtt_username: None,
        mqtt_password_file: None,
        database,
        api: None,
        sharing: None,
        report_epsilon: None,
        camouflage_share: None,
        model_runtime: None,
        rng_seed: Some(seed),
        owner: None,
        utc_offset_minutes: 60,
        timezone: None,
        offer_request_timeout_ms: None,
        sensor_link: None,
        sensor_baud: None,
        operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
    };
    let clock = ManualClock::new(start);
    let agent = ledtrad_agent::spawn(Config::from_raw(raw, "footprint bench")?, Arc::new(clock.clone())).await?;
    let handle = agent.handle();
    anyhow::ensure!(handle.status().await?.offers == offers, "the stored catalogue was not applied");
    for purpose in [Purpose::Personalise, Purpose::Measure] {
        let change = ConsentChange { granted: true, source: ConsentSource::Api, text_version: "bench".into() };
        handle.set_consent(purpose, change).await?;
    }
    let features: Vec<FeatureName> = ledtrad_protocol::feature::signal_features().collect();
    let (mut decisions, mut shown) = (0, 0);
    for k in 0..days * MOMENTS_PER_DAY {
        clock.set(start.plus_secs(k * 86_400 / MOMENTS_PER_DAY));
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
    }
    let memory = [proc_status("VmRSS")?, proc_status("RssAnon")?, proc_status("RssFile")?];
    agent.shutdown().await;
    Ok((decisions, shown, memory))
}
