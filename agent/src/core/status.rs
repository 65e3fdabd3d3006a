//! The device's status: the retained message on its status topic (and its last will), and the
//! fuller status the local API shows.

use ledtrad_protocol::status::{Connection, DeviceStatus};
use tracing::warn;

use super::AgentCore;
use crate::config::Config;
use crate::handle::{AgentStatus, OutboxStatus};

/// The agent's version, published in its status.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The status that says the device is offline: its last will, and what it publishes when it
/// stops.
pub(crate) fn offline_status(config: &Config, version: Option<u64>, refusal: Option<String>) -> DeviceStatus {
    DeviceStatus {
        device: config.device.clone(),
        fleet: config.fleet.clone(),
        state: Connection::Offline,
        agent_version: AGENT_VERSION.into(),
        catalogue_version: version,
        last_refusal: refusal,
        model_version: None,
        last_model_refusal: None,
        rollout_waiting: None,
    }
}

impl AgentCore {
    pub(super) fn publish_status(&mut self) {
        let status = DeviceStatus {
            state: Connection::Online,
            model_version: self.engine.model().map(|m| m.version),
            last_model_refusal: self.inbound.last_model_refusal.clone(),
            rollout_waiting: self.inbound.rollout_waiting,
            ..offline_status(&self.config, self.version(), self.inbound.last_refusal.clone())
        };
        if let Err(e) = self.egress.status(&status) {
            warn!("status: {e}");
        }
    }

    /// The agent's status.
    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            device: self.config.device.clone(),
            kind: self.config.kind,
            fleet: self.config.fleet.clone(),
            connected: self.connection.connected,
            catalogue_version: self.version(),
            offers: self.engine.catalogue().map_or(0, |c| c.offers.len()),
            catalogues_refused: self.inbound.refused,
            catalogues_malformed: self.inbound.malformed,
            last_refusal: self.inbound.last_refusal.clone(),
            rollout_waiting: self.inbound.rollout_waiting,
            model_version: self.engine.model().map(|m| m.version),
            model: self.engine.model().map(|m| format!("{} v{} ({})", m.name, m.version, m.runtime())),
            models_refused: self.inbound.models_refused,
            last_model_refusal: self.inbound.last_model_refusal.clone(),
            egress_sent: self.egress.sent(),
            egress_blocked: self.egress.blocked(),
            requests_sent: self.requests.sent,
            requests_answered: self.requests.answered,
            requests_unanswered: self.requests.unanswered,
            link: self.link.as_ref().map(|l| l.status().clone()),
            storage_error: self.storage_failing.clone(),
            collector_present: self.egress.collector_present(),
            storage: self.storage_status(),
            outbox: self.outbox_status(),
        }
    }

    /// The outbox's rows, and the broker's acknowledgements. A database that cannot be read
    /// shows an empty outbox (`storage_error` says why).
    fn outbox_status(&self) -> OutboxStatus {
        let (acknowledged, refused) = self.egress.acknowledged();
        let queued = self.store.outbox_len().unwrap_or_else(|e| {
            warn!("status: counting the outbox: {e}");
            0
        });
        OutboxStatus { queued, acknowledged_kept: self.egress.acknowledged_kept() as u64, acknowledged, refused }
    }
}
