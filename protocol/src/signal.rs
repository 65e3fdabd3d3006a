//! Sensor signals as they reach the agent (from a sensor board, or `POST /v1/signals`).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::feature::FeatureName;

/// The most signals one batch may carry.
pub const MAX_SIGNALS_PER_BATCH: usize = 256;

/// One reading: a level (0–1 for shelf items), a count increment, a share.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// The feature it feeds.
    pub feature: FeatureName,
    /// The value.
    pub value: f64,
}

/// Several signals at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignalBatch {
    /// The signals, applied in order.
    pub signals: Vec<Signal>,
}
