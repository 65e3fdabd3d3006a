//! Property tests of the engine's privacy invariants over random sequences of consent changes,
//! signals, decisions, feedback, erasures and the passing of time. Beside the engine under test
//! runs a second one that gets the same ops but no personal signal and learns nothing from
//! answers; each decision is made again there (same draws, same history), so a decision that
//! personal data changed is caught whatever the engine records about what it read.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::{example_catalogue, START};
use ledtrad_engine::{Draw, Engine};
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::feature::{FeatureName, FEATURES};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceKind, Moment, Purpose};
use proptest::prelude::*;

fn build_engine(kind: DeviceKind) -> Engine {
    common::build_engine(kind, 3600, 0.2, example_catalogue())
}

#[derive(Debug, Clone)]
enum Op {
    Consent(u8),
    Signal(usize, f64),
    Decide(usize, f64, u64),
    Feedback(FeedbackKind),
    Erase,
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..16).prop_map(Op::Consent),
        3 => (0..FEATURES.len(), prop_oneof![0.0..1.0f64, -5.0..50.0f64, Just(f64::NAN)]).prop_map(|(f, v)| Op::Signal(f, v)),
        4 => (0..Moment::ALL.len(), 0.0..1.0f64, any::<u64>()).prop_map(|(m, c, p)| Op::Decide(m, c, p)),
        1 => prop_oneof![Just(FeedbackKind::Accepted), Just(FeedbackKind::Dismissed), Just(FeedbackKind::NotForMe)]
            .prop_map(Op::Feedback),
        1 => Just(Op::Erase),
        1 => (0u64..3 * 86_400).prop_map(Op::Wait),
    ]
}

/// Counts in `shadow` what `decision` of `engine` counted: its impression (shown or held out)
/// and its prompt.
fn follow(shadow: &mut Engine, engine: &Engine, decision: &ledtrad_protocol::decision::Decision) {
    if let Some(shown) = &decision.shown {
        shadow.restore_impression(&shown.offer, &shown.campaign, decision.at);
    } else if let (Some(offer), Some(campaign)) = (&decision.would_have_shown, engine.decision_campaign(decision.id)) {
        shadow.restore_impression(offer, &campaign, decision.at);
    }
    if decision.prompt.is_some() {
        shadow.restore_prompt_put(decision.at);
    }
}

fn consent_from_bits(bits: u8) -> ConsentState {
    Purpose::ALL.into_iter().enumerate().fold(ConsentState::NONE, |s, (i, p)| s.with(p, bits & (1 << i) != 0))
}

proptest! {
    // Enough cases that an engine marking only offers with personal conditions is caught
    // (a decision that personal data changes in another way takes a few hundred to turn up).
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn no_decision_uses_what_consent_does_not_allow(
        kind in prop_oneof![Just(DeviceKind::Fridge), Just(DeviceKind::Ereader), Just(DeviceKind::LockScreen)],
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut engine = build_engine(kind);
        let mut without_personal = build_engine(kind);
        let mut now = START;
        let mut last = None;
        for op in ops {
            match op {
                Op::Consent(bits) => {
                    engine.set_consent(consent_from_bits(bits));
                    without_personal.set_consent(consent_from_bits(bits));
                }
                Op::Signal(f, value) => {
                    let feature = FeatureName::try_new(FEATURES[f].name).unwrap();
                    engine.handle_signal(Signal { feature, value }, now);
                    if feature.spec().purpose.is_none() {
                        without_personal.handle_signal(Signal { feature, value }, now);
                    }
                }
                Op::Decide(m, camouflage, pick) => {
                    let consent = engine.consent();
                    let draw = Draw { camouflage, pick, explore: Some(pick) };
                    let again = without_personal.preview(Moment::ALL[m], now, draw);
                    let decision = engine.decide(Moment::ALL[m], now, draw).clone();
                    follow(&mut without_personal, &engine, &decision);
                    let offer = |d: &ledtrad_protocol::decision::Decision| d.shown.as_ref().map(|s| s.offer.clone());
                    if offer(&decision) != offer(&again) {
                        prop_assert!(consent.allows(Purpose::Personalise), "personal data changed a decision without personalise");
                        if let Some(shown) = &decision.shown {
                            prop_assert!(shown.personalised, "personal data picked {} and it is not marked", shown.offer);
                        }
                    }
                    for used in &decision.features_used {
                        if let Some(purpose) = used.allowed_by {
                            prop_assert!(consent.allows(purpose), "{} read without {purpose}", used.feature);
                        }
                        prop_assert_eq!(used.allowed_by, used.feature.spec().purpose);
                    }
                    if let Some(shown) = &decision.shown {
                        prop_assert!(!shown.personalised || consent.allows(Purpose::Personalise));
                        prop_assert!(!shown.why.chars().any(|c| c.is_ascii_digit()), "a reading in {:?}", shown.why);
                        prop_assert!(shown.question.trim_end().ends_with('?'));
                    }
                    last = Some(decision.id);
                }
                Op::Feedback(kind) => {
                    if let Some(decision) = last {
                        if let Ok(applied) = engine.handle_feedback(Feedback { decision, kind }, now) {
                            without_personal.restore_answer(&applied.offer, applied.category.as_deref(), kind, now);
                        }
                    }
                }
                Op::Erase => {
                    engine.erase();
                    without_personal.erase();
                    prop_assert!(engine.features(now).is_empty());
                }
                Op::Wait(secs) => {
                    now = now.plus_secs(secs);
                    engine.handle_timeout(now);
                    without_personal.handle_timeout(now);
                }
            }
            // Nothing personal is held without the consent that allows it.
            if !engine.consent().allows(Purpose::Personalise) {
                for (feature, _) in engine.features(now) {
                    prop_assert!(feature.spec().purpose.is_none(), "{feature} held without personalise");
                }
            }
        }
    }
}
