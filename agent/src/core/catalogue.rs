//! Signed artefacts from the fleet's retained topics: the catalogue and the scoring model,
//! applied through the engine's checks, stored, and said in the status.

use ledtrad_engine::trust::Refusal;
use ledtrad_engine::Engine;
use ledtrad_protocol::UnixTime;
use tracing::{debug, error, info, warn};

use super::AgentCore;
use crate::clock::Now;
use crate::events::{CatalogueEvent, UiEvent};
use crate::store::{Store, StoreError};

/// What the core knows of the signed artefacts it was sent.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    /// The applied catalogue's envelope, by digest: enough to know it when it is delivered
    /// again, without keeping a copy of it (hundreds of kilobytes for a large catalogue).
    applied_envelope: Option<Digest>,
    /// The applied model's envelope, by digest.
    applied_model: Option<Digest>,
    pub(super) models_refused: u64,
    pub(super) last_model_refusal: Option<String>,
    pub(super) refused: u64,
    pub(super) malformed: u64,
    pub(super) last_refusal: Option<String>,
    /// A catalogue version rolling out that does not include this device yet.
    pub(super) rollout_waiting: Option<u64>,
}

/// An envelope's SHA-256 digest.
type Digest = [u8; 32];

fn digest(payload: &[u8]) -> Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(payload).into()
}

/// Applies the stored catalogue and model again after a restart, and the version floors that
/// keep an older one from being applied later.
pub(super) fn restore_signed(engine: &mut Engine, store: &Store, now: UnixTime) -> Result<Inbound, StoreError> {
    let mut inbound = Inbound::default();
    if let Some((version, envelope)) = store.latest_catalogue()? {
        match engine.handle_catalogue(&envelope, now) {
            Ok(_) => {
                info!(version, "restored catalogue");
                inbound.applied_envelope = Some(digest(&envelope));
            }
            Err(e) => warn!(version, "stored catalogue no longer applies: {e}"),
        }
    }
    if let Some((version, envelope)) = store.latest_model()? {
        match engine.handle_model(&envelope, now) {
            Ok(model) => {
                info!(version, runtime = model.runtime(), "restored scoring model");
                inbound.applied_model = Some(digest(&envelope));
            }
            Err(e) => warn!(version, "stored scoring model no longer applies, using the built-in scorers: {e}"),
        }
    }
    if let Some(highest) = store.highest_model_version()? {
        engine.set_model_floor(highest);
    }
    if let Some(highest) = store.highest_catalogue_version()? {
        engine.set_version_floor(highest);
    }
    Ok(inbound)
}

impl AgentCore {
    pub(super) fn handle_catalogue(&mut self, payload: &[u8], now: Now) {
        if payload.is_empty() {
            info!(version = ?self.version(), "the retained catalogue was cleared on the broker; keeping the applied one");
            return;
        }
        if self.inbound.applied_envelope == Some(digest(payload)) {
            debug!("the applied catalogue was delivered again");
            return;
        }
        match self.engine.handle_catalogue(payload, now.wall) {
            Ok(applied) => {
                let (version, offers) = (applied.version, applied.offers.len());
                let stored = self.store.save_catalogue(version, self.config.fleet.as_str(), payload, now.wall);
                if let Err(e) = self.track(stored) {
                    error!("catalogue version {version} applied but not stored, it will be refetched from the broker after a restart: {e}");
                }
                self.inbound.applied_envelope = Some(digest(payload));
                self.inbound.last_refusal = None;
                self.inbound.rollout_waiting = None;
                info!(version, offers, "catalogue applied");
                self.catalogue_event(Some(version), None);
            }
            Err(Refusal::AlreadyApplied { version }) => {
                debug!(version, "the applied catalogue was republished (a staged rollout widened or completed)");
                self.inbound.rollout_waiting = None;
            }
            Err(Refusal::NotInRollout { version, share }) => {
                info!(version, share, kept = ?self.version(), "a staged rollout does not include this device yet");
                self.inbound.rollout_waiting = Some(version);
            }
            Err(Refusal::Rollback { got, .. })
                if applied_before(&self.store, got, payload, Store::applied_catalogue_before) =>
            {
                debug!(
                    version = got,
                    "a catalogue applied earlier was delivered again after a reconnect; keeping the newer one"
                );
            }
            Err(refusal) => {
                if refusal.is_malformed() {
                    self.inbound.malformed += 1;
                }
                self.inbound.refused += 1;
                warn!(kept = ?self.version(), "catalogue refused: {refusal}");
                self.inbound.last_refusal = Some(refusal.to_string());
                self.catalogue_event(refusal.version(), Some(refusal.to_string()));
            }
        }
        self.publish_status();
    }

    pub(super) fn handle_model(&mut self, payload: &[u8], now: Now) {
        if payload.is_empty() || self.inbound.applied_model == Some(digest(payload)) {
            debug!("no new scoring model in the message; keeping the applied one");
            return;
        }
        match self.engine.handle_model(payload, now.wall) {
            Ok(model) => {
                let (version, runtime) = (model.version, model.runtime());
                let stored = self.store.save_model(version, self.config.fleet.as_str(), payload, now.wall);
                if let Err(e) = self.track(stored) {
                    error!("scoring model version {version} applied but not stored, it will be refetched from the broker after a restart: {e}");
                }
                self.inbound.applied_model = Some(digest(payload));
                self.inbound.last_model_refusal = None;
                info!(version, runtime, "scoring model applied");
            }
            Err(Refusal::Rollback { got, .. })
                if applied_before(&self.store, got, payload, Store::applied_model_before) =>
            {
                debug!(
                    version = got,
                    "a scoring model applied earlier was delivered again after a reconnect; keeping the newer one"
                );
            }
            Err(refusal) => {
                self.inbound.models_refused += 1;
                warn!(kept = ?self.engine.model().map(|m| m.version), "scoring model refused: {refusal}");
                self.inbound.last_model_refusal = Some(refusal.to_string());
            }
        }
        self.publish_status();
    }

    /// Tells a connected UI of a catalogue applied (no `refusal`) or refused.
    fn catalogue_event(&mut self, version: Option<u64>, refusal: Option<String>) {
        let event = CatalogueEvent { version, applied: refusal.is_none(), reason: refusal };
        self.ui_events.push_back(UiEvent::Catalogue(event));
    }

    pub(super) fn version(&self) -> Option<u64> {
        self.engine.catalogue().map(|c| c.version)
    }
}

/// Whether an envelope refused as not newer is one this device applied before: the broker
/// redelivering it after a reconnect (a persistent session's queue and the retained copy
/// can arrive in either order), which is neither applied again nor counted as a refusal.
fn applied_before(
    store: &Store,
    version: u64,
    payload: &[u8],
    lookup: fn(&Store, u64, &[u8]) -> Result<bool, StoreError>,
) -> bool {
    lookup(store, version, payload).unwrap_or_else(|e| {
        warn!("could not look up earlier envelopes, counting the older one as refused: {e}");
        false
    })
}
