//! Model tests: the shipped models against TensorFlow's own reference outputs, run by each
//! runtime in every batch shape, and what ledtrad refuses to load and why.

use super::*;

const PROPENSITY: &[u8] = include_bytes!("../../../examples/models/propensity.tflite");
const PROPENSITY_REFERENCE: &str = include_str!("../../../examples/models/reference.json");
const LOGISTIC: &[u8] = include_bytes!("../../../examples/models/logistic.tflite");
const LOGISTIC_REFERENCE: &str = include_str!("../../../examples/models/reference-logistic.json");
const INT8: &[u8] = include_bytes!("../../../examples/models/propensity-int8.tflite");
const DYNAMIC: &[u8] = include_bytes!("../../../examples/models/propensity-dynamic.tflite");

/// Reference rows and TensorFlow's outputs for them.
fn build_reference(json: &str) -> (Vec<f32>, Vec<f32>, usize) {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let inputs = value["inputs"].as_array().unwrap();
    let width = inputs[0].as_array().unwrap().len();
    let rows = inputs.iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect();
    let outputs = value["outputs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    (rows, outputs, width)
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{what}: worst difference {worst} from TensorFlow's interpreter");
}

/// Checks `runtime` on the reference rows: as one batch, row by row, in batches that need
/// padding, and in a batch larger than every fixed plan.
fn check_against_reference(model: &ScoringModel, json: &str) {
    let (rows, want, width) = build_reference(json);
    let n = want.len();
    assert_close(&model.score(&rows, n).unwrap(), &want, "one batch");
    let single: Vec<f32> = rows.chunks(width).flat_map(|r| model.score(r, 1).unwrap()).collect();
    assert_close(&single, &want, "row by row");
    let three: Vec<f32> = rows.chunks(3 * width).flat_map(|r| model.score(r, r.len() / width).unwrap()).collect();
    assert_close(&three, &want, "batches of three, padded");
    let big: Vec<f32> = rows.iter().copied().cycle().take(5 * rows.len()).collect();
    let out = model.score(&big, 5 * n).unwrap();
    assert_close(&out, &want.iter().copied().cycle().take(5 * n).collect::<Vec<_>>(), "a batch of 320");
}

#[cfg(feature = "tract")]
#[test]
fn tract_matches_tensorflow_on_the_shipped_models() {
    let shape = inspect(PROPENSITY).unwrap();
    assert_eq!(shape.inputs, 20);
    assert!(shape.dynamic_batch);
    assert!(shape.ops.iter().any(|o| o == "FULLY_CONNECTED"), "{:?}", shape.ops);
    check_against_reference(&ScoringModel::load(RuntimeKind::Tract, PROPENSITY).unwrap(), PROPENSITY_REFERENCE);
    check_against_reference(&ScoringModel::load(RuntimeKind::Tract, LOGISTIC).unwrap(), LOGISTIC_REFERENCE);
    // Dynamic-range quantization keeps float32 inputs and outputs, so tract runs it.
    check_against_reference(&ScoringModel::load(RuntimeKind::Tract, DYNAMIC).unwrap(), PROPENSITY_REFERENCE);
}

#[test]
fn a_loaded_model_says_what_it_takes_and_refuses_rows_of_another_width() {
    for kind in RuntimeKind::ALL.into_iter().filter(|k| k.available()) {
        let model = ScoringModel::load(kind, PROPENSITY).unwrap();
        assert_eq!((model.kind(), model.runtime(), model.inputs()), (kind, kind.as_str(), 20));
        assert_eq!(model.shape(), &inspect(PROPENSITY).unwrap());
        let err = model.score(&[0.5; 39], 2).unwrap_err();
        assert!(matches!(err, ModelError::Run { batch: 2, .. }), "{err:?}");
        assert!(
            err.to_string().contains(kind.as_str()) && err.to_string().contains("39 values for 2 rows of 20"),
            "{err}"
        );
        assert_eq!(model.score(&[], 0).unwrap(), Vec::<f32>::new());
    }
}

#[test]
fn dense_matches_tensorflow_on_the_shipped_models() {
    check_against_reference(&ScoringModel::load(RuntimeKind::Dense, PROPENSITY).unwrap(), PROPENSITY_REFERENCE);
    check_against_reference(&ScoringModel::load(RuntimeKind::Dense, LOGISTIC).unwrap(), LOGISTIC_REFERENCE);
    check_against_reference(&ScoringModel::load(RuntimeKind::Dense, DYNAMIC).unwrap(), PROPENSITY_REFERENCE);
}

#[cfg(feature = "tract")]
#[test]
fn dense_gives_tracts_scores_on_every_batch_size() {
    let (dense, tract) = (
        ScoringModel::load(RuntimeKind::Dense, PROPENSITY).unwrap(),
        ScoringModel::load(RuntimeKind::Tract, PROPENSITY).unwrap(),
    );
    let (rows, _, width) = build_reference(PROPENSITY_REFERENCE);
    for n in [1, 2, 8, 9, 63, 64, 65, 256, 257, MAX_BATCH] {
        let batch: Vec<f32> = rows.iter().copied().cycle().take(n * width).collect();
        assert_close(&dense.score(&batch, n).unwrap(), &tract.score(&batch, n).unwrap(), &format!("a batch of {n}"));
    }
}

#[test]
fn dense_refuses_an_operator_it_does_not_run_and_says_what_runs_it() {
    // The int8 model's layers hold quantized weights (inspect refuses it first; the runtime on
    // its own must too).
    let err = runtime::load(RuntimeKind::Dense, INT8, 20).unwrap_err();
    assert!(matches!(err, ModelError::Load { runtime: "dense", .. }), "{err:?}");
    for part in ["stored as INT32", "float32", "tract"] {
        assert!(err.to_string().contains(part), "{part:?} missing from: {err}");
    }
    for bytes in [&b""[..], b"not a model", &PROPENSITY[..PROPENSITY.len() / 2], &[0xff; 64]] {
        assert!(runtime::load(RuntimeKind::Dense, bytes, 20).is_err());
    }
    let err = runtime::load(RuntimeKind::Dense, PROPENSITY, 19).unwrap_err();
    assert!(err.to_string().contains("takes 20 values where 19 come in"), "{err}");
}

#[test]
fn the_default_runtime_is_tract_where_built_and_dense_elsewhere() {
    let want = if cfg!(feature = "tract") { RuntimeKind::Tract } else { RuntimeKind::Dense };
    assert_eq!(RuntimeKind::default(), want);
    assert!(RuntimeKind::default().available());
    assert_eq!("dense".parse::<RuntimeKind>().unwrap(), RuntimeKind::Dense);
}

#[cfg(not(feature = "tract"))]
#[test]
fn a_build_without_tract_says_how_to_get_it() {
    let err = ScoringModel::load(RuntimeKind::Tract, PROPENSITY).unwrap_err();
    assert!(err.to_string().contains("--features tract") && err.to_string().contains("\"dense\""), "{err}");
}

#[cfg(feature = "tflite")]
#[test]
fn tensorflow_lite_runtime_matches_tensorflow_and_tract() {
    let tflite = ScoringModel::load(RuntimeKind::Tflite, PROPENSITY).unwrap();
    check_against_reference(&tflite, PROPENSITY_REFERENCE);
    check_against_reference(&ScoringModel::load(RuntimeKind::Tflite, LOGISTIC).unwrap(), LOGISTIC_REFERENCE);
    let tract = ScoringModel::load(RuntimeKind::Tract, PROPENSITY).unwrap();
    let (rows, want, _) = build_reference(PROPENSITY_REFERENCE);
    assert_close(
        &tflite.score(&rows, want.len()).unwrap(),
        &tract.score(&rows, want.len()).unwrap(),
        "tflite vs tract",
    );
}

#[cfg(feature = "tflite")]
#[test]
fn the_tflite_runtime_runs_dynamic_range_quantized_models_too() {
    let runtime = ScoringModel::load(RuntimeKind::Tflite, DYNAMIC).unwrap();
    check_against_reference(&runtime, PROPENSITY_REFERENCE);
}

#[cfg(feature = "tflite")]
#[test]
fn the_tflite_runtime_refuses_what_it_cannot_run_without_panicking() {
    for bytes in [&b""[..], b"not a model", &PROPENSITY[..PROPENSITY.len() / 2], &[0xff; 64], INT8] {
        let err = runtime::load(RuntimeKind::Tflite, bytes, 20).unwrap_err();
        assert!(matches!(err, ModelError::Load { runtime: "tflite", .. }), "{err:?}");
    }
    let err = runtime::load(RuntimeKind::Tflite, PROPENSITY, 19).unwrap_err();
    assert!(err.to_string().contains("rows of 20 values, not 19"), "{err}");
    let runtime = ScoringModel::load(RuntimeKind::Tflite, PROPENSITY).unwrap();
    let err = runtime.score(&[0.5; 39], 2).unwrap_err();
    assert!(matches!(err, ModelError::Run { runtime: "tflite", batch: 2, .. }), "{err:?}");
    assert_eq!(runtime.score(&[], 0).unwrap(), Vec::<f32>::new());
}

#[cfg(feature = "tflite")]
#[test]
fn the_tflite_runtime_gives_the_same_scores_from_many_threads_and_batch_sizes() {
    let tflite = ScoringModel::load(RuntimeKind::Tflite, PROPENSITY).unwrap();
    let tract = ScoringModel::load(RuntimeKind::Tract, PROPENSITY).unwrap();
    let (rows, _, width) = build_reference(PROPENSITY_REFERENCE);
    // Sizes on either side of the fixed ones, larger batches of changing size, and one over
    // what a catalogue holds.
    let sizes = [1, 2, 8, 9, 63, 64, 65, 256, 257, 300, 600, 257, MAX_BATCH, MAX_BATCH + 300];
    let batches: Vec<Vec<f32>> =
        sizes.iter().map(|&n| rows.iter().copied().cycle().take(n * width).collect()).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for (batch, &n) in batches.iter().zip(&sizes) {
                    let want = tract.score(batch, n).unwrap();
                    assert_close(&tflite.score(batch, n).unwrap(), &want, &format!("a batch of {n}"));
                }
            });
        }
    });
}

#[test]
fn a_fully_int8_model_is_refused_with_what_to_do_instead() {
    let err = inspect(INT8).unwrap_err();
    assert!(matches!(err, ModelError::FullyQuantized(_)), "{err:?}");
    let message = err.to_string();
    for part in ["fully int8-quantized", "INT8", "float32", "dynamic-range", "QUANTIZE"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn bytes_that_are_no_model_are_refused_without_panicking() {
    for bytes in [&b""[..], b"not a model", &PROPENSITY[..PROPENSITY.len() / 2], &[0xff; 64]] {
        let err = inspect(bytes).unwrap_err();
        assert!(matches!(err, ModelError::NotTflite(_) | ModelError::Shape(_)), "{err:?}");
    }
    let err = "onnx".parse::<RuntimeKind>().unwrap_err();
    assert!(err.to_string().contains("\"onnx\"") && err.to_string().contains("\"tract\""));
}

#[cfg(not(feature = "tflite"))]
#[test]
fn the_tflite_runtime_says_how_to_get_it() {
    let err = ScoringModel::load(RuntimeKind::Tflite, PROPENSITY).unwrap_err();
    assert!(err.to_string().contains("--features tflite"), "{err}");
}

#[test]
fn damaged_files_are_refused_without_panicking() {
    // Every truncation, and every byte of the file flipped in turn: the reader checks every
    // offset, so each is refused (or, where the byte did not matter, loaded), never a panic.
    for len in 0..LOGISTIC.len() {
        assert!(inspect(&LOGISTIC[..len]).is_err(), "a file cut at {len} bytes");
    }
    for at in 0..PROPENSITY.len() {
        let mut bytes = PROPENSITY.to_vec();
        bytes[at] ^= 0xa5;
        if inspect(&bytes).is_ok() {
            let _ = runtime::load(RuntimeKind::Dense, &bytes, 20);
        }
    }
}
