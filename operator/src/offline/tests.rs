// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::{load_model, sign_model};
use crate::sign::sign_rollout;
use crate::{load_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::envelope::Rollout;

const T0: UnixTime = UnixTime(1_795_428_000);

fn key() -> OperatorKey {
    OperatorKey::from_secret(KeyId::try_new("op").unwrap(), [7; 32])
}

fn options(version: u64) -> SignOptions {
    SignOptions {
        fleet: FleetId::try_new("home").unwrap(),
        version,
        issued_at: T0,
        expires_at: T0.plus_secs(30 * 86_400),
    }
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn catalogue_envelope(version: u64, rollout: Option<Rollout>) -> Vec<u8> {
    let catalogue = load_catalogue(&examples().join("catalogues/home.toml"), None).unwrap();
    sign_rollout(&catalogue, &key(), &options(version), rollout).unwrap()
}

#[test]
fn a_catalogue_and_a_model_envelope_say_what_they_are() {
    let path = Path::new("stage.env");
    let stage = inspect(&catalogue_envelope(4, Some(Rollout { share: 0.05 })), path).unwrap();
    assert_eq!(
        (stage.kind, stage.version, stage.fleet.as_str(), stage.key_id.as_str()),
        (Kind::Catalogue, 4, "home", "op")
    );
    assert_eq!((stage.share, stage.contents.as_str()), (Some(0.05), "15 offers"));
    let line = stage.describe();
    assert!(
        line.starts_with("catalogue version 4 of fleet 'home': 15 offers, for 5% of the devices, signed by key 'op'"),
        "{line}"
    );
    assert!(line.contains("at 2026-11-23T10:00:00Z, expires 2026-12-23T10:00:00Z, "), "{line}");
    assert_eq!(stage.topic(), Topic::Catalogue(stage.fleet.clone()));

    let models = examples().join("models");
    let model = load_model(&models.join("propensity.tflite"), &models.join("propensity.toml")).unwrap();
    let signed = inspect(&sign_model(&model, &key(), &options(2)).unwrap(), path).unwrap();
    assert_eq!((signed.kind, signed.version, signed.share), (Kind::Model, 2, None));
    assert!(signed.contents.starts_with("model 'propensity-mlp' ("), "{}", signed.contents);
    assert_eq!(signed.topic(), Topic::Model(signed.fleet.clone()));
}

#[test]
fn anything_else_is_not_an_envelope_and_the_error_names_the_file() {
    for junk in [&b""[..], b"hello", &catalogue_envelope(1, None)[..40]] {
        let err = inspect(junk, Path::new("junk.bin")).unwrap_err().to_string();
        assert!(err.starts_with("'junk.bin' is not a signed ledtrad envelope"), "{err}");
        assert!(err.contains("`ledtrad-op catalogue sign`"), "{err}");
    }
}

#[test]
fn an_expired_or_older_envelope_is_refused_with_the_fix() {
    let signed = inspect(&catalogue_envelope(3, None), Path::new("c.env")).unwrap();
    let reports = |applied, rollout_waiting| FleetReports { applied, rollout_waiting };
    assert!(signed.check(T0, reports(None, false)).is_ok());
    assert!(signed.check(T0, reports(Some(2), false)).is_ok());
    // The same version may widen a rollout that devices still wait for, never go back.
    assert!(signed.check(T0, reports(Some(3), true)).is_ok());
    assert!(signed.check(T0, reports(Some(4), true)).is_err());
    let err = signed.check(T0, reports(Some(3), false)).unwrap_err().to_string();
    assert!(err.contains("devices of fleet 'home' report catalogue version 3"), "{err}");
    assert!(err.contains("sign it again with --version 4 or more"), "{err}");
    let err = signed.check(T0.plus_secs(31 * 86_400), reports(None, false)).unwrap_err().to_string();
    assert!(err.starts_with("catalogue version 3 of fleet 'home' expired at 2026-12-23T10:00:00Z"), "{err}");
    assert!(err.contains("--expires-in-days"), "{err}");
}

#[test]
fn the_fleet_reports_count_only_its_own_devices_and_this_kind() {
    use ledtrad_protocol::status::Connection;
    let signed = inspect(&catalogue_envelope(3, None), Path::new("c.env")).unwrap();
    let status = |fleet: &str, catalogue_version, model_version, rollout_waiting| DeviceStatus {
        device: ledtrad_protocol::DeviceId::try_new("d1").unwrap(),
        fleet: FleetId::try_new(fleet).unwrap(),
        state: Connection::Online,
        agent_version: "test".into(),
        catalogue_version,
        last_refusal: None,
        model_version,
        last_model_refusal: None,
        rollout_waiting,
    };
    let statuses = [
        status("home", Some(2), Some(9), None),
        status("office", Some(7), None, None),
        status("home", Some(1), None, Some(3)),
    ];
    assert_eq!(signed.fleet_reports(&statuses), FleetReports { applied: Some(2), rollout_waiting: true });
}

#[test]
fn an_envelope_file_is_written_once_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalogue-5.env");
    let envelope = catalogue_envelope(5, None);
    write(&path, &envelope).unwrap();
    let (read_back, signed) = read(&path).unwrap();
    assert_eq!((read_back, signed.version), (envelope.clone(), 5));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let err = write(&path, b"other").unwrap_err().to_string();
    assert!(err.contains("exists already") && err.contains("choose another --out"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), envelope, "the first envelope is intact");
    let err = read(&dir.path().join("none.env")).unwrap_err().to_string();
    assert!(err.contains("none.env"), "{err}");
}
