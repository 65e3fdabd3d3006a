//! Aggregated, noised measurement counts (DESIGN §12). No device id in the payload.

use serde::{Deserialize, Serialize};

use crate::id::CampaignId;

/// The arm of a campaign a device is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Shown offers.
    Treatment,
    /// Held out: records "would have shown" and shows nothing.
    Holdout,
}

/// Counts for one campaign and arm over one local day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The campaign.
    pub campaign: CampaignId,
    /// The arm.
    pub arm: Arm,
    /// Days since the epoch, device-local.
    pub day: u32,
    /// Offers shown.
    pub impressions: u32,
    /// Offers accepted.
    pub accepts: u32,
    /// Offers dismissed or refused.
    pub dismissals: u32,
    /// Conversions.
    pub conversions: u32,
}
