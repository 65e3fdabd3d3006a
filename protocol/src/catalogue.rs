//! The offer catalogue (DESIGN §7): what operators author in TOML or JSON, sign and push.
//!
//! Parsing is lenient per offer and [`Catalogue::problems`] then reports every problem at once,
//! each naming the offer and the field, so an operator can fix a catalogue in one pass. The
//! agent runs the same checks after verifying a signature, and compiles the result once.

pub mod journey;
pub mod prompt;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::consent::Purpose;
use crate::device::{DeviceKind, Moment};
use crate::feature::FeatureName;
use crate::id::{CampaignId, OfferId};
use crate::taxonomy::Category;
use crate::time::UnixTime;
use prompt::{ConsentPrompt, MAX_PROMPTS};

/// The most offers one catalogue may hold.
pub const MAX_OFFERS: usize = 2000;
/// The most conditions one offer may hold.
pub const MAX_CONDITIONS: usize = 8;
/// The longest title, in characters.
pub const MAX_TITLE: usize = 80;
/// The longest question, in characters.
pub const MAX_QUESTION: usize = 140;
/// The longest body, in characters.
pub const MAX_BODY: usize = 500;
/// The longest image reference, in characters.
pub const MAX_IMAGE_REF: usize = 256;

/// A catalogue: a named list of offers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// A name for people (e.g. "Home, winter 2026").
    #[serde(default)]
    pub name: String,
    /// The offers, written `[[offer]]` in TOML.
    #[serde(rename = "offer", default)]
    pub offers: Vec<Offer>,
    /// Consent prompts, written `[[prompt]]` in TOML.
    #[serde(rename = "prompt", default)]
    pub prompts: Vec<ConsentPrompt>,
    /// Campaign settings, written `[[campaign]]` in TOML; a campaign without an entry has no
    /// holdout.
    #[serde(rename = "campaign", default)]
    pub campaigns: Vec<Campaign>,
    /// Device-wide frequency rules.
    #[serde(default)]
    pub policy: Policy,
}

/// The most devices a campaign may hold out.
pub const MAX_HOLDOUT: f64 = 0.5;

/// A campaign's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// The campaign.
    pub id: CampaignId,
    /// The share of devices held out to measure uplift (0 to 0.5): chosen by a hash of the
    /// device pseudonym and the campaign, they record "would have shown" and show nothing.
    #[serde(default)]
    pub holdout: f64,
    /// Caps over all of the campaign's offers.
    #[serde(default)]
    pub caps: CampaignCaps,
    /// Groups of devices its journey steps may show other offers to, written
    /// `[[campaign.group]]` in TOML.
    #[serde(rename = "group", default)]
    pub groups: Vec<journey::Group>,
    /// Its journey's steps, written `[[campaign.step]]` in TOML; without steps, its offers are
    /// eligible on their own rules.
    #[serde(rename = "step", default)]
    pub steps: Vec<journey::Step>,
}

impl Campaign {
    /// A campaign with no holdout, no caps and no journey.
    pub fn new(id: CampaignId) -> Self {
        Self { id, holdout: 0.0, caps: CampaignCaps::default(), groups: Vec::new(), steps: Vec::new() }
    }
}

/// One offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// Unique within the catalogue.
    pub id: OfferId,
    /// The campaign it belongs to.
    pub campaign: CampaignId,
    /// A short title.
    pub title: String,
    /// The offer put as a question, ending in '?'.
    pub question: String,
    /// The offer's text.
    pub body: String,
    /// A reference to an image the device UI shows with it.
    #[serde(default)]
    pub image: Option<String>,
    /// A category of the taxonomy; sensitive branches are refused.
    pub category: String,
    /// The device kinds that may show it.
    pub device_kinds: Vec<DeviceKind>,
    /// The moments at which it may be shown.
    pub moments: Vec<Moment>,
    /// Conditions on features, all of which must hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The offer's value to the person or operator (arbitration weight), ≥ 0.
    pub value: f64,
    /// An operator lever on arbitration, > 0 (default 1).
    #[serde(default = "default_priority")]
    pub priority: f64,
    /// Not shown before this time.
    pub valid_from: UnixTime,
    /// Not shown from this time on.
    pub valid_until: UnixTime,
    /// Frequency caps.
    #[serde(default)]
    pub caps: Caps,
    /// Whether the offer uses personal features and so needs `personalise` consent.
    #[serde(default)]
    pub personalised: bool,
    /// A built-in propensity scorer (used when no fleet model is pushed).
    #[serde(default)]
    pub propensity: Option<crate::propensity::Logistic>,
}

fn default_priority() -> f64 {
    1.0
}

/// A condition on a feature, compiled once when the catalogue is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The feature's name (see [`crate::feature::FEATURES`]).
    pub feature: String,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub value: f64,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
}

impl Op {
    /// Whether `left op right` holds.
    #[inline]
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
        }
    }

    /// The operator's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Gt => "gt",
            Self::Ge => "ge",
        }
    }
}

pub use crate::caps::Caps;
use crate::caps::{CampaignCaps, Policy};

/// One problem in a catalogue, naming the offer (or prompt) and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What `offer` names: "offer" or "prompt".
    pub kind: &'static str,
    /// The offer's id, or its position (`#3`) where the id itself is unreadable; `None` for the
    /// catalogue as a whole.
    pub offer: Option<String>,
    /// The field, e.g. `category` or `conditions[1].feature`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.offer {
            Some(offer) => write!(f, "{} '{offer}', field '{}': {}", self.kind, self.field, self.message),
            None => write!(f, "field '{}': {}", self.field, self.message),
        }
    }
}

impl Catalogue {
    /// Reads a catalogue from a JSON value (TOML documents are converted to one first), parsing
    /// each offer on its own so that one broken offer does not hide the problems of the others.
    pub fn from_value(value: serde_json::Value) -> Result<Self, Vec<Problem>> {
        let serde_json::Value::Object(mut top) = value else {
            return Err(alloc::vec![problem(None, "catalogue", "expected a table with [[offer]] entries")]);
        };
        let mut problems = Vec::new();
        let name = match top.remove("name") {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                problems.push(problem(None, "name", &format!("expected text, found {other}")));
                String::new()
            }
        };
        let raw_offers = take_list(&mut top, "offer", &mut problems);
        let raw_prompts = take_list(&mut top, "prompt", &mut problems);
        let raw_campaigns = take_list(&mut top, "campaign", &mut problems);
        let policy = match top.remove("policy") {
            None => Policy::default(),
            Some(value) => serde_json::from_value(value).unwrap_or_else(|e| {
                problems.push(problem(None, "policy", &e.to_string()));
                Policy::default()
            }),
        };
        for key in top.keys() {
            problems.push(problem(
                None,
                key,
                "unknown field; a catalogue has only 'name', 'offer', 'prompt', 'campaign' and 'policy'",
            ));
        }
        let campaigns: Vec<Campaign> = parse_items(raw_campaigns, "campaign", &mut problems);
        let prompts: Vec<ConsentPrompt> = parse_items(raw_prompts, "prompt", &mut problems);
        let offers: Vec<Offer> = parse_items(raw_offers, "offer", &mut problems);
        let catalogue = Self { name, offers, prompts, campaigns, policy };
        problems.extend(catalogue.problems());
        if problems.is_empty() {
            Ok(catalogue)
        } else {
            Err(problems)
        }
    }

    /// Every problem with the catalogue's content, independent of the current time.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if self.offers.is_empty() {
            out.push(problem(None, "offer", "the catalogue has no offers; add at least one [[offer]]"));
        }
        if self.offers.len() > MAX_OFFERS {
            out.push(problem(
                None,
                "offer",
                &format!("{} offers is over the limit of {MAX_OFFERS}; split the catalogue", self.offers.len()),
            ));
        }
        for (i, offer) in self.offers.iter().enumerate() {
            if self.offers[..i].iter().any(|o| o.id == offer.id) {
                out.push(problem(Some(offer.id.as_str()), "id", "duplicate offer id; every offer needs its own id"));
            }
            offer.check(&mut out);
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            let mut push = |field: &str, message: String| {
                out.push(Problem { kind: "campaign", offer: Some(c.id.as_str().into()), field: field.into(), message })
            };
            if self.campaigns[..i].iter().any(|d| d.id == c.id) {
                push("id", "duplicate campaign; give each campaign one [[campaign]] entry".into());
            }
            for (field, message) in crate::caps::zero_caps(&c.caps.limits(), c.caps.per_home_per_day, "caps") {
                push(&field, message);
            }
            if !(0.0..=MAX_HOLDOUT).contains(&c.holdout) {
                push("holdout", format!("{} is outside 0..={MAX_HOLDOUT}; hold out a share such as 0.1", c.holdout));
            }
            if !self.offers.iter().any(|o| o.campaign == c.id) {
                push("id", "no offer belongs to this campaign; remove the entry or fix the name".into());
            }
            for (field, message) in journey::problems(&c.steps, &c.groups, &c.id, &self.offers) {
                push(&field, message);
            }
        }
        for (field, message) in self.policy.problems() {
            out.push(problem(None, &field, &message));
        }
        if self.prompts.len() > MAX_PROMPTS {
            out.push(problem(
                None,
                "prompt",
                &format!("{} prompts is over the limit of {MAX_PROMPTS}", self.prompts.len()),
            ));
        }
        for (i, prompt) in self.prompts.iter().enumerate() {
            if self.prompts[..i].iter().any(|p| p.id == prompt.id) {
                out.push(Problem {
                    kind: "prompt",
                    offer: Some(prompt.id.as_str().into()),
                    field: "id".into(),
                    message: "duplicate prompt id; every prompt needs its own id".into(),
                });
            }
            prompt.check(&mut out);
        }
        out
    }

    /// Problems that depend on the time: offers whose validity window has already ended.
    pub fn problems_at(&self, now: UnixTime) -> Vec<Problem> {
        self.offers
            .iter()
            .filter(|o| o.valid_until <= now)
            .map(|o| {
                problem(
                    Some(o.id.as_str()),
                    "valid_until",
                    &format!(
                        "the offer ended at {} (now is {now}); move valid_until into the future or drop the offer",
                        o.valid_until
                    ),
                )
            })
            .collect()
    }
}

/// The checks offers and prompts share: at least one device kind and one moment, and every
/// moment on one of the device kinds.
pub(crate) fn check_kinds_and_moments(kinds: &[DeviceKind], moments: &[Moment], push: &mut impl FnMut(&str, String)) {
    if kinds.is_empty() {
        push("device_kinds", "list at least one device kind: fridge, ereader or lock_screen".into());
    }
    if moments.is_empty() {
        push("moments", "list at least one moment at which it may be shown".into());
    }
    for m in moments {
        if !kinds.contains(&m.device_kind()) {
            push(
                "moments",
                format!(
                    "moment '{m}' happens on a {} but device_kinds does not include '{}'",
                    m.device_kind().label(),
                    m.device_kind()
                ),
            );
        }
    }
}

/// Takes the list under `key` (`[[key]]` in TOML), or notes a problem if it is not a list.
fn take_list(
    top: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Vec<serde_json::Value> {
    match top.remove(key) {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items,
        Some(_) => {
            problems.push(problem(None, key, &format!("expected a list ([[{key}]] in TOML)")));
            Vec::new()
        }
    }
}

/// Parses each item on its own, so one broken item does not hide the problems of the others;
/// an item that does not parse is named by its id, or by its position (`#3`).
fn parse_items<T: serde::de::DeserializeOwned>(
    raw: Vec<serde_json::Value>,
    kind: &'static str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let mut items = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let label = raw.get("id").and_then(|v| v.as_str()).map_or_else(|| format!("#{}", i + 1), ToString::to_string);
        match serde_json::from_value::<T>(raw) {
            Ok(item) => items.push(item),
            Err(e) => problems.push(Problem {
                kind,
                offer: Some(label),
                field: field_of(&e.to_string()),
                message: e.to_string(),
            }),
        }
    }
    items
}

fn problem(offer: Option<&str>, field: &str, message: &str) -> Problem {
    Problem { kind: "offer", offer: offer.map(Into::into), field: field.into(), message: message.into() }
}

/// Pulls the field name out of a serde message such as "unknown variant `x` … at `moments`";
/// serde_json reports no path, so the message itself is the guide and the field is `offer`.
fn field_of(message: &str) -> String {
    for field in [
        "device_kinds",
        "moments",
        "conditions",
        "valid_from",
        "valid_until",
        "caps",
        "campaign",
        "category",
        "priority",
        "value",
        "title",
        "question",
        "body",
        "image",
        "personalised",
    ] {
        if message.contains(&format!("`{field}`")) {
            return field.into();
        }
    }
    if message.contains("offer id") {
        return "id".into();
    }
    if message.contains("campaign id") {
        return "campaign".into();
    }
    if message.contains("time ") {
        return "valid_from/valid_until".into();
    }
    "offer".into()
}

impl Offer {
    /// Whether showing this offer needs `personalise` consent.
    pub fn needs(&self) -> Option<Purpose> {
        self.personalised.then_some(Purpose::Personalise)
    }

    fn check(&self, out: &mut Vec<Problem>) {
        let id = Some(self.id.as_str());
        let mut push = |field: &str, message: String| out.push(problem(id, field, &message));
        let len = |s: &str| s.chars().count();
        if self.title.trim().is_empty() || len(&self.title) > MAX_TITLE {
            push("title", format!("the title must have 1 to {MAX_TITLE} characters, found {}", len(&self.title)));
        }
        let question = self.question.trim_end();
        if !question.ends_with('?') {
            push(
                "question",
                format!("{:?} is a statement; put the offer as a question ending in '?', e.g. \"Could this be something for you?\"", self.question),
            );
        }
        if len(&self.question) > MAX_QUESTION {
            push(
                "question",
                format!("the question has {} characters; keep it within {MAX_QUESTION}", len(&self.question)),
            );
        }
        if len(&self.body) > MAX_BODY {
            push("body", format!("the body has {} characters; keep it within {MAX_BODY}", len(&self.body)));
        }
        if let Some(image) = &self.image {
            if image.is_empty() || len(image) > MAX_IMAGE_REF {
                push("image", format!("the image reference must have 1 to {MAX_IMAGE_REF} characters"));
            }
        }
        if let Err(e) = Category::try_new(&self.category) {
            push("category", e.to_string());
        }
        check_kinds_and_moments(&self.device_kinds, &self.moments, &mut push);
        if self.conditions.len() > MAX_CONDITIONS {
            push("conditions", format!("{} conditions is over the limit of {MAX_CONDITIONS}", self.conditions.len()));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let field = format!("conditions[{i}].feature");
            match FeatureName::try_new(&c.feature) {
                Err(e) => push(&field, e.to_string()),
                Ok(f) => {
                    if let Some(kind) = f.spec().kind {
                        if !self.device_kinds.contains(&kind) {
                            push(
                                &field,
                                format!(
                                    "feature '{f}' comes from a {} but device_kinds does not include '{kind}'",
                                    kind.label()
                                ),
                            );
                        }
                    }
                    if f.spec().purpose == Some(Purpose::Personalise) && !self.personalised {
                        push(&field, format!("feature '{f}' is personal; set personalised = true so the offer is only used with 'personalise' consent"));
                    }
                }
            }
            if !c.value.is_finite() {
                push(&format!("conditions[{i}].value"), format!("{} is not a finite number", c.value));
            }
        }
        if !(self.value.is_finite() && self.value >= 0.0) {
            push("value", format!("{} must be a finite number ≥ 0", self.value));
        }
        if !(self.priority.is_finite() && self.priority > 0.0) {
            push("priority", format!("{} must be a finite number > 0 (1 is neutral)", self.priority));
        }
        if self.valid_until <= self.valid_from {
            push(
                "valid_until",
                format!(
                    "{} is not after valid_from {}; the offer could never be shown",
                    self.valid_until, self.valid_from
                ),
            );
        }
        for (field, message) in
            crate::caps::zero_caps(&self.caps.limits().collect::<Vec<_>>(), self.caps.per_home_per_day, "caps")
        {
            push(&field, message);
        }
        if let Some(scorer) = &self.propensity {
            for (field, message) in scorer.problems(self.personalised) {
                push(&field, message);
            }
        }
    }
}
