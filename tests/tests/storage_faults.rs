//! Storage faults: an agent whose database lives on a small file system of its own (tmpfs) that
//! fills up, and that is then made read-only. Offers go on from memory; consent changes are
//! refused whole with a clear error; the status says what is wrong; and once the space is back,
//! or the file system writable again, writes work with no restart.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it the test says so and skips, unless
//! `LEDTRAD_REQUIRE_MOUNT` is set (CI sets it).

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use ledtrad_protocol::{DeviceKind, FleetId};
use ledtrad_tests::{broker, init_logs, operator_key, push, unique, TestAgent};
use serde_json::{json, Value};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(at.into()))
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.0).status().unwrap();
        assert!(status.success(), "mount -o remount,{mode} failed");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn put_consent(http: &reqwest::Client, agent: &TestAgent, purpose: &str, granted: bool) -> (u16, Value) {
    let body = json!({"granted": granted, "text_version": "2026-11"});
    let response = http.put(format!("{}/v1/consent/{purpose}", agent.api())).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn status(http: &reqwest::Client, agent: &TestAgent) -> Value {
    http.get(format!("{}/v1/status", agent.api())).send().await.unwrap().json().await.unwrap()
}

async fn shows_an_offer(http: &reqwest::Client, agent: &TestAgent) -> bool {
    let signal = json!({"feature": "fridge.butter.level", "value": 0.05});
    http.post(format!("{}/v1/signals", agent.api())).json(&signal).send().await.unwrap();
    agent.clock.advance(3 * 3600);
    let response = http.get(format!("{}/v1/offer?moment=door_opened", agent.api())).send().await.unwrap();
    response.status().as_u16() == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_then_read_only_storage_stops_only_what_must_be_kept_and_recovers_by_itself() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let mount = Mount::tmpfs(&dir.path().join("flash"), "4m");
    let why = "cannot mount a tmpfs here";
    if !ledtrad_tests::present_or_skip(mount.is_some(), why, ledtrad_tests::require::REQUIRE_MOUNT, "run as root") {
        return;
    }
    let mount = mount.expect("mounted");
    let (key, fleet, http) = (operator_key(1), FleetId::try_new(unique("fleet")).unwrap(), reqwest::Client::new());
    let database = mount.0.join("agent.db");
    let db = database.clone();
    let agent = TestAgent::start_with(DeviceKind::Fridge, &fleet, &key, &broker(), move |raw| raw.database = db).await;
    push(&key, &fleet, 1).await;
    agent.wait_for("version 1", |s| s.catalogue_version == Some(1)).await;
    assert_eq!(put_consent(&http, &agent, "personalise", true).await.0, 200);
    assert!(shows_an_offer(&http, &agent).await);
    assert_eq!(status(&http, &agent).await["storage_error"], Value::Null);

    // The storage fills up.
    let filler = mount.0.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    while file.write_all(&[0u8; 64 * 1024]).is_ok() {}
    let _ = file.sync_all();
    drop(file);
    // Offers go on, from memory; their impressions cannot be kept, and the status says so.
    assert!(shows_an_offer(&http, &agent).await, "offers go on while the storage is full");
    let error = status(&http, &agent).await["storage_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("database or disk is full") && error.contains("free some space"), "{error:?}");
    // A consent change cannot be kept, so it is refused whole.
    let (code, body) = put_consent(&http, &agent, "measure", true).await;
    assert_eq!(code, 503, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("storage is full"), "{body}");
    let consent: Value = http.get(format!("{}/v1/consent", agent.api())).send().await.unwrap().json().await.unwrap();
    assert_eq!((consent["personalise"].as_bool(), consent["measure"].as_bool()), (Some(true), Some(false)));

    // Space back: the next write works, with no restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(put_consent(&http, &agent, "measure", true).await.0, 200);
    assert_eq!(status(&http, &agent).await["storage_error"], Value::Null);

    // The file system turns read-only (a kernel does that to flash it finds damaged) and the
    // device restarts: the agent refuses to start, saying why, and starts once it is writable.
    let config = agent.config.clone();
    agent.stop().await;
    mount.remount("ro");
    let clock = std::sync::Arc::new(ledtrad_agent::ManualClock::new(ledtrad_tests::T0));
    let error = match ledtrad_agent::spawn(config.clone(), clock.clone()).await {
        Ok(_) => panic!("an agent started on a read-only database"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("agent.db") && error.contains("make it writable"), "{error}");
    mount.remount("rw");
    let agent = ledtrad_agent::spawn(config, clock).await.expect("the agent starts once it can write");
    let consent = agent.handle().consent().await.unwrap();
    assert!(consent.grants.measure && consent.grants.personalise, "what was kept is there");
    agent.shutdown().await;

    // Through it all, the database stayed whole.
    let db = rusqlite::Connection::open(&database).unwrap();
    let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}
