//! ledtrad's scoring-model runtimes (DESIGN §8 step 4): a TensorFlow Lite file, checked and
//! loaded once into a runtime, then run on one batch of candidates per call.
//!
//! [`ScoringModel`] is the one interface: load from bytes with a chosen [`RuntimeKind`], read
//! its [`ModelShape`], score a batch. Three runtimes sit behind it: tract (pure Rust, the default
//! of a full build, behind the default `tract` cargo feature), dense (ledtrad's own small
//! interpreter for chains of dense layers, always built: the device build's one runtime) and,
//! with the `tflite` cargo feature, TensorFlow Lite's own C++ runtime.
//!
//! The crate is pure in the engine's sense: models come in as bytes, and it never reads a
//! clock, a random source, the network or a file (a `clippy.toml` beside it disallows those
//! calls). The device engine and the operator's model check both use it, so the operator checks
//! a model with the same code and runtime as devices without linking device code.
//!
//! # Layout
//!
//! - `file`: reading the TensorFlow Lite file format (the tables ledtrad needs).
//! - `inspect`: reading a file's structure and refusing what ledtrad cannot run.
//! - `runtime`: the runtime interface and the batch sizes the runtimes prepare, with one module
//!   per runtime (`dense`; `tract` and `tflite` behind their features).
//! - This file: [`RuntimeKind`], [`ModelError`] and [`ScoringModel`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

mod file;
mod inspect;
mod runtime;

pub use inspect::{inspect, ModelShape};

/// The most rows one model call takes (a catalogue holds at most this many offers).
pub const MAX_BATCH: usize = ledtrad_protocol::catalogue::MAX_OFFERS;

/// Which runtime runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// tract (pure Rust; the default where the build has it: the `tract` cargo feature).
    Tract,
    /// ledtrad's own interpreter for chains of dense layers (pure Rust, always built; the
    /// default of a build without tract).
    Dense,
    /// TensorFlow Lite's own runtime (needs the `tflite` cargo feature).
    Tflite,
}

impl Default for RuntimeKind {
    /// tract where the build has it, else dense.
    fn default() -> Self {
        if cfg!(feature = "tract") {
            Self::Tract
        } else {
            Self::Dense
        }
    }
}

impl RuntimeKind {
    /// Every runtime, built in or not.
    pub const ALL: [Self; 3] = [Self::Tract, Self::Dense, Self::Tflite];

    /// The name used in configs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Dense => "dense",
            Self::Tflite => "tflite",
        }
    }

    /// Whether this build carries the runtime.
    pub const fn available(self) -> bool {
        match self {
            Self::Tract => cfg!(feature = "tract"),
            Self::Dense => true,
            Self::Tflite => cfg!(feature = "tflite"),
        }
    }

    /// The cargo feature that builds the runtime in (dense is always built).
    const fn feature(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Dense => "",
            Self::Tflite => "tflite",
        }
    }
}

impl FromStr for RuntimeKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(Self::Tract),
            "dense" => Ok(Self::Dense),
            "tflite" => Ok(Self::Tflite),
            other => Err(ModelError::UnknownRuntime(other.into())),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model that cannot be used, or a call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The runtime's name is not known.
    #[error("unknown model runtime {0:?}; use \"tract\", \"dense\" or \"tflite\"")]
    UnknownRuntime(String),
    /// The runtime is not in this build.
    #[error(
        "this build has no \"{0}\" model runtime; rebuild with `--features {feature}` or use \"dense\", which \
         every build has",
        feature = .0.feature()
    )]
    RuntimeMissing(RuntimeKind),
    /// The bytes are not a TensorFlow Lite model.
    #[error("not a TensorFlow Lite model ({0}); push the .tflite file the TensorFlow Lite converter wrote")]
    NotTflite(String),
    /// The model's inputs or outputs do not have the shape ledtrad feeds and reads.
    #[error("{0}")]
    Shape(String),
    /// The model is fully integer-quantized, which tract cannot run.
    #[error(
        "the model is fully int8-quantized ({0}); ledtrad feeds float32 rows and its default runtime, tract, \
         has no QUANTIZE op: convert it with float32 inputs and outputs (no quantization, or dynamic-range \
         quantization: optimizations=[tf.lite.Optimize.DEFAULT] without a representative dataset)"
    )]
    FullyQuantized(String),
    /// The runtime could not load the model.
    #[error("the {runtime} runtime cannot load the model: {reason}")]
    Load {
        /// The runtime.
        runtime: &'static str,
        /// Its error.
        reason: String,
    },
    /// A call failed.
    #[error("the {runtime} runtime failed on a batch of {batch}: {reason}")]
    Run {
        /// The runtime.
        runtime: &'static str,
        /// The batch size.
        batch: usize,
        /// Its error.
        reason: String,
    },
}

/// A model checked by [`inspect`] and loaded into a runtime, ready to score batches. Cloning
/// shares the loaded runtime.
#[derive(Debug, Clone)]
pub struct ScoringModel {
    kind: RuntimeKind,
    shape: ModelShape,
    runtime: Arc<dyn runtime::Runtime>,
}

impl ScoringModel {
    /// Checks `bytes` with [`inspect`] and loads them into `kind`'s runtime, for rows of as many
    /// values as the model takes.
    pub fn load(kind: RuntimeKind, bytes: &[u8]) -> Result<Self, ModelError> {
        let shape = inspect(bytes)?;
        let runtime = runtime::load(kind, bytes, shape.inputs)?;
        Ok(Self { kind, shape, runtime })
    }

    /// The runtime that runs it.
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// The runtime's name, for traces and status.
    pub fn runtime(&self) -> &'static str {
        self.runtime.name()
    }

    /// What the file says about itself.
    pub fn shape(&self) -> &ModelShape {
        &self.shape
    }

    /// Values per input row.
    pub fn inputs(&self) -> usize {
        self.shape.inputs
    }

    /// Scores `batch` rows (row-major, [`ScoringModel::inputs`] values each) and returns one
    /// output per row.
    pub fn score(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        self.runtime.run(rows, batch)
    }
}

#[cfg(test)]
mod tests;
