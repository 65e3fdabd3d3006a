//! Reading a TensorFlow Lite file's structure, and refusing, with the fix, what ledtrad cannot
//! run: anything but one float32 `[batch, n]` input and one float32 `[batch, 1]` output.

use tract_tflite::tflite as fb;

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
