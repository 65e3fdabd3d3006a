//! The `ledtrad-op` command line: exit codes and what it prints.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::path::Path;

mod common;
use common::op;

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogues/home.toml").display().to_string()
}

#[test]
fn check_prints_a_one_line_summary_for_a_good_catalogue() {
    let (code, stdout, _) = op(&["catalogue", "check", &example()]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ok: ") && stdout.contains("15 offers"), "{stdout}");
    assert!(stdout.contains("1 of them journeys"), "{stdout}");
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spring.toml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replacen("category = \"food.dairy\"", "category = \"health.diet\"", 1)
        .replacen("question = \"Could a weekly milk subscription save you a trip?\"", "question = \"Buy milk.\"", 1);
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = op(&["catalogue", "check", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("2 problem(s)"), "{stderr}");
    assert!(
        stderr.contains("offer 'butter-refill', field 'category': category \"health.diet\" is sensitive"),
        "{stderr}"
    );
    assert!(stderr.contains("offer 'milk-subscription', field 'question'"), "{stderr}");
}

#[test]
fn a_missing_file_or_bad_argument_exits_2_with_the_reason() {
    let (code, _, stderr) = op(&["catalogue", "check", "no-such.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no-such.toml"), "{stderr}");
    let (code, _, stderr) =
        op(&["catalogue", "push", &example(), "--fleet", "Home Fleet", "--key", "k", "--version", "1"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("fleet id \"Home Fleet\""), "{stderr}");
}

#[test]
fn keygen_writes_a_secret_and_a_pinnable_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keys");
    let (code, stdout, _) = op(&["keygen", "--out", out.to_str().unwrap(), "--id", "op-2026"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("[[operator_keys]]"));
    let public = std::fs::read_to_string(out.join("op-2026.pub")).unwrap();
    assert!(public.contains("id = \"op-2026\""));
    let (code, _, stderr) = op(&["keygen", "--out", out.to_str().unwrap(), "--id", "op-2026"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists"), "{stderr}");
}

fn model(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models").join(name).display().to_string()
}

#[test]
fn model_check_summarises_the_shipped_model() {
    let (code, stdout, stderr) = op(&["model", "check", &model("propensity.tflite")]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ok: ") && stdout.contains("'propensity-mlp', 20 inputs"), "{stdout}");
    assert!(stdout.contains("FULLY_CONNECTED"), "{stdout}");
}

#[test]
fn model_check_refuses_a_fully_int8_model_and_says_what_to_do() {
    let manifest = model("propensity.toml");
    let (code, stdout, stderr) = op(&["model", "check", &model("propensity-int8.tflite"), "--manifest", &manifest]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stderr.contains("fully int8-quantized"), "{stderr}");
    assert!(stderr.contains("convert it with float32 inputs and outputs"), "{stderr}");
}

#[test]
fn diff_says_what_changes_for_devices_and_exits_1_only_when_something_does() {
    let (code, stdout, _) = op(&["catalogue", "diff", &example(), &example()]);
    assert_eq!((code, stdout.as_str()), (0, "no changes for devices\n"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("next.toml");
    let text = std::fs::read_to_string(example()).unwrap().replacen("holdout = 0.1", "holdout = 0.2", 1);
    std::fs::write(&path, text).unwrap();
    let (code, stdout, _) = op(&["catalogue", "diff", &example(), path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("~ campaign dairy-winter\n    holdout: 0.1 -> 0.2"), "{stdout}");
    assert!(stdout.contains("devices affected: fridge"), "{stdout}");
    let (code, stdout, _) = op(&["catalogue", "diff", &example(), path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["campaigns"]["changed"][0]["fields"][0]["new"], 0.2);
    // A broken new catalogue is an error naming its problems, not a difference.
    std::fs::write(&path, "[[offer]]\nid = \"x\"\n").unwrap();
    let (code, _, stderr) = op(&["catalogue", "diff", &example(), path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("next.toml"), "{stderr}");
}

#[test]
fn keys_rotate_writes_a_new_key_and_prints_the_steps_ending_in_a_retired_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, _, stderr) = op(&["keygen", "--out", out, "--id", "op-2025"]);
    assert_eq!(code, 0, "{stderr}");
    let old = dir.path().join("op-2025.pub");
    let (code, stdout, stderr) =
        op(&["keys", "rotate", "--old", old.to_str().unwrap(), "--out", out, "--id", "op-2026"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.path().join("op-2026.key").exists() && dir.path().join("op-2026.pub").exists());
    assert!(stdout.contains("Rotating from key 'op-2025' to key 'op-2026'"), "{stdout}");
    assert!(stdout.contains("id = \"op-2025\"\npublic_key = "), "{stdout}");
    assert!(stdout.contains("retired = true"), "{stdout}");
    // The same id twice, or an old file that is not a public key, is refused with the reason.
    let (code, _, stderr) = op(&["keys", "rotate", "--old", old.to_str().unwrap(), "--out", out, "--id", "op-2025"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("'op-2025' is the old key's"), "{stderr}");
    let secret = dir.path().join("op-2025.key");
    let (code, _, stderr) = op(&["keys", "rotate", "--old", secret.to_str().unwrap(), "--out", out, "--id", "op-x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("op-2025.key: not an operator key file"), "{stderr}");
}

#[test]
fn rollout_commands_check_their_share_and_an_abort_needs_what_to_go_back_to() {
    let (code, _, stderr) =
        op(&["rollout", "start", &example(), "--canary", "0%", "--fleet", "home", "--key", "k", "--version", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("\"0%\" is not above 0% and at most 100%"), "{stderr}");
    let (code, _, stderr) =
        op(&["rollout", "advance", &example(), "--to", "half", "--fleet", "home", "--key", "k", "--version", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("write it as 5% or 0.05"), "{stderr}");
    let (code, _, stderr) = op(&["rollout", "status", "--fleet", "home", "--version", "2", "--abort-if-refused", "2%"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--previous") && stderr.contains("--abort-version"), "{stderr}");
    let status = ["rollout", "status", "--fleet", "home", "--version", "2", "--abort-if-dismissals"];
    let (code, _, stderr) = op(&[&status[..], &["1.5x"]].concat());
    assert_eq!(code, 2);
    assert!(stderr.contains("--reports"), "{stderr}");
    for (ratio, why) in [("0.5x", "\"0.5x\" is not above 1"), ("lots", "\"lots\" is not a ratio; write it as 1.5x")] {
        let (code, _, stderr) = op(&[&status[..], &[ratio]].concat());
        assert_eq!(code, 2);
        assert!(stderr.contains(why), "{stderr}");
    }
}

#[test]
fn serve_needs_work_and_a_good_catalogue_and_a_rollout_needs_an_existing_report_database() {
    let (code, _, stderr) = op(&["serve"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--catalogue <CATALOGUE>|--reports <FILE|URL>"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[offer]]\nid = \"x\"\n").unwrap();
    let (code, _, stderr) = op(&["serve", "--catalogue", bad.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:9"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    // Collectors on PostgreSQL each need a name of their own; a mistyped address is no file.
    let (code, _, stderr) = op(&["serve", "--reports", "postgres://ledtrad@127.0.0.1:9/reports"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--reports postgres://… needs --instance NAME"), "{stderr}");
    let (code, _, stderr) = op(&["report", "--db", "postgres:/ledtrad@db/reports"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is neither a file nor a PostgreSQL address"), "{stderr}");
    let missing = dir.path().join("reports.db");
    let (code, _, stderr) = op(&[
        "rollout",
        "status",
        "--fleet",
        "home",
        "--version",
        "2",
        "--broker",
        "mqtt://127.0.0.1:9",
        "--abort-if-dismissals",
        "1.5x",
        "--reports",
        missing.to_str().unwrap(),
        "--previous",
        "p.toml",
        "--key",
        "k.key",
        "--abort-version",
        "3",
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("reports.db' does not exist; it is written by `ledtrad-op serve --reports FILE`"),
        "{stderr}"
    );
    assert!(!missing.exists());
}

#[test]
fn model_sign_writes_an_envelope_without_a_broker_and_publish_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (code, _, stderr) = op(&["keygen", "--out", keys.to_str().unwrap(), "--id", "op"]);
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("model-4.env");
    let key = keys.join("op.key");
    let args = ["model", "sign", &model("propensity.tflite"), "--key", key.to_str().unwrap(), "--fleet", "home"];
    let (code, stdout, stderr) = op(&[&args[..], &["--version", "4", "--out", out.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("model version 4 of fleet 'home': model 'propensity-mlp' (20 inputs)"), "{stdout}");
    assert!(stdout.contains("signed by key 'op'") && stdout.contains("ledtrad-op publish"), "{stdout}");
    assert!(out.is_file());
    // A model that devices would refuse is not signed.
    let bad = ["model", "sign", &model("propensity-int8.tflite"), "--key", key.to_str().unwrap(), "--fleet", "home"];
    let refused = dir.path().join("int8.env");
    let (code, _, stderr) = op(&[&bad[..], &["--version", "5", "--out", refused.to_str().unwrap()]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(!refused.exists());
    // Publishing something that is not an envelope fails before any broker is asked.
    let junk = dir.path().join("junk.env");
    std::fs::write(&junk, b"not an envelope").unwrap();
    let (code, _, stderr) = op(&["publish", junk.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:9"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("junk.env' is not a signed ledtrad envelope"), "{stderr}");
}
