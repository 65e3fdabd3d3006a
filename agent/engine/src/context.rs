//! What one decision reads of its moment, as plain values: the occasion (device kind, moment,
//! time), the device's local day and hour, the consent, every feature's value, the policy and
//! the caller's draw. A leaf: it uses no other module of the engine.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::FeatureUse;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::{DeviceId, DeviceKind, Moment, UnixTime};

/// How offers are put, explained and chosen.
///
/// [`Policy::Clues`] is ledtrad: the offer as a question, a coarse "why", camouflage and an
/// intrusiveness penalty. [`Policy::Blunt`] is what ledtrad sets out not to be, kept so the
/// simulator can measure one against the other on the same households (`ledtrad-sim compare`);
/// the agent's configuration file has no way to choose it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Questions, coarse whys, camouflage, and a penalty on every personal feature behind an offer.
    #[default]
    Clues,
    /// Statements (the offer's title), precise whys (the reading itself), no camouflage and no
    /// intrusiveness penalty.
    Blunt,
}

impl Policy {
    /// Both policies, ledtrad's first.
    pub const ALL: [Self; 2] = [Self::Clues, Self::Blunt];

    /// Its name: `clues` or `blunt`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Clues => "clues",
            Self::Blunt => "blunt",
        }
    }

    /// Whether the intrusiveness penalty and camouflage apply.
    pub const fn is_clues(self) -> bool {
        matches!(self, Self::Clues)
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown policy {s:?}; use \"clues\" (ledtrad's) or \"blunt\""))
    }
}

/// A time as the engine keeps it where it keeps many (kept verdicts, offers' validity): Unix
/// seconds in 32 bits, good until 2106 (later ones saturate, which keeps their order), as the
/// history keeps impression times.
pub(crate) fn short_time(t: UnixTime) -> u32 {
    u32::try_from(t.secs()).unwrap_or(u32::MAX)
}

/// Randomness for one decision, drawn by the caller (the engine has no random source).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Uniform in `[0, 1)`: below the camouflage share, the shown offer is drawn from the
    /// broadly eligible offers.
    pub camouflage: f64,
    /// Picks which broadly eligible offer.
    pub pick: u64,
    /// Seeds Thompson sampling of the offers' posteriors; `None` uses their means.
    pub explore: Option<u64>,
}

impl Draw {
    /// A draw that never camouflages nor explores (for callers without randomness, and tests).
    pub const NONE: Self = Self { camouflage: 1.0, pick: 0, explore: None };
}

/// Who a decision is for (DESIGN §8 step 1): the device, its kind and local time, the
/// household's consent, and how offers are put to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity<'a> {
    /// The device's pseudonym (for the holdout hash).
    pub device: &'a DeviceId,
    pub kind: DeviceKind,
    pub consent: ConsentState,
    pub policy: Policy,
    pub camouflage_share: f64,
    /// The device's local day, counted from the epoch.
    pub day: u64,
    /// When that day began.
    pub day_start: UnixTime,
    /// The device's local hour.
    pub hour: u64,
}

/// The reason for the visit (DESIGN §8 step 5): which device kind, at which moment, when. All
/// the first eligibility stages read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Occasion {
    pub kind: DeviceKind,
    pub moment: Moment,
    pub now: UnixTime,
}

/// Everything a decision reads of its moment, borrowed for its duration.
pub(crate) struct Context<'a> {
    pub kind: DeviceKind,
    pub moment: Moment,
    pub now: UnixTime,
    /// When the device's local day began.
    pub day_start: UnixTime,
    pub consent: ConsentState,
    /// Every feature's value at `now`, by [`FeatureName::index`], worked out once per decision.
    pub values: &'a [Option<f64>],
    pub camouflage_share: f64,
    pub policy: Policy,
    pub draw: Draw,
    /// Whether the posteriors learned from the household's answers are withheld (not used).
    /// Set, with or without the personal features' values withheld from `values`, when a
    /// decision is made again to see whether personal data changed what it shows.
    pub answers_withheld: bool,
}

impl<'a> Context<'a> {
    /// The context of a decision for `who` at `occasion`, with every feature's `values`.
    pub fn new(who: &Identity<'a>, occasion: Occasion, values: &'a [Option<f64>], draw: Draw) -> Self {
        Self {
            kind: occasion.kind,
            moment: occasion.moment,
            now: occasion.now,
            day_start: who.day_start,
            consent: who.consent,
            values,
            camouflage_share: who.camouflage_share,
            policy: who.policy,
            draw,
            answers_withheld: false,
        }
    }

    /// The decision's occasion.
    pub fn occasion(&self) -> Occasion {
        Occasion { kind: self.kind, moment: self.moment, now: self.now }
    }

    /// A feature's value at this decision.
    pub fn value(&self, feature: FeatureName) -> Option<f64> {
        self.values.get(feature.index()).copied().flatten()
    }
}

/// The features a decision read, each listed once in the order first read, with the consent
/// that allowed it; a bit per feature makes noting one a constant-time step.
#[derive(Debug, Default)]
pub(crate) struct FeaturesRead {
    seen: u64,
    list: Vec<FeatureUse>,
}

// One bit per feature.
const _: () = assert!(ledtrad_protocol::feature::FEATURES.len() <= 64);

impl FeaturesRead {
    /// Notes that `feature` was read.
    pub fn note(&mut self, feature: FeatureName) {
        self.note_at(feature.index(), feature);
    }

    /// Notes that `feature`, at `index` ([`FeatureName::index`]), was read.
    #[inline]
    pub fn note_at(&mut self, index: usize, feature: FeatureName) {
        let bit = 1u64 << index;
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.list.push(FeatureUse { feature, allowed_by: feature.spec().purpose });
        }
    }

    /// Whether every feature in `bits` (one bit each by [`FeatureName::index`]) is noted.
    pub fn has_all(&self, bits: u64) -> bool {
        self.seen & bits == bits
    }

    /// The features read, in the order first read.
    pub fn into_list(self) -> Vec<FeatureUse> {
        self.list
    }
}
