//! Feedback on a shown offer, from the device UI through the local API.

use serde::{Deserialize, Serialize};

use crate::id::DecisionId;

/// What the person did with an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// "Yes, please."
    Accepted,
    /// Closed without answering.
    Dismissed,
    /// "Not for me": suppresses the category.
    NotForMe,
    /// The offer was taken up (bought, subscribed); it is not shown again.
    Converted,
}

/// Feedback on the offer a decision showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The decision that showed the offer.
    pub decision: DecisionId,
    /// What the person did.
    pub kind: FeedbackKind,
}
