//! The fleet's scoring model (DESIGN §8 step 4): a signed model whose manifest says what feeds
//! each input, loaded once into a runtime of the `ledtrad-model` crate and run on one batch of
//! candidates per decision.
//!
//! The runtimes (tract by default, TensorFlow Lite's own with the `tflite` feature) live in
//! `ledtrad-model`, which the operator's model check uses too; this module ties a verified
//! [`SignedModel`] to one of them and re-exports what the engine's users need.

use ledtrad_protocol::model::{InputSource, SignedModel};

use crate::compiled::{branch_bits, OfferInputs};

pub use ledtrad_model::{inspect, ModelError, ModelShape, RuntimeKind, ScoringModel, MAX_BATCH};

/// The fleet's model in force.
#[derive(Debug, Clone)]
pub struct FleetModel {
    /// Its version.
    pub version: u64,
    /// Its name, from the manifest.
    pub name: String,
    /// What feeds each input, and the value fed when it is unknown or not allowed.
    pub inputs: Vec<(InputSource, f64)>,
    /// The inputs read from the offer, by their place in a row.
    offer_inputs: Vec<(usize, OfferInput)>,
    model: ScoringModel,
}

/// An input read from the offer, resolved once at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferInput {
    Value,
    Priority,
    Personalised,
    /// 1 if the offer's category has one of these bits ([`branch_bits`]).
    Category(u32),
}

impl OfferInput {
    /// The input of `source`, if the offer feeds it.
    fn of(source: &InputSource) -> Option<Self> {
        match source {
            InputSource::OfferValue => Some(Self::Value),
            InputSource::OfferPriority => Some(Self::Priority),
            InputSource::OfferPersonalised => Some(Self::Personalised),
            InputSource::OfferCategory(branch) => Some(Self::Category(branch_bits(branch))),
            InputSource::Feature(_) | InputSource::Moment(_) => None,
        }
    }

    /// Its value for the offer with `inputs`.
    pub fn read(self, inputs: &OfferInputs) -> f32 {
        match self {
            Self::Value => inputs.value,
            Self::Priority => inputs.priority,
            Self::Personalised => f32::from(u8::from(inputs.personalised)),
            Self::Category(bits) => f32::from(u8::from(inputs.category & bits != 0)),
        }
    }
}

impl FleetModel {
    /// Checks a verified model's manifest against its file and loads it into `kind`'s runtime.
    pub fn load(signed: &SignedModel, kind: RuntimeKind) -> Result<Self, ModelError> {
        if let Some((field, message)) = signed.manifest.problems().into_iter().next() {
            return Err(ModelError::Shape(format!("manifest field '{field}': {message}")));
        }
        let inputs = signed.manifest.sources().map_err(|e| ModelError::Shape(e.to_string()))?;
        let shape = inspect(&signed.tflite)?;
        if shape.inputs != inputs.len() {
            return Err(ModelError::Shape(format!(
                "the model takes {} inputs but its manifest lists {}; list one [[input]] per input, in order",
                shape.inputs,
                inputs.len()
            )));
        }
        let model = ScoringModel::load(kind, &signed.tflite)?;
        let offer_inputs =
            inputs.iter().enumerate().filter_map(|(k, (source, _))| Some((k, OfferInput::of(source)?))).collect();
        Ok(Self { version: signed.version, name: signed.manifest.name.clone(), inputs, offer_inputs, model })
    }

    /// The inputs read from the offer, by their place in a row.
    pub(crate) fn offer_inputs(&self) -> &[(usize, OfferInput)] {
        &self.offer_inputs
    }

    /// The runtime's name.
    pub fn runtime(&self) -> &'static str {
        self.model.runtime()
    }

    /// Runs `batch` rows.
    pub fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        self.model.score(rows, batch)
    }
}

#[cfg(test)]
mod tests;
