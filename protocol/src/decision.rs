//! A decision (DESIGN §8): the offer shown, or none, and the reason for every candidate, so
//! "why not" is as inspectable as "why".

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::caps::Window;
use crate::catalogue::Op;
use crate::consent::Purpose;
use crate::device::{DeviceKind, Moment};
use crate::feature::FeatureName;
use crate::id::{CampaignId, OfferId, PromptId};
use crate::time::UnixTime;

pub use crate::id::DecisionId;

/// The outcome of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// The decision's number.
    pub id: DecisionId,
    /// The moment that asked for it.
    pub moment: Moment,
    /// When it was made.
    pub at: UnixTime,
    /// The catalogue version it used, if any was applied.
    pub catalogue_version: Option<u64>,
    // Boxed, as is `prompt`: most decisions show neither, and a device keeps its recent
    // decisions' traces.
    /// The offer to show, if any.
    pub shown: Option<Box<ShownOffer>>,
    /// Every candidate offer and what happened to it. The engine records every verdict at the
    /// decision and names the offers when the trace is asked for (`GET /v1/decisions/{id}`),
    /// so the decision an offer request returns carries none.
    pub candidates: Vec<Candidate>,
    /// Every feature read while deciding, with the consent that allowed it.
    pub features_used: Vec<FeatureUse>,
    /// Whether the shown offer was drawn from the broadly eligible offers rather than the top
    /// score, so what is shown never pins down exactly what the device knows.
    pub camouflage: bool,
    /// A consent prompt to show instead of an offer, if one is due.
    pub prompt: Option<Box<ShownPrompt>>,
    /// The offer this device would have shown had it not been in its campaign's holdout arm
    /// (then nothing is shown, so uplift can be measured).
    pub would_have_shown: Option<OfferId>,
    /// The score parts of the top eligible candidates, best first.
    pub scores: Vec<ScoreParts>,
    /// Which propensity scorer the scores came from.
    #[serde(default)]
    pub scorer: ScorerUsed,
}

/// Which propensity scorer a decision used.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScorerUsed {
    /// The offers' built-in logistic scorers (0.5 for an offer without one).
    #[default]
    Builtin,
    /// The fleet's model.
    Model {
        /// The model's name.
        name: String,
        /// Its version.
        version: u64,
        /// The runtime that ran it (`tract` or `tflite`).
        runtime: String,
    },
    /// The fleet's model failed on this decision, so the built-in scorers were used.
    ModelFailed {
        /// The model's version.
        version: u64,
        /// What went wrong.
        reason: String,
    },
}

/// How a candidate's score was made: `value × priority × max(propensity − penalty, 0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreParts {
    /// The offer.
    pub offer: OfferId,
    /// Estimated chance the person says yes (built-in scorer, then local feedback).
    pub propensity: f64,
    /// The offer's value.
    pub value: f64,
    /// The operator's priority lever.
    pub priority: f64,
    /// The intrusiveness penalty: more for every personal feature behind the offer.
    pub penalty: f64,
    /// The score.
    pub score: f64,
}

/// A consent prompt as the device UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShownPrompt {
    /// The prompt.
    pub prompt: PromptId,
    /// The purpose asked for.
    pub purpose: Purpose,
    /// The question.
    pub question: String,
    /// What the person gets in return.
    pub incentive: String,
    /// The version of the consent text shown.
    pub text_version: String,
}

/// The offer as the device UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShownOffer {
    /// The offer.
    pub offer: OfferId,
    /// Its campaign.
    pub campaign: CampaignId,
    /// Title.
    pub title: String,
    /// The offer as a question.
    pub question: String,
    /// Body text.
    pub body: String,
    /// Image reference.
    pub image: Option<String>,
    /// The truthful, coarse "why am I seeing this".
    pub why: String,
    /// Whether personal features chose it.
    pub personalised: bool,
}

/// One candidate offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidate {
    /// The offer.
    pub offer: OfferId,
    /// What happened to it.
    pub verdict: Verdict,
}

/// What happened to a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Shown, with its score.
    Chosen {
        /// Arbitration score.
        score: f64,
    },
    /// Eligible, but another offer scored higher.
    Outscored {
        /// Arbitration score.
        score: f64,
    },
    /// Not eligible.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

/// Why a candidate was not eligible; one variant per eligibility rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// The offer is not for this kind of device.
    DeviceKind {
        /// This device's kind.
        kind: DeviceKind,
    },
    /// The offer is not for this moment.
    Moment {
        /// The moment of the decision.
        moment: Moment,
    },
    /// The offer's validity window has not begun.
    NotYetValid {
        /// When it begins.
        from: UnixTime,
    },
    /// The offer's validity window has ended.
    Expired {
        /// When it ended.
        until: UnixTime,
    },
    /// The offer needs a consent that is not granted.
    NeedsConsent {
        /// The missing purpose.
        purpose: Purpose,
    },
    /// A condition's feature has no current value on this device.
    NoData {
        /// The feature.
        feature: FeatureName,
    },
    /// A condition does not hold.
    ConditionNotMet {
        /// The feature.
        feature: FeatureName,
        /// The comparison.
        op: Op,
        /// The threshold.
        threshold: f64,
    },
    /// The offer's daily cap on this device is reached.
    DailyCap {
        /// The cap.
        per_day: u32,
    },
    /// The catalogue's envelope has expired; nothing from it is shown until a newer one comes.
    CatalogueExpired {
        /// When it expired.
        at: UnixTime,
    },
    /// The offer was dismissed on this device less than 48 hours ago.
    DismissedRecently {
        /// When it may be shown again.
        until: UnixTime,
    },
    /// "Not for me" was said to an offer of this category less than 90 days ago.
    CategorySuppressed {
        /// The category.
        category: String,
        /// When it may be shown again.
        until: UnixTime,
    },
    /// The offer was already taken up on this device.
    Converted,
    /// This device is in the campaign's holdout arm: it records what it would have shown.
    Holdout {
        /// The campaign.
        campaign: CampaignId,
    },
    /// The offer's cap over a window other than the local day is reached.
    OfferCap {
        /// The window.
        window: Window,
        /// The cap.
        limit: u32,
    },
    /// The campaign's cap over a window is reached.
    CampaignCap {
        /// The campaign.
        campaign: CampaignId,
        /// The window.
        window: Window,
        /// The cap.
        limit: u32,
    },
    /// The device-wide cap over a window is reached.
    DeviceCap {
        /// The window.
        window: Window,
        /// The cap.
        limit: u32,
    },
    /// Too soon after the last offer on this device.
    MinGap {
        /// When the next offer may be shown.
        until: UnixTime,
    },
    /// Inside the device's quiet hours.
    QuietHours {
        /// First quiet hour.
        from: u8,
        /// First hour that is no longer quiet.
        to: u8,
    },
    /// The campaign's journey does not show this offer now (boxed: every candidate's verdict
    /// is as large as the largest reason).
    Journey(alloc::boxed::Box<crate::catalogue::journey::JourneyStop>),
    /// Another screen of the home showed this offer today, and it is personalised (or has
    /// personal conditions) with no `per_home_per_day` of its own: it is shown on one screen of
    /// a home per day.
    ShownOnAnotherScreen,
    /// The offer's cap per home per local day is reached, over all the home's screens.
    HomeOfferCap {
        /// The cap.
        per_home_per_day: u32,
    },
    /// The campaign's cap per home per local day is reached, over all the home's screens.
    HomeCampaignCap {
        /// The campaign.
        campaign: CampaignId,
        /// The cap.
        per_home_per_day: u32,
    },
    /// The policy's cap on offers per home per local day is reached, over all its screens.
    HomeCap {
        /// The cap.
        per_day: u32,
    },
}

/// A feature read during a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureUse {
    /// The feature.
    pub feature: FeatureName,
    /// The consent that allowed reading it; `None` for non-personal context.
    pub allowed_by: Option<Purpose>,
}
