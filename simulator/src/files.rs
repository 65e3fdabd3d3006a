//! Open files: the embedded broker holds a socket per device, and a process running agents
//! holds each one's connection and database (with its write-ahead log and its index). A run
//! raises its limit to what its size needs, or says how to.

use anyhow::anyhow;
use rlimit::Resource;

/// Files a process needs besides its devices': its own, the audit's and the collector's.
pub const SPARE: u64 = 1_024;

/// Files an agent run in this process keeps open: its broker connection, its database, the
/// write-ahead log and its index, and room for a home channel's.
const PER_AGENT: u64 = 5;

/// The files this process needs for `devices`, the embedded broker's connections if
/// `embedded`, and the agents it runs itself (`local_agents`).
pub fn needed(devices: usize, embedded: bool, local_agents: usize) -> u64 {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let broker = if embedded { count(devices) } else { 0 };
    SPARE.saturating_add(broker).saturating_add(count(local_agents).saturating_mul(PER_AGENT))
}

/// The most files this process may be allowed to open: its hard limit.
pub fn hard_limit() -> anyhow::Result<u64> {
    Resource::NOFILE.get().map(|(_, hard)| hard).map_err(|e| anyhow!("reading the open-file limit: {e}"))
}

/// Lets this process open `needed` files: raises its soft limit, and its hard limit where it
/// may (as root). Returns the limit in force. A worker process calls it for its own agents.
pub fn allow(needed: u64) -> anyhow::Result<u64> {
    let (soft, hard) = Resource::NOFILE.get().map_err(|e| anyhow!("reading the open-file limit: {e}"))?;
    if soft >= needed {
        return Ok(soft);
    }
    if hard >= needed {
        Resource::NOFILE.set(needed, hard).map_err(|e| anyhow!("raising the open-file limit to {needed}: {e}"))?;
        return Ok(needed);
    }
    Resource::NOFILE.set(needed, needed).map_err(|e| {
        anyhow!(
            "this run needs about {needed} open files (the broker's connections and the agents' databases), but this process may open {hard} and cannot raise that ({e}); raise it first (`ulimit -n {needed}` as root, or `LimitNOFILE=` in a service) or run fewer homes"
        )
    })?;
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_needs_a_file_a_device_and_a_local_agent_five() {
        assert_eq!(needed(100_000, true, 0), 101_024);
        assert_eq!(needed(100_000, false, 0), 1_024);
        assert_eq!(needed(2_000, true, 2_000), 1_024 + 2_000 + 10_000);
    }

    #[test]
    fn a_limit_already_high_enough_is_kept() {
        let (soft, _) = Resource::NOFILE.get().unwrap();
        assert_eq!(allow(soft.min(64)).unwrap(), soft);
    }

    #[test]
    fn more_than_may_be_allowed_is_refused_with_the_fix() {
        let limit = rlimit::getrlimit(Resource::NOFILE).unwrap();
        // The kernel's ceiling for any process: not even root goes past it.
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse::<u64>().ok());
        let Some(ceiling) = ceiling else { return };
        let error = allow(ceiling + 1).unwrap_err().to_string();
        assert!(error.contains(&format!("about {} open files", ceiling + 1)), "{error}");
        assert!(error.contains("ulimit -n"), "{error}");
        assert_eq!(rlimit::getrlimit(Resource::NOFILE).unwrap(), limit, "left as it was");
    }
}
