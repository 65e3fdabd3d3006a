//! The tract runtime: the model is loaded with a batch dimension, then planned once for a few
//! fixed batch sizes (fixed shapes run about twice as fast as a symbolic one) and once for
//! any size; a call pads its rows up to the next planned size.

use std::sync::Arc;

use tract_tflite::internal::tract_core::ops::source::TypedSource;
use tract_tflite::prelude::*;

use super::{Runtime, FIXED_BATCHES};
use crate::ModelError;

const NAME: &str = "tract";

type Plan = Arc<TypedRunnableModel>;

/// A model loaded into tract.
pub(super) struct TractRuntime {
    inputs: usize,
    fixed: Vec<(usize, Plan)>,
    any: Plan,
}

impl std::fmt::Debug for TractRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractRuntime").field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

fn load_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Load { runtime: NAME, reason: e.to_string() }
}

/// Plans the model for a batch of `batch` rows (`None`: any number).
fn plan(bytes: &[u8], inputs: usize, batch: Option<usize>) -> TractResult<Plan> {
    let mut model = tract_tflite::tflite().model_for_read(&mut &bytes[..])?;
    let rows: TDim = match batch {
        Some(b) => b.to_dim(),
        None => model.symbols.sym("batch").to_dim(),
    };
    let fact = f32::fact([rows, inputs.to_dim()]);
    // The file states a batch of one; the source and every fact after it are redone for the
    // batch asked for.
    let source = model.input_outlets()?[0].node;
    model.nodes[source].op = Box::new(TypedSource::new(fact.clone()));
    model.set_input_fact(0, fact)?;
    model.refresh_output_facts()?;
    model.into_optimized()?.into_runnable()
}

impl TractRuntime {
    pub(super) fn load(bytes: &[u8], inputs: usize) -> Result<Self, ModelError> {
        let any = plan(bytes, inputs, None).map_err(load_err)?;
        let fixed = FIXED_BATCHES
            .iter()
            .map(|&b| plan(bytes, inputs, Some(b)).map(|p| (b, p)))
            .collect::<TractResult<Vec<_>>>()
            .map_err(load_err)?;
        Ok(Self { inputs, fixed, any })
    }
}

impl Runtime for TractRuntime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        let fail = |e: &dyn std::fmt::Display| ModelError::Run { runtime: NAME, batch, reason: e.to_string() };
        if rows.len() != batch * self.inputs {
            return Err(fail(&format!("{} values for {batch} rows of {}", rows.len(), self.inputs)));
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        // Beyond the largest fixed plan, whole chunks of it and then the rest: fixed shapes run
        // faster than the plan for any size.
        let largest = FIXED_BATCHES[FIXED_BATCHES.len() - 1];
        let mut out = Vec::with_capacity(batch);
        for chunk in rows.chunks(largest * self.inputs) {
            let n = chunk.len() / self.inputs;
            out.extend(self.run_fixed(chunk, n).map_err(|e| fail(&e))?);
        }
        Ok(out)
    }
}

impl TractRuntime {
    /// Runs up to the largest fixed batch, padded up to the next fixed size.
    fn run_fixed(&self, rows: &[f32], batch: usize) -> TractResult<Vec<f32>> {
        let (size, plan) = self.fixed.iter().find(|(b, _)| *b >= batch).map_or((batch, &self.any), |(b, p)| (*b, p));
        let mut padded;
        let data = if size == batch {
            rows
        } else {
            padded = Vec::with_capacity(size * self.inputs);
            padded.extend_from_slice(rows);
            padded.resize(size * self.inputs, 0.0);
            &padded
        };
        let input = Tensor::from_shape(&[size, self.inputs], data)?;
        let outputs = plan.run(tvec!(input.into()))?;
        let output = outputs.first().ok_or_else(|| TractError::msg("no output"))?;
        let view = output.try_as_plain_ram()?;
        let values = view.as_slice::<f32>()?;
        if values.len() < batch {
            return Err(TractError::msg(format!("{} outputs", values.len())));
        }
        Ok(values[..batch].to_vec())
    }
}
