//! `ledtrad-sim bench request`: request-mode round trips through a broker, as a device's UI
//! sees them. A real agent (an e-reader whose catalogue has nothing for a finished book, with
//! `request` consent) asks a real offer service (`ledtrad-op serve`'s library) through the
//! broker, one request at a time; each round trip is the whole `offer` call: the local
//! decision, the request, the service's answer and the decision on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ledtrad_agent::{ConsentChange, ManualClock, RawConfig, RawKey};
use ledtrad_operator::serve::{OfferService, ServeOptions};
use ledtrad_operator::{push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::{DeviceKind, FleetId, KeyId, Moment, Purpose, UnixTime};
use serde::Serialize;

/// One broker's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFigures {
    /// "request".
    pub bench: &'static str,
    /// "embedded" (rumqttd in the process) or "mosquitto".
    pub broker: String,
    /// Round trips timed (after a warm-up).
    pub requests: usize,
    /// How many the service answered in time (the rest timed out after 2 s).
    pub answered: usize,
    /// Median round trip, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Round trips per second, one at a time (the inverse of the mean round trip).
    pub rps: f64,
}

/// Requests before timing starts (connections, caches, the broker's routes).
const WARM_UP: usize = 50;

/// The service's catalogue: books for a finished book, with no caps that a run would reach.
fn service_catalogue() -> anyhow::Result<Catalogue> {
    let offers: Vec<serde_json::Value> = ["crime", "cooking", "travel", "fiction"]
        .iter()
        .map(|genre| {
            serde_json::json!({
                "id": format!("book-{genre}"), "campaign": "next-read", "title": "Next read",
                "question": "Could a new book be something for you?", "body": "New this week.",
                "category": format!("books.{genre}"), "device_kinds": ["ereader"],
                "moments": ["book_finished"], "value": 1.0,
                "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
                "caps": { "per_day": 1_000_000, "per_hour": 1_000_000 }
            })
        })
        .collect();
    checked(serde_json::json!({ "offer": offers }))
}

/// The device's own catalogue: nothing for an e-reader.
fn device_catalogue() -> anyhow::Result<Catalogue> {
    checked(serde_json::json!({ "offer": [{
        "id": "butter", "campaign": "dairy", "title": "Butter",
        "question": "Could butter be something for you?", "body": "Refill.", "category": "food.dairy",
        "device_kinds": ["fridge"], "moments": ["door_opened"], "value": 1.0,
        "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"
    }]}))
}

fn checked(value: serde_json::Value) -> anyhow::Result<Catalogue> {
    Catalogue::from_value(value).map_err(|problems| {
        let first = problems.first().map(ToString::to_string).unwrap_or_default();
        anyhow::anyhow!("the bench's catalogue has {} problem(s), first: {first}", problems.len())
    })
}

/// Times `requests` round trips through the broker at `url`, named `name` in the figures.
pub async fn request(url: &BrokerUrl, name: &str, requests: usize) -> anyhow::Result<RequestFigures> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let key = OperatorKey::from_secret(KeyId::try_new("bench")?, [7; 32]);
    let run = format!("{}-{}", std::process::id(), name);
    let fleet = FleetId::try_new(format!("bench-{run}"))?;

    let options = ServeOptions {
        broker: url.clone(),
        access: ledtrad_mqtt::Access::default(),
        instance: ledtrad_protocol::InstanceId::try_new(format!("bench-{run}"))?,
        service: Some(OfferService::new(service_catalogue()?, 4)?),
        reports: None,
        session_secs: 60,
    };
    let service = ledtrad_operator::serve::start(options, Duration::from_secs(10)).await?;

    let now = UnixTime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs());
    let signed = sign_catalogue(
        &device_catalogue()?,
        &key,
        &SignOptions { fleet: fleet.clone(), version: 1, issued_at: now, expires_at: now.plus_secs(86_400) },
    )?;
    push_envelope(url, &fleet, signed, &format!("ledtrad-bench-op-{run}")).await?;
    let raw = RawConfig {
        device_id: format!("reader-{run}"),
        kind: DeviceKind::Ereader.as_str().into(),
        fleet: fleet.to_string(),
        broker: url.to_string(),
        mqtt_username: None,
        mqtt_password_file: None,
        database: dir.path().join("agent.db"),
        api: None,
        sharing: None,
        owner: None,
        utc_offset_minutes: 0,
        timezone: None,
        report_epsilon: None,
        camouflage_share: None,
        model_runtime: None,
        rng_seed: Some(1),
        offer_request_timeout_ms: Some(2_000),
        sensor_link: None,
        sensor_baud: None,
        operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
        // The simulated UI (or the test) chooses its moments itself.
        raise_moments: Some(false),
        ..RawConfig::default()
    };
    let config = ledtrad_agent::Config::from_raw(raw, "bench")?;
    let agent = ledtrad_agent::spawn(config, Arc::new(ManualClock::new(now))).await?;
    let handle = agent.handle();
    let change = ConsentChange { granted: true, source: ConsentSource::DeviceUi, text_version: "bench".into() };
    handle.set_consent(Purpose::Request, change).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.status().await.is_ok_and(|s| s.connected && s.catalogue_version == Some(1)) {
        anyhow::ensure!(Instant::now() < deadline, "the agent did not connect and apply its catalogue within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut nanos = Vec::with_capacity(requests);
    let mut answered = 0;
    let progress = progress_bar(WARM_UP + requests, &format!("round trips through {name}"));
    for i in 0..WARM_UP + requests {
        if i == WARM_UP {
            nanos.clear();
            answered = 0;
        }
        let call = Instant::now();
        let outcome = handle.offer(Moment::BookFinished).await?;
        let elapsed = call.elapsed();
        anyhow::ensure!(outcome.request.is_some(), "the agent did not ask the offer service");
        answered += usize::from(outcome.request.is_some_and(|r| r.answered));
        nanos.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        progress.inc(1);
    }
    progress.finish_and_clear();
    service.stop().await?;
    agent.shutdown().await;
    nanos.sort_unstable();
    let total: u64 = nanos.iter().sum();
    let pct = |q| crate::summary::percentile_us(&nanos, q);
    Ok(RequestFigures {
        bench: "request",
        broker: name.into(),
        requests: nanos.len(),
        answered,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        rps: (nanos.len() as f64 / (total as f64 / 1e9) * 10.0).round() / 10.0,
    })
}

/// A progress bar of `len` steps on a terminal (hidden otherwise, so JSON stays clean).
pub(crate) fn progress_bar(len: usize, message: &str) -> indicatif::ProgressBar {
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(u64::try_from(len).unwrap_or(u64::MAX))
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    progress.set_message(message.to_string());
    progress
}

/// Which broker to measure through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BenchBroker {
    /// rumqttd in this process, on a free loopback port.
    Embedded,
    /// A Mosquitto of the bench's own, from the shipped `deploy/mosquitto/ledtrad.conf`
    /// (TCP_NODELAY on), on a free loopback port.
    Mosquitto,
    /// A broker already running there (named by its address in the figures).
    Url(BrokerUrl),
}

impl std::str::FromStr for BenchBroker {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "embedded" => Ok(Self::Embedded),
            "mosquitto" => Ok(Self::Mosquitto),
            url => url.parse().map(Self::Url).map_err(|e| {
                format!("{url:?}: {e}; use \"embedded\", \"mosquitto\" or a broker address mqtt://HOST:PORT")
            }),
        }
    }
}

/// The shipped development config the bench's own Mosquitto runs.
const MOSQUITTO_CONF: &str = include_str!("../../deploy/mosquitto/ledtrad.conf");

/// Starts `broker` (where the bench runs its own) and times `requests` round trips through it.
pub async fn bench(broker: &BenchBroker, requests: usize) -> anyhow::Result<RequestFigures> {
    match broker {
        BenchBroker::Embedded => {
            let embedded = ledtrad_agent::broker::EmbeddedBroker::start(16)?;
            request(embedded.url(), "embedded", requests).await
        }
        BenchBroker::Mosquitto => {
            let dir = tempfile::tempdir().context("temporary directory")?;
            let mosquitto = ledtrad_agent::broker::Mosquitto::start(MOSQUITTO_CONF, &[], dir.path())?;
            request(mosquitto.url(), "mosquitto", requests).await
        }
        BenchBroker::Url(url) => request(url, &url.to_string(), requests).await,
    }
}
