//! Where the agent reads the time: the one clock adaptor. The engine never reads a clock, and
//! neither does the agent's core: the shell reads this clock and hands `now` in. The simulator
//! and tests run agents on a [`ManualClock`] to drive virtual days without sleeping.
//!
//! A clock gives two readings: the wall clock ([`Clock::now`], for days, hours and what is
//! stored) and a monotonic one ([`Clock::monotonic`], for how long something has waited: an
//! acknowledged report's linger, a request's deadline), which never goes back. A
//! [`Stopwatch`] measures how long work took (a decision), always in real time: it is a
//! measurement, never an input to what the agent does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ledtrad_protocol::UnixTime;

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> UnixTime;

    /// Time since an arbitrary start, never going back; it follows a virtual clock's moves.
    fn monotonic(&self) -> Duration;

    /// Both readings at once, as the agent's core takes them.
    fn reading(&self) -> Now {
        Now { wall: self.now(), mono: self.monotonic() }
    }
}

/// The time as the agent's core is handed it with each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The wall clock.
    pub wall: UnixTime,
    /// The monotonic clock (see [`Clock::monotonic`]).
    pub mono: Duration,
}

impl Now {
    /// A reading at `wall` and `mono` (tests build their own).
    pub fn at(wall: UnixTime, mono: Duration) -> Self {
        Self { wall, mono }
    }
}

/// The process's monotonic start, shared by every clock.
fn real_monotonic() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        UnixTime(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    fn monotonic(&self) -> Duration {
        real_monotonic()
    }
}

/// A clock whose wall time moves only when told; clones share the same time. Its monotonic
/// reading is real time plus every forward move: waits measured on it follow virtual days (a
/// report's linger passes when the simulation skips an hour) and still pass in real time (an
/// offer request's timeout while the virtual clock stands still).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<ManualTime>);

#[derive(Debug, Default)]
struct ManualTime {
    wall: AtomicU64,
    /// Seconds the clock was moved forward in all.
    advanced: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: UnixTime) -> Self {
        Self(Arc::new(ManualTime { wall: AtomicU64::new(start.secs()), advanced: AtomicU64::new(0) }))
    }

    /// Sets the time (a move back changes the wall clock only).
    pub fn set(&self, now: UnixTime) {
        let before = self.0.wall.swap(now.secs(), Ordering::SeqCst);
        self.0.advanced.fetch_add(now.secs().saturating_sub(before), Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.0.wall.fetch_add(secs, Ordering::SeqCst);
        self.0.advanced.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.wall.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        real_monotonic() + Duration::from_secs(self.0.advanced.load(Ordering::SeqCst))
    }
}

/// Measures how long a piece of work took, in real time.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds since the start.
    pub fn nanos(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Microseconds since the start.
    pub fn micros(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clocks_monotonic_reading_follows_its_moves_forward_only() {
        let clock = ManualClock::new(UnixTime(1_000));
        let start = clock.monotonic();
        clock.advance(60);
        assert!(clock.monotonic() >= start + Duration::from_secs(60));
        clock.set(UnixTime(500));
        assert_eq!(clock.now(), UnixTime(500));
        let back = clock.monotonic();
        assert!(back >= start + Duration::from_secs(60), "a move back must not take the monotonic clock back");
        clock.set(UnixTime(800));
        assert!(clock.monotonic() >= back + Duration::from_secs(300));
    }
}
