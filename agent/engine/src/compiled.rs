//! A catalogue compiled once at load: categories and feature names resolved, and the consent
//! each offer needs worked out, so deciding does no string lookups.

use ledtrad_protocol::caps::{Policy, Window};
use ledtrad_protocol::catalogue::{Offer, Op};
use ledtrad_protocol::envelope::SignedCatalogue;
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::taxonomy::Category;
use ledtrad_protocol::{Purpose, UnixTime};

/// A condition with its feature resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompiledCondition {
    /// The feature.
    pub feature: FeatureName,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
}

/// An offer ready for deciding.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledOffer {
    /// The offer as authored.
    pub offer: Offer,
    /// Its category.
    pub category: Category,
    /// Its conditions.
    pub conditions: Vec<CompiledCondition>,
    /// The consent it needs, if any.
    pub needs: Option<Purpose>,
    /// Its built-in propensity scorer, with features resolved.
    pub logistic: Option<CompiledLogistic>,
}

/// A built-in logistic scorer with its features resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledLogistic {
    /// The intercept.
    pub bias: f64,
    /// Feature weights.
    pub weights: Vec<(FeatureName, f64)>,
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
    /// Its consent prompts.
    pub prompts: Vec<ledtrad_protocol::prompt::ConsentPrompt>,
    /// The holdout share of each campaign that has one.
    pub holdouts: std::collections::HashMap<ledtrad_protocol::CampaignId, f64>,
    /// Each campaign's caps, where it has any.
    pub campaign_caps: std::collections::HashMap<ledtrad_protocol::CampaignId, Vec<(Window, u32)>>,
    /// Device-wide rules.
    pub policy: Policy,
}

impl AppliedCatalogue {
    /// Compiles a verified catalogue. Offers that fail to resolve are skipped; a verified
    /// catalogue has passed [`ledtrad_protocol::catalogue::Catalogue::problems`], so none do.
    pub fn compile(signed: SignedCatalogue) -> Self {
        let prompts = signed.catalogue.prompts;
        let policy = signed.catalogue.policy;
        let campaign_caps = signed
            .catalogue
            .campaigns
            .iter()
            .map(|c| (c.id.clone(), c.caps.limits()))
            .filter(|(_, limits)| !limits.is_empty())
            .collect();
        let holdouts =
            signed.catalogue.campaigns.iter().filter(|c| c.holdout > 0.0).map(|c| (c.id.clone(), c.holdout)).collect();
        let offers = signed
            .catalogue
            .offers
            .into_iter()
            .filter_map(|offer| {
                let category = Category::try_new(&offer.category).ok()?;
                let conditions = offer
                    .conditions
                    .iter()
                    .map(|c| {
                        FeatureName::try_new(&c.feature).ok().map(|feature| CompiledCondition {
                            feature,
                            op: c.op,
                            threshold: c.value,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                let personal = conditions.iter().any(|c| c.feature.spec().purpose.is_some());
                let needs = (offer.personalised || personal).then_some(Purpose::Personalise);
                let logistic = match &offer.propensity {
                    None => None,
                    Some(l) => Some(CompiledLogistic {
                        bias: l.bias,
                        weights: l
                            .weights
                            .iter()
                            .map(|w| FeatureName::try_new(&w.feature).ok().map(|f| (f, w.weight)))
                            .collect::<Option<Vec<_>>>()?,
                    }),
                };
                Some(CompiledOffer { offer, category, conditions, needs, logistic })
            })
            .collect();
        Self {
            version: signed.version,
            issued_at: signed.issued_at,
            expires_at: signed.expires_at,
            offers,
            prompts,
            holdouts,
            campaign_caps,
            policy,
        }
    }
}
