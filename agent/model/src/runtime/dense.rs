//! The dense runtime: a small interpreter for the one kind of graph ledtrad's scoring models
//! are, a chain of `FULLY_CONNECTED` layers in float32 with their activations (fused, or as
//! `RELU`, `RELU6` and `LOGISTIC` operators). It reads the layers' weights out of the file once
//! and then scores with plain loops, so a device build carries no general tensor runtime.
//!
//! A model with any other operator, or whose operators do not form one chain from the input to
//! the output, is refused at load with the operator named and the fix (the tract runtime of a
//! full build runs it). The model tests check it against TensorFlow's own outputs and tract.

use super::Runtime;
use crate::file::{op, op_name, ModelFile, Operator, Tensor, TensorType};
use crate::ModelError;

const NAME: &str = "dense";

/// An activation, fused into a layer or as an operator of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    None,
    Relu,
    Relu6,
    Logistic,
}

impl Activation {
    fn apply(self, values: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Self::Relu6 => values.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            Self::Logistic => values.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
        }
    }
}

/// One fully connected layer: `outputs` rows of `inputs` weights each, and a bias per output.
#[derive(Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    activation: Activation,
}

impl Layer {
    /// `out[o] = activation(bias[o] + Σ weights[o][i] · x[i])`.
    fn run(&self, x: &[f32], out: &mut [f32]) {
        for ((o, w), b) in out.iter_mut().zip(self.weights.chunks_exact(self.inputs)).zip(&self.bias) {
            *o = b + dot(w, x);
        }
        self.activation.apply(out);
    }
}

/// A dot product in eight lanes, which the compiler keeps in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A step of the chain.
#[derive(Debug)]
enum Step {
    Dense(Layer),
    Activation(Activation),
}

/// A model loaded into the dense runtime.
#[derive(Debug)]
pub(super) struct DenseRuntime {
    inputs: usize,
    steps: Vec<Step>,
    /// The widest value vector between steps.
    widest: usize,
}

fn load_err(reason: String) -> ModelError {
    ModelError::Load { runtime: NAME, reason }
}

/// A constant tensor's float32 values, checked to be `len` long.
fn constant(tensor: &Tensor<'_>, len: usize, what: &str) -> Result<Vec<f32>, ModelError> {
    if tensor.type_ != TensorType::FLOAT32 {
        return Err(load_err(format!(
            "the {what} is stored as {} (a quantized model); the dense runtime reads float32 weights: use the tract \
             runtime",
            tensor.type_.name()
        )));
    }
    let bytes = tensor.data.ok_or_else(|| load_err(format!("the {what} has no data in the file")))?;
    if bytes.len() != len * 4 {
        return Err(load_err(format!(
            "the {what} holds {} bytes where {len} float32 values were expected",
            bytes.len()
        )));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

impl DenseRuntime {
    pub(super) fn load(bytes: &[u8], inputs: usize) -> Result<Self, ModelError> {
        let model = ModelFile::read(bytes)?.resolve_codes()?;
        let first = |list: &[i32]| list.first().copied().unwrap_or(-1);
        let mut current = first(&model.inputs);
        let (mut width, mut widest, mut steps) = (inputs, inputs, Vec::new());
        for (n, op) in model.operators.iter().enumerate() {
            if op.inputs.first() != Some(&current) {
                return Err(load_err(format!(
                    "operator {n} does not read the previous operator's output; the dense runtime runs a chain \
                     of layers from the input to the output: use the tract runtime"
                )));
            }
            let step = match op.code {
                op::FULLY_CONNECTED => {
                    let layer = Self::layer(&model, op, width)?;
                    width = layer.outputs;
                    widest = widest.max(width);
                    Step::Dense(layer)
                }
                op::RELU => Step::Activation(Activation::Relu),
                op::RELU6 => Step::Activation(Activation::Relu6),
                op::LOGISTIC => Step::Activation(Activation::Logistic),
                other => {
                    return Err(load_err(format!(
                        "operator {n} is {}, which the dense runtime does not run (it runs FULLY_CONNECTED, RELU, \
                         RELU6 and LOGISTIC): use the tract runtime (model_runtime = \"tract\", in a full build)",
                        op_name(other)
                    )))
                }
            };
            steps.push(step);
            current = first(&op.outputs);
        }
        if current != first(&model.outputs) || width != 1 {
            return Err(load_err(format!(
                "the operators end in {width} values at tensor {current}, not at the model's output of one value: \
                 use the tract runtime"
            )));
        }
        Ok(Self { inputs, steps, widest })
    }

    /// A `FULLY_CONNECTED` operator reading `width` values: its weights, bias and activation.
    fn layer(model: &ModelFile<'_>, op: &Operator, width: usize) -> Result<Layer, ModelError> {
        let weights = model.tensor_at(*op.inputs.get(1).unwrap_or(&-1))?;
        let (outputs, inputs) = match weights.shape.as_slice() {
            [o, i] if *o > 0 && *i > 0 => (*o as usize, *i as usize),
            other => return Err(load_err(format!("a FULLY_CONNECTED layer has weights of shape {other:?}"))),
        };
        if inputs != width {
            return Err(load_err(format!("a FULLY_CONNECTED layer takes {inputs} values where {width} come in")));
        }
        let (activation, format) = op.fully_connected.unwrap_or((0, 0));
        if format != 0 {
            return Err(load_err("a FULLY_CONNECTED layer stores shuffled weights: use the tract runtime".into()));
        }
        // The schema's ActivationFunctionType: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT.
        let activation = match activation {
            0 => Activation::None,
            1 => Activation::Relu,
            3 => Activation::Relu6,
            other => {
                return Err(load_err(format!(
                    "a FULLY_CONNECTED layer fuses activation {other} (only none, ReLU and ReLU6 are run): use the \
                     tract runtime"
                )))
            }
        };
        let bias = match op.inputs.get(2) {
            Some(&b) if b >= 0 => constant(model.tensor_at(b)?, outputs, "layer's bias")?,
            _ => vec![0.0; outputs],
        };
        let weights = constant(weights, outputs * inputs, "layer's weights")?;
        Ok(Layer { inputs, outputs, weights, bias, activation })
    }
}

impl Runtime for DenseRuntime {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rows: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        if rows.len() != batch * self.inputs {
            return Err(ModelError::Run {
                runtime: NAME,
                batch,
                reason: format!("{} values for {batch} rows of {}", rows.len(), self.inputs),
            });
        }
        let (mut a, mut b) = (vec![0.0f32; self.widest], vec![0.0f32; self.widest]);
        let mut out = Vec::with_capacity(batch);
        for row in rows.chunks_exact(self.inputs) {
            a[..self.inputs].copy_from_slice(row);
            let mut width = self.inputs;
            for step in &self.steps {
                match step {
                    Step::Dense(layer) => {
                        layer.run(&a[..width], &mut b[..layer.outputs]);
                        width = layer.outputs;
                        std::mem::swap(&mut a, &mut b);
                    }
                    Step::Activation(f) => f.apply(&mut a[..width]),
                }
            }
            out.push(a[0]);
        }
        Ok(out)
    }
}
