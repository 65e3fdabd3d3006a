//! The config's checks: every field's bad values refused with the field, the value and the fix.
use super::*;

const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn build_config_text(extra: &str) -> String {
    format!(
        "device_id = \"fridge-1\"\nkind = \"fridge\"\nfleet = \"home\"\nbroker = \"mqtt://127.0.0.1:1883\"\ndatabase = \"agent.db\"\napi = \"127.0.0.1:7878\"\n{extra}\n[[operator_keys]]\nid = \"op\"\npublic_key = \"{KEY}\"\n"
    )
}

#[test]
fn a_good_config_checks() {
    let config = Config::from_toml(&build_config_text("utc_offset_minutes = 60"), "agent.toml").unwrap();
    assert_eq!(config.kind, DeviceKind::Fridge);
    assert_eq!(config.local, LocalTime::fixed(3600));
    let zoned = Config::from_toml(&build_config_text("timezone = \"Europe/Stockholm\""), "agent.toml").unwrap();
    assert_eq!(zoned.local, LocalTime::zone(chrono_tz::Europe::Stockholm));
    assert_eq!(config.keys.len(), 1);
    assert_eq!((config.sharing, config.owner.as_str()), (Sharing::Shared, "owner"));
    let reader =
        Config::from_toml(&build_config_text("owner = \"anna\"").replace("\"fridge\"", "\"ereader\""), "agent.toml")
            .unwrap();
    assert_eq!((reader.sharing, reader.owner.as_str()), (Sharing::Personal, "anna"));
    // The device UI is off and moments are raised unless the config says otherwise.
    assert!(!config.ui);
    assert_eq!(config.moments, Some(MomentRules { low_below: 0.2 }));
    let quiet = Config::from_toml(&build_config_text("raise_moments = false\nui = true"), "agent.toml").unwrap();
    assert_eq!((quiet.moments, quiet.ui), (None, true));
    let socket =
        build_config_text("api_socket_mode = \"0660\"").replace("127.0.0.1:7878", "unix:/run/ledtrad/api.sock");
    let socket = Config::from_toml(&socket, "agent.toml").unwrap();
    assert_eq!(socket.api.map(|a| a.to_string()).as_deref(), Some("unix:/run/ledtrad/api.sock"));
}

#[test]
fn bad_values_name_the_field_value_and_fix() {
    let cases = [
        (build_config_text("").replace("\"fridge\"", "\"toaster\""), "field 'kind': \"toaster\": unknown device kind"),
        (build_config_text("").replace("127.0.0.1:7878", "0.0.0.0:7878"), "not a loopback address"),
        (build_config_text("").replace("mqtt://127.0.0.1:1883", "127.0.0.1"), "field 'broker'"),
        (build_config_text("").replace(KEY, "abcd"), "key 'op': has 2 bytes"),
        (build_config_text("utc_offset_minutes = 9999"), "9999 is outside"),
        (build_config_text("colour = 1"), "unknown field `colour`"),
        (build_config_text("sharing = \"family\""), "unknown variant `family`"),
        (build_config_text("report_epsilon = 0"), "field 'report_epsilon': 0 is outside 0.05..=10"),
        (build_config_text("timezone = \"Mars/Olympus\""), "field 'timezone': \"Mars/Olympus\" is not a time zone"),
        (build_config_text("camouflage_share = 0.9"), "field 'camouflage_share': 0.9 is outside 0..=0.5"),
        (build_config_text("model_runtime = \"onnx\""), "field 'model_runtime': unknown model runtime \"onnx\""),
        (build_config_text("owner = \"Anna B\""), "field 'owner': person id \"Anna B\""),
        (build_config_text("sensor_link = \"ttyS0\""), "field 'sensor_link': \"ttyS0\" is neither tcp://IP:PORT"),
        (build_config_text("sensor_baud = 12"), "field 'sensor_baud': 12 is outside 300..=4000000"),
        (
            build_config_text("offer_request_timeout_ms = 60000"),
            "field 'offer_request_timeout_ms': 60000 is outside 10..=5000",
        ),
        (build_config_text("inventory_low_below = 1.5"), "field 'inventory_low_below': 1.5 is outside 0 to 0.9"),
        (build_config_text("raise_moments = \"yes\""), "raise_moments"),
        (build_config_text("api_socket_mode = \"0660\""), "field 'api_socket_mode': applies to a Unix socket only"),
        (build_config_text("ui = 1"), "ui"),
    ];
    for (text, expected) in cases {
        let err = Config::from_toml(&text, "agent.toml").unwrap_err().to_string();
        assert!(err.starts_with("config 'agent.toml': "), "{err}");
        assert!(err.contains(expected), "{err} does not say {expected:?}");
    }
    let no_keys = build_config_text("").split("[[operator_keys]]").next().unwrap().to_string();
    let err = Config::from_toml(&no_keys, "agent.toml").unwrap_err().to_string();
    assert!(err.contains("ledtrad-op keygen"), "{err}");
}

#[test]
fn a_retired_key_is_refused_and_one_current_key_is_needed() {
    let retired = format!("{}retired = true\n", build_config_text(""));
    let err = Config::from_toml(&retired, "agent.toml").unwrap_err().to_string();
    assert!(err.contains("every pinned key is retired"), "{err}");
    let rotated = format!("{retired}[[operator_keys]]\nid = \"op-2\"\npublic_key = \"{KEY}\"\n");
    let config = Config::from_toml(&rotated, "agent.toml").unwrap();
    assert!(config.keys.is_retired(&KeyId::try_new("op").unwrap()));
    assert!(!config.keys.is_retired(&KeyId::try_new("op-2").unwrap()));
}

/// A password file in a fresh temporary directory, with its path as TOML would write it.
fn build_password_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqtt-password");
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn without_a_password_file_the_agent_logs_in_as_no_one() {
    let config = Config::from_toml(&build_config_text(""), "agent.toml").unwrap();
    assert!(config.mqtt.login.is_none());
}

#[test]
fn the_broker_login_is_the_device_id_and_the_file_line_unless_a_username_is_given() {
    let (_dir, path) = build_password_file("s3cret\n");
    let text = build_config_text(&format!("mqtt_password_file = {path:?}"));
    let login = Config::from_toml(&text, "agent.toml").unwrap().mqtt.login.unwrap();
    assert_eq!((login.username(), login.password()), ("fridge-1", "s3cret"));
    let text = build_config_text(&format!("mqtt_username = \"kitchen\"\nmqtt_password_file = {path:?}"));
    let login = Config::from_toml(&text, "agent.toml").unwrap().mqtt.login.unwrap();
    assert_eq!((login.username(), login.password()), ("kitchen", "s3cret"));
    // The checked config can be printed without the password.
    let shown = format!("{:?}", Config::from_toml(&text, "agent.toml").unwrap());
    assert!(shown.contains("kitchen") && !shown.contains("s3cret"), "{shown}");
}

#[test]
fn bad_broker_logins_name_the_field_value_and_fix() {
    let (dir, empty) = build_password_file("");
    let two_lines = dir.path().join("two-lines");
    std::fs::write(&two_lines, "s3cret\nother\n").unwrap();
    let missing = dir.path().join("missing");
    let (_good_dir, good) = build_password_file("s3cret");
    let cases = [
        (
            "mqtt_username = \"kitchen\"".to_string(),
            "field 'mqtt_username': \"kitchen\" is set but mqtt_password_file is not; add mqtt_password_file",
        ),
        (format!("mqtt_password_file = {empty:?}"), "the password file is empty"),
        (format!("mqtt_password_file = {:?}", two_lines.display().to_string()), "has more than one line"),
        (format!("mqtt_password_file = {:?}", missing.display().to_string()), "No such file"),
        ("mqtt_password_file = \"\"".to_string(), "field 'mqtt_password_file': is empty; give the path"),
        (
            format!("mqtt_username = \"\"\nmqtt_password_file = {good:?}"),
            "field 'mqtt_username': the broker username is empty",
        ),
        (
            format!("mqtt_username = \"a/b\"\nmqtt_password_file = {good:?}"),
            "field 'mqtt_username': broker username \"a/b\"",
        ),
        ("mqtt_password = \"s3cret\"".to_string(), "unknown field `mqtt_password`"),
    ];
    for (extra, expected) in cases {
        let err = Config::from_toml(&build_config_text(&extra), "agent.toml").unwrap_err().to_string();
        assert!(err.starts_with("config 'agent.toml': "), "{err}");
        assert!(err.contains(expected), "{err} does not say {expected:?}");
    }
    // A file the agent cannot read is named, with the fix.
    let err = Config::from_toml(
        &build_config_text(&format!("mqtt_password_file = {:?}", missing.display().to_string())),
        "agent.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("field 'mqtt_password_file': '{}'", missing.display())), "{err}");
    assert!(err.contains("give a file the agent can read"), "{err}");
    let err = Config::from_toml(&build_config_text(&format!("mqtt_password_file = {empty:?}")), "agent.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("field 'mqtt_password_file': '{empty}'")), "{err}");
}

#[test]
fn the_database_budget_defaults_to_4_mib_and_refuses_what_cannot_hold_the_ledger() {
    let config = Config::from_toml(&build_config_text(""), "agent.toml").unwrap();
    assert_eq!(config.database_budget, 4_194_304);
    let config = Config::from_toml(&build_config_text("database_budget_bytes = 1048576"), "agent.toml").unwrap();
    assert_eq!(config.database_budget, 1_048_576);
    for (value, said) in [("0", "0 is below 262144"), ("100000", "100000 is below 262144")] {
        let text = build_config_text(&format!("database_budget_bytes = {value}"));
        let err = Config::from_toml(&text, "agent.toml").unwrap_err().to_string();
        assert!(err.contains("field 'database_budget_bytes'") && err.contains(said), "{err}");
        assert!(err.contains("consent ledger") && err.contains("omit the field for the default 4194304"), "{err}");
    }
    let negative = Config::from_toml(&build_config_text("database_budget_bytes = -1"), "agent.toml").unwrap_err();
    assert!(negative.to_string().contains("database_budget_bytes"), "{negative}");
}

#[test]
fn tls_files_come_together_and_fit_the_brokers_scheme() {
    let tls_broker = |extra: &str| build_config_text(extra).replace("mqtt://127.0.0.1:1883", "mqtts://broker.example");
    let cases = [
        (
            tls_broker(""),
            "field 'broker': broker mqtts://broker.example:8883 is TLS (mqtts://) but no CA file is given; set ca_file",
        ),
        (tls_broker("cert_file = \"d.pem\""), "field 'key_file': is missing while cert_file is set"),
        (tls_broker("key_file = \"d.key\""), "field 'cert_file': is missing while key_file is set"),
        (
            tls_broker("cert_file = \"d.pem\"\nkey_file = \"d.key\""),
            "field 'ca_file': is missing while cert_file and key_file are set",
        ),
        (tls_broker("ca_file = \"/nowhere/ca.pem\""), "field 'ca_file': CA file '/nowhere/ca.pem': No such file"),
    ];
    for (text, expected) in cases {
        let err = Config::from_toml(&text, "agent.toml").unwrap_err().to_string();
        assert!(err.contains(expected), "{err}\nexpected: {expected}");
    }
}
