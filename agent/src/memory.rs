//! Giving memory the agent freed back to the system.
//!
//! glibc's malloc keeps what a process frees for its next allocations, and gives back only
//! what lies at the top of a heap. What is freed in between stays resident: over months, a
//! long-running process's resident memory creeps up while the memory it actually holds stays
//! flat (a year's soak of 1,000 agents in one process: the heap in use flat from day 10 while
//! the free space kept grew by a quarter). After its daily prune the agent asks malloc to give
//! back the free pages (`malloc_trim`), so resident memory follows what the agent holds.
//!
//! The heap belongs to the process, not to one agent: a process that holds many agents (the
//! simulator) prunes them together, and trims at most once every [`MIN_GAP`]. The first
//! agent's prune of such a burst trims; what the others free meanwhile goes back at the
//! process's next trim (in the simulator, the next day's). Elsewhere than on Linux with glibc
//! this does nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two trims in one process.
pub const MIN_GAP: Duration = Duration::from_secs(1);

/// When this process last trimmed.
static LAST_TRIM: Mutex<Gate> = Mutex::new(Gate { last: None });

/// Gives the free pages of malloc's heaps back to the system, unless this process did so
/// less than [`MIN_GAP`] ago (or malloc is not glibc's). Returns whether it trimmed.
pub fn give_back_freed() -> bool {
    let due = LAST_TRIM.lock().unwrap_or_else(std::sync::PoisonError::into_inner).open(Instant::now());
    due && trim()
}

/// Lets one trim through every [`MIN_GAP`].
#[derive(Debug)]
struct Gate {
    last: Option<Instant>,
}

impl Gate {
    /// Whether a trim may go ahead at `now`; if so, it counts as made.
    fn open(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|at| now.saturating_duration_since(at) < MIN_GAP) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and only releases pages malloc holds free; glibc
    // locks each arena while it walks it, so other threads may allocate meanwhile.
    unsafe { libc::malloc_trim(0) };
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_lets_one_trim_through_per_gap() {
        let start = Instant::now();
        let mut gate = Gate { last: None };
        assert!(gate.open(start), "the first trim goes ahead");
        assert!(!gate.open(start), "a second at once waits");
        assert!(!gate.open(start + MIN_GAP - Duration::from_millis(1)), "and one just inside the gap");
        assert!(gate.open(start + MIN_GAP), "one a gap later goes ahead");
        assert!(!gate.open(start + MIN_GAP + Duration::from_millis(500)));
    }
}
