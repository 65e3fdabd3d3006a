//! What a test needs from the machine (Mosquitto, Chromium, a mount), and the one rule for a
//! piece that is missing: the test says it skipped, unless the piece's `LEDTRAD_REQUIRE_*`
//! variable is set (CI sets them after installing each piece), and then it fails.

use std::io::Write as _;

/// Set to fail, instead of skipping, a test that needs Mosquitto where it is not installed.
pub const REQUIRE_MOSQUITTO: &str = "LEDTRAD_REQUIRE_MOSQUITTO";
/// Set to fail, instead of skipping, a test that needs headless Chromium where it is missing.
pub const REQUIRE_CHROMIUM: &str = "LEDTRAD_REQUIRE_CHROMIUM";
/// Set to fail, instead of skipping, a test that mounts a file system where it cannot.
pub const REQUIRE_MOUNT: &str = "LEDTRAD_REQUIRE_MOUNT";

/// Whether the test may go on: `true` if `present`. Otherwise it panics when `require_env`
/// is set, naming what is missing and `fix`; else it says on stderr that the running test
/// skipped, and why, and returns `false`.
pub fn present_or_skip(present: bool, missing: &str, require_env: &str, fix: &str) -> bool {
    if present {
        return true;
    }
    assert!(std::env::var_os(require_env).is_none(), "{missing}, and {require_env} is set; {fix}");
    // The harness names a test's thread after the test.
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    // Straight to stderr, past the test harness's capture, so the skip is seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {missing}; {fix}, or set {require_env} to fail instead");
    false
}

/// Whether Mosquitto (`mosquitto` and `mosquitto_passwd`, which come together) is installed,
/// for a test that runs a Mosquitto of its own; see [`present_or_skip`] for when it is not.
pub fn mosquitto_installed() -> bool {
    let find = ledtrad_agent::broker::Mosquitto::find_binary;
    present_or_skip(
        find("mosquitto").is_some() && find("mosquitto_passwd").is_some(),
        "mosquitto is not installed",
        REQUIRE_MOSQUITTO,
        "scripts/mosquitto installs it",
    )
}
