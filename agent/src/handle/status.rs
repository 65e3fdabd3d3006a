//! The agent's status as the local API and the simulator read it: its connection, catalogue
//! and model, what it sent and refused, its database against its budget, and its outbox.

use ledtrad_protocol::{DeviceId, DeviceKind, FleetId};
use serde::{Deserialize, Serialize};

/// The agent's state, for the local API and the simulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A catalogue version rolling out to a share of the fleet that does not include this
    /// device yet.
    pub rollout_waiting: Option<u64>,
    /// The scoring model version applied; without one the catalogue's built-in scorers are used.
    pub model_version: Option<u64>,
    /// The scoring model in force, as "name vVERSION (runtime)".
    pub model: Option<String>,
    /// Scoring models refused since start.
    pub models_refused: u64,
    /// Why the last scoring model was refused.
    pub last_model_refusal: Option<String>,
    /// Messages sent through the egress gate.
    pub egress_sent: u64,
    /// Messages the gate refused for lack of consent.
    pub egress_blocked: u64,
    /// Offer requests sent to the offer service.
    pub requests_sent: u64,
    /// Offer requests answered in time.
    pub requests_answered: u64,
    /// Offer requests whose answer was not used (the local decision stood): it came too late
    /// or not at all, could not be used, or a consent was withdrawn while it was awaited.
    pub requests_unanswered: u64,
    /// The sensor board's link, if the config names one: frames good, corrupt, cut off and
    /// lost, and the signals they gave.
    pub link: Option<crate::link::LinkStatus>,
    /// Set while the database cannot be written (the storage full, or read-only): the last
    /// failure. Offers go on from memory; what must be kept (consent, answers) is refused
    /// until writes work again, which needs nothing but the space back.
    pub storage_error: Option<String>,
    /// Whether a report collector announces itself on the broker. Reports wait in the outbox
    /// while none does (see `my_data`'s queued messages).
    pub collector_present: bool,
    /// The database's size against its budget, and the rows pruned to keep it bounded.
    pub storage: StorageStatus,
    /// What waits in the outbox for the broker, and what the broker acknowledged.
    pub outbox: OutboxStatus,
}

/// The outbox: messages kept in the database until the broker acknowledged them (reports, and
/// the rest of what must not be lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxStatus {
    /// Messages in the outbox now.
    pub queued: u64,
    /// Of them, the ones the broker acknowledged on this connection: they are kept a few
    /// minutes more, and handed over again if the connection drops meanwhile, in case the
    /// broker stopped before it had them safe; the next tick after that removes them.
    pub acknowledged_kept: u64,
    /// Acknowledgements from the broker since start (a message handed over again after a
    /// dropped connection counts again).
    pub acknowledged: u64,
    /// Messages the broker refused since start (an ACL that does not allow the topic): dropped.
    pub refused: u64,
}

impl OutboxStatus {
    /// Messages in the outbox the broker has not acknowledged on this connection.
    pub fn not_acknowledged(&self) -> u64 {
        self.queued.saturating_sub(self.acknowledged_kept)
    }
}

/// The database's size against its budget, and what pruning took to keep it there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StorageStatus {
    /// The database file and its write-ahead log on disk, in bytes.
    pub database_bytes: u64,
    /// The budget (`database_budget_bytes` in the config).
    pub budget_bytes: u64,
    /// Rows pruned since start because they were past the window the engine reads
    /// (impressions after a month, answers after 90 days, ...).
    pub pruned_by_retention: u64,
    /// Rows pruned since start, oldest first, to get the database back under its budget.
    pub pruned_by_budget: u64,
    /// When the agent last pruned, if it has since start.
    pub last_prune: Option<ledtrad_protocol::UnixTime>,
}
