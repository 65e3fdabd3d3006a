//! Catalogue and model envelopes as an agent gets them from the broker: any bytes as an
//! envelope; the same bytes as what an operator signed (so the fuzzer reaches what is decoded
//! only after the signature checks); and, where they read as a catalogue in JSON, that
//! catalogue signed and applied. A refusal is an answer; a panic is a finding.
#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::{Signer, SigningKey};
use ledtrad_engine::{DeviceProfile, Engine, LocalTime, Policy, RuntimeKind, TrustedKeys};
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::codec;
use ledtrad_protocol::envelope::{Envelope, SignedCatalogue, SIGNING_CONTEXT};
use ledtrad_protocol::model::MODEL_SIGNING_CONTEXT;
use ledtrad_protocol::{DeviceId, DeviceKind, FleetId, KeyId, UnixTime};
use libfuzzer_sys::fuzz_target;

const NOW: UnixTime = UnixTime(1_795_428_000);

static KEY: LazyLock<SigningKey> = LazyLock::new(|| SigningKey::from_bytes(&[1; 32]));

fn engine() -> Engine {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op").unwrap(), KEY.verifying_key());
    let profile = DeviceProfile {
        device: DeviceId::try_new("fuzz").unwrap(),
        kind: DeviceKind::Fridge,
        fleet: FleetId::try_new("home").unwrap(),
        local: LocalTime::fixed(0),
        camouflage_share: 0.0,
        // The device build's runtime: its file reader and layers take the bytes as they come.
        model_runtime: RuntimeKind::Dense,
        policy: Policy::Clues,
    };
    Engine::new(profile, keys)
}

/// `signed` in an envelope signed by the trusted key in `context`.
fn envelope(context: &[u8], signed: &[u8]) -> Vec<u8> {
    let signature = KEY.sign(&Envelope::signing_input_in(context, signed)).to_bytes().to_vec();
    codec::to_postcard(&Envelope { key_id: KeyId::try_new("op").unwrap(), signed: signed.to_vec(), signature })
}

fuzz_target!(|data: &[u8]| {
    let mut engine = engine();
    let _ = engine.handle_catalogue(data, NOW);
    let _ = engine.handle_model(data, NOW);
    let _ = engine.handle_catalogue(&envelope(SIGNING_CONTEXT, data), NOW);
    let _ = engine.handle_model(&envelope(MODEL_SIGNING_CONTEXT, data), NOW);
    if let Ok(catalogue) = codec::from_json::<Catalogue>(data, "catalogue") {
        let signed = SignedCatalogue {
            fleet: FleetId::try_new("home").unwrap(),
            version: 1,
            issued_at: NOW,
            expires_at: NOW.plus_secs(86_400),
            key_id: KeyId::try_new("op").unwrap(),
            catalogue,
            rollout: None,
        };
        let _ = engine.handle_catalogue(&envelope(SIGNING_CONTEXT, &codec::to_postcard(&signed)), NOW);
    }
});
