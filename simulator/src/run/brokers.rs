//! The embedded broker over several processes: a run of more devices than one process may
//! hold sockets for starts `ledtrad-sim broker` processes, as a fleet's devices are spread over
//! the nodes of a broker cluster. A home's devices share a broker (home h on broker h mod n),
//! so its home channel stays on one; the run's own clients (audit, operator, collector and
//! status watcher) connect to every broker.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use ledtrad_protocol::broker::BrokerUrl;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Connections a broker takes besides its devices': the run's audit, operator, collector and
/// status watcher, and room for devices connecting again before the broker saw them leave.
pub(super) const RUN_CLIENTS: usize = 16;

/// How long a broker process may take to listen.
const LISTENING_WITHIN: Duration = Duration::from_secs(30);

/// The connections each broker takes when the homes (their devices, by home) are spread over
/// the fewest brokers of at most `capacity` connections each (home h on broker h mod n).
pub(super) fn plan(devices_by_home: &[usize], capacity: usize) -> anyhow::Result<Vec<usize>> {
    let largest = devices_by_home.iter().copied().max().unwrap_or(0);
    if capacity < largest + RUN_CLIENTS {
        bail!(
            "a broker of {capacity} connections is too small: a home of {largest} devices and the run's {RUN_CLIENTS} clients need {}; give each broker more connections",
            largest + RUN_CLIENTS
        );
    }
    let devices: usize = devices_by_home.iter().sum();
    let mut brokers = devices.div_ceil(capacity - RUN_CLIENTS).max(1);
    loop {
        let mut connections = vec![RUN_CLIENTS; brokers];
        for (h, d) in devices_by_home.iter().enumerate() {
            connections[h % brokers] += d;
        }
        if connections.iter().all(|&c| c <= capacity) {
            return Ok(connections);
        }
        brokers += 1;
    }
}

/// A broker process that the run started.
struct Process {
    child: Child,
    /// Open while the run lives: the broker ends when it closes, however the run ends.
    _stdin: ChildStdin,
    /// Kept open: the broker may write to it until it ends.
    _stdout: tokio::io::Lines<BufReader<ChildStdout>>,
}

/// The run's broker processes (`ledtrad-sim broker`), one URL each; they end with the run.
pub(super) struct BrokerProcesses {
    processes: Vec<Process>,
    urls: Vec<BrokerUrl>,
}

impl BrokerProcesses {
    /// Starts a broker process for each entry of `connections` (its most clients at once)
    /// from the `ledtrad-sim` executable `exe`, each on a free loopback port.
    pub(super) async fn start(exe: &Path, connections: &[usize]) -> anyhow::Result<Self> {
        let mut brokers = Self { processes: Vec::with_capacity(connections.len()), urls: Vec::new() };
        for (n, &c) in connections.iter().enumerate() {
            let mut child = tokio::process::Command::new(exe)
                .args(["broker", "--port", "0", "--max-connections", &c.to_string(), "--until-stdin-closes"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting broker process {} ({} broker)", n + 1, exe.display()))?;
            let stdin = child.stdin.take().context("the broker process's standard input")?;
            let stdout = child.stdout.take().context("the broker process's standard output")?;
            let mut lines = BufReader::new(stdout).lines();
            let first = tokio::time::timeout(LISTENING_WITHIN, lines.next_line())
                .await
                .with_context(|| format!("broker process {} did not listen within {LISTENING_WITHIN:?}", n + 1))??;
            let Some(first) = first else {
                let status = child.wait().await?;
                bail!("broker process {} ended before it listened ({status}); its error is above", n + 1);
            };
            brokers.urls.push(listening_url(&first)?);
            brokers.processes.push(Process { child, _stdin: stdin, _stdout: lines });
        }
        Ok(brokers)
    }

    /// Where each broker listens, in order: home h's devices use `urls()[h % n]`.
    pub(super) fn urls(&self) -> &[BrokerUrl] {
        &self.urls
    }

    /// The brokers' peak resident memory, added up.
    pub(super) fn peak_rss_bytes(&self) -> u64 {
        self.pids().filter_map(|pid| crate::footprint::proc_status_of(&pid, "VmHWM").ok()).sum()
    }

    /// The CPU seconds the brokers spent so far, added up.
    pub(super) fn cpu_seconds(&self) -> f64 {
        self.pids().map(|pid| crate::tls::cpu_seconds(&pid, false)).sum()
    }

    fn pids(&self) -> impl Iterator<Item = String> + '_ {
        self.processes.iter().filter_map(|p| p.child.id()).map(|pid| pid.to_string())
    }
}

/// The URL in the line `ledtrad-sim broker` prints once it listens.
fn listening_url(line: &str) -> anyhow::Result<BrokerUrl> {
    let url = line
        .strip_prefix(LISTENING)
        .and_then(|rest| rest.split(';').next())
        .with_context(|| format!("a broker process said {line:?}, not where it listens"))?;
    Ok(url.parse()?)
}

/// How the line `ledtrad-sim broker` prints once it listens begins.
pub const LISTENING: &str = "embedded broker listening on ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_go_round_the_fewest_brokers_that_hold_them() {
        // 10 homes of 3 devices: 30 devices, 16 run clients a broker.
        let homes = vec![3; 10];
        assert_eq!(plan(&homes, 100).unwrap(), vec![46]);
        assert_eq!(plan(&homes, 40).unwrap(), vec![31, 31], "two brokers of 15 devices");
        // Uneven homes: the fewest brokers whose every share fits.
        let homes = [5, 1, 5, 1, 5, 1];
        let plan = plan(&homes, 24).unwrap();
        assert!(plan.iter().all(|&c| c <= 24), "{plan:?}");
        assert_eq!(plan.iter().sum::<usize>(), 18 + RUN_CLIENTS * plan.len());
    }

    #[test]
    fn a_broker_smaller_than_a_home_is_refused_with_what_it_needs() {
        let error = plan(&[2, 7, 3], 20).unwrap_err().to_string();
        assert!(error.contains("a home of 7 devices"), "{error}");
        assert!(error.contains("need 23"), "{error}");
    }

    #[test]
    fn the_url_is_read_from_the_brokers_first_line() {
        let url = listening_url(&format!("{LISTENING}mqtt://127.0.0.1:40123; Ctrl-C to stop")).unwrap();
        assert_eq!(url, BrokerUrl::tcp("127.0.0.1", 40123));
        let error = listening_url("error: address in use").unwrap_err().to_string();
        assert!(error.contains("address in use"), "{error}");
    }
}
