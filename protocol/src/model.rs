//! The fleet's scoring model (DESIGN §5, §8 step 4): a TensorFlow Lite file with a manifest
//! that says how a device builds the model's input row for each candidate offer, signed by an
//! operator and pushed retained on `ledtrad/v1/fleet/{fleet}/model`.
//!
//! The model maps one row of `f32` inputs per candidate to one propensity in `[0, 1]`. The
//! manifest names each input, in the order of the model's input tensor: a feature (read only
//! where consent allows it, else its `missing` value), or something about the offer or the
//! moment. Nothing in a row is sent anywhere; the model runs on the device.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::Moment;
use crate::feature::FeatureName;
use crate::id::{FleetId, KeyId};
use crate::time::UnixTime;

/// The most inputs a model may take.
pub const MAX_MODEL_INPUTS: usize = 64;

/// The largest model envelope an agent accepts, in bytes.
pub const MAX_MODEL_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Prepended to the signed bytes of a model, so a model signature can never pass for a
/// catalogue signature made with the same key, nor the other way round.
pub const MODEL_SIGNING_CONTEXT: &[u8] = b"ledtrad/v1/model\0";

/// How a device builds a model's input rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// A name for people, e.g. `propensity-mlp`.
    #[serde(default)]
    pub name: String,
    /// The inputs, in the order of the model's input tensor; written `[[input]]` in TOML.
    #[serde(rename = "input", default)]
    pub inputs: Vec<ModelInput>,
}

/// One input of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInput {
    /// What feeds it; see [`InputSource`] for the names.
    pub name: String,
    /// The value fed when a feature has no value or consent does not allow reading it.
    #[serde(default)]
    pub missing: f64,
}

/// What feeds one model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSource {
    /// A feature's current value (e.g. `fridge.butter.level`).
    Feature(FeatureName),
    /// `offer.value`: the offer's value.
    OfferValue,
    /// `offer.priority`: the operator's priority lever.
    OfferPriority,
    /// `offer.personalised`: 1 if the offer needs `personalise`, else 0.
    OfferPersonalised,
    /// `offer.category:<branch>`: 1 if the offer's category is the branch or under it
    /// (`offer.category:food` covers `food.dairy`), else 0.
    OfferCategory(&'static str),
    /// `moment:<moment>`: 1 if the decision is for that moment, else 0.
    Moment(Moment),
}

/// An input name that names nothing a device can feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input {name:?}: {why}")]
pub struct UnknownInput {
    /// The name.
    pub name: String,
    /// What is wrong and what would fix it.
    pub why: String,
}

impl FromStr for InputSource {
    type Err = UnknownInput;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let fail = |why: String| UnknownInput { name: name.into(), why };
        match name {
            "offer.value" => return Ok(Self::OfferValue),
            "offer.priority" => return Ok(Self::OfferPriority),
            "offer.personalised" => return Ok(Self::OfferPersonalised),
            _ => {}
        }
        if let Some(branch) = name.strip_prefix("offer.category:") {
            // A branch must cover at least one allowed category; sensitive ones cover none.
            return crate::taxonomy::CATEGORIES
                .iter()
                .find(|c| c.path == branch || c.path.strip_prefix(branch).is_some_and(|r| r.starts_with('.')))
                .map(|_| Self::OfferCategory(category_branch(branch)))
                .ok_or_else(|| {
                    fail(format!(
                        "category branch '{branch}' covers no allowed category; use a taxonomy branch such as \"food\" or \"books.crime\""
                    ))
                });
        }
        if let Some(moment) = name.strip_prefix("moment:") {
            return Moment::from_str(moment).map(Self::Moment).map_err(|e| fail(e.to_string()));
        }
        FeatureName::try_new(name).map(Self::Feature).map_err(|_| {
            fail(
                "not a feature, \"offer.value\", \"offer.priority\", \"offer.personalised\", \"offer.category:<branch>\" or \"moment:<moment>\"; feature names are listed in the README"
                    .into(),
            )
        })
    }
}

/// The static text of a branch that covers a category (checked by the caller), so a parsed
/// source holds no allocation.
fn category_branch(branch: &str) -> &'static str {
    crate::taxonomy::CATEGORIES
        .iter()
        .find_map(|c| {
            let path: &'static str = c.path;
            (path == branch || path.strip_prefix(branch).is_some_and(|r| r.starts_with('.')))
                .then(|| &path[..branch.len()])
        })
        .unwrap_or("")
}

impl ModelManifest {
    /// Every problem with the manifest, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.inputs.is_empty() {
            out.push(("input".into(), "the model has no inputs; list them as [[input]] entries".into()));
        }
        if self.inputs.len() > MAX_MODEL_INPUTS {
            out.push(("input".into(), format!("{} inputs is over the limit of {MAX_MODEL_INPUTS}", self.inputs.len())));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            if let Err(e) = InputSource::from_str(&input.name) {
                out.push((format!("input[{i}].name"), e.to_string()));
            }
            if !input.missing.is_finite() {
                out.push((format!("input[{i}].missing"), format!("{} is not a finite number", input.missing)));
            }
            if self.inputs[..i].iter().any(|other| other.name == input.name) {
                out.push((
                    format!("input[{i}].name"),
                    format!("'{}' is listed twice; list each input once", input.name),
                ));
            }
        }
        out
    }

    /// The inputs' sources, if every name is valid.
    pub fn sources(&self) -> Result<Vec<(InputSource, f64)>, UnknownInput> {
        self.inputs.iter().map(|i| InputSource::from_str(&i.name).map(|s| (s, i.missing))).collect()
    }
}

/// What the operator signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedModel {
    /// The fleet this model is for; others refuse it.
    pub fleet: FleetId,
    /// Strictly increasing per fleet; lower or equal versions are refused.
    pub version: u64,
    /// When the operator signed it.
    pub issued_at: UnixTime,
    /// After this the envelope is refused.
    pub expires_at: UnixTime,
    /// The signing key, repeated inside the signature.
    pub key_id: KeyId,
    /// How to build its inputs.
    pub manifest: ModelManifest,
    /// The TensorFlow Lite file.
    #[serde(with = "serde_bytes_compat")]
    pub tflite: Vec<u8>,
}

/// Bytes as a postcard byte string (compact) and a JSON array, without another dependency.
mod serde_bytes_compat {
    use alloc::vec::Vec;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_manifest(names: &[&str]) -> ModelManifest {
        ModelManifest {
            name: "test".into(),
            inputs: names.iter().map(|n| ModelInput { name: (*n).into(), missing: 0.0 }).collect(),
        }
    }

    #[test]
    fn input_names_parse_into_sources() {
        let m = build_manifest(&[
            "fridge.butter.level",
            "offer.value",
            "offer.priority",
            "offer.personalised",
            "offer.category:food",
            "offer.category:books.crime",
            "moment:door_opened",
        ]);
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        let sources = m.sources().unwrap();
        assert_eq!(sources[4].0, InputSource::OfferCategory("food"));
        assert_eq!(sources[5].0, InputSource::OfferCategory("books.crime"));
        assert_eq!(sources[6].0, InputSource::Moment(Moment::DoorOpened));
    }

    #[test]
    fn bad_inputs_are_each_named_with_the_fix() {
        let mut m = build_manifest(&["fridge.mood", "offer.category:health", "offer.category:foo", "moment:noon"]);
        m.inputs.push(ModelInput { name: "offer.value".into(), missing: f64::NAN });
        m.inputs.push(ModelInput { name: "offer.value".into(), missing: 0.0 });
        let problems = m.problems();
        assert_eq!(problems.len(), 6, "{problems:?}");
        assert!(problems[0].1.contains("\"fridge.mood\"") && problems[0].1.contains("README"));
        assert!(problems[1].1.contains("'health' covers no allowed category"));
        assert!(problems[3].1.contains("unknown moment"));
        assert_eq!(problems[4].0, "input[4].missing");
        assert!(problems[5].1.contains("listed twice"));
        assert!(build_manifest(&[]).problems()[0].1.contains("no inputs"));
    }
}
