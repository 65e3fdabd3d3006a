//! The TensorFlow Lite runtime (the `tflite` feature): TensorFlow Lite's own C++ interpreter,
//! built once per batch size. The vendored TensorFlow Lite 1.15 cannot resize an input tensor,
//! so each interpreter is built from a copy of the file whose input states that batch: one for
//! each fixed size, built on load, and one for each multiple of the largest of them, built when
//! a batch first needs it. A call pads its rows up to the next size, so the number of eligible
//! offers can change from decision to decision without building an interpreter each time.

use std::sync::{Mutex, MutexGuard};

use tflite::context::ElementKind;
use tflite::model::Model;
use tflite::ops::builtin::BuiltinOpResolver;
use tflite::{FlatBufferModel, Interpreter, InterpreterBuilder};

use super::{Runtime, FIXED_BATCHES};
use crate::{ModelError, MAX_BATCH};

const NAME: &str = "tflite";

/// Batches beyond the fixed sizes are padded up to a multiple of this, the largest fixed size.
const STEP: usize = FIXED_BATCHES[FIXED_BATCHES.len() - 1];

/// An interpreter that owns its model, built for one batch size.
type Interp = Interpreter<'static, BuiltinOpResolver>;

/// A model loaded into TensorFlow Lite.
pub(super) struct TfliteRuntime {
    /// The file, to build interpreters for batches larger than every fixed size.
    bytes: Vec<u8>,
    inputs: usize,
    /// An interpreter per fixed batch size; running one needs `&mut`, hence the locks.
    fixed: Vec<(usize, Mutex<Interp>)>,
    /// Interpreters for multiples of [`STEP`] up to [`MAX_BATCH`], built as batches need them.
    larger: Mutex<Vec<(usize, Interp)>>,
}

impl std::fmt::Debug for TfliteRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfliteRuntime").field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

/// The crate's messages come wrapped in backticks.
fn reason(e: &tflite::Error) -> String {
    e.to_string().trim_matches('`').to_string()
}

/// Builds an interpreter for batches of `batch` rows of `inputs` values and checks that it takes
/// and gives what ledtrad feeds and reads.
fn build(bytes: &[u8], batch: usize, inputs: usize) -> Result<Interp, String> {
    let mut model = Model::from_buffer(bytes).ok_or(
        "not a TensorFlow Lite model that TensorFlow Lite 1.15 can read; push the .tflite file the converter wrote",
    )?;
    let graph = model.subgraphs.first_mut().ok_or("the model has no subgraph")?;
    for &index in graph.inputs.iter().chain(graph.outputs.iter()) {
        let tensor = usize::try_from(index).ok().and_then(|i| graph.tensors.get(i));
        // The interpreter's tensor details read names as UTF-8 and would panic on others.
        if tensor.is_none_or(|t| t.name.c_str().to_str().is_err()) {
            return Err(format!("tensor {index} does not exist or has a name that is not UTF-8"));
        }
    }
    let input = *graph.inputs.first().ok_or("the model declares no input")?;
    let tensor = usize::try_from(input)
        .ok()
        .and_then(|i| graph.tensors.get_mut(i))
        .ok_or_else(|| format!("input tensor {input} does not exist"))?;
    let rows = tensor.shape.first_mut().ok_or("the input tensor has no batch dimension")?;
    *rows = i32::try_from(batch).map_err(|_| format!("a batch of {batch} rows is too large"))?;
    let model = FlatBufferModel::build_from_buffer(model.to_buffer()).map_err(|e| reason(&e))?;
    // One thread: the engine makes one decision at a time, on small batches.
    let interp = InterpreterBuilder::new(model, BuiltinOpResolver::default())
        .and_then(|b| b.build_with_threads(1))
        .map_err(|e| {
            format!(
                "TensorFlow Lite 1.15 cannot build an interpreter for it ({}); newer converters may use operators \
                 or operator versions it lacks: use the tract runtime",
                reason(&e)
            )
        })?;
    check(&interp, batch, inputs)?;
    Ok(interp)
}

/// Checks the interpreter takes one float32 input `[batch, inputs]` and gives one float32 value
/// per row.
fn check(interp: &Interp, batch: usize, inputs: usize) -> Result<(), String> {
    let ins = interp.get_input_details().map_err(|e| reason(&e))?;
    let outs = interp.get_output_details().map_err(|e| reason(&e))?;
    let (input, output) = match (ins.as_slice(), outs.as_slice()) {
        ([input], [output]) => (input, output),
        _ => {
            return Err(format!(
                "the model has {} inputs and {} outputs; ledtrad feeds one input tensor and reads one output tensor",
                ins.len(),
                outs.len()
            ))
        }
    };
    if input.element_kind != ElementKind::kTfLiteFloat32 || output.element_kind != ElementKind::kTfLiteFloat32 {
        let kind = |k: ElementKind| format!("{k:?}").trim_start_matches("kTfLite").to_lowercase();
        return Err(format!(
            "input is {} and output {}; ledtrad feeds and reads float32",
            kind(input.element_kind),
            kind(output.element_kind)
        ));
    }
    match input.dims.as_slice() {
        [rows, n] if *rows == batch && *n == inputs => {}
        [rows, n] if *rows == batch => {
            return Err(format!("the model takes rows of {n} values, not {inputs}; list one manifest input per value"))
        }
        other => {
            return Err(format!(
                "the input tensor has shape {other:?} with its batch set to {batch}; ledtrad feeds rows of shape [batch, {inputs}]"
            ))
        }
    }
    if output.dims.iter().product::<usize>() != batch {
        return Err(format!(
            "the output tensor is {:?} for a batch of {batch}; ledtrad reads one value per row",
            output.dims
        ));
    }
    Ok(())
}

/// Writes `rows` into the interpreter's input, zeros after them, runs it and reads `batch`
/// outputs.
fn invoke(interp: &mut Interp, rows: &[f32], batch: usize) -> Result<Vec<f32>, String> {
    let (input, output) = match (interp.inputs().first(), interp.outputs().first()) {
        (Some(&i), Some(&o)) => (i, o),
        _ => return Err("the interpreter has no input or no output".into()),
    };
    let data = interp.tensor_data_mut::<f32>(input).map_err(|e| reason(&e))?;
    if data.len() < rows.len() {
        return Err(format!("the input holds {} values, not {}", data.len(), rows.len()));
    }
    let (head, tail) = data.split_at_mut(rows.len());
    head.copy_from_slice(rows);
    tail.fill(0.0);
    interp.invoke().map_err(|e| reason(&e))?;
    let values = interp.tensor_data::<f32>(output).map_err(|e| reason(&e))?;
    values.get(..batch).map(<[f32]>::to_vec).ok_or_else(|| format!("{} outputs", values.len()))
}

/// Locks an interpreter; a lock poisoned by a panic in an earlier call fails this call.
fn lock<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, String> {
    mutex.lock().map_err(|_| "the interpreter is unusable after an earlier call panicked".into())
}

impl TfliteRuntime {
    pub(super) fn load(bytes: &[u8], inputs: usize) -> Result<Self, ModelError> {
        let fixed = FIXED_BATCHES
            .iter()
            .map(|&b| build(bytes, b, inputs).map(|i| (b, Mutex::new(i))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ModelError::Load { runtime: NAME, reason })?;
        Ok(Self { bytes: bytes.to_vec(), inputs, fixed, larger: Mutex::new(Vec::new()) })
    }
}

impl Runtime for TfliteRuntime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        let fail = |reason: String| ModelError::Run { runtime: NAME, batch, reason };
        if batch.checked_mul(self.inputs) != Some(rows.len()) {
            return Err(fail(format!("{} values for {batch} rows of {}", rows.len(), self.inputs)));
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        if let Some((_, interp)) = self.fixed.iter().find(|(b, _)| *b >= batch) {
            return invoke(&mut *lock(interp).map_err(fail)?, rows, batch).map_err(fail);
        }
        let size = batch.div_ceil(STEP) * STEP;
        let mut larger = lock(&self.larger).map_err(fail)?;
        if let Some((_, interp)) = larger.iter_mut().find(|(s, _)| *s == size) {
            return invoke(interp, rows, batch).map_err(fail);
        }
        let mut interp = build(&self.bytes, size, self.inputs).map_err(fail)?;
        let outputs = invoke(&mut interp, rows, batch).map_err(fail)?;
        // More rows than a catalogue holds: this call's interpreter is not kept.
        if size < MAX_BATCH + STEP {
            larger.push((size, interp));
        }
        Ok(outputs)
    }
}
