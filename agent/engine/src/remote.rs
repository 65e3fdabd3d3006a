//! The offer service's answer as candidates (DESIGN §8 in request mode): its offers pass the
//! same checks as a catalogue's, those the catalogue in force already holds or that belong to
//! one of its journeys are left to it, and the rest are compiled under its rules.

use ledtrad_protocol::catalogue::{Catalogue, Offer};

use crate::compiled::AppliedCatalogue;

/// The most candidates the engine takes from one offer-service answer (the protocol's limit,
/// which the offer service checks too).
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

/// The offer service's candidates, ready to be decided on.
#[derive(Debug, Clone)]
pub struct ServiceCandidates {
    /// The kept offers, compiled under the rules of the catalogue in force.
    pub catalogue: AppliedCatalogue,
    /// How many were received and kept.
    pub counted: RemoteOffers,
}

impl ServiceCandidates {
    /// Checks the offer service's `offers` against the catalogue `in_force`: each must pass the
    /// catalogue checks on its own, be new to the device (not in the catalogue nor earlier in
    /// the answer) and not belong to one of the catalogue's journeys; the others are dropped.
    pub fn from_answer(in_force: &AppliedCatalogue, offers: Vec<Offer>) -> Result<Self, RemoteError> {
        let received = offers.len();
        if received > MAX_REMOTE_OFFERS {
            return Err(RemoteError::TooMany(received));
        }
        let mut kept: Vec<Offer> = Vec::new();
        for offer in offers {
            let known = in_force.offers.iter().any(|o| o.offer.id == offer.id) || kept.iter().any(|o| o.id == offer.id);
            let journey = in_force.journeys.iter().any(|j| j.campaign == offer.campaign);
            let alone = Catalogue { offers: vec![offer], ..Catalogue::default() };
            if !known && !journey && alone.problems().is_empty() {
                kept.extend(alone.offers);
            }
        }
        let counted = RemoteOffers { received, kept: kept.len() };
        Ok(Self { catalogue: AppliedCatalogue::from_offer_service(in_force, kept), counted })
    }
}
