//! The runtimes behind [`crate::ScoringModel`]: the interface each one implements, the batch
//! sizes they prepare, and loading a model into the one asked for.

use std::fmt;
use std::sync::Arc;

use crate::{ModelError, RuntimeKind};

mod dense;
#[cfg(feature = "tflite")]
mod tflite;
#[cfg(feature = "tract")]
mod tract;

/// Batch sizes the tract and TensorFlow Lite runtimes prepare with fixed shapes; a call pads its rows up to the next one.
/// A larger batch runs in chunks of the largest (tract), or padded to a multiple of it on an
/// interpreter kept for that size (TensorFlow Lite, which cannot resize its inputs).
#[cfg(any(feature = "tract", feature = "tflite"))]
const FIXED_BATCHES: [usize; 4] = [1, 8, 64, 256];

/// A runtime that runs a loaded model.
pub(crate) trait Runtime: Send + Sync + fmt::Debug {
    /// The runtime's name, for traces and status.
    fn name(&self) -> &'static str;

    /// Runs `batch` rows (row-major, as many values each as the model was loaded for) and
    /// returns one output per row.
    fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError>;
}

/// Loads `bytes` into `kind`'s runtime for rows of `inputs` values.
pub(crate) fn load(kind: RuntimeKind, bytes: &[u8], inputs: usize) -> Result<Arc<dyn Runtime>, ModelError> {
    match kind {
        RuntimeKind::Dense => Ok(Arc::new(dense::DenseRuntime::load(bytes, inputs)?)),
        #[cfg(feature = "tract")]
        RuntimeKind::Tract => Ok(Arc::new(tract::TractRuntime::load(bytes, inputs)?)),
        #[cfg(not(feature = "tract"))]
        RuntimeKind::Tract => Err(ModelError::RuntimeMissing(kind)),
        #[cfg(feature = "tflite")]
        RuntimeKind::Tflite => Ok(Arc::new(tflite::TfliteRuntime::load(bytes, inputs)?)),
        #[cfg(not(feature = "tflite"))]
        RuntimeKind::Tflite => Err(ModelError::RuntimeMissing(kind)),
    }
}
