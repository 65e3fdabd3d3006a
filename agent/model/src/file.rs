//! Reading a TensorFlow Lite file: the few tables of its flatbuffer schema that ledtrad needs
//! (the model's operator codes, buffers and first subgraph: tensors, inputs, outputs and
//! operators with their fully connected options), read with a bounds check on every access.
//!
//! It is ledtrad's own because the crates that read the schema come inside runtimes: tract's
//! reader links all of tract (its operator registries register themselves at start-up), which a
//! device build without tract must not carry. Field numbers follow TensorFlow Lite's
//! `schema.fbs`; the model tests read the shipped models with it and compare with tract.

use crate::ModelError;

/// A tensor's element type, as the schema numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TensorType(pub i8);

impl TensorType {
    pub const FLOAT32: Self = Self(0);
    pub const UINT8: Self = Self(3);
    pub const INT16: Self = Self(7);
    pub const INT8: Self = Self(9);

    const NAMES: [&'static str; 11] =
        ["FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16", "COMPLEX64", "INT8", "FLOAT64"];

    /// The schema's name, or the number.
    pub fn name(self) -> String {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| Self::NAMES.get(i))
            .map_or_else(|| format!("type {}", self.0), |n| (*n).to_string())
    }
}

/// Builtin operator codes ledtrad's runtimes act on.
pub(crate) mod op {
    pub const FULLY_CONNECTED: i32 = 9;
    pub const LOGISTIC: i32 = 14;
    pub const RELU: i32 = 19;
    pub const RELU6: i32 = 21;
    /// Files from newer converters put this in the old byte-sized field and the code in the new.
    pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;
}

/// The schema's names of the builtin operators, by code.
const OP_NAMES: [&str; 130] = [
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES",
    "CUMSUM",
    "CALL_ONCE",
];

/// A builtin operator's name, or `op N` for codes past the table.
pub(crate) fn op_name(code: i32) -> String {
    usize::try_from(code).ok().and_then(|i| OP_NAMES.get(i)).map_or_else(|| format!("op {code}"), |n| (*n).to_string())
}

/// The union tag of `FullyConnectedOptions` in an operator's builtin options.
const FULLY_CONNECTED_OPTIONS: u8 = 8;

/// A tensor of the first subgraph.
#[derive(Debug, Clone)]
pub(crate) struct Tensor<'a> {
    pub shape: Vec<i32>,
    pub shape_signature: Option<Vec<i32>>,
    pub type_: TensorType,
    /// Its constant data (weights, biases), where the file holds some.
    pub data: Option<&'a [u8]>,
}

/// An operator of the first subgraph.
#[derive(Debug, Clone)]
pub(crate) struct Operator {
    /// Its builtin operator code.
    pub code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// For `FULLY_CONNECTED`: the fused activation and the weights format, as numbered in the
    /// schema (0 and 0 where the file leaves them out).
    pub fully_connected: Option<(i8, i8)>,
}

/// What ledtrad reads of a model file.
#[derive(Debug, Clone)]
pub(crate) struct ModelFile<'a> {
    /// The builtin code of each operator code entry.
    pub codes: Vec<i32>,
    pub tensors: Vec<Tensor<'a>>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub operators: Vec<Operator>,
}

impl<'a> ModelFile<'a> {
    /// Reads `bytes`, refusing anything that is not a well-formed TensorFlow Lite file.
    pub fn read(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let buf = Buf(bytes);
        if bytes.get(4..8) != Some(b"TFL3") {
            return Err(bad("no TFL3 file identifier"));
        }
        let model = buf.root()?;
        let codes = model.tables(1)?.iter().map(|c| Self::builtin_code(c)).collect::<Result<_, _>>()?;
        let buffers = model.tables(4)?;
        let graph = model.tables(2)?.first().copied().ok_or_else(|| bad("no subgraph"))?;
        let tensors = graph.tables(0)?.iter().map(|t| Self::tensor(t, &buffers)).collect::<Result<Vec<_>, _>>()?;
        if tensors.is_empty() {
            return Err(bad("no tensors"));
        }
        let operators = graph.tables(3)?.iter().map(Self::operator).collect::<Result<_, _>>()?;
        Ok(Self { codes, tensors, inputs: graph.i32s(1)?, outputs: graph.i32s(2)?, operators })
    }

    /// The tensor an index names.
    pub fn tensor_at(&self, index: i32) -> Result<&Tensor<'a>, ModelError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .ok_or_else(|| bad(&format!("tensor {index} does not exist")))
    }

    fn builtin_code(code: &Table<'_>) -> Result<i32, ModelError> {
        let old = i32::from(code.i8(0, 0)?);
        if old == op::PLACEHOLDER_FOR_GREATER_OP_CODES {
            code.i32(3, 0)
        } else {
            Ok(old)
        }
    }

    fn tensor(tensor: &Table<'a>, buffers: &[Table<'a>]) -> Result<Tensor<'a>, ModelError> {
        let buffer = usize::try_from(tensor.u32(2, 0)?).map_err(|_| bad("buffer index"))?;
        let data = match buffers.get(buffer) {
            Some(b) => b.bytes(0)?.filter(|d| !d.is_empty()),
            None => return Err(bad(&format!("buffer {buffer} does not exist"))),
        };
        let signature = if tensor.has(7)? { Some(tensor.i32s(7)?) } else { None };
        Ok(Tensor { shape: tensor.i32s(0)?, shape_signature: signature, type_: TensorType(tensor.i8(1, 0)?), data })
    }

    fn operator(operator: &Table<'_>) -> Result<Operator, ModelError> {
        let code = usize::try_from(operator.u32(0, 0)?).map_err(|_| bad("opcode index"))?;
        let fully_connected = match (operator.u8(3, 0)?, operator.table(4)?) {
            (FULLY_CONNECTED_OPTIONS, Some(o)) => Some((o.i8(0, 0)?, o.i8(1, 0)?)),
            _ => None,
        };
        Ok(Operator {
            code: i32::try_from(code).map_err(|_| bad("opcode index"))?,
            inputs: operator.i32s(1)?,
            outputs: operator.i32s(2)?,
            fully_connected,
        })
    }

    /// Replaces each operator's opcode index by its builtin code.
    pub fn resolve_codes(mut self) -> Result<Self, ModelError> {
        for (n, op) in self.operators.iter_mut().enumerate() {
            op.code = usize::try_from(op.code)
                .ok()
                .and_then(|i| self.codes.get(i))
                .copied()
                .ok_or_else(|| bad(&format!("operator {n} has no operator code")))?;
        }
        Ok(self)
    }
}

fn bad(what: &str) -> ModelError {
    ModelError::NotTflite(what.to_string())
}

/// The file's bytes, read little-endian with bounds checks.
#[derive(Debug, Clone, Copy)]
struct Buf<'a>(&'a [u8]);

impl<'a> Buf<'a> {
    fn slice(self, at: usize, len: usize) -> Result<&'a [u8], ModelError> {
        at.checked_add(len).and_then(|end| self.0.get(at..end)).ok_or_else(|| bad("an offset past the end of the file"))
    }

    fn u16(self, at: usize) -> Result<u16, ModelError> {
        self.slice(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(self, at: usize) -> Result<u32, ModelError> {
        self.slice(at, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The position an unsigned offset stored at `at` points to.
    fn follow(self, at: usize) -> Result<usize, ModelError> {
        at.checked_add(self.u32(at)? as usize).ok_or_else(|| bad("an offset out of range"))
    }

    fn root(self) -> Result<Table<'a>, ModelError> {
        Table::at(self, self.follow(0)?)
    }
}

/// A table: its position and the field offsets of its vtable.
#[derive(Debug, Clone, Copy)]
struct Table<'a> {
    buf: Buf<'a>,
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> Table<'a> {
    fn at(buf: Buf<'a>, pos: usize) -> Result<Self, ModelError> {
        let soffset = i64::from(buf.u32(pos)? as i32);
        let vtable = usize::try_from(pos as i64 - soffset).map_err(|_| bad("a vtable before the file"))?;
        let vtable_len = usize::from(buf.u16(vtable)?);
        Ok(Self { buf, pos, vtable, vtable_len })
    }

    /// Where field `i` is, if the table has it.
    fn field(&self, i: usize) -> Result<Option<usize>, ModelError> {
        let slot = 4 + 2 * i;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let offset = usize::from(self.buf.u16(self.vtable + slot)?);
        Ok((offset != 0).then_some(self.pos + offset))
    }

    fn has(&self, i: usize) -> Result<bool, ModelError> {
        Ok(self.field(i)?.is_some())
    }

    fn scalar<const N: usize>(&self, i: usize) -> Result<Option<[u8; N]>, ModelError> {
        match self.field(i)? {
            Some(at) => Ok(Some(self.buf.slice(at, N)?.try_into().map_err(|_| bad("a field"))?)),
            None => Ok(None),
        }
    }

    fn u8(&self, i: usize, default: u8) -> Result<u8, ModelError> {
        Ok(self.scalar::<1>(i)?.map_or(default, |b| b[0]))
    }

    fn i8(&self, i: usize, default: i8) -> Result<i8, ModelError> {
        Ok(self.scalar::<1>(i)?.map_or(default, i8::from_le_bytes))
    }

    fn u32(&self, i: usize, default: u32) -> Result<u32, ModelError> {
        Ok(self.scalar::<4>(i)?.map_or(default, u32::from_le_bytes))
    }

    fn i32(&self, i: usize, default: i32) -> Result<i32, ModelError> {
        Ok(self.scalar::<4>(i)?.map_or(default, i32::from_le_bytes))
    }

    /// A vector field: where its elements start and how many there are.
    fn vector(&self, i: usize) -> Result<Option<(usize, usize)>, ModelError> {
        let Some(at) = self.field(i)? else { return Ok(None) };
        let start = self.buf.follow(at)?;
        Ok(Some((start + 4, self.buf.u32(start)? as usize)))
    }

    fn bytes(&self, i: usize) -> Result<Option<&'a [u8]>, ModelError> {
        self.vector(i)?.map(|(start, len)| self.buf.slice(start, len)).transpose()
    }

    fn i32s(&self, i: usize) -> Result<Vec<i32>, ModelError> {
        let Some((start, len)) = self.vector(i)? else { return Ok(Vec::new()) };
        let bytes = self.buf.slice(start, len.checked_mul(4).ok_or_else(|| bad("a vector's length"))?)?;
        Ok(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    fn table(&self, i: usize) -> Result<Option<Table<'a>>, ModelError> {
        self.field(i)?.map(|at| Table::at(self.buf, self.buf.follow(at)?)).transpose()
    }

    fn tables(&self, i: usize) -> Result<Vec<Table<'a>>, ModelError> {
        let Some((start, len)) = self.vector(i)? else { return Ok(Vec::new()) };
        // Each element is an offset of four bytes from where it is stored.
        self.buf.slice(start, len.checked_mul(4).ok_or_else(|| bad("a vector's length"))?)?;
        (0..len).map(|k| Table::at(self.buf, self.buf.follow(start + 4 * k)?)).collect()
    }
}
