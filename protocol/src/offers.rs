//! Offer requests and responses between devices and the offer service (request mode).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::catalogue::Offer;
use crate::device::{DeviceKind, Moment};
use crate::taxonomy::Category;

/// The most interest categories a request may carry.
pub const MAX_INTERESTS: usize = 3;

/// The most offers a device takes from one offer-service answer (the service sends at most
/// this many; a device refuses an answer with more).
pub const MAX_REMOTE_OFFERS: usize = 32;

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
    /// The coarse time of day, never a clock time.
    pub time_of_day: TimeOfDay,
}

/// A coarse part of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeOfDay {
    /// 05:00–11:59.
    Morning,
    /// 12:00–16:59.
    Afternoon,
    /// 17:00–21:59.
    Evening,
    /// 22:00–04:59.
    Night,
}

impl TimeOfDay {
    /// The part of the day a local hour (0–23) falls in.
    pub const fn from_hour(hour: u64) -> Self {
        match hour {
            5..=11 => Self::Morning,
            12..=16 => Self::Afternoon,
            17..=21 => Self::Evening,
            _ => Self::Night,
        }
    }
}

/// The offer service's answer: candidates the device still checks itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferResponse {
    /// Candidate offers.
    pub offers: Vec<Offer>,
}
