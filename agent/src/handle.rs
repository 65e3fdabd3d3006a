//! The agent's handle: a cloneable sender of typed commands to the runtime, each answered on
//! its own channel. The local API and the simulator both drive the agent through it.

use ledtrad_engine::FeedbackError;
use ledtrad_protocol::consent::{ConsentSource, PURPOSES_VERSION};
use ledtrad_protocol::decision::{Decision, DecisionId};
use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId, Moment, Purpose};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::store::LedgerRow;

/// A command for the runtime.
#[derive(Debug)]
pub enum Command {
    /// Decide what to show at a moment.
    Offer(Moment, oneshot::Sender<OfferOutcome>),
    /// Apply feedback.
    Feedback(Feedback, oneshot::Sender<Result<(), AgentError>>),
    /// Read the consent state.
    Consent(oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Grant or revoke a purpose.
    SetConsent(Purpose, ConsentChange, oneshot::Sender<Result<ConsentView, AgentError>>),
    /// Look up a recent decision.
    Decision(DecisionId, oneshot::Sender<Option<Decision>>),
    /// Feed signals.
    Signals(Vec<Signal>, oneshot::Sender<SignalsOutcome>),
    /// Read the agent's status.
    Status(oneshot::Sender<AgentStatus>),
    /// Send today's measurement reports now (where `measure` is granted).
    FlushReports(oneshot::Sender<usize>),
    /// Read the consent ledger.
    Ledger(oneshot::Sender<Result<Vec<LedgerRow>, AgentError>>),
}

/// A decision and how long the engine took to make it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferOutcome {
    /// The decision.
    pub decision: Decision,
    /// The engine's decision time in nanoseconds (measured by the agent around the call).
    pub decide_nanos: u64,
}

/// A consent change as the device UI sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The consent in force, per purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentView {
    /// The version of the purpose set.
    pub purposes_version: u32,
    /// Use on-device signals to choose offers.
    pub personalise: bool,
    /// Send coarse context to the offer service.
    pub request: bool,
    /// Send aggregated, noised counts.
    pub measure: bool,
    /// Contribute noised model updates.
    pub improve: bool,
}

impl From<ledtrad_protocol::consent::ConsentState> for ConsentView {
    fn from(s: ledtrad_protocol::consent::ConsentState) -> Self {
        Self {
            purposes_version: PURPOSES_VERSION,
            personalise: s.allows(Purpose::Personalise),
            request: s.allows(Purpose::Request),
            measure: s.allows(Purpose::Measure),
            improve: s.allows(Purpose::Improve),
        }
    }
}

/// What happened to a batch of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SignalsOutcome {
    /// Aggregated into features.
    pub aggregated: usize,
    /// Dropped: personal, and `personalise` is not granted.
    pub dropped_no_consent: usize,
    /// Dropped: not a signal input (computed features) or not a finite number.
    pub dropped_invalid: usize,
}

/// The agent's state, for the local API and the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The device's pseudonym.
    pub device: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its fleet.
    pub fleet: FleetId,
    /// Whether the MQTT connection is up.
    pub connected: bool,
    /// The catalogue version applied.
    pub catalogue_version: Option<u64>,
    /// Offers in the applied catalogue.
    pub offers: usize,
    /// Catalogues refused since start.
    pub catalogues_refused: u64,
    /// Catalogue payloads that could not be decoded since start (also counted as refused).
    pub catalogues_malformed: u64,
    /// Why the last catalogue was refused.
    pub last_refusal: Option<String>,
    /// Messages sent through the egress gate.
    pub egress_sent: u64,
    /// Messages the gate refused for lack of consent.
    pub egress_blocked: u64,
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
}

/// A cloneable handle on a running agent.
#[derive(Debug, Clone)]
pub struct AgentHandle {
    tx: mpsc::Sender<Command>,
}

impl AgentHandle {
    /// A handle over a command channel; tests can hold the receiver to watch commands.
    pub fn from_sender(tx: mpsc::Sender<Command>) -> Self {
        Self { tx }
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, AgentError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| AgentError::Stopped)?;
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

    /// Grants or revokes `purpose`. When this returns, the change is on disk and in force, and
    /// data derived for a revoked purpose is gone.
    pub async fn set_consent(&self, purpose: Purpose, change: ConsentChange) -> Result<ConsentView, AgentError> {
        if change.text_version.trim().is_empty() || change.text_version.len() > 64 {
            return Err(AgentError::BadRequest(format!(
                "text_version {:?} must name the consent text the person saw, in 1 to 64 characters (e.g. \"2026-11\")",
                change.text_version
            )));
        }
        self.call(|r| Command::SetConsent(purpose, change, r)).await?
    }

    /// A recent decision with the reason for every candidate.
    pub async fn decision(&self, id: DecisionId) -> Result<Option<Decision>, AgentError> {
        self.call(|r| Command::Decision(id, r)).await
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

    /// The consent ledger, oldest first.
    pub async fn ledger(&self) -> Result<Vec<LedgerRow>, AgentError> {
        self.call(Command::Ledger).await?
    }
}
