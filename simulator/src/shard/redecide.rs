//! The audit that does not take the engine's word for what personal data did. Beside a
//! device's agent the shard keeps a second engine, given the same catalogue, consent, draws and
//! history (the impressions, prompts and answers of the agent's own decisions) but none of the
//! household's personal inputs: no personal signal reaches it and it never learns from
//! answers. Each decision the agent makes on its catalogue is made again there; where the offer
//! shown differs, personal data influenced it, so the agent must have marked it personalised
//! and must have had `personalise`. The agent's record of the features it read plays no part.

use anyhow::anyhow;
use ledtrad_agent::engine::home::{DayShown, HomeShown};
use ledtrad_agent::engine::{Engine, SharedCatalogues};
use ledtrad_agent::handle::OfferOutcome;
use ledtrad_agent::Config;
use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, OfferId, Purpose, UnixTime};

/// What making one decision again found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Finding {
    /// The decision was made again (decisions on the offer service's answer are not).
    pub redecided: bool,
    /// Without personal inputs, a different offer (or none, or one where none was) is shown.
    pub influenced: bool,
    /// Influenced, and the offer shown is not marked personalised.
    pub unmarked: bool,
    /// Influenced, and the device did not have `personalise`.
    pub without_consent: bool,
}

/// Judges `decision` against `again`, the same decision made without personal inputs, for a
/// device working under `consent`.
pub(crate) fn judge(decision: &Decision, again: &Decision, consent: ConsentState) -> Finding {
    let offer = |d: &Decision| d.shown.as_ref().map(|s| s.offer.clone());
    let influenced = offer(decision) != offer(again);
    Finding {
        redecided: true,
        influenced,
        unmarked: influenced && decision.shown.as_ref().is_some_and(|s| !s.personalised),
        without_consent: influenced && !consent.allows(Purpose::Personalise),
    }
}

/// The second engine of one device.
pub(crate) struct Shadow {
    engine: Engine,
}

impl Shadow {
    /// An engine for the device `config` describes, under `consent`, with the prompts the
    /// people it serves could answer (`askable`), on the run's signed `catalogue` (compiled
    /// once for every engine given the same `shared`).
    pub(crate) fn start(
        config: &Config,
        catalogue: &[u8],
        consent: ConsentState,
        askable: ConsentState,
        now: UnixTime,
        shared: &SharedCatalogues,
    ) -> anyhow::Result<Self> {
        let mut engine = Engine::previewing(config.engine_profile(), config.keys.clone());
        engine.share_catalogues(shared.clone());
        engine.set_consent(consent);
        engine.set_askable(askable);
        engine
            .handle_catalogue(catalogue, now)
            .map_err(|e| anyhow!("the audit's engine for {} refused the run's catalogue: {e}", config.device))?;
        Ok(Self { engine })
    }

    /// The device's signals, less the personal ones.
    pub(crate) fn signals(&mut self, signals: &[Signal], now: UnixTime) {
        for signal in signals.iter().filter(|s| s.feature.spec().purpose.is_none()) {
            self.engine.handle_signal(*signal, now);
        }
    }

    /// What the home's other screens showed today, summed, as the agent hears it on the home
    /// channel.
    pub(crate) fn home_shown(&mut self, others: DayShown) {
        self.engine.set_home_shown(HomeShown::new([others]));
    }

    /// The device's consent changed.
    pub(crate) fn consent(&mut self, consent: ConsentState) {
        self.engine.set_consent(consent);
    }

    /// Makes the agent's decision again with its draws and judges it, then follows the agent's
    /// decision: its impression (shown or held out, of campaign `held_campaign`) and prompt
    /// count here as there. A decision on the offer service's answer is followed, not judged;
    /// a local decision that stood because the service did not answer is judged. (An offer the
    /// service's answer held out has no campaign the run knows, so its impression is not
    /// followed; `run` has no offer service today.)
    pub(crate) fn redecide(
        &mut self,
        outcome: &OfferOutcome,
        held_campaign: Option<&CampaignId>,
        consent: ConsentState,
    ) -> Finding {
        let decision = &outcome.decision;
        let finding = if outcome.request.is_none_or(|r| !r.answered) {
            let again = self.engine.preview(decision.moment, decision.at, outcome.draw);
            judge(decision, &again, consent)
        } else {
            Finding::default()
        };
        if let Some(shown) = &decision.shown {
            self.engine.restore_impression(&shown.offer, &shown.campaign, decision.at);
        } else if let (Some(offer), Some(campaign)) = (&decision.would_have_shown, held_campaign) {
            self.engine.restore_impression(offer, campaign, decision.at);
        }
        if decision.prompt.is_some() {
            self.engine.restore_prompt_put(decision.at);
        }
        finding
    }

    /// The people answered an offer (what it rules out counts; nothing is learned from it).
    pub(crate) fn answered(&mut self, offer: &OfferId, category: &str, kind: FeedbackKind, now: UnixTime) {
        self.engine.restore_answer(offer, Some(category), kind, now);
    }

    /// The people said no to a prompt for `purpose`.
    pub(crate) fn prompt_refused(&mut self, purpose: Purpose, now: UnixTime) {
        self.engine.restore_prompt_refusal(purpose, now);
    }

    /// The end of a day: old impressions, answers and windows go, as on the agent.
    pub(crate) fn overnight(&mut self, now: UnixTime) {
        self.engine.handle_timeout(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_agent::engine::Draw;
    use ledtrad_agent::{RawConfig, RawKey};
    use ledtrad_operator::{sign_catalogue, OperatorKey, SignOptions};
    use ledtrad_protocol::feature::FeatureName;
    use ledtrad_protocol::feedback::Feedback;
    use ledtrad_protocol::{DeviceKind, FleetId, KeyId, Moment};

    const NOW: UnixTime = UnixTime(1_795_456_800);

    /// A fridge's config and the shipped catalogue, signed for it.
    fn fridge() -> (Config, Vec<u8>) {
        let key = OperatorKey::from_secret(KeyId::try_new("op").unwrap(), [7; 32]);
        let raw = RawConfig {
            device_id: "d-audit".into(),
            kind: DeviceKind::Fridge.as_str().into(),
            fleet: "home".into(),
            broker: "mqtt://127.0.0.1:1883".into(),
            database: "unused.db".into(),
            operator_keys: vec![RawKey { id: "op".into(), public_key: key.public_hex(), retired: false }],
            ..RawConfig::default()
        };
        let config = Config::from_raw(raw, "test").unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/catalogues/home.toml");
        let catalogue = ledtrad_operator::load_catalogue(std::path::Path::new(path), Some(NOW)).unwrap();
        let options = SignOptions {
            fleet: FleetId::try_new("home").unwrap(),
            version: 1,
            issued_at: NOW,
            expires_at: NOW.plus_secs(30 * 86_400),
        };
        (config, sign_catalogue(&catalogue, &key, &options).unwrap())
    }

    fn butter_low() -> Vec<Signal> {
        vec![
            Signal { feature: FeatureName::try_new("fridge.butter.level").unwrap(), value: 0.05 },
            Signal { feature: FeatureName::try_new("context.ambient_light").unwrap(), value: 0.6 },
        ]
    }

    /// The agent's engine, with the household's personal signals, and the audit's, without.
    fn engines(consent: ConsentState) -> (Engine, Shadow) {
        let (config, catalogue) = fridge();
        let mut agent = Engine::new(config.engine_profile(), config.keys.clone());
        agent.set_consent(consent);
        agent.handle_catalogue(&catalogue, NOW).unwrap();
        let mut shadow =
            Shadow::start(&config, &catalogue, consent, ConsentState::all(), NOW, &SharedCatalogues::new()).unwrap();
        for signal in butter_low() {
            agent.handle_signal(signal, NOW);
        }
        shadow.signals(&butter_low(), NOW);
        (agent, shadow)
    }

    fn outcome(decision: Decision) -> OfferOutcome {
        OfferOutcome { decision, decide_nanos: 0, weighed: true, draw: Draw::NONE, request: None }
    }

    #[test]
    fn a_personal_offer_marked_as_such_passes() {
        let personalise = ConsentState::NONE.with(Purpose::Personalise, true);
        let (mut agent, mut shadow) = engines(personalise);
        let decision = agent.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
        let shown = decision.shown.clone().expect("low butter brings an offer");
        assert!(shown.personalised);
        let finding = shadow.redecide(&outcome(decision), None, personalise);
        assert_eq!(finding, Finding { redecided: true, influenced: true, unmarked: false, without_consent: false });
    }

    /// The mutation: an engine that reads a personal feature without recording it hands over a
    /// decision that is not marked and names no personal feature. The checks that take the
    /// decision's word pass it; making it again without personal inputs catches it.
    #[test]
    fn an_engine_that_reads_a_personal_feature_without_recording_it_is_caught() {
        let personalise = ConsentState::NONE.with(Purpose::Personalise, true);
        let (mut agent, mut shadow) = engines(personalise);
        let mut decision = agent.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
        let shown = decision.shown.as_mut().expect("low butter brings an offer");
        shown.personalised = false;
        shown.why = format!("From this week's offers for every {}.", DeviceKind::Fridge.label());
        decision.features_used.retain(|u| u.allowed_by.is_none());
        assert!(!crate::audit::decision_violates(personalise, &decision), "the decision's word passes it");
        assert!(crate::audit::why_consistent(DeviceKind::Fridge, &decision), "so does its why");
        let finding = shadow.redecide(&outcome(decision.clone()), None, personalise);
        assert!(finding.unmarked, "{finding:?}");
        // The same decision on a device without `personalise`: personal data may not
        // influence anything there.
        let (_, mut shadow) = engines(ConsentState::NONE);
        let finding = shadow.redecide(&outcome(decision), None, ConsentState::NONE);
        assert!(finding.unmarked && finding.without_consent, "{finding:?}");
    }

    /// The audit's engine follows the agent's decisions: caps spent, prompts put and answers
    /// given there hold here too, so decisions that personal data did not change keep matching.
    #[test]
    fn the_audits_engine_follows_impressions_prompts_and_answers() {
        let (mut agent, mut shadow) = engines(ConsentState::NONE);
        let mut shown = Vec::new();
        for minute in 0..12 {
            let now = NOW.plus_secs(minute * 3_600);
            let decision = agent.decide_traced(Moment::DoorOpened, now, Draw::NONE);
            let finding = shadow.redecide(&outcome(decision.clone()), None, ConsentState::NONE);
            assert_eq!(finding, Finding { redecided: true, ..Finding::default() }, "decision {minute}: {decision:?}");
            if let Some(prompt) = &decision.prompt {
                agent.handle_prompt_answer(decision.id, false, now).unwrap();
                shadow.prompt_refused(prompt.purpose, now);
            }
            if let Some(offer) = decision.shown.as_ref().map(|s| s.offer.clone()) {
                let applied = agent
                    .handle_feedback(Feedback { decision: decision.id, kind: FeedbackKind::NotForMe }, now)
                    .unwrap();
                shadow.answered(&offer, applied.category.as_deref().unwrap_or(""), FeedbackKind::NotForMe, now);
                shown.push(offer);
            }
        }
        assert!(shown.len() >= 2, "the caps and answers moved the agent on: {shown:?}");
    }

    #[test]
    fn a_decision_personal_data_did_not_change_passes() {
        let (mut agent, mut shadow) = engines(ConsentState::NONE);
        let decision = agent.decide_traced(Moment::DoorOpened, NOW, Draw::NONE);
        let finding = shadow.redecide(&outcome(decision), None, ConsentState::NONE);
        assert_eq!(finding, Finding { redecided: true, ..Finding::default() });
    }
}
