//! A catalogue compiled once at load: categories, feature names and journeys resolved, and the
//! consent each offer needs worked out, so deciding does no string lookups. The offer service's
//! candidates are compiled the same way, under the rules of the catalogue in force.

use ledtrad_protocol::caps::{HomeCap, Policy, Window};
use ledtrad_protocol::catalogue::{Campaign, Catalogue, Offer, Op};
use ledtrad_protocol::envelope::SignedCatalogue;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::journey::Trigger;
use ledtrad_protocol::taxonomy::{Category, CATEGORIES};
use ledtrad_protocol::{CampaignId, GroupId, OfferId, Purpose, StepId, UnixTime};

use crate::context::{short_time, Context, FeaturesRead};
use crate::maps::FastMap;

/// A condition with its feature resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompiledCondition {
    /// The feature.
    pub feature: FeatureName,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
    /// The feature's purpose and index, read from its spec once, as every decision checks them.
    purpose: Option<Purpose>,
    index: u8,
}

impl CompiledCondition {
    /// Resolves a condition's feature; `None` if there is no such feature.
    pub fn compile(c: &ledtrad_protocol::catalogue::Condition) -> Option<Self> {
        let feature = FeatureName::try_new(&c.feature).ok()?;
        let index = u8::try_from(feature.index()).ok()?;
        Some(Self { feature, op: c.op, threshold: c.value, purpose: feature.spec().purpose, index })
    }

    /// Checks the condition at a decision: reads its feature only if the consent allows it, and
    /// records the feature read in the decision's trace.
    pub(crate) fn check(&self, ctx: &Context<'_>, used: &mut FeaturesRead) -> Result<(), ConditionFailed> {
        if let Some(purpose) = self.purpose {
            if !ctx.consent.allows(purpose) {
                return Err(ConditionFailed::NeedsConsent(purpose));
            }
        }
        let index = usize::from(self.index);
        used.note_at(index, self.feature);
        let value = ctx.values.get(index).copied().flatten().ok_or(ConditionFailed::NoData)?;
        if self.op.holds(value, self.threshold) {
            Ok(())
        } else {
            Err(ConditionFailed::NotMet)
        }
    }
}

/// Why a condition did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionFailed {
    /// Its feature needs a purpose the consent does not allow; it was not read.
    NeedsConsent(Purpose),
    /// Its feature has no value.
    NoData,
    /// The value does not meet it.
    NotMet,
}

/// What the eligibility stages read of an offer, kept apart in one array
/// ([`AppliedCatalogue::hot`]) with its conditions in another, so a decision's pass over a
/// large catalogue reads a few dense arrays in order instead of each offer's scattered parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotOffer {
    /// The device kinds that may show it, one bit each ([`kind_bit`]).
    pub kinds: u8,
    /// The moments it is for, one bit each ([`moment_bit`]).
    pub moments: u8,
    /// Whether its campaign is a journey, which decides when it may be shown.
    pub journey: bool,
    /// How often it may be shown in a home per day ([`CompiledOffer::home_cap`]).
    pub home_cap: Option<HomeCap>,
    /// The consent it needs, if any.
    pub needs: Option<Purpose>,
    /// Which of [`CAP_WINDOWS`] it has a cap for, one bit each.
    pub capped: u8,
    /// Its caps, by [`CAP_WINDOWS`] position.
    pub caps: [u32; 5],
    /// Its campaign's index in [`AppliedCatalogue::campaign_ids`].
    pub campaign: u32,
    /// Its value × priority, what its score is at most before propensity and penalty.
    pub worth: f64,
    /// How many of its conditions read a personal feature ([`CompiledOffer::personal_conditions`]).
    pub personal_conditions: u16,
    /// How many of its built-in scorer's weights do ([`CompiledOffer::personal_weights`]).
    pub personal_weights: u16,
    /// Where its conditions start in [`AppliedCatalogue::conditions`], and how many.
    pub conditions: (u32, u32),
    /// Not shown before this time, in seconds (saturating in 2106, which keeps the order).
    pub valid_from: u32,
    /// Not shown from this time on, likewise.
    pub valid_until: u32,
}

/// The windows an offer's own caps count over, in the order they are checked (the order of
/// [`ledtrad_protocol::caps::Caps::limits`]).
pub const CAP_WINDOWS: [Window; 5] = [Window::Day, Window::Hour, Window::Week, Window::Month, Window::Total];

impl HotOffer {
    /// What the stages read of `offer`, its `own` conditions put at the end of `conditions`.
    fn of(offer: &CompiledOffer, own: &[CompiledCondition], conditions: &mut Vec<CompiledCondition>) -> Self {
        let (mut capped, mut caps) = (0, [0; 5]);
        for (window, limit) in offer.offer.caps.limits() {
            let k = CAP_WINDOWS.iter().position(|w| *w == window).unwrap_or(0);
            capped |= 1 << k;
            caps[k] = limit;
        }
        let start = u32::try_from(conditions.len()).unwrap_or(u32::MAX);
        conditions.extend_from_slice(own);
        let o = &offer.offer;
        Self {
            kinds: o.device_kinds.iter().fold(0, |bits, k| bits | kind_bit(*k)),
            moments: o.moments.iter().fold(0, |bits, m| bits | moment_bit(*m)),
            journey: offer.journey,
            home_cap: offer.home_cap,
            needs: offer.needs,
            capped,
            caps,
            campaign: u32::try_from(offer.campaign).unwrap_or(u32::MAX),
            worth: o.value * o.priority,
            personal_conditions: u16::try_from(offer.personal_conditions).unwrap_or(u16::MAX),
            personal_weights: u16::try_from(offer.personal_weights).unwrap_or(u16::MAX),
            conditions: (start, u32::try_from(own.len()).unwrap_or(0)),
            valid_from: short_time(o.valid_from),
            valid_until: short_time(o.valid_until),
        }
    }

    /// Whether one of its conditions reads a personal feature.
    pub fn personal(&self) -> bool {
        self.personal_conditions > 0
    }

    /// Its caps, window and limit, in the order they are checked.
    pub fn caps(&self) -> impl Iterator<Item = (Window, u32)> + '_ {
        CAP_WINDOWS
            .iter()
            .zip(self.caps)
            .enumerate()
            .filter(|(k, _)| self.capped & 1 << k != 0)
            .map(|(_, (w, n))| (*w, n))
    }
}

/// What a fleet's model may read of an offer (the `offer.*` inputs of its manifest), kept
/// apart in one array ([`AppliedCatalogue::model_inputs`]) so a decision's model rows read 16
/// bytes an offer instead of each offer's scattered parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OfferInputs {
    /// Its value, as the model reads it.
    pub value: f32,
    /// Its priority lever, likewise.
    pub priority: f32,
    /// Its category's bit ([`category_bit`]).
    pub category: u32,
    /// Whether it needs `personalise`.
    pub personalised: bool,
}

impl OfferInputs {
    fn of(offer: &CompiledOffer) -> Self {
        #[allow(clippy::cast_possible_truncation)]
        Self {
            value: offer.offer.value as f32,
            priority: offer.offer.priority as f32,
            category: category_bit(offer.category),
            personalised: offer.needs.is_some(),
        }
    }
}

/// A category's bit in [`OfferInputs::category`], by its place in the taxonomy.
pub fn category_bit(category: Category) -> u32 {
    1 << CATEGORIES.iter().position(|c| c.path == category.path()).unwrap_or(0)
}

/// The bits of every category that is `branch` or under it (`food` covers `food.dairy`).
pub fn branch_bits(branch: &str) -> u32 {
    CATEGORIES
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path.strip_prefix(branch).is_some_and(|r| r.is_empty() || r.starts_with('.')))
        .fold(0, |bits, (k, _)| bits | 1 << k)
}

// Every category has a bit of its own in a `u32`.
const _: () = assert!(CATEGORIES.len() <= 32);

/// A device kind's bit in [`HotOffer::kinds`].
pub fn kind_bit(kind: ledtrad_protocol::DeviceKind) -> u8 {
    1 << ledtrad_protocol::DeviceKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// A moment's bit in [`HotOffer::moments`].
pub fn moment_bit(moment: ledtrad_protocol::Moment) -> u8 {
    1 << ledtrad_protocol::Moment::ALL.iter().position(|m| *m == moment).unwrap_or(0)
}

/// An offer ready for deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledOffer {
    /// The offer as authored, without its built-in scorer (kept compiled in `logistic`).
    pub offer: Offer,
    /// Its category.
    pub category: Category,
    /// The consent it needs, if any.
    pub needs: Option<Purpose>,
    /// Its built-in propensity scorer, with features resolved.
    pub logistic: Option<CompiledLogistic>,
    /// Its campaign's index in [`AppliedCatalogue::campaign_ids`].
    pub campaign: usize,
    /// Whether its campaign is a journey, which decides when it may be shown.
    pub journey: bool,
    /// How many of its conditions read a personal feature (each costs an intrusiveness penalty).
    pub personal_conditions: usize,
    /// How many of its built-in scorer's weights do.
    pub personal_weights: usize,
    /// How often it may be shown in a home per day, over all the home's screens.
    pub home_cap: Option<HomeCap>,
}

/// A built-in logistic scorer with its features resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledLogistic {
    /// The intercept.
    pub bias: f64,
    /// Feature weights.
    pub weights: Vec<CompiledWeight>,
    /// The features the weights read, one bit each by [`FeatureName::index`].
    pub reads: u64,
}

/// One weight of a built-in scorer, with its feature's index and purpose read once (16 bytes,
/// as a feature name and a weight would take).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompiledWeight {
    /// The weight.
    pub weight: f64,
    /// The feature's index in [`ledtrad_protocol::feature::FEATURES`].
    pub index: u8,
    /// The purpose reading the feature needs, if any.
    pub purpose: Option<Purpose>,
}

impl CompiledWeight {
    fn new(feature: FeatureName, weight: f64) -> Option<Self> {
        Some(Self { weight, index: u8::try_from(feature.index()).ok()?, purpose: feature.spec().purpose })
    }

    /// The feature it weighs.
    pub fn feature(self) -> Option<FeatureName> {
        FeatureName::at(usize::from(self.index))
    }
}

/// The catalogue in force.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedCatalogue {
    /// Its version.
    pub version: u64,
    /// When it was signed.
    pub issued_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Its offers.
    pub offers: Vec<CompiledOffer>,
    /// What the eligibility stages read of each offer, by position.
    pub hot: Vec<HotOffer>,
    /// Every offer's conditions, one after another ([`HotOffer::conditions`]).
    pub conditions: Vec<CompiledCondition>,
    /// What a fleet's model may read of each offer, by position.
    pub model_inputs: Vec<OfferInputs>,
    /// Its consent prompts.
    pub prompts: Vec<ledtrad_protocol::prompt::ConsentPrompt>,
    /// The holdout share of each campaign that has one.
    pub holdouts: FastMap<CampaignId, f64>,
    /// Each campaign's caps, where it has any.
    pub campaign_caps: FastMap<CampaignId, Vec<(Window, u32)>>,
    /// Each campaign's cap per home per local day, where it has one.
    pub campaign_home_caps: FastMap<CampaignId, u32>,
    /// Device-wide rules.
    pub policy: Policy,
    /// Every campaign with an offer, in order of first appearance; offers refer to them by index
    /// so a decision works out each campaign's rules once.
    pub campaign_ids: Vec<CampaignId>,
    /// The campaigns that are journeys.
    pub journeys: Vec<CompiledJourney>,
    /// A hash of the catalogue's content ([`content_hash`]), to tell the same version
    /// republished (a staged rollout widened or completed) from different offers under a
    /// version already used.
    pub content: u64,
}

/// A hash of a catalogue's canonical encoding (not a security check: the signature is that).
pub fn content_hash(catalogue: &ledtrad_protocol::catalogue::Catalogue) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(ledtrad_protocol::codec::to_postcard(catalogue))
}

impl AppliedCatalogue {
    /// The conditions of the offer at position `i`.
    pub fn conditions_of(&self, i: usize) -> &[CompiledCondition] {
        let (start, count) = self.hot.get(i).map_or((0, 0), |h| (h.conditions.0 as usize, h.conditions.1 as usize));
        self.conditions.get(start..start + count).unwrap_or(&[])
    }

    /// Compiles a verified catalogue. Offers that fail to resolve are skipped; a verified
    /// catalogue has passed [`ledtrad_protocol::catalogue::Catalogue::problems`], so none do.
    pub fn compile(signed: SignedCatalogue) -> Self {
        Self::build(signed.version, signed.issued_at, signed.expires_at, signed.catalogue)
    }

    /// The offer service's candidates (each already through the catalogue checks), compiled
    /// to be decided on under the rules of `in_force`: its version and expiry, its device-wide
    /// rules and its campaigns' holdouts and caps. They bring no prompts and no journeys.
    pub fn from_offer_service(in_force: &Self, offers: Vec<Offer>) -> Self {
        let catalogue = Catalogue { offers, ..Catalogue::default() };
        let mut remote = Self::build(in_force.version, in_force.issued_at, in_force.expires_at, catalogue);
        remote.policy = in_force.policy.clone();
        remote.holdouts = in_force.holdouts.clone();
        remote.campaign_caps = in_force.campaign_caps.clone();
        remote.campaign_home_caps = in_force.campaign_home_caps.clone();
        remote
    }

    fn build(version: u64, issued_at: UnixTime, expires_at: UnixTime, catalogue: Catalogue) -> Self {
        let content = content_hash(&catalogue);
        let prompts = catalogue.prompts;
        let policy = catalogue.policy;
        let campaign_caps: FastMap<_, _> = catalogue
            .campaigns
            .iter()
            .map(|c| (c.id.clone(), c.caps.limits()))
            .filter(|(_, limits)| !limits.is_empty())
            .collect();
        let campaign_home_caps: FastMap<_, _> =
            catalogue.campaigns.iter().filter_map(|c| Some((c.id.clone(), c.caps.per_home_per_day?))).collect();
        let holdouts: FastMap<_, _> =
            catalogue.campaigns.iter().filter(|c| c.holdout > 0.0).map(|c| (c.id.clone(), c.holdout)).collect();
        let (mut offers, own): (Vec<CompiledOffer>, Vec<Vec<CompiledCondition>>) =
            catalogue.offers.into_iter().filter_map(CompiledOffer::compile).unzip();
        let mut campaign_ids: Vec<CampaignId> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for offer in &mut offers {
            offer.campaign = *index.entry(offer.offer.campaign.clone()).or_insert_with(|| {
                campaign_ids.push(offer.offer.campaign.clone());
                campaign_ids.len() - 1
            });
            // One shared text per campaign, so the ids the history keys its counts by (taken
            // from shown offers) compare by pointer with the ones decisions look up.
            offer.offer.campaign = campaign_ids[offer.campaign].clone();
        }
        let shared = |id: &CampaignId| campaign_ids.iter().find(|c| *c == id).unwrap_or(id).clone();
        let campaign_caps = campaign_caps.into_iter().map(|(id, caps)| (shared(&id), caps)).collect();
        let campaign_home_caps = campaign_home_caps.into_iter().map(|(id, n)| (shared(&id), n)).collect();
        let holdouts = holdouts.into_iter().map(|(id, share)| (shared(&id), share)).collect();
        let journeys: Vec<CompiledJourney> =
            catalogue.campaigns.iter().filter_map(|c| CompiledJourney::compile(c, &offers)).collect();
        for offer in &mut offers {
            offer.journey = journeys.iter().any(|j| j.campaign == offer.offer.campaign);
        }
        let mut conditions = Vec::new();
        let hot = offers.iter().zip(&own).map(|(o, own)| HotOffer::of(o, own, &mut conditions)).collect();
        let model_inputs = offers.iter().map(OfferInputs::of).collect();
        Self {
            version,
            issued_at,
            expires_at,
            offers,
            hot,
            conditions,
            model_inputs,
            prompts,
            holdouts,
            campaign_caps,
            campaign_home_caps,
            policy,
            campaign_ids,
            journeys,
            content,
        }
    }
}

impl CompiledOffer {
    /// Resolves an offer's category, conditions and built-in scorer; `None` if one does not
    /// resolve. Its campaign index and journey flag are set by the catalogue, which keeps the
    /// conditions with every other offer's ([`AppliedCatalogue::conditions`]).
    fn compile(mut offer: Offer) -> Option<(Self, Vec<CompiledCondition>)> {
        let category = Category::try_new(&offer.category).ok()?;
        let conditions = offer.conditions.iter().map(CompiledCondition::compile).collect::<Option<Vec<_>>>()?;
        let personal = conditions.iter().any(|c| c.feature.spec().purpose.is_some());
        let needs = (offer.personalised || personal).then_some(Purpose::Personalise);
        // The scorer is kept compiled only: its weights named by text are a second copy that
        // nothing reads after this (a fifth of a large catalogue's memory on a device).
        let logistic = match &offer.propensity.take() {
            None => None,
            Some(l) => {
                let weights = l
                    .weights
                    .iter()
                    .map(|w| FeatureName::try_new(&w.feature).ok().and_then(|f| CompiledWeight::new(f, w.weight)))
                    .collect::<Option<Vec<_>>>()?;
                let reads = weights.iter().fold(0, |bits, w| bits | 1u64 << w.index);
                Some(CompiledLogistic { bias: l.bias, weights, reads })
            }
        };
        let personal_conditions = conditions.iter().filter(|c| c.feature.spec().purpose.is_some()).count();
        let home_cap = offer.caps.home(needs.is_some());
        let personal_weights =
            logistic.as_ref().map_or(0, |l| l.weights.iter().filter(|w| w.purpose.is_some()).count());
        let compiled = Self {
            offer,
            category,
            needs,
            logistic,
            campaign: 0,
            journey: false,
            personal_conditions,
            personal_weights,
            home_cap,
        };
        Some((compiled, conditions))
    }
}

/// A campaign's journey with offers and features resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledJourney {
    /// The campaign.
    pub campaign: CampaignId,
    /// Its steps, each following only steps before it.
    pub steps: Vec<CompiledStep>,
    /// Its groups.
    pub groups: Vec<CompiledGroup>,
}

/// A step with its offers resolved to catalogue positions.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledStep {
    /// The step.
    pub id: StepId,
    /// Its own offer first, then the offers shown instead, by catalogue position.
    pub offers: Vec<usize>,
    /// For each offer shown instead (`offers[1..]`), its group's index in
    /// [`CompiledJourney::groups`].
    pub instead: Vec<usize>,
    /// The earlier step (by index) and what it waits for there.
    pub after: Option<(usize, Trigger)>,
    /// The wait after the trigger.
    pub delay_secs: u64,
}

/// A group with its conditions resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledGroup {
    /// The group.
    pub id: GroupId,
    /// All must hold.
    pub conditions: Vec<CompiledCondition>,
}

impl CompiledJourney {
    /// Resolves a checked campaign's journey against the compiled offers; `None` for a campaign
    /// without steps, or one that names an offer, group, step or feature that is not there
    /// (a verified catalogue has passed its checks, so none does).
    pub fn compile(campaign: &Campaign, offers: &[CompiledOffer]) -> Option<Self> {
        if campaign.steps.is_empty() {
            return None;
        }
        let position = |id: &OfferId| offers.iter().position(|o| &o.offer.id == id);
        let groups = campaign
            .groups
            .iter()
            .map(|g| {
                Some(CompiledGroup {
                    id: g.id.clone(),
                    conditions: g.conditions.iter().map(CompiledCondition::compile).collect::<Option<Vec<_>>>()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mut steps: Vec<CompiledStep> = Vec::with_capacity(campaign.steps.len());
        for step in &campaign.steps {
            let after = match (&step.after, step.when) {
                (None, _) => None,
                (Some(after), Some(when)) => Some((steps.iter().position(|s| &s.id == after)?, when)),
                (Some(_), None) => return None,
            };
            steps.push(CompiledStep {
                id: step.id.clone(),
                offers: step.offers().map(position).collect::<Option<Vec<_>>>()?,
                instead: step
                    .instead
                    .iter()
                    .map(|i| campaign.groups.iter().position(|g| g.id == i.group))
                    .collect::<Option<Vec<_>>>()?,
                after,
                delay_secs: step.delay_secs(),
            });
        }
        Some(Self { campaign: campaign.id.clone(), steps, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_stages_read_of_an_offer_fits_in_72_bytes() {
        // A decision reads this entry of every offer; a device keeps one per offer.
        assert!(std::mem::size_of::<HotOffer>() <= 72, "{}", std::mem::size_of::<HotOffer>());
    }

    #[test]
    fn a_branch_covers_its_categories_and_no_others() {
        let under = |branch: &str, path: &str| path == branch || path.starts_with(&format!("{branch}."));
        for branch in ["food", "books", "home", "food.dairy", "foo", "food.dai", "services.energy", ""] {
            let bits = branch_bits(branch);
            for info in CATEGORIES {
                let category = Category::try_new(info.path).unwrap();
                assert_eq!(
                    bits & category_bit(category) != 0,
                    under(branch, info.path),
                    "branch {branch:?}, category {}",
                    info.path
                );
            }
        }
        // Each category has a bit of its own.
        let all = CATEGORIES.iter().fold(0u32, |bits, c| bits | category_bit(Category::try_new(c.path).unwrap()));
        assert_eq!(all.count_ones() as usize, CATEGORIES.len());
    }
}
