//! Helpers shared by the `ledtrad-op` command-line tests.

use std::process::Command;

/// Runs `ledtrad-op` with `args`: its exit code, stdout and stderr.
pub fn op(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ledtrad-op")).args(args).output().expect("ledtrad-op runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
