//! The fleet's scoring model (DESIGN §8 step 4): a signed TensorFlow Lite file, checked and
//! loaded into a runtime once, then run on one batch of candidates per decision.
//!
//! Two runtimes sit behind [`ModelRuntime`]: tract (pure Rust, the default, so the agent builds
//! anywhere without a C++ toolchain) and, with the `tflite` cargo feature, TensorFlow Lite's own
//! C++ runtime. Both take the model as bytes handed in; neither reads a file.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ledtrad_protocol::model::{InputSource, SignedModel};
use tract_tflite::tflite as fb;

#[cfg(feature = "tflite")]
mod tflite;
mod tract;

/// The most rows one model call takes (a catalogue holds at most this many offers).
pub const MAX_BATCH: usize = ledtrad_protocol::catalogue::MAX_OFFERS;

/// Batch sizes each runtime prepares with fixed shapes; a call pads its rows up to the next one.
/// A larger batch runs in chunks of the largest (tract), or padded to a multiple of it on an
/// interpreter kept for that size (TensorFlow Lite, which cannot resize its inputs).
const FIXED_BATCHES: [usize; 4] = [1, 8, 64, 256];

/// A runtime that runs a loaded model.
pub trait ModelRuntime: Send + Sync + fmt::Debug {
    /// The runtime's name, for traces and status.
    fn name(&self) -> &'static str;

    /// Runs `batch` rows (row-major, [`ModelRuntime::inputs`] values each) and returns one
    /// output per row.
    fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError>;
}

/// Which runtime runs the fleet's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// tract (pure Rust; the default).
    #[default]
    Tract,
    /// TensorFlow Lite's own runtime (needs the `tflite` cargo feature).
    Tflite,
}

impl RuntimeKind {
    /// The name used in configs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Tflite => "tflite",
        }
    }

    /// Whether this build carries the runtime.
    pub const fn available(self) -> bool {
        match self {
            Self::Tract => true,
            Self::Tflite => cfg!(feature = "tflite"),
        }
    }
}

impl FromStr for RuntimeKind {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(Self::Tract),
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
    #[error("unknown model runtime {0:?}; use \"tract\" (the default) or \"tflite\"")]
    UnknownRuntime(String),
    /// The runtime is not in this build.
    #[error("this build has no \"{0}\" model runtime; rebuild with `--features tflite` or use \"tract\"")]
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

/// What a model file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelShape {
    /// Values per input row.
    pub inputs: usize,
    /// Whether the batch dimension can be resized (`-1` in the input's shape signature).
    pub dynamic_batch: bool,
    /// The builtin operators it uses, by name.
    pub ops: Vec<String>,
}

/// Reads a TensorFlow Lite file's structure and checks it is a model ledtrad can run: one
/// float32 input of shape `[batch, n]`, one float32 output of shape `[batch, 1]`, and no
/// integer quantization of its inputs and outputs (or QUANTIZE ops, which tract lacks).
pub fn inspect(bytes: &[u8]) -> Result<ModelShape, ModelError> {
    let model = fb::root_as_model(bytes).map_err(|e| ModelError::NotTflite(e.to_string()))?;
    let graph = model
        .subgraphs()
        .filter(|g| !g.is_empty())
        .map(|g| g.get(0))
        .ok_or_else(|| ModelError::NotTflite("no subgraph".into()))?;
    let tensors = graph.tensors().ok_or_else(|| ModelError::NotTflite("no tensors".into()))?;
    let tensor = |list: Option<Vec<i32>>, what: &str| {
        let list = list.ok_or_else(|| ModelError::Shape(format!("the model declares no {what}")))?;
        if list.len() != 1 {
            return Err(ModelError::Shape(format!(
                "the model has {} {what}s; ledtrad feeds one input tensor [batch, n] and reads one output tensor [batch, 1]",
                list.len()
            )));
        }
        let index = usize::try_from(list[0]).map_err(|_| ModelError::NotTflite(format!("bad {what} index")))?;
        if index >= tensors.len() {
            return Err(ModelError::NotTflite(format!("{what} tensor {index} does not exist")));
        }
        Ok(tensors.get(index))
    };
    let input = tensor(graph.inputs().map(|v| v.iter().collect()), "input")?;
    let output = tensor(graph.outputs().map(|v| v.iter().collect()), "output")?;
    let ops: Vec<String> = model
        .operator_codes()
        .map(|codes| {
            codes
                .iter()
                .map(|c| {
                    let code = if c.deprecated_builtin_code() as i32
                        == fb::BuiltinOperator::PLACEHOLDER_FOR_GREATER_OP_CODES.0
                    {
                        c.builtin_code()
                    } else {
                        fb::BuiltinOperator(i32::from(c.deprecated_builtin_code()))
                    };
                    code.variant_name().map_or_else(|| format!("op {}", code.0), str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let integer = |t: fb::TensorType| matches!(t, fb::TensorType::INT8 | fb::TensorType::UINT8 | fb::TensorType::INT16);
    if integer(input.type_()) || integer(output.type_()) {
        return Err(ModelError::FullyQuantized(format!(
            "input {:?}, output {:?}",
            input.type_().variant_name().unwrap_or("?"),
            output.type_().variant_name().unwrap_or("?")
        )));
    }
    if ops.iter().any(|o| o == "QUANTIZE") {
        return Err(ModelError::FullyQuantized("it uses QUANTIZE ops".into()));
    }
    if input.type_() != fb::TensorType::FLOAT32 || output.type_() != fb::TensorType::FLOAT32 {
        return Err(ModelError::Shape(format!(
            "input is {:?} and output {:?}; ledtrad feeds and reads float32",
            input.type_().variant_name().unwrap_or("?"),
            output.type_().variant_name().unwrap_or("?")
        )));
    }
    let dims = |t: &fb::Tensor<'_>| t.shape().map(|s| s.iter().collect::<Vec<i32>>()).unwrap_or_default();
    let (in_dims, out_dims) = (dims(&input), dims(&output));
    let inputs = match in_dims.as_slice() {
        [_, n] if *n > 0 => usize::try_from(*n).unwrap_or(0),
        other => {
            return Err(ModelError::Shape(format!(
                "the input tensor has shape {other:?}; ledtrad feeds rows of shape [batch, n]"
            )))
        }
    };
    if !matches!(out_dims.as_slice(), [_, 1]) {
        return Err(ModelError::Shape(format!(
            "the output tensor has shape {out_dims:?}; ledtrad reads one propensity per row, shape [batch, 1]"
        )));
    }
    let dynamic_batch =
        input.shape_signature().is_some_and(|s| s.len() == 2 && s.get(0) == -1) || in_dims.first() == Some(&-1);
    Ok(ModelShape { inputs, dynamic_batch, ops })
}

/// Loads `bytes` into `kind`'s runtime for rows of `inputs` values.
pub fn load_runtime(kind: RuntimeKind, bytes: &[u8], inputs: usize) -> Result<Arc<dyn ModelRuntime>, ModelError> {
    match kind {
        RuntimeKind::Tract => Ok(Arc::new(tract::TractRuntime::load(bytes, inputs)?)),
        #[cfg(feature = "tflite")]
        RuntimeKind::Tflite => Ok(Arc::new(tflite::TfliteRuntime::load(bytes, inputs)?)),
        #[cfg(not(feature = "tflite"))]
        RuntimeKind::Tflite => Err(ModelError::RuntimeMissing(kind)),
    }
}

/// The fleet's model in force.
#[derive(Debug, Clone)]
pub struct FleetModel {
    /// Its version.
    pub version: u64,
    /// Its name, from the manifest.
    pub name: String,
    /// What feeds each input, and the value fed when it is unknown or not allowed.
    pub inputs: Vec<(InputSource, f64)>,
    runtime: Arc<dyn ModelRuntime>,
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
        let runtime = load_runtime(kind, &signed.tflite, inputs.len())?;
        Ok(Self { version: signed.version, name: signed.manifest.name.clone(), inputs, runtime })
    }

    /// The runtime's name.
    pub fn runtime(&self) -> &'static str {
        self.runtime.name()
    }

    /// Runs `batch` rows.
    pub fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        self.runtime.run(rows, batch)
    }
}

#[cfg(test)]
mod tests;
