//! Pins the engine's decisions: a fixed, seeded sequence of signals, moments, consent changes,
//! feedback, prompt answers and offer-service answers is replayed on a few devices over the
//! example catalogue (with device-wide rules and a campaign cap added), and every decision's
//! full trace (shown offer, question, why, flags, every candidate's verdict, scores, features
//! read) and every answer is compared, exactly, with `tests/golden/pipeline.jsonl`.
//!
//! A change that alters a decision on purpose writes the file anew with
//! `cargo test -p ledtrad-engine --test pipeline_golden -- --ignored` and shows the change in
//! its diff.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::START;
use ledtrad_engine::{in_holdout, Draw, Engine, LocalTime, Policy};
use ledtrad_protocol::caps::{CampaignCaps, QuietHours};
use ledtrad_protocol::catalogue::{Campaign, Catalogue, Offer};
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feature::{signal_features, Aggregation};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, Moment, OfferId, Purpose};
use serde_json::{json, Value};

const GOLDEN: &str = include_str!("golden/pipeline.jsonl");
const GOLDEN_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/pipeline.jsonl");

/// Steps replayed on each device.
const STEPS: usize = 100;

/// SplitMix64, seeded per device: the sequence is the same on every run and machine.
struct Seq(u64);

impl Seq {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A multiple of 1/1000 in [0, 1), so every value prints exactly.
    fn unit(&mut self) -> f64 {
        self.below(1000) as f64 / 1000.0
    }
}

/// The example catalogue with device-wide rules and a campaign cap, so every stage has work.
fn build_catalogue() -> Catalogue {
    let mut catalogue = common::example_catalogue();
    catalogue.policy.quiet_hours = Some(QuietHours { from: 23, to: 6 });
    catalogue.policy.min_gap_minutes = Some(20);
    catalogue.policy.device_per_day = Some(8);
    let mut greens = Campaign::new(CampaignId::try_new("greens").unwrap());
    greens.caps = CampaignCaps { per_week: Some(3), ..CampaignCaps::default() };
    catalogue.campaigns.push(greens);
    // Two built-in scorers: one over a personal feature, one over context only.
    let scorers = [
        ("veg-box", json!({ "bias": -0.5, "weights": [{ "feature": "fridge.door.opens", "weight": 0.2 }] })),
        ("free-sample", json!({ "bias": 0.3, "weights": [{ "feature": "context.ambient_light", "weight": -1.0 }] })),
    ];
    for (id, scorer) in scorers {
        let offer = catalogue.offers.iter_mut().find(|o| o.id.as_str() == id).unwrap();
        offer.propensity = Some(serde_json::from_value(scorer).unwrap());
    }
    catalogue
}

/// What the offer service may answer: every catalogue offer under a new id (half of them in a
/// campaign of the service's own), one the catalogue already holds, one of a journey's campaign
/// and one that fails the catalogue checks.
fn build_remote_pool(catalogue: &Catalogue) -> Vec<Offer> {
    let mut pool: Vec<Offer> = catalogue
        .offers
        .iter()
        .enumerate()
        .filter(|(_, o)| o.campaign.as_str() != "recipes")
        .map(|(i, o)| {
            let mut o = o.clone();
            o.id = OfferId::try_new(format!("remote-{}", o.id.as_str())).unwrap();
            if i % 2 == 0 {
                o.campaign = CampaignId::try_new(format!("service-{}", o.campaign.as_str())).unwrap();
            }
            o
        })
        .collect();
    pool.push(catalogue.offers[1].clone());
    let mut journey = catalogue.offers.iter().find(|o| o.campaign.as_str() == "recipes").unwrap().clone();
    journey.id = OfferId::try_new("remote-recipe").unwrap();
    pool.push(journey);
    let mut bad = catalogue.offers[0].clone();
    bad.id = OfferId::try_new("remote-statement").unwrap();
    bad.question = "Butter.".into();
    pool.push(bad);
    pool
}

/// The first pseudonym `d-{prefix}-{n}` that is (or is not) in `campaign`'s holdout of `share`.
fn pseudonym(prefix: &str, campaign: &str, held_out: bool) -> String {
    let campaign = CampaignId::try_new(campaign).unwrap();
    (0..)
        .map(|n| format!("d-{prefix}-{n}"))
        .find(|d| in_holdout(&DeviceId::try_new(d.as_str()).unwrap(), &campaign, 0.1) == held_out)
        .unwrap()
}

/// The devices replayed: each kind, in and out of a holdout, in a fixed zone and in Stockholm,
/// under both policies.
fn build_devices(catalogue: &Catalogue) -> Vec<(String, Engine)> {
    let stockholm = LocalTime::zone(chrono_tz::Europe::Stockholm);
    let fixed = LocalTime::fixed(3600);
    let devices = [
        (pseudonym("fridge", "dairy-winter", false), DeviceKind::Fridge, fixed, 0.1, Policy::Clues),
        (pseudonym("fridge", "dairy-winter", true), DeviceKind::Fridge, stockholm, 0.3, Policy::Clues),
        (pseudonym("blunt", "dairy-winter", false), DeviceKind::Fridge, fixed, 0.1, Policy::Blunt),
        (pseudonym("reader", "books-winter", true), DeviceKind::Ereader, stockholm, 0.1, Policy::Clues),
        (pseudonym("reader", "books-winter", false), DeviceKind::Ereader, fixed, 0.5, Policy::Clues),
        (pseudonym("screen", "dairy-winter", false), DeviceKind::LockScreen, fixed, 0.1, Policy::Clues),
    ];
    devices
        .into_iter()
        .map(|(device, kind, local, share, policy)| {
            let engine = common::build_device_engine(&device, kind, local, share, policy, catalogue.clone());
            (device, engine)
        })
        .collect()
}

/// A draw from the sequence: camouflage now and then, exploration half the time.
fn draw(seq: &mut Seq) -> Draw {
    let camouflage = seq.unit();
    let pick = seq.next();
    let explore = (seq.below(2) == 0).then(|| seq.next());
    Draw { camouflage, pick, explore }
}

/// A moment from the sequence: mostly one of the device's own, now and then any.
fn moment(seq: &mut Seq, kind: DeviceKind) -> Moment {
    let own: &[Moment] = match kind {
        DeviceKind::Fridge => &[Moment::DoorOpened, Moment::DoorOpened, Moment::InventoryLow],
        DeviceKind::Ereader => &[Moment::BookFinished, Moment::ReaderSleep],
        DeviceKind::LockScreen => &[Moment::ScreenWoken],
    };
    if seq.below(8) == 0 {
        Moment::ALL[seq.below(Moment::ALL.len() as u64) as usize]
    } else {
        own[seq.below(own.len() as u64) as usize]
    }
}

/// A decision's full trace, as JSON.
fn traced(engine: &Engine, id: DecisionId) -> Value {
    serde_json::to_value(engine.decision(id).unwrap()).unwrap()
}

/// Replays one step on `engine` and says what happened; `decided` holds the decisions so far.
fn step(
    engine: &mut Engine,
    seq: &mut Seq,
    pool: &[Offer],
    decided: &mut Vec<DecisionId>,
    now: ledtrad_protocol::UnixTime,
) -> Value {
    let kind = engine.profile().kind;
    let recent = |seq: &mut Seq, decided: &[DecisionId]| {
        let back = if seq.below(3) == 0 { seq.below(3) as usize } else { 0 };
        let back = back.min(decided.len().saturating_sub(1));
        decided.len().checked_sub(1 + back).map(|k| decided[k])
    };
    match seq.below(100) {
        0..=34 => {
            let features: Vec<_> = signal_features().filter(|f| f.spec().kind.is_none_or(|k| k == kind)).collect();
            let feature = features[seq.below(features.len() as u64) as usize];
            let value = match (seq.below(12), feature.spec().aggregation) {
                (0, _) => 1.5,
                (_, Aggregation::DailyCount) => seq.below(15) as f64,
                (k, _) if k < 7 => seq.unit() * 0.4,
                _ => seq.unit(),
            };
            let outcome = engine.handle_signal(Signal { feature, value }, now);
            json!({ "signal": feature.spec().name, "value": value, "outcome": format!("{outcome:?}") })
        }
        35..=64 => {
            let moment = moment(seq, kind);
            let id = engine.decide(moment, now, draw(seq)).id;
            decided.push(id);
            json!({ "decide": moment.as_str(), "decision": traced(engine, id) })
        }
        65..=79 => {
            let kinds =
                [FeedbackKind::Accepted, FeedbackKind::Dismissed, FeedbackKind::NotForMe, FeedbackKind::Converted];
            let kind = kinds[seq.below(4) as usize];
            let Some(decision) = recent(seq, decided) else { return json!({ "feedback": "no decision yet" }) };
            let result = engine.handle_feedback(Feedback { decision, kind }, now);
            json!({ "feedback": decision.0, "kind": format!("{kind:?}"), "result": result.map(|a| format!("{a:?}")).map_err(|e| e.to_string()) })
        }
        80..=86 => {
            // Mostly with `personalise`, so personal offers and learning have their turn.
            let bits = seq.below(8) | u64::from(seq.below(4) != 0);
            let consent = ConsentState::NONE
                .with(Purpose::Personalise, bits & 1 != 0)
                .with(Purpose::Request, bits & 2 != 0)
                .with(Purpose::Measure, bits & 4 != 0);
            let purged = engine.set_consent(consent);
            json!({ "consent": bits, "purged": format!("{purged:?}") })
        }
        87..=93 => {
            let moment = moment(seq, kind);
            let count = seq.below(7) as usize;
            let offers: Vec<Offer> = (0..count).map(|_| pool[seq.below(pool.len() as u64) as usize].clone()).collect();
            let interests_sent = seq.below(2) == 0;
            let draw = draw(seq);
            let names: Vec<String> = engine.interests().iter().map(|c| c.path().to_string()).collect();
            match engine.decide_remote(moment, now, draw, offers, interests_sent) {
                Ok((decision, counted)) => {
                    let id = decision.id;
                    decided.push(id);
                    json!({ "remote": moment.as_str(), "interests": names, "counted": format!("{counted:?}"), "decision": traced(engine, id) })
                }
                Err(e) => json!({ "remote": moment.as_str(), "error": e.to_string() }),
            }
        }
        94..=96 => {
            let Some(decision) = recent(seq, decided) else { return json!({ "prompt_answer": "no decision yet" }) };
            let worthwhile = engine.request_worthwhile(decision, now);
            let yes = seq.below(2) == 0;
            let result = engine.handle_prompt_answer(decision, yes, now);
            json!({ "prompt_answer": decision.0, "yes": yes, "request_worthwhile": worthwhile, "result": result.map(|p| format!("{p:?}")).map_err(|e| e.to_string()) })
        }
        _ => {
            let expired = engine.handle_timeout(now);
            json!({ "timeout": expired, "features": format!("{:?}", engine.features(now)) })
        }
    }
}

/// Every line of the replay.
fn replay() -> Vec<String> {
    let catalogue = build_catalogue();
    let pool = build_remote_pool(&catalogue);
    let mut lines = Vec::new();
    for (n, (device, mut engine)) in build_devices(&catalogue).into_iter().enumerate() {
        let mut seq = Seq(0x1ed7_2ad0 + n as u64);
        let mut now = START;
        let mut decided = Vec::new();
        // Every device starts with `personalise` and `request`; the sequence changes them.
        engine.set_consent(ConsentState::NONE.with(Purpose::Personalise, true).with(Purpose::Request, true));
        for k in 0..STEPS {
            // From a minute to two and a half hours on; now and then up to a day.
            let longest = if seq.below(8) == 0 { 1440 } else { 150 };
            now = now.plus_secs(60 * (1 + seq.below(longest)));
            let event = step(&mut engine, &mut seq, &pool, &mut decided, now);
            let line = json!({ "device": device, "step": k, "at": now.secs(), "event": event });
            lines.push(serde_json::to_string(&line).unwrap());
        }
    }
    lines
}

#[test]
fn decisions_match_the_golden_file() {
    let got = replay();
    let want: Vec<&str> = GOLDEN.lines().collect();
    for (k, (got, want)) in got.iter().zip(&want).enumerate() {
        assert_eq!(got, want, "line {} of tests/golden/pipeline.jsonl differs", k + 1);
    }
    assert_eq!(got.len(), want.len(), "the replay gave {} lines, the golden file has {}", got.len(), want.len());
}

/// Writes the golden file anew from the code as it is (run on purpose, with `--ignored`).
#[test]
#[ignore = "writes tests/golden/pipeline.jsonl; run it only to change the pinned decisions on purpose"]
fn write_golden_file() {
    let mut text = replay().join("\n");
    text.push('\n');
    std::fs::write(GOLDEN_PATH, text).unwrap();
}
