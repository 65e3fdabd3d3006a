//! Fixtures shared by the engine's property tests: an engine with a signed catalogue.

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_engine::{DeviceProfile, Engine, LocalTime, Policy, TrustedKeys};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::codec;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue};
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId, KeyId, UnixTime};

/// When every property test starts: 2026-11-23T10:00:00Z.
pub const START: UnixTime = UnixTime(1_795_428_000);

/// An engine of `kind` at UTC`offset`, with `catalogue` signed and applied (valid 400 days).
#[allow(dead_code)] // not every test file uses every fixture
pub fn build_engine(kind: DeviceKind, offset_secs: i32, camouflage_share: f64, catalogue: Catalogue) -> Engine {
    build_engine_at(kind, LocalTime::fixed(offset_secs), camouflage_share, catalogue)
}

/// An engine of `kind` in `local` time, with `catalogue` signed and applied (valid 400 days).
#[allow(dead_code)] // not every test file uses every fixture
pub fn build_engine_at(kind: DeviceKind, local: LocalTime, camouflage_share: f64, catalogue: Catalogue) -> Engine {
    build_device_engine("d-prop", kind, local, camouflage_share, Policy::Clues, catalogue)
}

/// [`build_engine_at`] for the device pseudonym `device`.
pub fn build_device_engine(
    device: &str,
    kind: DeviceKind,
    local: LocalTime,
    camouflage_share: f64,
    policy: Policy,
    catalogue: Catalogue,
) -> Engine {
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op").unwrap(), key.verifying_key());
    let fleet = FleetId::try_new("home").unwrap();
    let profile = DeviceProfile {
        device: DeviceId::try_new(device).unwrap(),
        kind,
        fleet: fleet.clone(),
        local,
        camouflage_share,
        model_runtime: ledtrad_engine::RuntimeKind::Tract,
        policy,
    };
    let mut engine = Engine::new(profile, keys);
    let signed = SignedCatalogue {
        fleet,
        version: 1,
        issued_at: START,
        expires_at: START.plus_secs(400 * 86_400),
        key_id: KeyId::try_new("op").unwrap(),
        catalogue,
        rollout: None,
    };
    let signed = codec::to_postcard(&signed);
    let signature = key.sign(&Envelope::signing_input(&signed)).to_bytes().to_vec();
    let envelope = codec::to_postcard(&Envelope { key_id: KeyId::try_new("op").unwrap(), signed, signature });
    engine.handle_catalogue(&envelope, START).unwrap();
    engine
}

/// The example catalogue shipped in `examples/catalogues/home.toml`.
#[allow(dead_code)] // not every test file uses every fixture
pub fn example_catalogue() -> Catalogue {
    let text = include_str!("../../../../examples/catalogues/home.toml");
    let value = serde_json::to_value(text.parse::<toml::Table>().unwrap()).unwrap();
    Catalogue::from_value(value).unwrap()
}
