//! The built-in propensity scorer an offer may carry: a logistic model over features, with
//! weights set by the operator in the catalogue (used when no fleet model is pushed).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::consent::Purpose;
use crate::feature::FeatureName;

/// `propensity = 1 / (1 + e^-(bias + Σ weight × feature))`, over the features consent allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logistic {
    /// The intercept.
    #[serde(default)]
    pub bias: f64,
    /// Weights per feature.
    #[serde(default)]
    pub weights: Vec<Weight>,
}

/// One feature's weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    /// The feature's name.
    pub feature: String,
    /// Its weight.
    pub weight: f64,
}

/// The most weights one offer's scorer may have.
pub const MAX_WEIGHTS: usize = 32;

impl Logistic {
    /// Problems with the scorer, as (field, message); `personalised` says whether the offer may
    /// use personal features.
    pub fn problems(&self, personalised: bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.bias.is_finite() {
            out.push(("propensity.bias".into(), format!("{} is not a finite number", self.bias)));
        }
        if self.weights.len() > MAX_WEIGHTS {
            out.push((
                "propensity.weights".into(),
                format!("{} weights is over the limit of {MAX_WEIGHTS}", self.weights.len()),
            ));
        }
        for (i, w) in self.weights.iter().enumerate() {
            let field = format!("propensity.weights[{i}]");
            match FeatureName::try_new(&w.feature) {
                Err(e) => out.push((format!("{field}.feature"), e.to_string())),
                Ok(f) if f.spec().purpose == Some(Purpose::Personalise) && !personalised => out.push((
                    format!("{field}.feature"),
                    format!("feature '{f}' is personal; set personalised = true so the offer is only scored with 'personalise' consent"),
                )),
                Ok(_) => {}
            }
            if !w.weight.is_finite() {
                out.push((format!("{field}.weight"), format!("{} is not a finite number", w.weight)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_need_known_features_and_consent_for_personal_ones() {
        let scorer = Logistic {
            bias: 0.0,
            weights: alloc::vec![
                Weight { feature: "fridge.milk.level".into(), weight: -2.0 },
                Weight { feature: "fridge.mood".into(), weight: 1.0 },
                Weight { feature: "context.hour".into(), weight: f64::NAN },
            ],
        };
        let problems = scorer.problems(false);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].1.contains("set personalised = true"));
        assert!(problems[1].1.contains("unknown feature \"fridge.mood\""));
        assert!(problems[2].0.ends_with(".weight"));
        assert_eq!(scorer.problems(true).len(), 2);
    }
}
