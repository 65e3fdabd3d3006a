//! The one wait between connection attempts: exponential, capped, with jitter, for every
//! ledtrad client (agent, its sensor link, operator, simulator).

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Waits that double from `first` up to `cap`, each drawn at random between half the delay and
/// the whole of it ("equal jitter"), so that a fleet cut off at once does not come back at
/// once. [`Backoff::reset`] starts again from `first` after a success.
///
/// Built on `backon`'s exponential backoff; the cap bounds the wait including its jitter.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    cap: Duration,
}

impl Backoff {
    /// Waits from about `first` up to `cap` (a `cap` below `first` is taken as `first`).
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self::build(first, cap, None)
    }

    /// Like [`Backoff::new`], with the jitter drawn from a generator seeded with `seed`: the
    /// same seed gives the same waits (for tests and seeded simulations).
    pub fn seeded(first: Duration, cap: Duration, seed: u64) -> Self {
        Self::build(first, cap, Some(seed))
    }

    fn build(first: Duration, cap: Duration, seed: Option<u64>) -> Self {
        let cap = cap.max(first);
        // backon adds a jitter of up to the delay itself: half of each bound, jittered, gives
        // waits between half the delay and the whole of it.
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(first / 2)
            .with_max_delay(cap / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        if let Some(seed) = seed {
            builder = builder.with_jitter_seed(seed);
        }
        Self { builder, delays: builder.build(), cap }
    }

    /// The next wait; each one is at most the cap.
    pub fn next_delay(&mut self) -> Duration {
        // Without a limit on attempts the iterator never ends; the cap stands in if it did.
        self.delays.next().unwrap_or(self.cap).min(self.cap)
    }

    /// Starts again from the first wait (after a connection succeeded). The jitter keeps its
    /// generator, so a seeded backoff stays reproducible.
    pub fn reset(&mut self) {
        let seed = self.delays.next().map(|d| d.as_nanos() as u64);
        let builder = match seed {
            Some(seed) => self.builder.with_jitter_seed(seed),
            None => self.builder,
        };
        self.delays = builder.build();
    }

    /// The longest wait.
    pub fn cap(&self) -> Duration {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_inside_each_step() {
        let mut backoff = Backoff::seeded(100 * MS, 5_000 * MS, 7);
        let mut delay = 100 * MS;
        for _ in 0..12 {
            let wait = backoff.next_delay();
            assert!(wait >= delay / 2 && wait <= delay, "{wait:?} outside {:?}..={delay:?}", delay / 2);
            delay = (delay * 2).min(5_000 * MS);
        }
    }

    #[test]
    fn waits_are_jittered_and_a_reset_starts_from_the_first() {
        let mut backoff = Backoff::seeded(100 * MS, 30_000 * MS, 1);
        let waits: Vec<_> = (0..20).map(|_| backoff.next_delay()).collect();
        let at_cap = &waits[10..];
        assert!(at_cap.iter().all(|w| *w >= 15_000 * MS && *w <= 30_000 * MS), "{at_cap:?}");
        assert!(at_cap.windows(2).any(|w| w[0] != w[1]), "no jitter at the cap: {at_cap:?}");
        backoff.reset();
        let first = backoff.next_delay();
        assert!(first >= 50 * MS && first <= 100 * MS, "{first:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_waits_and_a_low_cap_is_raised_to_the_first() {
        let waits = |seed| {
            let mut b = Backoff::seeded(100 * MS, 10_000 * MS, seed);
            (0..8).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(waits(3), waits(3));
        assert_ne!(waits(3), waits(4));
        let mut low = Backoff::new(200 * MS, 10 * MS);
        assert_eq!(low.cap(), 200 * MS);
        assert!(low.next_delay() <= 200 * MS);
    }
}
