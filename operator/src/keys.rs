//! Operator signing keys. A key is a pair of files: `ID.key` (the secret, readable only by its
//! owner) and `ID.pub` (the public half, in the exact form an agent config pins it).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ledtrad_protocol::KeyId;
use serde::{Deserialize, Serialize};

/// An operator's signing key with its id.
#[derive(Clone)]
pub struct OperatorKey {
    /// The id agents pin the public key under.
    pub id: KeyId,
    /// The secret key.
    pub signing: SigningKey,
}

impl std::fmt::Debug for OperatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorKey").field("id", &self.id).field("public_key", &self.public_hex()).finish()
    }
}

/// A problem with key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A key file's content is not a key.
    #[error("{path}: not an operator key file ({detail}); make one with `ledtrad-op keygen --out DIR`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key file already exists.
    #[error("{0} already exists; choose another --id or --out, keys are never overwritten")]
    Exists(PathBuf),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    id: KeyId,
    secret_key: String,
}

/// The public half as an agent config pins it (`[[operator_keys]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    /// The key id.
    pub id: KeyId,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

impl OperatorKey {
    /// A key from 32 secret bytes (from a random source, or fixed in tests).
    pub fn from_secret(id: KeyId, secret: [u8; 32]) -> Self {
        Self { id, signing: SigningKey::from_bytes(&secret) }
    }

    /// A new random key.
    pub fn generate(id: KeyId) -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::from_secret(id, secret)
    }

    /// The public key in hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().to_bytes())
    }

    /// The entry an agent config pins.
    pub fn public_entry(&self) -> PublicKeyEntry {
        PublicKeyEntry { id: self.id.clone(), public_key: self.public_hex() }
    }

    /// Writes `ID.key` (mode 0600) and `ID.pub` into `dir`, refusing to overwrite.
    pub fn save(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let secret_path = dir.join(format!("{}.key", self.id));
        let public_path = dir.join(format!("{}.pub", self.id));
        for p in [&secret_path, &public_path] {
            if p.exists() {
                return Err(KeyError::Exists(p.clone()));
            }
        }
        let secret = SecretFile { id: self.id.clone(), secret_key: hex::encode(self.signing.to_bytes()) };
        let secret_text = format!(
            "# ledtrad operator secret key. Keep it private; never copy it to devices.\n{}",
            toml::to_string(&secret).unwrap_or_default()
        );
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&secret_path).map_err(io(&secret_path))?;
        file.write_all(secret_text.as_bytes()).map_err(io(&secret_path))?;
        file.sync_all().map_err(io(&secret_path))?;
        let public_text = format!(
            "# ledtrad operator public key '{}': append this file to each agent config.\n[[operator_keys]]\n{}",
            self.id,
            toml::to_string(&self.public_entry()).unwrap_or_default()
        );
        fs::write(&public_path, public_text).map_err(io(&public_path))?;
        Ok((secret_path, public_path))
    }

    /// Loads a public key file written by [`OperatorKey::save`] (`ID.pub`).
    pub fn load_public(path: &Path) -> Result<PublicKeyEntry, KeyError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PublicFile {
            operator_keys: Vec<PublicKeyEntry>,
        }
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
        let format = |detail: String| KeyError::Format { path: path.into(), detail };
        let file: PublicFile = toml::from_str(&text).map_err(|e| format(e.message().to_string()))?;
        match <[PublicKeyEntry; 1]>::try_from(file.operator_keys) {
            Ok([entry]) => Ok(entry),
            Err(entries) => Err(format(format!("expected one [[operator_keys]] entry, found {}", entries.len()))),
        }
    }

    /// Loads a secret key file written by [`OperatorKey::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.into(), source })?;
        let format = |detail: String| KeyError::Format { path: path.into(), detail };
        let file: SecretFile = toml::from_str(&text).map_err(|e| format(e.message().to_string()))?;
        let bytes = hex::decode(&file.secret_key).map_err(|e| format(format!("secret_key: {e}")))?;
        let secret: [u8; 32] = bytes.try_into().map_err(|_| format("secret_key must be 64 hex digits".into()))?;
        Ok(Self::from_secret(file.id, secret))
    }
}

/// The steps of rotating from `old` to `new`, with the agent config entries for each: pin both,
/// sign with the new one, then retire the old one once every device has what it signs.
pub fn rotation_steps(new: &PublicKeyEntry, new_secret: &Path, old: &PublicKeyEntry) -> String {
    let entry = |e: &PublicKeyEntry, retired: bool| {
        format!(
            "[[operator_keys]]\nid = \"{}\"\npublic_key = \"{}\"\n{}",
            e.id,
            e.public_key,
            if retired { "retired = true\n" } else { "" }
        )
    };
    format!(
        "Rotating from key '{old_id}' to key '{new_id}':\n\n\
         1. Pin both keys in every agent config (agents accept both) and restart the agents:\n\n{both}{old_entry}\n\
         2. Sign everything from now on with the new key: --key {secret}\n   \
         (catalogue push and model push; the next version re-signs what devices have).\n\n\
         3. Once every device has applied what the new key signed, retire the old key, so that a\n   \
         leaked old key can sign nothing devices accept:\n\n{both}{retired}\n\
         Keep step 3's entry rather than deleting it: a retired key is refused by name, an unknown\n\
         one only for want of a pin.\n",
        old_id = old.id,
        new_id = new.id,
        both = entry(new, false),
        old_entry = entry(old, false),
        secret = new_secret.display(),
        retired = entry(old, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_keys_load_back_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let key = OperatorKey::from_secret(KeyId::try_new("op-1").unwrap(), [7; 32]);
        let (secret, public) = key.save(dir.path()).unwrap();
        let loaded = OperatorKey::load(&secret).unwrap();
        assert_eq!(loaded.public_hex(), key.public_hex());
        #[derive(Deserialize)]
        struct AgentKeys {
            operator_keys: Vec<PublicKeyEntry>,
        }
        let pinned: AgentKeys = toml::from_str(&fs::read_to_string(public).unwrap()).unwrap();
        assert_eq!(pinned.operator_keys, vec![key.public_entry()]);
        assert!(matches!(key.save(dir.path()), Err(KeyError::Exists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_broken_key_file_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        fs::write(&path, "id = \"op-1\"\nsecret_key = \"abcd\"\n").unwrap();
        let err = OperatorKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.key") && err.contains("64 hex digits"), "{err}");
    }
}
