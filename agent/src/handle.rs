//! The agent's handle: a cloneable sender of typed commands to the runtime, each answered on
//! its own channel. The local API and the simulator both drive the agent through it.

use ledtrad_engine::FeedbackError;
use std::collections::BTreeMap;

use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::decision::{Decision, DecisionId};
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceId, Moment, PersonId, Purpose};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::household::Sharing;
use crate::store::LedgerRow;

mod status;
pub use status::{AgentStatus, OutboxStatus, StorageStatus};

/// A command for the runtime.
#[derive(Debug)]
pub enum Command {
    /// Decide what to show at a moment.
    Offer(Moment, oneshot::Sender<OfferOutcome>),
    /// Apply feedback.
    Feedback(Feedback, oneshot::Sender<Result<(), AgentError>>),
    /// Read the consent state.
    Consent(oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Grant or revoke a purpose for a person (`None`: the device's owner).
    SetConsent(Option<PersonId>, Purpose, ConsentChange, oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Add a person to the household, or change whether they are a child.
    PutPerson(PersonId, PersonChange, oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Say who is present at a shared device (`None`: unknown).
    SetPresence(Option<Vec<PersonId>>, oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Look up a recent decision.
    Decision(DecisionId, oneshot::Sender<Option<Decision>>),
    /// The answers given to a decision.
    Answers(DecisionId, oneshot::Sender<Result<Vec<DecisionAnswer>, AgentError>>),
    /// Feed signals.
    Signals(Vec<Signal>, oneshot::Sender<SignalsOutcome>),
    /// Read the agent's status.
    Status(oneshot::Sender<AgentStatus>),
    /// Send today's measurement reports now (where `measure` is granted).
    FlushReports(oneshot::Sender<usize>),
    /// Export what the device holds about a person (`None`: the owner).
    MyData(Option<PersonId>, oneshot::Sender<Result<MyData, AgentError>>),
    /// Erase what the device holds about a person (`None`: the owner).
    Erase(Option<PersonId>, ConsentSource, oneshot::Sender<Result<MyData, AgentError>>),
    /// Answer a consent prompt.
    PromptAnswer(PromptAnswer, oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Run the periodic work now (see [`AgentHandle::tick`]).
    Tick(oneshot::Sender<()>),
    /// Read the consent ledger.
    Ledger(oneshot::Sender<Result<Vec<LedgerRow>, AgentError>>),
    /// Make, join, show or leave the device's home.
    Home(crate::home::HomeCommand, oneshot::Sender<Result<crate::home::HomeView, AgentError>>),
}

/// A decision and how long the engine took to make it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferOutcome {
    /// The decision.
    pub decision: Decision,
    /// The engine's decision time in nanoseconds (measured by the agent around the call).
    pub decide_nanos: u64,
    /// Whether the decision weighed the catalogue's offers one by one (a full decision), rather
    /// than the device-wide rules ruling every offer out first (a cheap one): for figures that
    /// time the two apart.
    #[serde(skip)]
    pub weighed: bool,
    /// The random draws the decision was made with (camouflage, pick, exploration seed): not
    /// personal, kept off the API, for an audit that decides again beside the agent.
    #[serde(skip)]
    pub draw: ledtrad_engine::Draw,
    /// Whether the offer service was asked (request mode), and what came of it.
    pub request: Option<RequestOutcome>,
}

/// What came of asking the offer service at a moment the catalogue had nothing for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RequestOutcome {
    /// Whether the answer came in time; if not, the local decision (nothing) stands.
    pub answered: bool,
    /// Offers the service sent.
    pub offers_received: usize,
    /// Offers that passed the device's own checks.
    pub offers_kept: usize,
    /// From sending the request to deciding on the answer (or giving up), in microseconds.
    pub round_trip_micros: u64,
}

/// An answer given to a decision (feedback), as its trace shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionAnswer {
    /// What the person answered.
    pub kind: ledtrad_protocol::feedback::FeedbackKind,
    /// When.
    pub at: ledtrad_protocol::UnixTime,
}

/// A consent change as the device UI sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChange {
    /// Grant (`true`) or revoke (`false`).
    pub granted: bool,
    /// Where the person made the change (default `api`).
    #[serde(default = "default_source")]
    pub source: ConsentSource,
    /// The version of the consent text the person saw, e.g. "2026-11".
    pub text_version: String,
}

fn default_source() -> ConsentSource {
    ConsentSource::Api
}

/// An answer to a consent prompt, as the device UI sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptAnswer {
    /// The decision that showed the prompt.
    pub decision: DecisionId,
    /// "yes" grants the purpose; "no" quiets prompts for it for 30 days.
    pub answer: YesNo,
    /// Who answered (default: the device's owner).
    #[serde(default)]
    pub person: Option<PersonId>,
}

/// A yes or a no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum YesNo {
    /// Yes.
    Yes,
    /// No.
    No,
}

/// A person as the device UI adds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonChange {
    /// A child profile: can never grant `personalise`, `request` or `improve`.
    #[serde(default)]
    pub child: bool,
}

/// Who is present at a shared device, as the device maker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// The people present, or `null` when unknown.
    pub present: Option<Vec<PersonId>>,
}

/// Per-purpose grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Grants {
    /// Use on-device signals to choose offers.
    pub personalise: bool,
    /// Send coarse context to the offer service.
    pub request: bool,
    /// Send aggregated, noised counts.
    pub measure: bool,
    /// Contribute noised model updates (not used by this version: see
    /// `not_used_by_this_version`).
    pub improve: bool,
}

impl From<ConsentState> for Grants {
    fn from(s: ConsentState) -> Self {
        Self {
            personalise: s.allows(Purpose::Personalise),
            request: s.allows(Purpose::Request),
            measure: s.allows(Purpose::Measure),
            improve: s.allows(Purpose::Improve),
        }
    }
}

/// One person's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonView {
    /// A child profile.
    pub child: bool,
    /// What they granted.
    #[serde(flatten)]
    pub grants: Grants,
}

/// The consent in force on this device, and the household behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// The version of the purpose set.
    pub purposes_version: u32,
    /// What this device may do now (its owner's consent, or the strictest of the people it serves).
    #[serde(flatten)]
    pub grants: Grants,
    /// Personal or shared.
    pub sharing: Sharing,
    /// The device's owner.
    pub owner: PersonId,
    /// The household's people and their own consent.
    pub people: BTreeMap<PersonId, PersonView>,
    /// Who is present, where the device maker reports it.
    pub present: Option<Vec<PersonId>>,
    /// Purposes a person can grant that this version does not use (`improve`: nothing is sent
    /// or used for it until model updates exist).
    #[serde(default)]
    pub not_used_by_this_version: Vec<Purpose>,
}

impl ConsentView {
    /// Whether `purpose` is in force on this device.
    pub fn allows(&self, purpose: Purpose) -> bool {
        match purpose {
            Purpose::Personalise => self.grants.personalise,
            Purpose::Request => self.grants.request,
            Purpose::Measure => self.grants.measure,
            Purpose::Improve => self.grants.improve,
        }
    }
}

/// Everything the device holds about one person (`GET /v1/my-data`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MyData {
    /// The person.
    pub person: PersonId,
    /// This device's pseudonym.
    pub device: DeviceId,
    /// Personal or shared.
    pub sharing: Sharing,
    /// Whether the device's own data below is about this person: on a personal device, only
    /// its owner's; on a shared device, the whole household's, this person's included.
    pub device_data_about_person: bool,
    /// Their consent ledger rows, oldest first (kept after an erasure, as its record).
    pub consent_ledger: Vec<LedgerRow>,
    /// The erasures they asked for.
    pub erasures: Vec<ErasureRecord>,
    /// Current feature values.
    pub features: Vec<FeatureValue>,
    /// Offers shown.
    pub impressions: Vec<crate::store::ImpressionRow>,
    /// Answers given to offers.
    pub feedback: Vec<FeedbackRecord>,
    /// Impressions older than a month, pruned from `impressions` and kept only as lifetime
    /// counts (all-time caps count them).
    pub impression_totals: Vec<ImpressionTotal>,
    /// Learning answers pruned from storage and kept only as counts per offer (with
    /// `personalise`, and purged with it).
    pub learning_totals: Vec<LearningTotal>,
    /// Measurement counts waiting to be sent (before noise).
    pub queued_reports: Vec<QueuedReport>,
    /// Messages waiting in the outbox for the broker (after noise).
    pub queued_messages: Vec<QueuedMessage>,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueuedMessage {
    /// The purpose that allows it.
    pub purpose: Purpose,
    /// Where it goes.
    pub topic: String,
    /// When it was queued.
    pub queued_at: ledtrad_protocol::UnixTime,
    /// Its content.
    pub payload: serde_json::Value,
}

impl MyData {
    /// Whether the device holds no data about the person beyond the record of their consent.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
            && self.impressions.is_empty()
            && self.feedback.is_empty()
            && self.impression_totals.is_empty()
            && self.learning_totals.is_empty()
            && self.queued_reports.is_empty()
            && self.queued_messages.is_empty()
    }
}

/// An erasure a person asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErasureRecord {
    /// When.
    pub at: ledtrad_protocol::UnixTime,
    /// Where from.
    pub source: String,
}

/// A feature value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeatureValue {
    /// The feature.
    pub feature: ledtrad_protocol::feature::FeatureName,
    /// Its value.
    pub value: f64,
}

/// Stored feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedbackRecord {
    /// The decision that showed the offer.
    pub decision: DecisionId,
    /// The offer.
    pub offer: ledtrad_protocol::OfferId,
    /// The answer.
    pub kind: ledtrad_protocol::feedback::FeedbackKind,
    /// When.
    pub at: ledtrad_protocol::UnixTime,
}

/// Impressions of one offer kept only as a count once their rows were pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImpressionTotal {
    /// The offer.
    pub offer: ledtrad_protocol::OfferId,
    /// Its campaign.
    pub campaign: ledtrad_protocol::CampaignId,
    /// How many impressions were pruned.
    pub count: u32,
}

/// Learning answers to one offer kept only as counts once their rows were pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LearningTotal {
    /// The offer.
    pub offer: ledtrad_protocol::OfferId,
    /// Acceptances.
    pub accepts: u32,
    /// Dismissals and "not for me".
    pub rejections: u32,
}

/// Counts waiting to be reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueuedReport {
    /// Local day number.
    pub day: u32,
    /// The campaign.
    pub campaign: ledtrad_protocol::CampaignId,
    /// Treatment, or holdout ("would have shown").
    pub arm: ledtrad_protocol::report::Arm,
    /// The catalogue version the counts were made under (sent with them).
    pub catalogue_version: u64,
    /// Impressions.
    pub impressions: u32,
    /// Accepts.
    pub accepts: u32,
    /// Dismissals.
    pub dismissals: u32,
    /// Conversions.
    pub conversions: u32,
}

/// What happened to a batch of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignalsOutcome {
    /// Aggregated into features.
    pub aggregated: usize,
    /// Dropped: personal, and `personalise` is not granted.
    pub dropped_no_consent: usize,
    /// Dropped: not a signal input (computed features) or not a finite number.
    pub dropped_invalid: usize,
    /// The moment the batch raised, if any (its decision's offer goes to `/v1/events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub raised: Option<Moment>,
}

/// A command that could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent has stopped.
    #[error("the agent has stopped")]
    Stopped,
    /// The database failed; nothing was changed.
    #[error("storage: {0}")]
    Storage(String),
    /// The feedback cannot be applied.
    #[error(transparent)]
    Feedback(#[from] FeedbackError),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The person is not in the household.
    #[error("person '{0}' is not in this household; add them first with PUT /v1/people/{0}")]
    UnknownPerson(PersonId),
}

/// A cloneable handle on a running agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    tx: mpsc::Sender<Box<Command>>,
}

impl AgentHandle {
    /// A handle over a command channel; tests can hold the receiver to watch commands.
    ///
    /// Commands go boxed: a channel keeps room for 32 of its items at a time whatever it
    /// carries, and a box is 8 bytes where a command is several times that, in every agent.
    pub fn from_sender(tx: mpsc::Sender<Box<Command>>) -> Self {
        Self { tx }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, AgentError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Box::new(make(reply))).await.map_err(|_| AgentError::Stopped)?;
        rx.await.map_err(|_| AgentError::Stopped)
    }

    /// Decides what to show at `moment`.
    pub async fn offer(&self, moment: Moment) -> Result<OfferOutcome, AgentError> {
        self.call(|r| Command::Offer(moment, r)).await
    }

    /// Applies feedback on a shown offer.
    pub async fn feedback(&self, feedback: Feedback) -> Result<(), AgentError> {
        self.call(|r| Command::Feedback(feedback, r)).await?
    }

    /// The consent in force.
    pub async fn consent(&self) -> Result<ConsentView, AgentError> {
        self.call(Command::Consent).await?
    }

    /// Grants or revokes `purpose` for the device's owner. When this returns, the change is on
    /// disk and in force, and data derived for a revoked purpose is gone.
    pub async fn set_consent(&self, purpose: Purpose, change: ConsentChange) -> Result<ConsentView, AgentError> {
        self.set_person_consent(None, purpose, change).await
    }

    /// Grants or revokes `purpose` for `person` (`None`: the owner), as [`Self::set_consent`].
    pub async fn set_person_consent(
        &self,
        person: Option<PersonId>,
        purpose: Purpose,
        change: ConsentChange,
    ) -> Result<ConsentView, AgentError> {
        if change.text_version.trim().is_empty() || change.text_version.len() > 64 {
            return Err(AgentError::BadRequest(format!(
                "text_version {:?} must name the consent text the person saw, in 1 to 64 characters (e.g. \"2026-11\")",
                change.text_version
            )));
        }
        self.call(|r| Command::SetConsent(person, purpose, change, r)).await?
    }

    /// Adds `person` to the household or changes whether they are a child.
    pub async fn put_person(&self, person: PersonId, change: PersonChange) -> Result<ConsentView, AgentError> {
        self.call(|r| Command::PutPerson(person, change, r)).await?
    }

    /// Says who is present at a shared device (`None`: unknown).
    pub async fn set_presence(&self, present: Option<Vec<PersonId>>) -> Result<ConsentView, AgentError> {
        self.call(|r| Command::SetPresence(present, r)).await?
    }

    /// A recent decision with the reason for every candidate.
    pub async fn decision(&self, id: DecisionId) -> Result<Option<Decision>, AgentError> {
        self.call(|r| Command::Decision(id, r)).await
    }

    /// The answers given to decision `id`, oldest first.
    pub async fn answers(&self, id: DecisionId) -> Result<Vec<DecisionAnswer>, AgentError> {
        self.call(|r| Command::Answers(id, r)).await?
    }

    /// Feeds signals into the feature windows.
    pub async fn signals(&self, signals: Vec<Signal>) -> Result<SignalsOutcome, AgentError> {
        self.call(|r| Command::Signals(signals, r)).await
    }

    /// The agent's status.
    pub async fn status(&self) -> Result<AgentStatus, AgentError> {
        self.call(Command::Status).await
    }

    /// Sends the measurement reports gathered so far (only with `measure`); returns how many.
    pub async fn flush_reports(&self) -> Result<usize, AgentError> {
        self.call(Command::FlushReports).await
    }

    /// Everything the device holds about `person` (`None`: the owner).
    pub async fn my_data(&self, person: Option<PersonId>) -> Result<MyData, AgentError> {
        self.call(|r| Command::MyData(person, r)).await?
    }

    /// Erases what the device holds about `person` (`None`: the owner) and returns what is
    /// left (only the record of their consent and of the erasure).
    pub async fn erase(&self, person: Option<PersonId>, source: ConsentSource) -> Result<MyData, AgentError> {
        self.call(|r| Command::Erase(person, source, r)).await?
    }

    /// Applies an answer to a consent prompt: a "yes" is a consent grant with the prompt's text
    /// version; a "no" quiets prompts for that purpose for 30 days.
    pub async fn prompt_answer(&self, answer: PromptAnswer) -> Result<ConsentView, AgentError> {
        self.call(|r| Command::PromptAnswer(answer, r)).await?
    }

    /// Runs the agent's periodic work now, as its one-minute timer does: expires old feature
    /// values, queues the reports of completed days, and retries the outbox. For simulations
    /// and tests that move time themselves.
    pub async fn tick(&self) -> Result<(), AgentError> {
        self.call(Command::Tick).await
    }

    /// The consent ledger, oldest first.
    pub async fn ledger(&self) -> Result<Vec<LedgerRow>, AgentError> {
        self.call(Command::Ledger).await?
    }

    /// Makes, joins, shows or leaves the device's home (see [`crate::home::HomeCommand`]).
    pub async fn home(&self, command: crate::home::HomeCommand) -> Result<crate::home::HomeView, AgentError> {
        self.call(|r| Command::Home(command, r)).await?
    }
}
