//! Catalogue trust: signatures, keys, versions, expiry, size limits and staged rollouts.

use super::*;

#[test]
fn a_good_catalogue_applies() {
    let mut engine = build_engine(DeviceKind::Fridge);
    let applied = engine.handle_catalogue(&good_envelope(3), NOW).unwrap();
    assert_eq!(applied.version, 3);
    assert_eq!(applied.offers.len(), 3);
}

#[test]
fn every_bad_envelope_is_refused_and_the_last_good_one_stays() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(5), NOW).unwrap();
    let mut tampered = good_envelope(6);
    let n = tampered.len();
    tampered[n - 70] ^= 0x01;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tampered, "bad signature"),
        (build_envelope(&build_key(2), "op-1", "home", 6, NOW.plus_secs(60)), "bad signature"),
        (build_envelope(&build_key(1), "op-9", "home", 6, NOW.plus_secs(60)), "unknown key 'op-9'"),
        (build_envelope(&build_key(1), "op-1", "office", 6, NOW.plus_secs(60)), "fleet 'office'"),
        (good_envelope(5), "catalogue version 5 is already applied"),
        (
            sign(&build_key(1), "op-1", "home", 5, NOW.plus_secs(60), {
                let mut other = build_catalogue();
                other.offers.pop();
                other
            }),
            "version 5 is not newer than the applied version 5",
        ),
        (good_envelope(4), "version 4 is not newer"),
        (build_envelope(&build_key(1), "op-1", "home", 6, NOW), "expired at 2026-11-23T18:00:00Z"),
        (vec![0xff; 10], "catalogue envelope: not valid postcard"),
        (signed_bytes(&build_key(1), "op-1", b"\x04home\x06"), "signed by a ledtrad-op of another version"),
        (vec![0; ledtrad_protocol::envelope::MAX_ENVELOPE_BYTES + 1], "over the limit"),
    ];
    for (payload, expected) in cases {
        let err = engine.handle_catalogue(&payload, NOW).unwrap_err();
        assert!(err.to_string().contains(expected), "{err} does not say {expected:?}");
        assert_eq!(engine.catalogue().map(|c| c.version), Some(5));
    }
}

#[test]
fn a_catalogue_signed_by_a_retired_key_is_refused_though_its_signature_holds() {
    let mut keys = TrustedKeys::new();
    keys.insert(KeyId::try_new("op-1").unwrap(), build_key(1).verifying_key());
    keys.insert(KeyId::try_new("op-2").unwrap(), build_key(2).verifying_key());
    keys.retire(KeyId::try_new("op-1").unwrap());
    let mut engine = Engine::new(build_engine(DeviceKind::Fridge).profile().clone(), keys);
    let err = engine.handle_catalogue(&good_envelope(1), NOW).unwrap_err();
    assert_eq!(err.to_string(), "catalogue signed with retired key 'op-1'; sign it with a current operator key");
    assert!(engine.catalogue().is_none());
    let current = build_envelope(&build_key(2), "op-2", "home", 1, NOW.plus_secs(60));
    assert_eq!(engine.handle_catalogue(&current, NOW).unwrap().version, 1);
}

#[test]
fn an_expired_catalogue_is_not_used_even_if_it_arrived_in_time() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let after = NOW.plus_secs(7 * 86_400);
    let decision = engine.decide_traced(Moment::DoorOpened, after, Draw::NONE).clone();
    assert!(decision.shown.is_none());
    let expires = NOW.plus_secs(7 * 86_400);
    assert!(decision
        .candidates
        .iter()
        .all(|c| c.verdict == Verdict::Rejected { reason: Rejection::CatalogueExpired { at: expires } }));
}

#[test]
fn the_version_floor_refuses_old_catalogues_after_a_restart() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.set_version_floor(7);
    let err = engine.handle_catalogue(&good_envelope(7), NOW).unwrap_err();
    assert!(err.to_string().contains("version 7 is not newer than the applied version 7"), "{err}");
    assert_eq!(engine.handle_catalogue(&good_envelope(8), NOW).unwrap().version, 8);
}

#[test]
fn a_signed_catalogue_with_too_many_offers_is_refused_and_the_last_good_one_stays() {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let mut catalogue = build_catalogue();
    let template = catalogue.offers[1].clone();
    catalogue.offers = (0..=ledtrad_protocol::catalogue::MAX_OFFERS)
        .map(|i| ledtrad_protocol::catalogue::Offer {
            id: ledtrad_protocol::OfferId::try_new(format!("care-{i}")).unwrap(),
            ..template.clone()
        })
        .collect();
    let envelope = sign(&build_key(1), "op-1", "home", 2, NOW.plus_secs(86_400), catalogue);
    let err = engine.handle_catalogue(&envelope, NOW).unwrap_err().to_string();
    assert!(err.contains("2001 offers is over the limit of 2000"), "{err}");
    assert_eq!(engine.catalogue().map(|c| c.version), Some(1));
}

/// `catalogue` signed as `version` for the test fleet, in a rollout to `share` (`None`: all).
fn rollout_envelope(version: u64, share: Option<f64>, catalogue: Catalogue) -> Vec<u8> {
    let rollout = share.map(|share| ledtrad_protocol::envelope::Rollout { share });
    sign_rollout(&build_key(1), "op-1", "home", version, NOW.plus_secs(30 * 86_400), catalogue, rollout)
}

#[test]
fn a_staged_rollout_reaches_its_share_widens_without_reapplying_and_completes() {
    let mut next = build_catalogue();
    next.offers[1].value = 0.9;
    let mut engines: Vec<Engine> =
        (0..400).map(|i| build_engine_for(&format!("device-{i}"), build_catalogue())).collect();
    let versions = |engines: &[Engine]| engines.iter().filter(|e| e.catalogue().unwrap().version == 2).count();
    // A 10% canary: about a tenth apply version 2, the rest keep version 1 and say why.
    for e in &mut engines {
        match e.handle_catalogue(&rollout_envelope(2, Some(0.1), next.clone()), NOW) {
            Ok(_) => {}
            Err(refusal) => {
                assert!(refusal.is_benign(), "{refusal}");
                assert_eq!(
                    refusal.to_string(),
                    "catalogue version 2 is rolling out to 10% of the fleet, not yet to this device"
                );
            }
        }
    }
    let canary = versions(&engines);
    assert!((20..=60).contains(&canary), "{canary} of 400 in a 10% canary");
    let in_canary: Vec<bool> = engines.iter().map(|e| e.catalogue().unwrap().version == 2).collect();
    // Widened to half: the canary keeps it (the same version again is no refusal), others join.
    for (e, was_in) in engines.iter_mut().zip(&in_canary) {
        match e.handle_catalogue(&rollout_envelope(2, Some(0.5), next.clone()), NOW) {
            Ok(_) => assert!(!was_in),
            Err(refusal) => {
                assert!(refusal.is_benign(), "{refusal}");
                assert_eq!(*was_in, matches!(refusal, Refusal::AlreadyApplied { version: 2 }));
            }
        }
    }
    let half = versions(&engines);
    assert!((160..=240).contains(&half) && half > canary, "{half} of 400 at 50%");
    // Completed: everyone has version 2.
    for e in &mut engines {
        let _ = e.handle_catalogue(&rollout_envelope(2, None, next.clone()), NOW);
    }
    assert_eq!(versions(&engines), 400);
    // Other offers under a version already applied are still a rollback.
    let err = engines[0].handle_catalogue(&rollout_envelope(2, None, build_catalogue()), NOW).unwrap_err();
    assert!(!err.is_benign() && err.to_string().contains("version 2 is not newer"), "{err}");
}

#[test]
fn an_aborted_rollout_brings_every_device_back_to_the_previous_offers_with_a_higher_version() {
    let mut next = build_catalogue();
    next.offers[1].value = 0.9;
    let mut engines: Vec<Engine> =
        (0..50).map(|i| build_engine_for(&format!("device-{i}"), build_catalogue())).collect();
    for e in &mut engines {
        let _ = e.handle_catalogue(&rollout_envelope(2, Some(0.5), next.clone()), NOW);
    }
    // The abort: the previous offers, signed as version 3, for all.
    for e in &mut engines {
        let applied = e.handle_catalogue(&rollout_envelope(3, None, build_catalogue()), NOW).unwrap();
        assert_eq!((applied.version, applied.offers[1].offer.value), (3, 0.5));
    }
}

/// An envelope over `signed` bytes of any shape, with a good signature by `key`.
fn signed_bytes(key: &ed25519_dalek::SigningKey, key_id: &str, signed: &[u8]) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let signature = key.sign(&Envelope::signing_input(signed)).to_bytes().to_vec();
    let key_id = KeyId::try_new(key_id).unwrap();
    codec::to_postcard(&Envelope { key_id, signed: signed.to_vec(), signature })
}
