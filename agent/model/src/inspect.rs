//! Reading a TensorFlow Lite file's structure, and refusing, with the fix, what ledtrad cannot
//! run: anything but one float32 `[batch, n]` input and one float32 `[batch, 1]` output.

use crate::file::{op_name, ModelFile, TensorType};
use crate::ModelError;

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
    let model = ModelFile::read(bytes)?;
    let tensor = |list: &[i32], what: &str| {
        if list.len() != 1 {
            return Err(ModelError::Shape(format!(
                "the model has {} {what}s; ledtrad feeds one input tensor [batch, n] and reads one output tensor [batch, 1]",
                list.len()
            )));
        }
        model.tensor_at(list[0])
    };
    let input = tensor(&model.inputs, "input")?;
    let output = tensor(&model.outputs, "output")?;
    let ops: Vec<String> = model.codes.iter().map(|&c| op_name(c)).collect();
    let integer = |t: TensorType| matches!(t, TensorType::INT8 | TensorType::UINT8 | TensorType::INT16);
    if integer(input.type_) || integer(output.type_) {
        return Err(ModelError::FullyQuantized(format!(
            "input {:?}, output {:?}",
            input.type_.name(),
            output.type_.name()
        )));
    }
    if ops.iter().any(|o| o == "QUANTIZE") {
        return Err(ModelError::FullyQuantized("it uses QUANTIZE ops".into()));
    }
    if input.type_ != TensorType::FLOAT32 || output.type_ != TensorType::FLOAT32 {
        return Err(ModelError::Shape(format!(
            "input is {:?} and output {:?}; ledtrad feeds and reads float32",
            input.type_.name(),
            output.type_.name()
        )));
    }
    let (in_dims, out_dims) = (&input.shape, &output.shape);
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
        input.shape_signature.as_ref().is_some_and(|s| s.len() == 2 && s[0] == -1) || in_dims.first() == Some(&-1);
    Ok(ModelShape { inputs, dynamic_batch, ops })
}
