//! The `ledtrad-sim` command line: a scenario and the flags it sets do not mix, and a bad
//! scenario file is named with what to fix, before anything runs.

use std::process::Command;

fn sim(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ledtrad-sim")).args(args).output().expect("ledtrad-sim runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_scenario_and_its_flags_do_not_mix_and_a_bad_one_is_named() {
    let (code, stderr) = sim(&["run", "--scenario", "examples/scenarios/stockholm-week.toml", "--homes", "3"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("'--scenario <FILE>' cannot be used with '--homes <HOMES>'"), "{stderr}");
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nhomes = 0\ndays = 1\nseed = 1\n").expect("written");
    let (code, stderr) = sim(&["run", "--scenario", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml': homes and days must be at least 1"), "{stderr}");
    let (code, stderr) = sim(&["run", "--sensors", "firmware", "--link-flips", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("\"2\" is not a share from 0 to 1"), "{stderr}");
}
