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

fn sim_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ledtrad-sim")).args(args).output().expect("ledtrad-sim runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// The parts of a run that follow from the seed alone.
fn outcome(v: &serde_json::Value) -> Vec<serde_json::Value> {
    [
        "devices",
        "people",
        "decisions",
        "shown",
        "accepted",
        "dismissed",
        "not_for_me",
        "converted",
        "held_out",
        "revocations",
        "reports_expected",
        "personal_influence",
        "daily",
    ]
    .iter()
    .map(|k| v[k].clone())
    .collect()
}

#[test]
fn homes_split_over_worker_processes_give_the_same_run_as_one_process() {
    let one = sim_json(&["run", "--homes", "5", "--seed", "8", "--json"]);
    let split = sim_json(&["run", "--homes", "5", "--seed", "8", "--homes-per-process", "2", "--json"]);
    assert_eq!(one["processes"], 1);
    assert_eq!(split["processes"], 4, "three workers of two, two and one homes, and the run's own");
    assert_eq!(outcome(&one), outcome(&split));
    assert_eq!(split["catalogue_version_applied"], split["devices"]);
    assert_eq!(split["reports_seen"], split["reports_expected"]);
    assert_eq!(split["consent_violations"], 0);
    // Worker processes make their devices' decisions again too.
    assert_eq!(split["decisions_redecided"], split["decisions"]);
    assert_eq!(split["personal_influence_unmarked"], 0);
    assert_eq!(split["home_cap_violations"], 0);
    assert!(split["peak_rss_bytes"].as_u64().expect("a number") > one["peak_rss_bytes"].as_u64().expect("a number"));
    // Through the firmware, with a noisy link: each board damages its own frames.
    let firmware = ["run", "--homes", "3", "--seed", "9", "--sensors", "firmware", "--link-flips", "0.05", "--json"];
    let one = sim_json(&firmware);
    let split = sim_json(&[&firmware[..], &["--homes-per-process", "1"]].concat());
    assert_eq!(split["processes"], 4);
    assert_eq!(outcome(&one), outcome(&split));
    assert_eq!(one["sensor_link"], split["sensor_link"]);
    assert!(one["sensor_link"]["frames_flipped"].as_u64() > Some(0));
}

#[test]
fn compare_runs_the_same_homes_under_each_policy_and_writes_the_report() {
    let dir = tempfile::tempdir().expect("dir");
    let html = dir.path().join("report.html");
    let v = sim_json(&[
        "compare",
        "--homes",
        "4",
        "--days",
        "2",
        "--seed",
        "3",
        "--consent",
        "all",
        "--json",
        "--html",
        html.to_str().expect("utf-8"),
    ]);
    let runs = v["policies"].as_array().expect("one summary per policy");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0]["policy"].as_str(), runs[1]["policy"].as_str()), (Some("clues"), Some("blunt")));
    assert_eq!(runs[0]["devices"], runs[1]["devices"], "the same homes");
    assert_eq!(runs[0]["people"], runs[1]["people"]);
    assert!(runs[0]["shown_camouflaged"].as_u64() > Some(0));
    assert_eq!(runs[1]["shown_camouflaged"], 0, "blunt has no camouflage");
    for run in runs {
        assert_eq!(run["consent_violations"], 0);
        assert_eq!(run["daily"].as_array().map(Vec::len), Some(2));
    }
    let page = std::fs::read_to_string(&html).expect("the report");
    assert!(page.contains("clues") && page.contains("blunt") && page.matches("<svg").count() >= 5);
    assert!(page.contains("Delade meningar"), "the scenario's sources");
    // Bad policy names are named.
    let (code, stderr) = sim(&["compare", "--policies", "clues,rude"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown policy \"rude\""), "{stderr}");
}

#[test]
fn a_soak_loses_and_doubles_no_report_through_broker_restarts() {
    let (code, stderr) = sim(&["soak", "--restart-minutes", "7"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--restart-minutes 7 must be a whole number of 5-minute steps"), "{stderr}");
    let (code, stderr) = sim(&["soak", "--days", "365", "--hours", "2"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("'--days <DAYS>' cannot be used with '--hours <HOURS>'"), "{stderr}");
    if !ledtrad_tests::mosquitto_installed() {
        return;
    }
    let f = sim_json(&["soak", "--hours", "2", "--devices", "30", "--json"]);
    assert_eq!(f["broker_restarts"], 8, "{f}");
    assert_eq!((f["sigkill"].as_u64(), f["sigterm"].as_u64()), (Some(4), Some(4)), "{f}");
    let queued = f["reports_queued"].as_u64().unwrap_or(0);
    assert!(queued > 0, "{f}");
    assert_eq!(f["reports_acknowledged"].as_u64(), Some(queued), "{f}");
    assert_eq!(f["reports_stored"].as_u64(), Some(queued), "{f}");
    assert_eq!(
        f["restarts_before_collector_caught_up"].as_u64(),
        Some(0),
        "every restart waited for the collector: {f}"
    );
    assert!(f["decide_p99_first_hour_us"].as_f64().unwrap_or(0.0) > 0.0, "{f}");
    assert!(f["decide_p99_last_hour_us"].as_f64().unwrap_or(0.0) > 0.0, "{f}");
    // The agents' databases are measured, and they grew over the hours.
    let databases = |key: &str| f[key].as_u64().unwrap_or(0);
    assert!(databases("databases_after_first_hour_bytes") > 0, "{f}");
    assert!(databases("databases_end_bytes") > databases("databases_after_first_hour_bytes"), "{f}");
    let largest = databases("databases_end_bytes_max");
    assert!(largest > 0 && largest * 30 >= databases("databases_end_bytes"), "the largest of 30: {f}");
    assert!(f["rss_day2_bytes"].is_null(), "two hours have no second day: {f}");
    assert!(f["rss_end_bytes"].as_u64().unwrap_or(0) > 0, "{f}");
}

/// Homes spread over several broker processes, as a fleet over a cluster's nodes, make the
/// same run as one broker: every device applies the catalogue and every report is seen once.
#[test]
fn homes_spread_over_broker_processes_give_the_same_run_as_one_broker() {
    let one = sim_json(&["run", "--homes", "6", "--seed", "8", "--json"]);
    let args = ["run", "--homes", "6", "--seed", "8", "--homes-per-process", "3", "--connections-per-broker", "24"];
    let spread = sim_json(&[&args[..], &["--json"]].concat());
    let brokers = spread["processes"].as_u64().expect("a number") - 3;
    assert!(brokers >= 2, "{} devices, 8 a broker: {spread}", spread["devices"]);
    assert_eq!(spread["broker"], format!("embedded ({brokers} processes)"));
    assert_eq!(outcome(&one), outcome(&spread));
    assert_eq!(spread["catalogue_version_applied"], spread["devices"]);
    assert_eq!(spread["reports_seen"], spread["reports_expected"]);
    assert_eq!(spread["consent_violations"], 0);
    assert_eq!(spread["home_cap_violations"], 0);
    assert_eq!(one["home_plaintext"], spread["home_plaintext"]);
    assert!(spread["peak_rss_bytes"].as_u64().expect("a number") > one["peak_rss_bytes"].as_u64().expect("a number"));
}

/// Spreading a broker the run does not run is refused, and says why.
#[test]
fn spreading_a_broker_the_run_does_not_own_is_refused() {
    let (code, stderr) =
        sim(&["run", "--homes", "1", "--own-broker", "mosquitto", "--connections-per-broker", "100", "--json"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--connections-per-broker spreads the run's embedded broker"), "{stderr}");
}

/// A run's broker process ends when the run's end of its standard input closes, however the
/// run ended (killed, say), instead of holding its port and memory.
#[test]
fn a_runs_broker_process_ends_with_its_input() {
    use std::io::BufRead as _;
    let mut broker = Command::new(env!("CARGO_BIN_EXE_ledtrad-sim"))
        .args(["broker", "--port", "0", "--until-stdin-closes"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the broker starts");
    let mut line = String::new();
    let stdout = broker.stdout.take().expect("its output");
    std::io::BufReader::new(stdout).read_line(&mut line).expect("it says where it listens");
    assert!(line.starts_with(ledtrad_sim::run::BROKER_LISTENING), "{line}");
    drop(broker.stdin.take());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let pid = broker.id();
    std::thread::spawn(move || done_tx.send(broker.wait()));
    let status = done_rx.recv_timeout(std::time::Duration::from_secs(10));
    if status.is_err() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert!(status.expect("it ended within 10 s").expect("its status").success());
}

/// `ledtrad-sim broker` on a port something else listens on says so and what to do, instead
/// of starting a broker that cannot listen.
#[test]
fn the_broker_on_a_port_in_use_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = taken.local_addr().expect("its address").port().to_string();
    let (code, stderr) = sim(&["broker", "--port", &port]);
    assert_eq!(code, 2);
    assert!(stderr.contains(&format!("127.0.0.1:{port} is in use; stop what listens there")), "{stderr}");
}
