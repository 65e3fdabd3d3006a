//! The decision state of one device: the catalogue and model in force, consent, features,
//! history, answers and recent decisions, and the calls that change them. Deciding is in
//! [`decisions`] (it runs the [`crate::pipeline`]); feedback and prompt answers in [`feedback`].

mod decisions;
mod feedback;

use std::collections::VecDeque;
use std::sync::Arc;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{Decision, DecisionId, ShownPrompt};
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{CampaignId, OfferId, Purpose, UnixTime};

use crate::answers::Answers;
use crate::compiled::{self, AppliedCatalogue};
use crate::eligibility::Verdicts;
use crate::features::{FeatureStore, SignalOutcome};
use crate::history::History;
use crate::home::{DayShown, HomeShown};
use crate::model::FleetModel;
use crate::pipeline::Subject;
use crate::profile::DeviceProfile;
use crate::prompts::PromptState;
use crate::share::SharedCatalogues;
use crate::trust::{self, Refusal, TrustedKeys};

pub use feedback::{FeedbackApplied, FeedbackError};

/// How many recent decisions keep their full trace (every candidate's verdict) for "why" and
/// "why not" lookups; older ones keep only what feedback and purges need, so the memory of a
/// large catalogue's traces stays bounded (a 1,000-offer trace keeps 8 bytes an offer and a score per
/// offer scored; see `verdict.rs`). A screen asks why right after it shows an offer; sixteen
/// leave room for the decisions made meanwhile on its other moments.
pub const RECENT_TRACES: usize = 16;

/// How many recent decisions the engine keeps for feedback.
pub const RECENT_DECISIONS: usize = 256;

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

/// The decision state of one device.
#[derive(Debug, Clone)]
pub struct Engine {
    profile: DeviceProfile,
    keys: TrustedKeys,
    // Shared with the traces of recent decisions, which name its offers.
    catalogue: Option<Arc<AppliedCatalogue>>,
    model: Option<FleetModel>,
    model_floor: Option<u64>,
    features: FeatureStore,
    history: History,
    consent: ConsentState,
    version_floor: Option<u64>,
    prompts: PromptState,
    answers: Answers,
    next_decision: u64,
    /// Recent decisions, for feedback.
    recent: VecDeque<Recent>,
    /// The last [`RECENT_TRACES`] decisions' verdicts, assembled into candidates on request.
    traces: VecDeque<Trace>,
    /// Each offer of the catalogue in force's history slot, by position, so a decision reads
    /// the records without hashing an id.
    slots: Vec<Option<u32>>,
    /// How many slots the history had when `slots` was worked out for the catalogue in force;
    /// `None` once either is replaced.
    slots_for: Option<usize>,
    /// Each offer of the catalogue in force's answers slot, by position, as `slots`.
    answer_slots: Vec<Option<u32>>,
    /// How many slots the answers had when `answer_slots` was worked out; `None` once the
    /// catalogue is replaced.
    answer_slots_for: Option<usize>,
    /// What the home's other screens showed, as the agent last handed it in.
    home: HomeShown,
    /// Where catalogues compiled by this process's other engines are found, if anywhere.
    shared: Option<SharedCatalogues>,
}

/// A recent decision as feedback needs it: what it showed, held out or prompted, whether it
/// was answered, and what purges need. It holds no data of its own on the heap for an offer
/// of the catalogue in force (found in the catalogue, which it shares), so the last
/// [`RECENT_DECISIONS`] take the same memory from the first day on, 32 bytes each; the
/// decision itself stays only in its [`Trace`], for the last [`RECENT_TRACES`].
#[derive(Debug, Clone)]
struct Recent {
    id: DecisionId,
    /// The offer shown or held out, or the prompt put instead, if any.
    subject: Kept,
    /// Whether the offer was held out (the decision showed nothing).
    held_out: bool,
    /// Whether the decision used anything personal.
    personal: bool,
    answered: bool,
}

/// Room for the last [`RECENT_DECISIONS`] decisions, written once at the start so that it is
/// in memory from then on: the engine holds on its first day what it holds a year later,
/// rather than growing for days as the ring fills (a page of reserved room costs memory only
/// once it is written to).
fn recent_ring() -> VecDeque<Recent> {
    let empty = Recent { id: DecisionId(0), subject: Kept::Nothing, held_out: false, personal: false, answered: false };
    let mut ring = VecDeque::with_capacity(RECENT_DECISIONS);
    ring.extend(std::iter::repeat_n(empty, RECENT_DECISIONS));
    ring.clear();
    ring
}

impl Recent {
    /// Whether the decision showed, held out and prompted nothing.
    fn open(&self) -> bool {
        matches!(self.subject, Kept::Nothing)
    }

    /// The offer it showed or held out, if any.
    fn offer(&self) -> Option<&Answerable> {
        match &self.subject {
            Kept::Offer(offer) => Some(offer),
            Kept::HeldOutAndPrompt(both) => Some(&both.0),
            Kept::Nothing | Kept::Prompt(_) => None,
        }
    }

    /// The consent prompt it put instead of an offer, if any.
    fn prompt(&self) -> Option<&ShownPrompt> {
        match &self.subject {
            Kept::Prompt(prompt) => Some(prompt),
            Kept::HeldOutAndPrompt(both) => Some(&both.1),
            Kept::Nothing | Kept::Offer(_) => None,
        }
    }
}

/// What a recent decision showed, held out or prompted, if anything.
#[derive(Debug, Clone)]
enum Kept {
    Nothing,
    /// An offer shown or held out.
    Offer(Answerable),
    /// A consent prompt put instead of an offer.
    Prompt(Box<ShownPrompt>),
    /// A prompt put where the offer would have been shown had the device not been in the
    /// campaign's holdout arm: both may be answered.
    HeldOutAndPrompt(Box<(Answerable, ShownPrompt)>),
}

impl Kept {
    fn new(offer: Option<Answerable>, prompt: Option<&ShownPrompt>) -> Self {
        match (offer, prompt) {
            (Some(offer), None) => Self::Offer(offer),
            (None, Some(prompt)) => Self::Prompt(Box::new(prompt.clone())),
            (Some(offer), Some(prompt)) => Self::HeldOutAndPrompt(Box::new((offer, prompt.clone()))),
            (None, None) => Self::Nothing,
        }
    }
}

/// The offer a recent decision showed or held out.
#[derive(Debug, Clone)]
enum Answerable {
    /// An offer of a catalogue, by position (the catalogue is shared, not copied).
    Catalogue(Arc<AppliedCatalogue>, u32),
    /// An offer of the offer service's, whose catalogue (of this version) was made for that
    /// one decision.
    Service(Box<(OfferId, Subject, u64)>),
}

impl Answerable {
    fn offer(&self) -> &OfferId {
        match self {
            Self::Catalogue(c, i) => &c.offers[*i as usize].offer.id,
            Self::Service(s) => &s.0,
        }
    }

    fn campaign(&self) -> &CampaignId {
        match self {
            Self::Catalogue(c, i) => &c.offers[*i as usize].offer.campaign,
            Self::Service(s) => &s.1.campaign,
        }
    }

    fn category(&self) -> String {
        match self {
            Self::Catalogue(c, i) => c.offers[*i as usize].category.path().to_string(),
            Self::Service(s) => s.1.category.clone(),
        }
    }

    /// The version of the catalogue the offer came from.
    fn catalogue_version(&self) -> u64 {
        match self {
            Self::Catalogue(c, _) => c.version,
            Self::Service(s) => s.2,
        }
    }
}

/// A recent decision, without its candidates, and its verdict on every offer of the catalogue
/// it was made on, by position: recording it costs a decision no copy of the offers' ids;
/// [`Engine::decision`] names them.
#[derive(Debug, Clone)]
struct Trace {
    decision: Decision,
    /// `None` for a decision made without a catalogue.
    catalogue: Option<Arc<AppliedCatalogue>>,
    verdicts: Verdicts,
}

impl Engine {
    /// An engine with no catalogue and no consent.
    pub fn new(profile: DeviceProfile, keys: TrustedKeys) -> Self {
        let features = FeatureStore::new(profile.local);
        Self {
            profile,
            keys,
            catalogue: None,
            model: None,
            model_floor: None,
            features,
            history: History::default(),
            consent: ConsentState::NONE,
            version_floor: None,
            prompts: PromptState::default(),
            answers: Answers::default(),
            next_decision: 1,
            recent: recent_ring(),
            // Traces grow with the decisions made, to their bound: a trace's size follows the
            // catalogue's, so there is no room to reserve for them before one comes.
            traces: VecDeque::new(),
            slots: Vec::new(),
            slots_for: None,
            answer_slots: Vec::new(),
            answer_slots_for: None,
            home: HomeShown::default(),
            shared: None,
        }
    }

    /// Shares compiled catalogues with the other engines given the same `shared`: a catalogue
    /// envelope another of them applied is still opened and checked here, but not compiled
    /// again. For a process that holds many devices' engines.
    pub fn share_catalogues(&mut self, shared: SharedCatalogues) {
        self.shared = Some(shared);
    }

    /// An engine that previews decisions ([`Engine::preview`]) and records none, such as an
    /// audit's second engine: it reserves no room for recent decisions, which only feedback
    /// on a recorded decision reads (16 KiB an engine). Were it to record decisions after all,
    /// the room would grow as they came.
    pub fn previewing(profile: DeviceProfile, keys: TrustedKeys) -> Self {
        Self { recent: VecDeque::new(), ..Self::new(profile, keys) }
    }

    /// Hands in what the home's other screens showed (summed over them, per local day), for the
    /// home-wide caps; a decision counts those of its own local day.
    pub fn set_home_shown(&mut self, others: HomeShown) {
        self.home = others;
    }

    /// What this device showed on its local day at `now`, as it tells its home's other screens.
    pub fn shown_today(&self, now: UnixTime) -> DayShown {
        self.history.shown_on(self.profile.local.day(now), self.profile.local.day_start(now))
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
        self.answer_slots_for = None;
        let compiled = match &self.shared {
            Some(shared) => shared.get_or_compile(payload, || AppliedCatalogue::compile(signed)),
            None => Arc::new(AppliedCatalogue::compile(signed)),
        };
        Ok(self.catalogue.insert(compiled))
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
            self.recent.retain(|r| !r.personal);
            self.traces.retain(|t| !is_personal(&t.decision));
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
        self.history = History::default();
        self.slots_for = None;
        self.answers = Answers::default();
        self.answer_slots_for = None;
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

    /// Hands back a stored impression on start, so caps survive restarts.
    pub fn restore_impression(&mut self, offer: &OfferId, campaign: &CampaignId, at: UnixTime) {
        self.history.record_impression(offer, campaign, at);
    }

    /// Hands back, on start, impressions storage pruned but still counts for good: all-time
    /// caps add them.
    pub fn restore_impression_total(&mut self, offer: &OfferId, campaign: &CampaignId, count: u32) {
        self.history.record_untimed(offer, campaign, count);
    }

    /// Hands back, on start, feedback counts storage folded from pruned learning rows (only
    /// used with `personalise`).
    pub fn restore_posterior_counts(&mut self, offer: &OfferId, accepts: u32, rejections: u32) {
        if self.consent.allows(Purpose::Personalise) {
            self.history.record_posterior_counts(offer, accepts, rejections);
        }
    }

    /// Hands back stored feedback on start (only used with `personalise`).
    pub fn restore_feedback(&mut self, offer: &OfferId, kind: FeedbackKind) {
        if self.consent.allows(Purpose::Personalise) {
            self.history.record_feedback(offer, kind);
        }
    }

    /// Notes a consent prompt put at `now` (at most one a local day), as a decision that put
    /// one does: for an audit that decides beside an agent and follows its decisions.
    pub fn restore_prompt_put(&mut self, now: UnixTime) {
        self.prompts.shown_on(self.profile.local.day(now));
    }

    /// Continues decision numbering after a restart.
    pub fn resume_decision_ids(&mut self, next: u64) {
        self.next_decision = self.next_decision.max(next);
    }
}

#[cfg(test)]
mod recent_size {
    /// The last [`super::RECENT_DECISIONS`] decisions are kept for feedback as small records,
    /// not copies of the decisions (about 1 KB each with a real catalogue).
    #[test]
    fn a_decision_kept_for_feedback_is_a_small_record() {
        let size = std::mem::size_of::<super::Recent>();
        assert!(size <= 32, "{size} bytes");
    }

    /// A trace keeps a decision whole, but what most decisions lack (an offer shown, a prompt)
    /// takes no room in it: the last [`super::RECENT_TRACES`] decisions stay small.
    #[test]
    fn a_traced_decision_takes_room_only_for_what_it_has() {
        let size = std::mem::size_of::<super::Trace>();
        assert!(size <= 360, "{size} bytes");
    }

    /// The ring holds no decision at first, and has its room for all of them from the start.
    #[test]
    fn the_ring_of_recent_decisions_has_its_room_from_the_start() {
        let ring = super::recent_ring();
        assert!(ring.is_empty());
        assert!(ring.capacity() >= super::RECENT_DECISIONS, "{}", ring.capacity());
    }

    /// An audit's engine previews as the agent's does, without the agent's reserved ring; and
    /// should it record a decision, feedback on it still lands.
    #[test]
    fn a_previewing_engine_reserves_no_ring_and_previews_as_any_other() {
        use crate::context::Draw;
        use crate::tests::{build_engine, butter, good_envelope, NOW};
        use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
        use ledtrad_protocol::{DeviceKind, Moment};

        let mut agent = build_engine(DeviceKind::Fridge);
        let mut audit = super::Engine::previewing(agent.profile().clone(), agent.keys.clone());
        assert_eq!(audit.recent.capacity(), 0);
        for engine in [&mut agent, &mut audit] {
            engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
            engine.handle_signal(butter(0.05), NOW);
        }
        let previewed = audit.preview(Moment::DoorOpened, NOW, Draw::NONE);
        assert!(previewed.shown.is_some(), "low butter brings an offer");
        assert_eq!(previewed, agent.preview(Moment::DoorOpened, NOW, Draw::NONE));
        let decided = audit.decide(Moment::DoorOpened, NOW, Draw::NONE).id;
        let feedback = Feedback { decision: decided, kind: FeedbackKind::Dismissed };
        assert!(audit.handle_feedback(feedback, NOW).is_ok());
    }
}
