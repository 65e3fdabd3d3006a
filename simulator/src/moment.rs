//! `ledtrad-sim bench moment`: from a sensor's edge to the offer at a connected UI. A real
//! agent reads a virtual sensor board's frames on a TCP link (as a board's serial link carries
//! them), raises the moment itself, decides, and sends the offer on `GET /v1/events`; a client
//! follows the stream over HTTP. Each sample is timed from writing the board's frame to the
//! client reading the `offer` event: the link, the core's decision and the event stream, what
//! a person at the fridge waits for.
//!
//! Two paths: `level` (a summary frame whose butter level crossed below the threshold:
//! `inventory_low`) and `door` (the virtual board's firmware sees its door switch open and
//! sends an event frame at once: `door_opened`). The agent's clock moves a day between
//! samples, so the once-a-day rule and the caps never block a sample; a sample whose decision
//! shows nothing is counted apart, not timed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ledtrad_agent::broker::EmbeddedBroker;
use ledtrad_agent::events::client::EventStream;
use ledtrad_agent::{ConsentChange, ManualClock, RawConfig, RawKey};
use ledtrad_operator::{push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::link::{encode, Quantity, Reading, Readings, Summary, LINK_VERSION, MAX_FRAME};
use ledtrad_protocol::{DeviceKind, FleetId, KeyId, Purpose, UnixTime};
use serde::Serialize;

/// Which edge a sample starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MomentPath {
    /// A summary frame whose butter level crossed below the threshold.
    Level,
    /// The door opened.
    Door,
}

impl MomentPath {
    fn name(self) -> &'static str {
        match self {
            Self::Level => "level",
            Self::Door => "door",
        }
    }
}

impl std::fmt::Display for MomentPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One path's figures.
#[derive(Debug, Clone, Serialize)]
pub struct MomentFigures {
    /// "moment".
    pub bench: &'static str,
    /// "level" or "door".
    pub path: &'static str,
    /// Samples timed (after a warm-up).
    pub samples: usize,
    /// Samples whose decision showed nothing (not timed).
    pub nothing_shown: usize,
    /// Median from the edge to the event at the client, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// The slowest, µs.
    pub max_us: f64,
}

/// Samples before timing starts.
const WARM_UP: usize = 20;

/// How long one sample may take before the bench gives up on it.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);

/// 2026-12-01T12:00:00Z: noon, far from quiet hours, and the clock moves a day per sample.
const START: UnixTime = UnixTime(1_795_867_200);

fn catalogue() -> anyhow::Result<Catalogue> {
    let offer = |id: &str, moments: &[&str], conditions: serde_json::Value| {
        let personalised = conditions.as_array().is_some_and(|c| !c.is_empty());
        serde_json::json!({
            "personalised": personalised,
            "id": id, "campaign": "bench", "title": "Butter",
            "question": "Could fresh butter be something for you?", "body": "Refill.",
            "category": "food.dairy", "device_kinds": ["fridge"], "moments": moments, "value": 1.0,
            "conditions": conditions,
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
            "caps": { "per_day": 1_000_000, "per_hour": 1_000_000 }
        })
    };
    let value = serde_json::json!({ "offer": [
        offer("butter-low", &["inventory_low"], serde_json::json!([{ "feature": "fridge.butter.level", "op": "lt", "value": 0.2 }])),
        offer("at-the-door", &["door_opened"], serde_json::json!([])),
    ]});
    Catalogue::from_value(value).map_err(|problems| {
        let first = problems.first().map(ToString::to_string).unwrap_or_default();
        anyhow::anyhow!("the bench's catalogue has {} problem(s), first: {first}", problems.len())
    })
}

fn summary_frame(seq: u8, butter: f32) -> anyhow::Result<Vec<u8>> {
    let mut readings = Readings::new();
    readings.push(Reading::new(Quantity::ButterLevel, butter));
    let mut out = [0u8; MAX_FRAME];
    let frame = encode(Summary { version: LINK_VERSION, seq, readings }, &mut out)
        .map_err(|e| anyhow::anyhow!("encoding a summary: {e}"))?;
    Ok(frame.to_vec())
}

/// A fridge agent on a board link and an embedded broker, with a client on its events.
struct Rig {
    _broker: EmbeddedBroker,
    _dir: tempfile::TempDir,
    agent: ledtrad_agent::RunningAgent,
    clock: ManualClock,
    board: std::net::TcpStream,
    events: EventStream,
    seq: u8,
}

impl Rig {
    async fn start() -> anyhow::Result<Self> {
        let broker = EmbeddedBroker::start(16).context("the embedded broker")?;
        let dir = tempfile::tempdir().context("temporary directory")?;
        let key = OperatorKey::from_secret(KeyId::try_new("bench")?, [7; 32]);
        let run = format!("moment-{}", std::process::id());
        let fleet = FleetId::try_new(format!("bench-{run}"))?;
        let options = SignOptions {
            fleet: fleet.clone(),
            version: 1,
            issued_at: START,
            expires_at: START.plus_secs(4 * 365 * 86_400),
        };
        let board = std::net::TcpListener::bind("127.0.0.1:0").context("the board's socket")?;
        let raw = RawConfig {
            device_id: format!("fridge-{run}"),
            kind: DeviceKind::Fridge.as_str().into(),
            fleet: fleet.to_string(),
            broker: broker.url().to_string(),
            database: dir.path().join("agent.db"),
            api: Some("127.0.0.1:0".into()),
            sharing: Some(ledtrad_agent::household::Sharing::Personal),
            camouflage_share: Some(0.0),
            rng_seed: Some(1),
            sensor_link: Some(format!("tcp://{}", board.local_addr()?)),
            raise_moments: Some(true),
            operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
            ..RawConfig::default()
        };
        let clock = ManualClock::new(START);
        let agent =
            ledtrad_agent::spawn(ledtrad_agent::Config::from_raw(raw, "bench")?, Arc::new(clock.clone())).await?;
        let (board, _) = tokio::task::spawn_blocking(move || board.accept()).await?.context("the agent's link")?;
        board.set_nodelay(true)?;
        let handle = agent.handle();
        let change = ConsentChange { granted: true, source: ConsentSource::DeviceUi, text_version: "bench".into() };
        handle.set_consent(Purpose::Personalise, change).await?;
        // Following the events first, the catalogue's arrival is an event to wait for.
        let api = format!("http://{}", agent.api_addr().context("the agent's local API")?);
        let mut events = EventStream::connect(&api, None).await?;
        push_envelope(broker.url(), &fleet, sign_catalogue(&catalogue()?, &key, &options)?, &format!("op-{run}"))
            .await?;
        let applied = tokio::time::timeout(Duration::from_secs(10), events.next_named("catalogue"))
            .await
            .map_err(|_| anyhow::anyhow!("the agent did not apply its catalogue within 10 s"))??
            .context("the agent closed its event stream")?;
        anyhow::ensure!(
            applied.data.contains("\"applied\":true"),
            "the agent refused the bench's catalogue: {}",
            applied.data
        );
        Ok(Self { _broker: broker, _dir: dir, agent, clock, board, events, seq: 0 })
    }

    fn send(&mut self, butter: f32) -> anyhow::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        self.board.write_all(&summary_frame(self.seq, butter)?).context("writing a frame to the agent's link")
    }

    /// Waits for the offer event of the decision just raised: `false` if none came within
    /// [`SAMPLE_TIMEOUT`] (the decision showed nothing).
    async fn offer_event(&mut self) -> anyhow::Result<bool> {
        match tokio::time::timeout(SAMPLE_TIMEOUT, self.events.next_named("offer")).await {
            Err(_) => Ok(false),
            Ok(event) => Ok(event?.context("the agent closed its event stream")?.event == "offer"),
        }
    }
}

/// One path: `level` or `door`.
pub async fn moment(path: MomentPath, samples: usize) -> anyhow::Result<MomentFigures> {
    let mut rig = Rig::start().await?;
    let mut board = crate::board::Board::fridge(600_000)?;
    let mut board_ms = 0;
    let mut nanos = Vec::with_capacity(samples);
    let mut nothing_shown = 0;
    let progress = crate::request::progress_bar(WARM_UP + samples, &format!("moments ({path})"));
    for i in 0..WARM_UP + samples {
        if i == WARM_UP {
            nanos.clear();
            nothing_shown = 0;
        }
        rig.clock.advance(86_400);
        if path == MomentPath::Level {
            // Full again, then running low: the crossing is the edge.
            rig.send(0.8)?;
        }
        // The door path's frames: the board's firmware debounces its switch and frames the edge.
        board_ms += 60_000;
        let door = if path == MomentPath::Door {
            for frame in board.door_closed(board_ms)? {
                rig.board.write_all(&frame).context("writing the board's closing edge to the agent's link")?;
            }
            board.door_opened(board_ms + 10_000)?
        } else {
            Vec::new()
        };
        let edge = Instant::now();
        if path == MomentPath::Level {
            rig.send(0.1)?;
        } else {
            for frame in &door {
                rig.board.write_all(frame).context("writing the board's door edge to the agent's link")?;
            }
        }
        let shown = rig.offer_event().await?;
        let elapsed = edge.elapsed();
        if shown {
            nanos.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        } else {
            nothing_shown += 1;
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    rig.agent.shutdown().await;
    nanos.sort_unstable();
    let pct = |q| crate::summary::percentile_us(&nanos, q);
    Ok(MomentFigures {
        bench: "moment",
        path: path.name(),
        samples: nanos.len(),
        nothing_shown,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: nanos.last().map_or(0.0, |n| (*n as f64 / 100.0).round() / 10.0),
    })
}
