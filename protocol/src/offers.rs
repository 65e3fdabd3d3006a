//! Offer requests and responses between devices and the offer service (request mode).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::catalogue::Offer;
use crate::device::{DeviceKind, Moment};
use crate::taxonomy::Category;

/// The most interest categories a request may carry.
pub const MAX_INTERESTS: usize = 3;

/// Coarse, consented context sent with `request` consent. Nothing else leaves the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferRequest {
    /// The device's kind.
    pub device_kind: DeviceKind,
    /// The moment.
    pub moment: Moment,
    /// Up to [`MAX_INTERESTS`] coarse interest categories.
    pub interests: Vec<Category>,
}

/// The offer service's answer: candidates the device still checks itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferResponse {
    /// Candidate offers.
    pub offers: Vec<Offer>,
}
