//! ledtrad's pure decision core (DESIGN §8).
//!
//! The engine never reads a clock, a random source, the network or a file: time comes in as
//! `now` arguments, stored state is handed back in by the agent on start
//! ([`Engine::restore_impression`], [`Engine::restore_feedback`]), and results are returned
//! as values. A `clippy.toml` beside this crate disallows clock and file calls, and CI checks
//! that the crate pulls in no tokio, rumqttc or rusqlite.
//!
//! # Layout
//!
//! - [`trust`]: verifying signed catalogue envelopes against pinned keys.
//! - [`compiled`]: a catalogue compiled once at load.
//! - [`answers`]: what people's answers rule out (dismissal blocks, suppressions, conversions).
//! - [`features`]: signal windows into features (sources and, in fixed memory, the windows
//!   derived from them), with consent on entry and purge on revoke.
//! - [`history`]: impressions per offer per day, and Beta posteriors from feedback.
//! - [`model`]: the fleet's TensorFlow Lite scoring model behind one runtime interface (tract
//!   by default, TensorFlow Lite's own with the `tflite` feature).
//! - `decide`: the pipeline stages, each rejection named.
//! - [`prompts`]: when to ask for consent.
//! - `scoring`: propensity (the fleet model's or the built-in logistic prior, run on all
//!   candidates in one batch; Beta posterior; Thompson sampling), value,
//!   priority and the intrusiveness penalty.
//! - [`why`]: the coarse, truthful "why".
//! - [`Engine`]: the state of one device, tying these together.

pub mod answers;
pub mod compiled;
mod decide;
pub mod features;
pub mod history;
pub mod journey;
pub mod model;
pub mod prompts;
mod scoring;
pub mod trust;
pub mod why;

use std::collections::VecDeque;
use std::sync::Arc;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{Decision, DecisionId, ScorerUsed, ShownPrompt};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, FleetId, Moment, OfferId, Purpose, UnixTime};

pub use compiled::AppliedCatalogue;
pub use decide::{in_holdout, Draw, TRACE_SCORES};
pub use features::{LocalTime, SignalOutcome};
pub use model::{FleetModel, ModelError, RuntimeKind};
pub use scoring::{INTRUSIVENESS, PRIOR_WEIGHT};
pub use trust::{Refusal, TrustedKeys};

/// Hash maps looked up while deciding: a fast hasher with a fixed seed (the engine draws no
/// randomness; the keys come from signed catalogues, so there is nobody to collide them).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The set counterpart of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// How many recent decisions keep their full trace (every candidate's verdict) for "why" and
/// "why not" lookups; older ones keep only what feedback and purges need, so the memory of a
/// large catalogue's traces stays bounded (a 1,000-offer trace is about 64 KB).
pub const RECENT_TRACES: usize = 32;

/// How many recent decisions the engine keeps for feedback.
pub const RECENT_DECISIONS: usize = 256;

/// Who the engine decides for.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    /// The device's pseudonym (for the holdout hash).
    pub device: DeviceId,
    /// The device's kind.
    pub kind: DeviceKind,
    /// Its fleet.
    pub fleet: FleetId,
    /// Its local time.
    pub local: LocalTime,
    /// The share of shown offers drawn from the broadly eligible ones (0 to 0.5; default 0.1).
    pub camouflage_share: f64,
    /// The runtime that runs the fleet's scoring model.
    pub model_runtime: model::RuntimeKind,
    /// How offers are put and chosen: ledtrad's way unless a laboratory says otherwise.
    pub policy: Policy,
}

/// How offers are put, explained and chosen.
///
/// [`Policy::Clues`] is ledtrad: the offer as a question, a coarse "why", camouflage and an
/// intrusiveness penalty. [`Policy::Blunt`] is what ledtrad sets out not to be, kept so the
/// simulator can measure one against the other on the same households (`ledtrad-sim compare`);
/// the agent's configuration file has no way to choose it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Questions, coarse whys, camouflage, and a penalty on every personal feature behind an offer.
    #[default]
    Clues,
    /// Statements (the offer's title), precise whys (the reading itself), no camouflage and no
    /// intrusiveness penalty.
    Blunt,
}

impl Policy {
    /// Both policies, ledtrad's first.
    pub const ALL: [Self; 2] = [Self::Clues, Self::Blunt];

    /// Its name: `clues` or `blunt`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clues => "clues",
            Self::Blunt => "blunt",
        }
    }

    /// Whether the intrusiveness penalty and camouflage apply.
    pub const fn is_clues(self) -> bool {
        matches!(self, Self::Clues)
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown policy {s:?}; use \"clues\" (ledtrad's) or \"blunt\""))
    }
}

/// The default camouflage share: one shown offer in ten.
pub const DEFAULT_CAMOUFLAGE_SHARE: f64 = 0.1;

/// What a consent change purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Feature values cleared.
    pub features: usize,
    /// Offer posteriors forgotten.
    pub posteriors: usize,
    /// Recent decisions made with personal features, forgotten.
    pub decisions: usize,
}

/// Whether a decision used anything personal.
fn is_personal(decision: &Decision) -> bool {
    decision.shown.as_ref().is_some_and(|s| s.personalised)
        || decision.features_used.iter().any(|u| u.allowed_by.is_some())
}

/// Feedback that the engine applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackApplied {
    /// The offer the feedback was about.
    pub offer: OfferId,
    /// Its campaign.
    pub campaign: CampaignId,
    /// What the person did.
    pub kind: FeedbackKind,
    /// The offer's category, if the offer is still in the catalogue.
    pub category: Option<String>,
    /// Whether the decision held the offer out (a conversion after a "would have shown"):
    /// counted in the holdout arm, and nothing is learned from it.
    pub held_out: bool,
    /// The version of the catalogue the decision was made on.
    pub catalogue_version: Option<u64>,
}

/// Feedback the engine cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// The decision is not among the recent ones.
    #[error("decision {0} is unknown or older than the last {RECENT_DECISIONS} decisions; send feedback for a decision returned by GET /v1/offer")]
    UnknownDecision(u64),
    /// The decision showed nothing (a held-out decision takes only a conversion).
    #[error("decision {0} showed no offer, so there is nothing to give feedback on (a decision that held an offer out takes only 'converted')")]
    NothingShown(u64),
    /// Feedback was already given.
    #[error("decision {0} already has feedback; each shown offer takes one answer")]
    AlreadyGiven(u64),
}

/// The most candidates the engine takes from one offer-service answer.
pub use ledtrad_protocol::offers::MAX_REMOTE_OFFERS;

/// What became of an offer service's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOffers {
    /// Candidates received.
    pub received: usize,
    /// Candidates that passed the catalogue checks and were new to the device.
    pub kept: usize,
}

/// An offer-service answer the engine cannot decide on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// No catalogue is in force, so no device-wide rules to apply.
    #[error("no catalogue is in force, so the offer service's offers have no rules to be shown under")]
    NoCatalogue,
    /// More candidates than the engine takes.
    #[error("the offer service sent {0} offers, more than the {MAX_REMOTE_OFFERS} a device takes; send fewer")]
    TooMany(usize),
}

/// The decision state of one device.
#[derive(Debug, Clone)]
pub struct Engine {
    profile: DeviceProfile,
    keys: TrustedKeys,
    // Shared with the traces of recent decisions, which name its offers.
    catalogue: Option<Arc<AppliedCatalogue>>,
    model: Option<FleetModel>,
    model_floor: Option<u64>,
    features: features::FeatureStore,
    history: history::History,
    consent: ConsentState,
    version_floor: Option<u64>,
    prompts: prompts::PromptState,
    answers: answers::Answers,
    next_decision: u64,
    /// Recent decisions without their candidates, whether they were answered, and what their
    /// offer (shown or held out) is about.
    recent: VecDeque<(Decision, bool, Option<Subject>)>,
    /// The last [`RECENT_TRACES`] decisions' verdicts, assembled into candidates on request.
    traces: VecDeque<Trace>,
    /// Each offer of the catalogue in force's history slot, by position, so a decision reads
    /// the records without hashing an id.
    slots: Vec<Option<u32>>,
    /// How many slots the history had when `slots` was worked out for the catalogue in force;
    /// `None` once either is replaced.
    slots_for: Option<usize>,
}

/// What a decision's offer, shown or held out, is about: kept with the decision, so feedback
/// on it works whichever catalogue (the one in force, an earlier one, the offer service's) it
/// came from.
#[derive(Debug, Clone)]
struct Subject {
    campaign: CampaignId,
    category: String,
}

/// A decision's verdict on every offer of the catalogue it was made on, by position: recording
/// it costs a decision no copy of the offers' ids; [`Engine::decision`] names them.
#[derive(Debug, Clone)]
struct Trace {
    decision: DecisionId,
    /// `None` for a decision made without a catalogue.
    catalogue: Option<Arc<AppliedCatalogue>>,
    verdicts: decide::Verdicts,
}

impl Engine {
    /// An engine with no catalogue and no consent.
    pub fn new(profile: DeviceProfile, keys: TrustedKeys) -> Self {
        let features = features::FeatureStore::new(profile.local);
        Self {
            profile,
            keys,
            catalogue: None,
            model: None,
            model_floor: None,
            features,
            history: history::History::default(),
            consent: ConsentState::NONE,
            version_floor: None,
            prompts: prompts::PromptState::default(),
            answers: answers::Answers::default(),
            next_decision: 1,
            recent: VecDeque::with_capacity(RECENT_DECISIONS),
            traces: VecDeque::with_capacity(RECENT_TRACES),
            slots: Vec::new(),
            slots_for: None,
        }
    }

    /// The device profile.
    pub fn profile(&self) -> &DeviceProfile {
        &self.profile
    }

    /// Verifies and applies a catalogue envelope; on refusal the current catalogue stays.
    ///
    /// In a staged rollout, a device outside the rollout's share keeps its catalogue
    /// ([`Refusal::NotInRollout`]); the same version again with the same offers (the rollout
    /// widened or completed) changes nothing ([`Refusal::AlreadyApplied`]).
    pub fn handle_catalogue(&mut self, payload: &[u8], now: UnixTime) -> Result<&AppliedCatalogue, Refusal> {
        let current = self.catalogue.as_ref().map(|c| (c.version, c.content));
        let applied = current.map(|(v, _)| v).max(self.version_floor);
        let signed = match trust::open_envelope(payload, &self.keys, &self.profile.fleet, applied, now) {
            Err(Refusal::Rollback { what, applied, got }) if current.is_some_and(|(v, _)| v == got) => {
                // Opened again without the version check only to compare the offers; every
                // other check has passed already.
                let again = trust::open_envelope(payload, &self.keys, &self.profile.fleet, None, now)?;
                return Err(
                    if current.is_some_and(|(_, content)| content == compiled::content_hash(&again.catalogue)) {
                        Refusal::AlreadyApplied { version: got }
                    } else {
                        Refusal::Rollback { what, applied, got }
                    },
                );
            }
            other => other?,
        };
        if let Some(rollout) = signed.rollout {
            if !rollout.includes(&self.profile.device, &self.profile.fleet, signed.version) {
                return Err(Refusal::NotInRollout { version: signed.version, share: rollout.share });
            }
        }
        // The slots are worked out afresh for the new catalogue (its address says nothing: a
        // new one may take the place of one just dropped).
        self.slots_for = None;
        Ok(self.catalogue.insert(Arc::new(AppliedCatalogue::compile(signed))))
    }

    /// Verifies a model envelope, checks the model against its manifest and loads it into the
    /// profile's runtime; on refusal the current model (or the built-in scorers) stays.
    pub fn handle_model(&mut self, payload: &[u8], now: UnixTime) -> Result<&FleetModel, Refusal> {
        let applied = self.model.as_ref().map(|m| m.version).max(self.model_floor);
        let signed: ledtrad_protocol::model::SignedModel =
            trust::open_signed(payload, &self.keys, &self.profile.fleet, applied, now)?;
        let model = FleetModel::load(&signed, self.profile.model_runtime)
            .map_err(|e| Refusal::InvalidModel { version: signed.version, reason: e.to_string() })?;
        Ok(self.model.insert(model))
    }

    /// Refuses, from now on, model versions at or below `version` (as
    /// [`Engine::set_version_floor`] does for catalogues).
    pub fn set_model_floor(&mut self, version: u64) {
        self.model_floor = self.model_floor.max(Some(version));
    }

    /// The fleet's model in force.
    pub fn model(&self) -> Option<&FleetModel> {
        self.model.as_ref()
    }

    /// Refuses, from now on, catalogue versions at or below `version` even when no catalogue
    /// is in force: the agent hands in the highest version it ever stored, so a restart whose
    /// stored catalogue no longer applies cannot be rolled back to an older one.
    pub fn set_version_floor(&mut self, version: u64) {
        self.version_floor = self.version_floor.max(Some(version));
    }

    /// The catalogue in force.
    pub fn catalogue(&self) -> Option<&AppliedCatalogue> {
        self.catalogue.as_deref()
    }

    /// The consent in force.
    pub fn consent(&self) -> ConsentState {
        self.consent
    }

    /// Sets the consent in force. Revoking purges what was derived for the purpose before
    /// this returns, so the next decision cannot use it.
    pub fn set_consent(&mut self, consent: ConsentState) -> Purged {
        self.consent = consent;
        let features = self.features.purge(consent);
        let (posteriors, decisions) = if consent.allows(Purpose::Personalise) {
            (0, 0)
        } else {
            // Decisions made with personal features are derived data too: their traces and
            // "why" texts say what the device knew.
            let before = self.recent.len();
            self.recent.retain(|(d, _, _)| !is_personal(d));
            let recent = &self.recent;
            self.traces.retain(|t| recent.iter().any(|(d, _, _)| d.id == t.decision));
            (self.history.purge_learning(), before - self.recent.len())
        };
        Purged { features, posteriors, decisions }
    }

    /// Forgets everything the engine learned about the people it serves: feature values,
    /// posteriors, impression counts and recent decisions (a person's erasure). The catalogue,
    /// the consent and the decision numbering stay.
    pub fn erase(&mut self) -> Purged {
        let features = self.features.purge(ConsentState::NONE) + self.features.clear_context();
        let posteriors = self.history.purge_learning();
        self.history = history::History::default();
        self.slots_for = None;
        self.answers = answers::Answers::default();
        self.prompts.forget();
        let decisions = self.recent.len();
        self.recent.clear();
        self.traces.clear();
        Purged { features, posteriors, decisions }
    }

    /// Aggregates a signal into its feature.
    pub fn handle_signal(&mut self, signal: Signal, now: UnixTime) -> SignalOutcome {
        self.features.handle_signal(signal, self.consent, now)
    }

    /// Drops feature values past their retention; call it now and then.
    pub fn handle_timeout(&mut self, now: UnixTime) -> usize {
        self.history.expire(now);
        self.answers.expire(now);
        self.features.expire(now)
    }

    /// Current feature values, for a person's data export.
    pub fn features(&self, now: UnixTime) -> Vec<(ledtrad_protocol::feature::FeatureName, f64)> {
        self.features.snapshot(now)
    }

    /// Works out the history slot of each offer of the catalogue in force, unless the catalogue
    /// and the history's slots are what they were.
    fn refresh_slots(&mut self) {
        let Some(catalogue) = &self.catalogue else { return };
        let key = self.history.slots();
        if self.slots_for != Some(key) {
            self.slots = catalogue.offers.iter().map(|o| self.history.slot(&o.offer.id)).collect();
            self.slots_for = Some(key);
        }
    }

    /// Counts an impression of the offer at `position` of `catalogue` and, for the catalogue
    /// in force (`in_force`), keeps the slots current when it gets its first record.
    fn count_impression(&mut self, catalogue: &AppliedCatalogue, position: usize, now: UnixTime, in_force: bool) {
        let o = &catalogue.offers[position].offer;
        let key = self.history.slots();
        let slot = self.history.record_impression(&o.id, &o.campaign, now);
        if !in_force {
            // The catalogue in force's slots stay valid unless the history gained one.
            if self.slots_for == Some(key) && self.history.slots() != key {
                self.slots_for = None;
            }
            return;
        }
        if self.slots_for == Some(key) {
            if let Some(s) = self.slots.get_mut(position) {
                *s = Some(slot);
            }
            self.slots_for = Some(self.history.slots());
        }
    }

    /// Decides what to show at `moment`, counting the impression if something is shown.
    pub fn decide(&mut self, moment: Moment, now: UnixTime, draw: Draw) -> &Decision {
        self.refresh_slots();
        self.decide_on(None, moment, now, draw)
    }

    /// Whether asking the offer service is worth it after decision `id` (request mode): it
    /// showed nothing, held nothing out and asked nothing, the device-wide rules (quiet hours,
    /// gap, device caps) did not rule the moment out, a catalogue is in force (its rules apply
    /// to the service's offers too) and unexpired, and `request` is granted.
    pub fn request_worthwhile(&self, id: DecisionId, now: UnixTime) -> bool {
        let Some((decision, _, _)) = self.recent.iter().rev().find(|(d, _, _)| d.id == id) else { return false };
        let open = decision.shown.is_none() && decision.would_have_shown.is_none() && decision.prompt.is_none();
        let blocked = self
            .traces
            .iter()
            .rev()
            .find(|t| t.decision == id)
            .is_none_or(|t| matches!(t.verdicts, decide::Verdicts::DeviceBlocked { .. }));
        open && !blocked
            && self.consent.allows(Purpose::Request)
            && self.catalogue.as_ref().is_some_and(|c| now < c.expires_at)
    }

    /// Up to [`ledtrad_protocol::offers::MAX_INTERESTS`] coarse interest categories for an
    /// offer request: the categories of the offers accepted most here, from the learning data
    /// kept only under `personalise` (and purged when it is revoked), so none without it.
    pub fn interests(&self) -> Vec<ledtrad_protocol::taxonomy::Category> {
        let Some(catalogue) = self.catalogue.as_ref().filter(|_| self.consent.allows(Purpose::Personalise)) else {
            return Vec::new();
        };
        let mut ranked: Vec<(&ledtrad_protocol::taxonomy::Category, usize)> = Vec::new();
        for o in &catalogue.offers {
            let n = self.history.posterior(&o.offer.id).accepts as usize;
            match ranked.iter_mut().find(|(c, _)| **c == o.category) {
                _ if n == 0 => {}
                Some((_, count)) => *count += n,
                None => ranked.push((&o.category, n)),
            }
        }
        // Most taken up first; ties by name, so the same answers give the same request.
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.path().cmp(b.0.path())));
        ranked.into_iter().take(ledtrad_protocol::offers::MAX_INTERESTS).map(|(c, _)| *c).collect()
    }

    /// Decides among the offer service's candidates at `moment` (request mode), after a local
    /// decision found nothing: the offers pass the same checks as a catalogue's (those that
    /// fail are dropped), and the same pipeline, under the rules of the catalogue in force
    /// (device-wide rules, campaign holdouts and caps), with this device's consent, caps and
    /// answers. Offers the local catalogue holds, and journey offers, are left to it. When the
    /// request carried interests (`interests_sent`), a shown offer's "why" says it was suggested
    /// for them.
    pub fn decide_remote(
        &mut self,
        moment: Moment,
        now: UnixTime,
        draw: Draw,
        offers: Vec<ledtrad_protocol::catalogue::Offer>,
        interests_sent: bool,
    ) -> Result<(&Decision, RemoteOffers), RemoteError> {
        let local = self.catalogue.clone().ok_or(RemoteError::NoCatalogue)?;
        let received = offers.len();
        if received > MAX_REMOTE_OFFERS {
            return Err(RemoteError::TooMany(received));
        }
        let mut kept = Vec::new();
        for offer in offers {
            let known = local.offers.iter().any(|o| o.offer.id == offer.id)
                || kept.iter().any(|o: &ledtrad_protocol::catalogue::Offer| o.id == offer.id);
            let journey = local.journeys.iter().any(|j| j.campaign == offer.campaign);
            let alone = ledtrad_protocol::catalogue::Catalogue { offers: vec![offer], ..Default::default() };
            if !known && !journey && alone.problems().is_empty() {
                kept.extend(alone.offers);
            }
        }
        let counted = RemoteOffers { received, kept: kept.len() };
        let signed = ledtrad_protocol::envelope::SignedCatalogue {
            fleet: self.profile.fleet.clone(),
            version: local.version,
            issued_at: local.issued_at,
            expires_at: local.expires_at,
            key_id: ledtrad_protocol::KeyId::try_new("offer-service").map_err(|_| RemoteError::NoCatalogue)?,
            catalogue: ledtrad_protocol::catalogue::Catalogue { offers: kept, ..Default::default() },
            rollout: None,
        };
        let mut remote = AppliedCatalogue::compile(signed);
        remote.policy = local.policy.clone();
        remote.holdouts = local.holdouts.clone();
        remote.campaign_caps = local.campaign_caps.clone();
        let kind = self.profile.kind;
        self.decide_on(Some(Arc::new(remote)), moment, now, draw);
        let (decision, _, _) = self.recent.back_mut().expect("just decided");
        // The service chose its candidates from the interests sent: the "why" says so.
        if let (true, Some(shown)) = (interests_sent, decision.shown.as_mut()) {
            shown.why = why::suggested_for_interests(kind);
        }
        Ok((&*decision, counted))
    }

    /// Decides on `remote` (the offer service's candidates) or, without it, on the catalogue
    /// in force.
    fn decide_on(
        &mut self,
        remote: Option<Arc<AppliedCatalogue>>,
        moment: Moment,
        now: UnixTime,
        draw: Draw,
    ) -> &Decision {
        let day = self.profile.local.day(now);
        let id = DecisionId(self.next_decision);
        self.next_decision += 1;
        let local = remote.is_none();
        let catalogue = remote.or_else(|| self.catalogue.clone());
        // The catalogue in force keeps its slots; the service's few offers look theirs up.
        let remote_slots: Option<Vec<Option<u32>>> = (!local).then(|| {
            catalogue
                .as_ref()
                .map_or_else(Vec::new, |c| c.offers.iter().map(|o| self.history.slot(&o.offer.id)).collect())
        });
        let (shown, verdicts, features_used, version, camouflage, prompt, would_have_shown, scores, scorer) =
            match &catalogue {
                None => (
                    None,
                    decide::Verdicts::Each(Vec::new()),
                    Vec::new(),
                    None,
                    false,
                    None,
                    None,
                    Vec::new(),
                    ScorerUsed::Builtin,
                ),
                Some(catalogue) => {
                    let values: Vec<Option<f64>> =
                        ledtrad_protocol::feature::FeatureName::all().map(|f| self.features.value(f, now)).collect();
                    let ctx = decide::Context {
                        kind: self.profile.kind,
                        moment,
                        now,
                        day_start: self.profile.local.day_start(now),
                        hour: self.profile.local.hour(now),
                        consent: self.consent,
                        values: &values,
                        history: &self.history,
                        camouflage_share: self.profile.camouflage_share,
                        policy: self.profile.policy,
                        draw,
                        answers: &self.answers,
                        device: &self.profile.device,
                        device_block: None,
                        campaigns: &[],
                        model: self.model.as_ref(),
                        journeys: &FastMap::default(),
                        slots: remote_slots.as_deref().unwrap_or(&self.slots),
                        model_reads_personal: scoring::model_reads_personal(self.model.as_ref(), self.consent),
                    };
                    let campaigns = decide::campaign_verdicts(catalogue, &ctx);
                    let mut features_read = decide::FeaturesRead::default();
                    let journeys = journey::verdicts(&catalogue.journeys, &catalogue.offers, &ctx, &mut features_read);
                    let ctx = decide::Context {
                        device_block: decide::device_rules(catalogue, &ctx).err(),
                        campaigns: &campaigns,
                        journeys: &journeys,
                        ..ctx
                    };
                    let mut outcome = decide::run(catalogue, &ctx, features_read);
                    // Asking is a moment too: a due prompt takes the place of a contextual offer (or
                    // of nothing), never of a personalised one.
                    // A prompt follows the device-wide rules (quiet hours, gap, caps) and never
                    // comes from an expired catalogue.
                    let may_ask = ctx.device_block.is_none() && now < catalogue.expires_at;
                    let prompt = if may_ask && outcome.shown.as_ref().is_none_or(|(_, s)| !s.personalised) {
                        self.prompts.due(&catalogue.prompts, self.profile.kind, moment, self.consent, now, day)
                    } else {
                        None
                    };
                    if prompt.is_some() {
                        self.prompts.shown_on(day);
                        if let Some((i, _)) = outcome.shown.take() {
                            outcome.verdicts.unchoose(i);
                        }
                        outcome.camouflage = false;
                    }
                    (
                        outcome.shown,
                        outcome.verdicts,
                        outcome.features_used,
                        Some(catalogue.version),
                        outcome.camouflage,
                        prompt,
                        outcome.would_have_shown,
                        outcome.scores,
                        outcome.scorer,
                    )
                }
            };
        if let (Some((i, _)), Some(c)) = (&shown, &catalogue) {
            self.count_impression(c, *i, now, local);
        }
        // A "would have shown" counts against the caps like a shown offer, so the two arms see
        // the same number of moments.
        if let (Some(i), Some(c)) = (would_have_shown, &catalogue) {
            self.count_impression(c, i, now, local);
        }
        let subject = shown.as_ref().map(|(i, _)| *i).or(would_have_shown).and_then(|i| {
            let o = &catalogue.as_ref()?.offers[i];
            Some(Subject { campaign: o.offer.campaign.clone(), category: o.category.path().to_string() })
        });
        let would_have_shown = would_have_shown.and_then(|i| Some(catalogue.as_ref()?.offers[i].offer.id.clone()));
        let shown = shown.map(|(_, s)| s);
        let decision = Decision {
            id,
            moment,
            at: now,
            catalogue_version: version,
            shown,
            candidates: Vec::new(),
            features_used,
            camouflage,
            prompt,
            would_have_shown,
            scores,
            scorer,
        };
        if self.recent.len() == RECENT_DECISIONS {
            self.recent.pop_front();
        }
        // Past the traced window, a decision keeps only what feedback and purges need; the
        // oldest trace's verdicts make room for this one's.
        let trace = Trace { decision: id, catalogue, verdicts };
        if self.traces.len() == RECENT_TRACES {
            self.traces.pop_front();
        }
        self.traces.push_back(trace);
        self.recent.push_back((decision, false, subject));
        &self.recent.back().expect("just pushed").0
    }

    /// Decides, as [`Engine::decide`], and returns the decision with its full trace.
    pub fn decide_traced(&mut self, moment: Moment, now: UnixTime, draw: Draw) -> Decision {
        let id = self.decide(moment, now, draw).id;
        self.decision(id).expect("the decision just made is traced")
    }

    /// A recent decision with its full trace, for "why" and "why not": one of the last
    /// [`RECENT_TRACES`]. The candidates are named from the verdicts recorded at the decision.
    pub fn decision(&self, id: DecisionId) -> Option<Decision> {
        let trace = self.traces.iter().rev().find(|t| t.decision == id)?;
        let (decision, _, _) = self.recent.iter().rev().find(|(d, _, _)| d.id == id)?;
        let candidates = trace.catalogue.as_ref().map_or_else(Vec::new, |catalogue| trace.verdicts.named(catalogue));
        Some(Decision { candidates, ..decision.clone() })
    }

    /// Checks feedback without applying it: what it is about, or why it cannot be taken. Each
    /// shown offer takes one answer, and a conversion may follow it once.
    /// The agent stores accepted feedback first and then calls [`Engine::handle_feedback`],
    /// so a storage failure leaves both sides unchanged.
    pub fn check_feedback(&self, feedback: Feedback) -> Result<FeedbackApplied, FeedbackError> {
        let id = feedback.decision.0;
        let (decision, given, subject) =
            self.recent.iter().find(|(d, _, _)| d.id == feedback.decision).ok_or(FeedbackError::UnknownDecision(id))?;
        // A held-out decision showed nothing, but the person may still do what the offer was
        // about: that conversion is the holdout arm's side of the uplift.
        let (offer, held_out) = match (&decision.shown, &decision.would_have_shown) {
            (Some(shown), _) => (&shown.offer, false),
            (None, Some(offer)) if feedback.kind == FeedbackKind::Converted => (offer, true),
            (None, _) => return Err(FeedbackError::NothingShown(id)),
        };
        let subject = subject.as_ref().ok_or(FeedbackError::NothingShown(id))?;
        let converted = self.answers.converted(offer);
        let allowed = if feedback.kind == FeedbackKind::Converted { !converted } else { !*given };
        if !allowed {
            return Err(FeedbackError::AlreadyGiven(id));
        }
        Ok(FeedbackApplied {
            offer: offer.clone(),
            campaign: subject.campaign.clone(),
            kind: feedback.kind,
            category: Some(subject.category.clone()),
            held_out,
            catalogue_version: decision.catalogue_version,
        })
    }

    /// Applies feedback on a shown offer at `now`: marks it answered, sets what the answer
    /// rules out (a dismissal, a "not for me", a conversion) and, with `personalise`, learns
    /// from it.
    pub fn handle_feedback(&mut self, feedback: Feedback, now: UnixTime) -> Result<FeedbackApplied, FeedbackError> {
        let applied = self.check_feedback(feedback)?;
        if let Some((_, given, _)) = self.recent.iter_mut().find(|(d, _, _)| d.id == feedback.decision) {
            *given = true;
        }
        self.answers.record(&applied.offer, applied.category.as_deref(), applied.kind, now);
        if self.consent.allows(Purpose::Personalise) && !applied.held_out {
            self.history.record_feedback(&applied.offer, applied.kind);
        }
        Ok(applied)
    }

    /// Hands back a stored answer on start, so blocks, suppressions and conversions survive
    /// restarts.
    pub fn restore_answer(&mut self, offer: &OfferId, category: Option<&str>, kind: FeedbackKind, at: UnixTime) {
        self.answers.record(offer, category, kind, at);
    }

    /// The campaign of a recent decision's offer, shown or held out, whichever catalogue it
    /// came from.
    pub fn decision_campaign(&self, id: DecisionId) -> Option<CampaignId> {
        let (_, _, subject) = self.recent.iter().rev().find(|(d, _, _)| d.id == id)?;
        subject.as_ref().map(|s| s.campaign.clone())
    }

    /// Sets which purposes the people served could grant by answering a prompt.
    pub fn set_askable(&mut self, askable: ConsentState) {
        self.prompts.askable = askable;
    }

    /// Checks an answer to a prompt without applying it: the prompt, or why it cannot be taken.
    pub fn check_prompt_answer(&self, decision: DecisionId) -> Result<ShownPrompt, FeedbackError> {
        let id = decision.0;
        let (d, given, _) =
            self.recent.iter().find(|(d, _, _)| d.id == decision).ok_or(FeedbackError::UnknownDecision(id))?;
        let prompt = d.prompt.clone().ok_or(FeedbackError::NothingShown(id))?;
        if *given {
            return Err(FeedbackError::AlreadyGiven(id));
        }
        Ok(prompt)
    }

    /// Applies an answer to a prompt: marks it answered and, for a "no", quiets the prompts
    /// for its purpose for 30 days. (A "yes" is a consent change the agent writes.)
    pub fn handle_prompt_answer(
        &mut self,
        decision: DecisionId,
        yes: bool,
        now: UnixTime,
    ) -> Result<ShownPrompt, FeedbackError> {
        let prompt = self.check_prompt_answer(decision)?;
        if let Some((_, given, _)) = self.recent.iter_mut().find(|(d, _, _)| d.id == decision) {
            *given = true;
        }
        if !yes {
            self.prompts.refused(prompt.purpose, now);
        }
        Ok(prompt)
    }

    /// Hands back a stored "no" on start.
    pub fn restore_prompt_refusal(&mut self, purpose: Purpose, at: UnixTime) {
        self.prompts.refused(purpose, at);
    }

    /// Hands back a stored impression on start, so caps survive restarts.
    pub fn restore_impression(&mut self, offer: &OfferId, campaign: &CampaignId, at: UnixTime) {
        self.history.record_impression(offer, campaign, at);
    }

    /// Hands back stored feedback on start (only used with `personalise`).
    pub fn restore_feedback(&mut self, offer: &OfferId, kind: FeedbackKind) {
        if self.consent.allows(Purpose::Personalise) {
            self.history.record_feedback(offer, kind);
        }
    }

    /// Continues decision numbering after a restart.
    pub fn resume_decision_ids(&mut self, next: u64) {
        self.next_decision = self.next_decision.max(next);
    }
}

#[cfg(test)]
mod tests;
