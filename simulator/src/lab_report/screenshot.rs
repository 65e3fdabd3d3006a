//! A screenshot of a page with headless Chromium, to look at the report as a reader would.

use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// The names Chromium goes by, in the order they are looked for.
const NAMES: [&str; 2] = ["chromium", "chromium-browser"];

/// How long one screenshot may take before Chromium is stopped.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How to get Chromium where it is missing.
pub const INSTALL_HINT: &str = "install it with 'apt-get install -y chromium' (or run scripts/chromium)";

/// The Chromium program on `PATH`: `chromium`, else `chromium-browser`.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    NAMES
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Screenshots the page `html` into `png`, `width` by `height` pixels, with headless
/// Chromium; stops it after 60 s. Chromium runs with a profile of its own, in a temporary
/// directory, so screenshots taken at once do not hand their page to one another's browser.
pub fn screenshot(html: &Path, png: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let program = chromium().ok_or_else(|| {
        anyhow!("chromium is not installed (neither 'chromium' nor 'chromium-browser' is on PATH); {INSTALL_HINT}")
    })?;
    let page = html.canonicalize().with_context(|| format!("page '{}'", html.display()))?;
    let profile = tempfile::tempdir().context("a temporary profile for chromium")?;
    let mut log = tempfile::tempfile().context("a temporary file for chromium's messages")?;
    // Chromium writes the file itself: one left from before must not pass for a new one.
    match std::fs::remove_file(png) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("screenshot '{}': removing the old one", png.display()));
        }
        _ => {}
    }
    let mut child = Command::new(&program)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(file_url(&page))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().context("chromium's messages")?)
        .spawn()
        .with_context(|| {
            format!(
                "starting '{}'; if it is broken, reinstall it with 'apt-get install -y --reinstall chromium'",
                program.display()
            )
        })?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for chromium")? {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            // Killing may race with its exit; either way it is gone after the wait.
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "chromium ('{}') took more than {} s to screenshot '{}' and was stopped",
                program.display(),
                TIMEOUT.as_secs(),
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let written = std::fs::metadata(png).map(|m| m.len() > 0).unwrap_or(false);
    if !status.success() || !written {
        let mut messages = String::new();
        let _ = log.rewind().and_then(|()| log.read_to_string(&mut messages));
        bail!(
            "chromium ('{}') {} a screenshot of '{}' to '{}'{}; if it is broken, reinstall it with \
             'apt-get install -y --reinstall chromium'",
            program.display(),
            if status.success() { "exited without writing" } else { "failed to write" },
            page.display(),
            png.display(),
            last_lines(&messages, status)
        );
    }
    Ok(())
}

/// Chromium's last messages worth reading (its complaints about the missing D-Bus are not),
/// and its exit status.
fn last_lines(messages: &str, status: std::process::ExitStatus) -> String {
    let lines: Vec<&str> =
        messages.lines().filter(|l| !l.trim().is_empty() && !l.contains("dbus") && !l.contains("DBus")).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
    if tail.is_empty() {
        format!(" ({status})")
    } else {
        format!(" ({status}):\n  {tail}\n")
    }
}

/// `path` (absolute) as a `file://` URL, with what URLs reserve percent-encoded.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => url.push(char::from(*byte)),
            _ => url.push_str(&format!("%{byte:02X}")),
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_becomes_a_file_url() {
        assert_eq!(file_url(Path::new("/tmp/a b/100%#x.html")), "file:///tmp/a%20b/100%25%23x.html");
        assert_eq!(file_url(Path::new("/tmp/å.html")), "file:///tmp/%C3%A5.html");
    }
}
