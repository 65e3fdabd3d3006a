//! Compiled catalogues shared between the engines of one process: each engine still checks
//! the envelope itself, and decides as it would alone.

use super::*;
use crate::share::SharedCatalogues;

fn sharing(shared: &SharedCatalogues) -> Engine {
    let mut engine = build_engine(DeviceKind::Fridge);
    engine.share_catalogues(shared.clone());
    engine
}

#[test]
fn engines_sharing_a_catalogue_hold_one_compiled_copy_and_decide_as_alone() {
    let shared = SharedCatalogues::new();
    let (mut first, mut second, mut alone) = (sharing(&shared), sharing(&shared), build_engine(DeviceKind::Fridge));
    for engine in [&mut first, &mut second, &mut alone] {
        engine.handle_catalogue(&good_envelope(1), NOW).unwrap();
        engine.handle_signal(butter(0.05), NOW);
    }
    assert!(std::ptr::eq(first.catalogue().unwrap(), second.catalogue().unwrap()), "one compiled copy");
    assert!(!std::ptr::eq(first.catalogue().unwrap(), alone.catalogue().unwrap()));
    assert_eq!(shared.held(), 1);
    let decided = first.decide(Moment::DoorOpened, NOW, Draw::NONE).clone();
    assert!(decided.shown.is_some(), "low butter brings an offer");
    assert_eq!(decided, alone.decide(Moment::DoorOpened, NOW, Draw::NONE).clone());
}

#[test]
fn an_engine_that_does_not_trust_the_key_refuses_a_catalogue_another_compiled() {
    let shared = SharedCatalogues::new();
    let mut trusting = sharing(&shared);
    trusting.handle_catalogue(&good_envelope(1), NOW).unwrap();
    let mut untrusting = Engine::new(trusting.profile().clone(), TrustedKeys::new());
    untrusting.share_catalogues(shared.clone());
    let refused = untrusting.handle_catalogue(&good_envelope(1), NOW);
    assert!(matches!(refused, Err(Refusal::UnknownKey { .. })), "{refused:?}");
    assert!(untrusting.catalogue().is_none());
}

#[test]
fn a_new_version_is_compiled_apart_and_the_old_one_forgotten_once_no_engine_holds_it() {
    let shared = SharedCatalogues::new();
    let (mut first, mut second) = (sharing(&shared), sharing(&shared));
    first.handle_catalogue(&good_envelope(1), NOW).unwrap();
    second.handle_catalogue(&good_envelope(1), NOW).unwrap();
    first.handle_catalogue(&good_envelope(2), NOW).unwrap();
    assert_eq!(shared.held(), 2, "version 1 is still held by the second engine");
    assert_eq!((first.catalogue().unwrap().version, second.catalogue().unwrap().version), (2, 1));
    second.handle_catalogue(&good_envelope(2), NOW).unwrap();
    assert!(std::ptr::eq(first.catalogue().unwrap(), second.catalogue().unwrap()));
    assert_eq!(shared.held(), 1);
}
