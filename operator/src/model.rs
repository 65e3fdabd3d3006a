//! Scoring models for fleets: reading a `.tflite` file and its manifest, checking them the way
//! devices will (every problem at once, with the fix), and signing them for the model topic.

use std::path::{Path, PathBuf};

use ledtrad_model::{inspect, ModelShape, RuntimeKind, ScoringModel};
use ledtrad_protocol::model::{ModelManifest, SignedModel, MAX_MODEL_ENVELOPE_BYTES, MODEL_SIGNING_CONTEXT};

use crate::keys::OperatorKey;
use crate::sign::{sign_envelope, SignError, SignOptions};

/// A model and its manifest, checked.
#[derive(Debug, Clone)]
pub struct CheckedModel {
    /// The manifest.
    pub manifest: ModelManifest,
    /// The TensorFlow Lite file's bytes.
    pub tflite: Vec<u8>,
    /// What the file says about itself.
    pub shape: ModelShape,
    /// The propensity the model gives a row of every input's `missing` value (a smoke run on
    /// the device's default runtime).
    pub baseline: f32,
}

/// A model that cannot be pushed.
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// A file could not be read.
    #[error("'{path}': {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Everything wrong with the model and its manifest.
    #[error("model '{}': {} problem(s):\n{}", path.display(), problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Problems {
        /// The model file.
        path: PathBuf,
        /// Every problem, each naming the file and field and saying what would fix it.
        problems: Vec<String>,
    },
}

/// The manifest that goes with `model` when none is named: the same file name with `.toml`.
pub fn default_manifest(model: &Path) -> PathBuf {
    model.with_extension("toml")
}

/// Reads and checks a model and its manifest: the manifest's inputs, the file's structure
/// (one float32 `[batch, n]` input, one `[batch, 1]` output, no full integer quantization),
/// that the two agree, and that the default runtime loads and runs it.
pub fn load_model(model: &Path, manifest: &Path) -> Result<CheckedModel, ModelLoadError> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| ModelLoadError::Io { path: path.into(), source });
    let tflite = read(model)?;
    let text = read(manifest)?;
    check_model(model, tflite, manifest, &text)
}

/// Checks a model's bytes and its manifest's text as [`load_model`] does; the paths name them
/// in problems.
pub fn check_model(
    model: &Path,
    tflite: Vec<u8>,
    manifest: &Path,
    text: &[u8],
) -> Result<CheckedModel, ModelLoadError> {
    let mut problems = Vec::new();
    let manifest_name = manifest.display();
    let parsed: Option<ModelManifest> = match std::str::from_utf8(text) {
        Err(e) => {
            problems.push(format!("manifest '{manifest_name}': not UTF-8 text ({e})"));
            None
        }
        Ok(text) if text.trim_start().starts_with('{') => serde_json::from_str(text)
            .map_err(|e| problems.push(format!("manifest '{manifest_name}': not valid JSON: {e}")))
            .ok(),
        Ok(text) => toml::from_str(text)
            .map_err(|e| problems.push(format!("manifest '{manifest_name}': not valid TOML: {e}")))
            .ok(),
    };
    if let Some(m) = &parsed {
        for (field, message) in m.problems() {
            problems.push(format!("manifest '{manifest_name}', field '{field}': {message}"));
        }
    }
    let shape = inspect(&tflite).map_err(|e| problems.push(format!("model file: {e}"))).ok();
    if let (Some(m), Some(shape)) = (&parsed, &shape) {
        if shape.inputs != m.inputs.len() {
            problems.push(format!(
                "manifest '{manifest_name}': the model takes {} inputs but the manifest lists {}; list one [[input]] per model input, in order",
                shape.inputs,
                m.inputs.len()
            ));
        }
        if !shape.dynamic_batch {
            problems.push(
                "model file: the input's batch dimension is fixed; convert with an input signature of shape [None, n] so devices can score all candidates in one call"
                    .into(),
            );
        }
    }
    let (Some(manifest), Some(shape), true) = (parsed, shape, problems.is_empty()) else {
        return Err(ModelLoadError::Problems { path: model.into(), problems });
    };
    let row: Vec<f32> = manifest.inputs.iter().map(|i| i.missing as f32).collect();
    let baseline = ScoringModel::load(RuntimeKind::Tract, &tflite)
        .and_then(|model| model.score(&row, 1))
        .map_err(|e| ModelLoadError::Problems { path: model.into(), problems: vec![format!("model file: {e}")] })?;
    let baseline = baseline.first().copied().unwrap_or(f32::NAN);
    if !(0.0..=1.0).contains(&baseline) {
        return Err(ModelLoadError::Problems {
            path: model.into(),
            problems: vec![format!(
                "model file: a row of missing values gives {baseline}, not a propensity in [0, 1]; end the model with a sigmoid"
            )],
        });
    }
    Ok(CheckedModel { manifest, tflite, shape, baseline })
}

/// Signs a checked model: the canonical (postcard) encoding of a [`SignedModel`], with an
/// Ed25519 signature in the model's own signing context.
pub fn sign_model(model: &CheckedModel, key: &OperatorKey, options: &SignOptions) -> Result<Vec<u8>, SignError> {
    let signed = SignedModel {
        fleet: options.fleet.clone(),
        version: options.version,
        issued_at: options.issued_at,
        expires_at: options.expires_at,
        key_id: key.id.clone(),
        manifest: model.manifest.clone(),
        tflite: model.tflite.clone(),
    };
    let envelope = sign_envelope(&signed, MODEL_SIGNING_CONTEXT, key, options)?;
    if envelope.len() > MAX_MODEL_ENVELOPE_BYTES {
        return Err(SignError::ModelOversize { size: envelope.len() });
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_engine::trust::open_signed;
    use ledtrad_engine::TrustedKeys;
    use ledtrad_protocol::{FleetId, KeyId, UnixTime};

    fn models() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models")
    }

    #[test]
    fn the_shipped_model_checks_signs_and_verifies() {
        let path = models().join("propensity.tflite");
        let model = load_model(&path, &default_manifest(&path)).unwrap();
        assert_eq!(model.manifest.inputs.len(), 20);
        assert!((0.0..=1.0).contains(&model.baseline));
        let key = OperatorKey::from_secret(KeyId::try_new("op").unwrap(), [5; 32]);
        let options = SignOptions {
            fleet: FleetId::try_new("home").unwrap(),
            version: 4,
            issued_at: UnixTime(100),
            expires_at: UnixTime(1000),
        };
        let envelope = sign_model(&model, &key, &options).unwrap();
        let mut keys = TrustedKeys::new();
        keys.insert(key.id.clone(), key.signing.verifying_key());
        let signed: SignedModel = open_signed(&envelope, &keys, &options.fleet, Some(3), UnixTime(500)).unwrap();
        assert_eq!((signed.version, signed.tflite), (4, model.tflite));
        assert_eq!(ledtrad_protocol::envelope::Envelope::claimed_version(&envelope), Some(4));
    }

    #[test]
    fn every_problem_is_listed_with_its_fix() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("m.toml");
        std::fs::write(
            &manifest,
            "name = \"m\"\n[[input]]\nname = \"fridge.mood\"\n[[input]]\nname = \"offer.value\"\n",
        )
        .unwrap();
        let err = load_model(&models().join("propensity.tflite"), &manifest).unwrap_err().to_string();
        assert!(err.contains("2 problem(s)"), "{err}");
        assert!(err.contains("field 'input[0].name'") && err.contains("fridge.mood"), "{err}");
        assert!(err.contains("takes 20 inputs but the manifest lists 2"), "{err}");
        let int8 = models().join("propensity-int8.tflite");
        let err = load_model(&int8, &models().join("propensity.toml")).unwrap_err().to_string();
        assert!(err.contains("fully int8-quantized") && err.contains("float32"), "{err}");
        let missing = load_model(&dir.path().join("none.tflite"), &manifest).unwrap_err().to_string();
        assert!(missing.contains("none.tflite"), "{missing}");
    }
}
