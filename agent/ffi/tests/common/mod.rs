//! What the C API's tests share: an agent config on disk, calls that fail with their last
//! error, and a callback that hands events to a channel.
#![allow(unsafe_code, dead_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ledtrad::LedtradResult;
use ledtrad_operator::OperatorKey;

/// How long a test waits for an event before it fails.
pub const EVENT_WAIT: Duration = Duration::from_secs(20);

/// Writes an agent config for a fridge `device` in `fleet` on `broker`, pinning `key`, into `dir`.
pub fn write_config(dir: &Path, device: &str, fleet: &str, broker: &str, key: &OperatorKey) -> PathBuf {
    let text = format!(
        r#"device_id = "{device}"
kind = "fridge"
fleet = "{fleet}"
broker = "{broker}"
database = "{db}"
camouflage_share = 0.0

[[operator_keys]]
id = "{id}"
public_key = "{public}"
"#,
        db = dir.join("agent.db").display(),
        id = key.id,
        public = key.public_hex(),
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// A C string.
pub fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL")
}

/// The last error on this thread.
pub fn last_error() -> String {
    // SAFETY: ledtrad_last_error never returns NULL, and the text lives until the next failure.
    unsafe { CStr::from_ptr(ledtrad::ledtrad_last_error()) }.to_string_lossy().into_owned()
}

/// Asserts `result` is `want`, showing the last error when it is not.
#[track_caller]
pub fn expect(result: LedtradResult, want: LedtradResult) {
    assert_eq!(result, want, "last error: {}", last_error());
}

/// Starts an agent with the config at `path`.
pub fn start(path: &Path) -> *mut ledtrad::LedtradAgent {
    let mut agent = std::ptr::null_mut();
    let path = c(path.to_str().expect("UTF-8 path"));
    // SAFETY: valid string and out pointer.
    expect(unsafe { ledtrad::ledtrad_agent_start(path.as_ptr(), &mut agent) }, LedtradResult::Ok);
    assert!(!agent.is_null());
    agent
}

/// An answer written into a buffer of 64 KiB.
pub fn answer(call: impl FnOnce(*mut c_char, usize, *mut usize) -> LedtradResult) -> serde_json::Value {
    let mut buf = vec![0 as c_char; 64 * 1024];
    let mut needed = 0usize;
    expect(call(buf.as_mut_ptr(), buf.len(), &mut needed), LedtradResult::Ok);
    // SAFETY: the call wrote a NUL-terminated string into buf.
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().expect("UTF-8").to_owned();
    assert_eq!(needed, text.len() + 1);
    serde_json::from_str(&text).expect("JSON")
}

/// Events as the callback saw them: (name, JSON).
pub type Events = mpsc::Receiver<(String, serde_json::Value)>;

/// The C callback of the tests: `user_data` is a `mpsc::Sender<(String, Value)>`.
pub unsafe extern "C" fn to_channel(name: *const c_char, json: *const c_char, user_data: *mut c_void) {
    // SAFETY: the agent passes NUL-terminated strings valid during the call, and the user data
    // registered by `events`, which outlives the agent.
    let (name, json, tx) = unsafe {
        (CStr::from_ptr(name), CStr::from_ptr(json), &*(user_data as *const mpsc::Sender<(String, serde_json::Value)>))
    };
    let json = serde_json::from_slice(json.to_bytes()).expect("events carry JSON");
    let _ = tx.send((name.to_string_lossy().into_owned(), json));
}

/// Registers [`to_channel`] on `agent`; the returned sender must outlive the agent.
pub fn events(agent: *const ledtrad::LedtradAgent) -> (Box<mpsc::Sender<(String, serde_json::Value)>>, Events) {
    let (tx, rx) = mpsc::channel();
    let tx = Box::new(tx);
    let user_data = &*tx as *const mpsc::Sender<_> as *mut c_void;
    // SAFETY: a live agent; the callback has the right signature and its user data lives as
    // long as the caller keeps the box.
    expect(unsafe { ledtrad::ledtrad_set_event_callback(agent, Some(to_channel), user_data) }, LedtradResult::Ok);
    (tx, rx)
}

/// The next event named `name` (others are skipped), within [`EVENT_WAIT`].
pub fn next_named(events: &Events, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + EVENT_WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok((n, json)) if n == name => return json,
            Ok(other) => seen.push(other),
            Err(e) => panic!("no '{name}' event within {EVENT_WAIT:?} ({e}); saw {seen:?}"),
        }
    }
}
