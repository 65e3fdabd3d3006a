//! Benchmarks (not timed tests): figures printed as JSON so runs can be compared. These
//! machines are shared and noisy; compare figures from one run, and quote medians.

use std::time::Instant;

use ledtrad_agent::engine::{DeviceProfile, Draw, Engine, LocalTime, TrustedKeys};
use std::path::Path;

use ledtrad_agent::engine::RuntimeKind;
use ledtrad_operator::model::{check_model, sign_model, CheckedModel};
use ledtrad_operator::{sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::caps::{CampaignCaps, Caps, Policy};
use ledtrad_protocol::catalogue::{Campaign, Catalogue, Condition, Offer, Op};
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feature::{signal_features, FeatureName, FEATURES};
use ledtrad_protocol::propensity::{Logistic, Weight};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, FleetId, KeyId, Moment, OfferId, UnixTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One benchmark's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DecideFigures {
    /// "decide".
    pub bench: &'static str,
    /// The scorer: "builtin" (the catalogue's logistic priors), "tract" or "tflite" (the shipped
    /// propensity model in that runtime); Beta posteriors and Thompson sampling on top.
    pub scorer: &'static str,
    /// Offers in the catalogue.
    pub offers: usize,
    /// Features the engine knows (every source is fed; derived ones follow from them).
    pub features: usize,
    /// Decisions timed.
    pub decisions: usize,
    /// Offers shown among them.
    pub shown: usize,
    /// Median decision time over all decisions, µs: full and blocked ones together, so mostly
    /// the cheap blocked ones when the device caps are tight (see the `full_` figures).
    pub p50_us: f64,
    /// 99th percentile over all decisions, µs.
    pub p99_us: f64,
    /// 99.9th percentile over all decisions, µs.
    pub p999_us: f64,
    /// Median time of a full decision (one that weighed the catalogue's offers one by one), µs:
    /// what a user waits for when an offer may be shown.
    pub full_p50_us: f64,
    /// 99th percentile of full decisions, µs.
    pub full_p99_us: f64,
    /// 99.9th percentile of full decisions, µs.
    pub full_p999_us: f64,
    /// 99th percentile of blocked decisions (the device-wide rules ruled every offer out before
    /// one was read), µs.
    pub blocked_p99_us: f64,
    /// Full decisions' share of all decisions timed.
    pub full_share: f64,
    /// Decisions per second of engine time on one core (all decisions timed over their time).
    pub decisions_per_s: f64,
}

/// A catalogue of `n` fridge offers over every fridge and context feature, with conditions,
/// caps, campaign caps, a built-in scorer and a device policy.
pub fn build_catalogue(n: usize, rng: &mut ChaCha8Rng) -> Catalogue {
    let usable: Vec<&str> =
        FEATURES.iter().filter(|f| f.kind.is_none_or(|k| k == DeviceKind::Fridge)).map(|f| f.name).collect();
    let categories = ["food.dairy", "food.produce", "food.drinks", "food.meals", "home.kitchen", "home.cleaning"];
    let offers = (0..n)
        .map(|i| {
            let feature = usable[i % usable.len()];
            let threshold =
                if feature == "context.hour" { rng.random_range(0.0..24.0) } else { rng.random_range(0.0..1.0) };
            let op = if i % 2 == 0 { Op::Lt } else { Op::Ge };
            Offer {
                id: OfferId::try_new(format!("o{i}")).expect("id"),
                campaign: CampaignId::try_new(format!("c{}", i % 20)).expect("id"),
                title: "Offer".into(),
                question: "Could this be something for you?".into(),
                body: "Body.".into(),
                image: None,
                category: categories[i % categories.len()].into(),
                device_kinds: vec![DeviceKind::Fridge],
                moments: vec![Moment::DoorOpened, Moment::InventoryLow],
                conditions: vec![Condition { feature: feature.into(), op, value: threshold }],
                value: rng.random_range(0.5..5.0),
                priority: 1.0,
                valid_from: UnixTime(0),
                valid_until: UnixTime(4_000_000_000),
                caps: Caps {
                    per_day: 2,
                    per_hour: Some(1),
                    per_week: Some(5),
                    per_month: None,
                    total: Some(20),
                    per_home_per_day: None,
                },
                personalised: true,
                propensity: Some(Logistic {
                    bias: -0.5,
                    weights: usable
                        .iter()
                        .take(4)
                        .map(|f| Weight { feature: (*f).into(), weight: rng.random_range(-1.0..1.0) })
                        .collect(),
                }),
            }
        })
        .collect();
    let campaigns = (0..20.min(n))
        .map(|c| Campaign {
            caps: CampaignCaps { per_day: Some(5), per_week: Some(20), ..CampaignCaps::default() },
            ..Campaign::new(CampaignId::try_new(format!("c{c}")).expect("id"))
        })
        .collect();
    Catalogue {
        name: "bench".into(),
        offers,
        prompts: vec![],
        campaigns,
        policy: Policy {
            device_per_hour: Some(6),
            device_per_day: Some(30),
            min_gap_minutes: None,
            quiet_hours: None,
            home_per_day: None,
        },
    }
}

/// The bench's device: an engine with the generated catalogue of `offers` offers (and the
/// shipped model in `scorer`, if given), every purpose granted, and its inputs drawn from
/// `seed`: signals flowing, time moving and answers feeding the posteriors.
pub struct Workload {
    engine: Engine,
    rng: ChaCha8Rng,
    sources: Vec<FeatureName>,
    now: UnixTime,
    step: usize,
}

impl Workload {
    /// The device before its first decision.
    pub fn new(offers: usize, seed: u64, scorer: Option<RuntimeKind>) -> anyhow::Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let catalogue = build_catalogue(offers, &mut rng);
        let problems = catalogue.problems();
        anyhow::ensure!(problems.is_empty(), "bench catalogue: {}", problems[0]);
        let key = OperatorKey::from_secret(KeyId::try_new("bench")?, [9; 32]);
        let start = UnixTime(1_795_428_000);
        let fleet = FleetId::try_new("bench")?;
        let options = SignOptions {
            fleet: fleet.clone(),
            version: 1,
            issued_at: start,
            expires_at: start.plus_secs(400 * 86_400),
        };
        let envelope = sign_catalogue(&catalogue, &key, &options)?;
        let mut keys = TrustedKeys::new();
        keys.insert(key.id.clone(), key.signing.verifying_key());
        let profile = DeviceProfile {
            device: DeviceId::try_new("bench-device")?,
            kind: DeviceKind::Fridge,
            fleet,
            local: LocalTime::fixed(3600),
            camouflage_share: 0.1,
            model_runtime: scorer.unwrap_or_default(),
            policy: ledtrad_agent::engine::Policy::Clues,
        };
        let mut engine = Engine::new(profile, keys);
        engine.handle_catalogue(&envelope, start).map_err(|e| anyhow::anyhow!("{e}"))?;
        if scorer.is_some() {
            let model = shipped_model()?;
            let model = sign_model(&model, &key, &options)?;
            engine.handle_model(&model, start).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        engine.set_consent(ConsentState::all());
        // Signals carry source features only; the engine derives the rest from them.
        let sources = signal_features().collect();
        Ok(Self { engine, rng, sources, now: start, step: 0 })
    }

    /// The next decision: time moves on, a signal comes, the engine decides (timed around the
    /// call alone), and the people answer what it showed. Its id, whether it showed an offer,
    /// and how long it took.
    pub fn decide(&mut self) -> (DecisionId, bool, std::time::Duration) {
        let rng = &mut self.rng;
        self.now = self.now.plus_secs(rng.random_range(30..900));
        let feature = self.sources[self.step % self.sources.len()];
        self.engine.handle_signal(Signal { feature, value: rng.random_range(0.0..1.0) }, self.now);
        let draw = Draw { camouflage: rng.random(), pick: rng.random(), explore: Some(rng.random()) };
        let started = Instant::now();
        let decision = self.engine.decide(Moment::DoorOpened, self.now, draw);
        let elapsed = started.elapsed();
        let (id, shown) = (decision.id, decision.shown.is_some());
        if shown {
            use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
            let kind = if self.rng.random_bool(0.3) { FeedbackKind::Accepted } else { FeedbackKind::Dismissed };
            let _ = self.engine.handle_feedback(Feedback { decision: id, kind }, self.now);
        }
        if self.step % 500 == 0 {
            self.engine.handle_timeout(self.now);
        }
        self.step += 1;
        (id, shown, elapsed)
    }

    /// The engine, to read a decision's trace.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Times `decisions` decisions of the bench's [`Workload`] (after a tenth more that warm caches
/// and history up), full ones apart from blocked ones.
pub fn decide(
    offers: usize,
    decisions: usize,
    seed: u64,
    scorer: Option<RuntimeKind>,
) -> anyhow::Result<DecideFigures> {
    let mut workload = Workload::new(offers, seed, scorer)?;
    let mut nanos = Vec::with_capacity(decisions);
    let (mut full, mut blocked) = (Vec::with_capacity(decisions), Vec::with_capacity(decisions));
    let mut shown = 0;
    for k in 0..decisions + decisions / 10 {
        let (id, was_shown, elapsed) = workload.decide();
        if k >= decisions / 10 {
            let took = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            nanos.push(took);
            match workload.engine.weighed_offers(id) {
                Some(false) => blocked.push(took),
                _ => full.push(took),
            }
            shown += usize::from(was_shown);
        }
    }
    let seconds = nanos.iter().map(|n| *n as f64).sum::<f64>() / 1e9;
    for timed in [&mut nanos, &mut full, &mut blocked] {
        timed.sort_unstable();
    }
    let pct = |q: f64| crate::summary::percentile_us(&nanos, q);
    let full_pct = |q: f64| crate::summary::percentile_us(&full, q);
    Ok(DecideFigures {
        bench: "decide",
        scorer: scorer.map_or("builtin", RuntimeKind::as_str),
        offers,
        features: FEATURES.len(),
        decisions: nanos.len(),
        shown,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        full_p50_us: full_pct(0.5),
        full_p99_us: full_pct(0.99),
        full_p999_us: full_pct(0.999),
        blocked_p99_us: crate::summary::percentile_us(&blocked, 0.99),
        full_share: full.len() as f64 / nanos.len().max(1) as f64,
        decisions_per_s: if seconds > 0.0 { (nanos.len() as f64 / seconds).round() } else { 0.0 },
    })
}

/// The propensity model shipped in `examples/models/`, checked.
pub fn shipped_model() -> anyhow::Result<CheckedModel> {
    Ok(check_model(
        Path::new("examples/models/propensity.tflite"),
        include_bytes!("../../examples/models/propensity.tflite").to_vec(),
        Path::new("examples/models/propensity.toml"),
        include_bytes!("../../examples/models/propensity.toml"),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_catalogue_is_valid_and_the_bench_runs() {
        for scorer in [None, Some(RuntimeKind::Tract)] {
            let figures = decide(50, 200, 1, scorer).unwrap();
            assert_eq!(figures.decisions, 200);
            assert!(figures.shown > 0);
            assert!(figures.p50_us > 0.0 && figures.p50_us <= figures.p99_us && figures.p99_us <= figures.p999_us);
            // The device caps (6 an hour, 30 a day) block some decisions before any offer is
            // read; those are timed apart.
            assert!(figures.full_share > 0.0 && figures.full_share < 1.0, "{figures:?}");
            assert!(figures.full_p50_us > 0.0 && figures.full_p50_us <= figures.full_p99_us);
            assert!(figures.blocked_p99_us > 0.0 && figures.decisions_per_s > 0.0);
            assert_eq!(figures.scorer, scorer.map_or("builtin", RuntimeKind::as_str));
        }
    }
}

/// The firmware's sizes: what an 8-reading summary takes on the wire and what a node's state
/// takes in a board's RAM.
#[derive(Debug, Clone, Serialize)]
pub struct FirmwareFigures {
    /// "firmware".
    pub bench: &'static str,
    /// Readings in the summary measured.
    pub readings: usize,
    /// The largest frame such a summary gives on the wire (delimiter included), over every
    /// sequence number and reading value.
    pub frame_bytes_max: usize,
    /// The frame size for a typical fridge summary (levels, door, temperature).
    pub frame_bytes_typical: usize,
    /// `size_of::<Node>()`: the node's state, its unsent queue included.
    pub node_bytes: usize,
    /// `size_of::<FrameDecoder>()`: the agent's per-link decoder state.
    pub decoder_bytes: usize,
}

/// Measures the firmware's sizes.
pub fn firmware() -> FirmwareFigures {
    use ledtrad_protocol::link::{encode, Quantity, Reading, Readings, Summary, LINK_VERSION, MAX_FRAME, MAX_READINGS};
    let frame_len = |seq: u8, value: u8| {
        let mut readings = Readings::new();
        for q in Quantity::ALL.iter().take(MAX_READINGS) {
            readings.push(Reading { quantity: *q, value });
        }
        let mut out = [0u8; MAX_FRAME];
        encode(Summary { version: LINK_VERSION, seq, readings }, &mut out).map_or(usize::MAX, <[u8]>::len)
    };
    let frame_bytes_max =
        (0..=255u8).flat_map(|seq| (0..=255u8).map(move |v| (seq, v))).map(|(s, v)| frame_len(s, v)).max().unwrap_or(0);
    let mut typical = Readings::new();
    for (q, v) in [
        (Quantity::ButterLevel, 0.4),
        (Quantity::MilkLevel, 0.7),
        (Quantity::CheeseLevel, 0.2),
        (Quantity::VegetablesLevel, 0.9),
        (Quantity::DrinksLevel, 0.5),
        (Quantity::DoorOpenings, 2.0),
        (Quantity::Temperature, 4.5),
    ] {
        typical.push(Reading::new(q, v));
    }
    let mut out = [0u8; MAX_FRAME];
    let frame_bytes_typical =
        encode(Summary { version: LINK_VERSION, seq: 42, readings: typical }, &mut out).map_or(usize::MAX, <[u8]>::len);
    FirmwareFigures {
        bench: "firmware",
        readings: MAX_READINGS,
        frame_bytes_max,
        frame_bytes_typical,
        node_bytes: crate::board::Board::node_bytes(),
        decoder_bytes: core::mem::size_of::<ledtrad_protocol::link::FrameDecoder>(),
    }
}

#[cfg(test)]
mod firmware_tests {
    #[test]
    fn an_eight_reading_frame_and_the_node_fit_their_budgets() {
        let f = super::firmware();
        assert!(f.frame_bytes_max <= 24, "{f:?}");
        assert!(f.frame_bytes_typical <= f.frame_bytes_max);
        assert!(f.node_bytes <= 4096, "{f:?}");
    }
}
