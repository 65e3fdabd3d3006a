//! Fixed-size windows over one source's signals: a ring of buckets, one per step of the
//! window, each holding what the signals that fell in that step add up to (how many, their
//! sum, lowest and highest). Raw values are kept only as these figures, and only while their
//! bucket is inside the window. Memory is the ring, whatever the number of signals.
//!
//! Bucket ids are step numbers: seconds since the epoch divided by the step, or local days.
//! Bucket `id` lives at position `id % len`; a position holding an older id is stale and is
//! reset when a newer id needs it.
//!
//! Time may go backwards (a clock set back, a late signal). The window never moves back:
//! - a signal for an earlier step that is still inside the window (as of its newest step)
//!   goes into its own bucket;
//! - a read at an earlier step sees the window as of its newest step;
//! - once the gap between now and the newest step is a whole window or more, either way,
//!   the window is dead: reads give nothing, expiry drops it and a new signal starts it
//!   afresh. What was recorded under a clock that far off is forgotten, never carried over.

use core::ops::RangeInclusive;

use ledtrad_protocol::feature::{Derivation, Window};

/// What the signals in one step of a window add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    id: u64,
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Bucket {
    /// A bucket with nothing in it.
    pub(crate) const EMPTY: Bucket = Bucket { id: 0, count: 0, sum: 0.0, min: 0.0, max: 0.0 };

    fn holds(&self, id: u64) -> bool {
        self.count > 0 && self.id == id
    }

    fn add(&mut self, value: f64) {
        if self.count == 0 {
            self.min = value;
            self.max = value;
        }
        self.count = self.count.saturating_add(1);
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn mean(&self) -> f64 {
        self.sum / f64::from(self.count.max(1))
    }
}

/// The step `secs` falls in, for a sliding window of `bucket_secs` steps.
pub(crate) fn step(secs: u64, bucket_secs: u32) -> u64 {
    secs / u64::from(bucket_secs.max(1))
}

/// Records `value` at step `id` in `ring`, whose newest step so far is `newest` (none for an
/// empty ring). Returns the newest step after it.
pub(crate) fn record(ring: &mut [Bucket], newest: Option<u64>, id: u64, value: f64) -> u64 {
    let len = ring.len() as u64;
    if len == 0 {
        return id;
    }
    let newest = match newest {
        Some(n) if id > n => id,
        // Late, but inside the window as of its newest step: into its own bucket.
        Some(n) if n - id < len => n,
        // Empty, or the clock went back a whole window or more: start afresh.
        _ => {
            ring.fill(Bucket::EMPTY);
            id
        }
    };
    // Whatever else is at this position is at least a window older than `id`: stale.
    let bucket = &mut ring[(id % len) as usize];
    if !bucket.holds(id) {
        *bucket = Bucket { id, ..Bucket::EMPTY };
    }
    bucket.add(value);
    newest
}

/// The step a window of `len` buckets whose newest step is `newest` is read as of, at step
/// `id`; none when the two are a whole window or more apart, either way (the window is dead).
pub(crate) fn as_of(len: usize, newest: u64, id: u64) -> Option<u64> {
    let len = len as u64;
    (newest.abs_diff(id) < len).then_some(newest.max(id))
}

/// The buckets inside the window as of step `at`.
fn inside(ring: &[Bucket], at: u64) -> impl Iterator<Item = &Bucket> {
    let len = ring.len() as u64;
    ring.iter().filter(move |b| b.count > 0 && b.id <= at && at - b.id < len)
}

/// Empties the buckets outside the window as of step `at`.
pub(crate) fn forget_outside(ring: &mut [Bucket], at: u64) {
    let len = ring.len() as u64;
    for b in ring.iter_mut().filter(|b| b.count > 0 && !(b.id <= at && at - b.id < len)) {
        *b = Bucket::EMPTY;
    }
}

/// `derivation` over the window as of step `at`, clamped to `range`; none when the window
/// holds too little (no bucket, or fewer than two for a trend). O(buckets), no allocation.
pub(crate) fn evaluate(derivation: Derivation, ring: &[Bucket], at: u64, range: &RangeInclusive<f64>) -> Option<f64> {
    let window = derivation.window()?;
    inside(ring, at).next()?;
    let value = match derivation {
        Derivation::Sum(_) => inside(ring, at).map(|b| b.sum).sum(),
        Derivation::RatePerHour(_) => {
            // Precision loss is impossible: a window is far shorter than 2^52 seconds.
            #[allow(clippy::cast_precision_loss)]
            let hours = window.span_secs() as f64 / 3600.0;
            inside(ring, at).map(|b| b.sum).sum::<f64>() / hours
        }
        Derivation::Mean(_) => {
            let (sum, count) = inside(ring, at).fold((0.0, 0.0), |(s, c), b| (s + b.sum, c + f64::from(b.count)));
            sum / count
        }
        Derivation::Min(_) => inside(ring, at).map(|b| b.min).fold(f64::INFINITY, f64::min),
        Derivation::Max(_) => inside(ring, at).map(|b| b.max).fold(f64::NEG_INFINITY, f64::max),
        Derivation::TrendPerDay(_) => trend(ring, at, window)?,
        Derivation::MinutesSinceLast { .. } => return None,
    };
    value.is_finite().then(|| value.clamp(*range.start(), *range.end()))
}

/// The least-squares slope of the bucket means against time in days; none with fewer than two
/// buckets. Two passes over the ring (means, then deviations), for accuracy.
fn trend(ring: &[Bucket], at: u64, window: Window) -> Option<f64> {
    let days = window.bucket_days();
    // A bucket's time, in days before the step the window is read as of (0 to −len).
    // Precision loss is impossible: the difference is below the window's length.
    #[allow(clippy::cast_precision_loss)]
    let x = |b: &Bucket| -((at - b.id) as f64) * days;
    let (n, sum_x, sum_y) =
        inside(ring, at).fold((0.0, 0.0, 0.0), |(n, sx, sy), b| (n + 1.0, sx + x(b), sy + b.mean()));
    if n < 2.0 {
        return None;
    }
    let (mean_x, mean_y) = (sum_x / n, sum_y / n);
    let (sxy, sxx) = inside(ring, at).fold((0.0, 0.0), |(sxy, sxx), b| {
        let dx = x(b) - mean_x;
        (sxy + dx * (b.mean() - mean_y), sxx + dx * dx)
    });
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: RangeInclusive<f64> = f64::MIN..=f64::MAX;

    fn build_ring<const N: usize>(signals: &[(u64, f64)]) -> ([Bucket; N], Option<u64>) {
        let mut ring = [Bucket::EMPTY; N];
        let mut newest = None;
        for &(id, value) in signals {
            newest = Some(record(&mut ring, newest, id, value));
        }
        (ring, newest)
    }

    #[test]
    fn steps_are_aligned_to_the_epoch() {
        assert_eq!((step(0, 300), step(299, 300), step(300, 300)), (0, 0, 1));
        // A zero step is refused by the protocol's tests; here it cannot divide by zero.
        assert_eq!(step(42, 0), 42);
    }

    #[test]
    fn a_sliding_sum_drops_steps_that_leave_the_window() {
        let sum = Derivation::Sum(Window::Sliding { buckets: 4, bucket_secs: 60 });
        let (mut ring, newest) = build_ring::<4>(&[(10, 1.0), (11, 2.0), (11, 3.0), (13, 4.0)]);
        let newest = newest.unwrap();
        assert_eq!(evaluate(sum, &ring, as_of(4, newest, 13).unwrap(), &FULL), Some(10.0));
        // At step 14, step 10 has left.
        assert_eq!(evaluate(sum, &ring, as_of(4, newest, 14).unwrap(), &FULL), Some(9.0));
        // At step 17 everything has left: the window is dead.
        assert_eq!(as_of(4, newest, 17), None);
        // A new step reuses step 10's position.
        let newest = record(&mut ring, Some(newest), 14, 5.0);
        assert_eq!(evaluate(sum, &ring, as_of(4, newest, 14).unwrap(), &FULL), Some(14.0));
    }

    #[test]
    fn a_late_signal_inside_the_window_goes_into_its_own_bucket() {
        let (ring, newest) = build_ring::<4>(&[(20, 0.8), (18, 0.2)]);
        assert_eq!(newest, Some(20));
        let min = Derivation::Min(Window::Sliding { buckets: 4, bucket_secs: 60 });
        // Read at step 21, step 18 is still inside; at 22 it has left.
        assert_eq!(evaluate(min, &ring, 21, &FULL), Some(0.2));
        assert_eq!(evaluate(min, &ring, 22, &FULL), Some(0.8));
        // Read at an earlier step, the window is seen as of its newest step.
        assert_eq!(as_of(4, 20, 18), Some(20));
    }

    #[test]
    fn a_clock_set_back_a_whole_window_starts_afresh() {
        let (ring, newest) = build_ring::<4>(&[(100, 1.0), (101, 1.0), (50, 7.0)]);
        assert_eq!(newest, Some(50));
        let sum = Derivation::Sum(Window::Sliding { buckets: 4, bucket_secs: 60 });
        assert_eq!(evaluate(sum, &ring, 50, &FULL), Some(7.0));
        assert!(ring.iter().filter(|b| b.count > 0).all(|b| b.id == 50));
        // A read that far back of the newest step sees nothing.
        assert_eq!(as_of(4, 100, 96), None);
        assert_eq!(as_of(4, 100, 97), Some(100));
    }

    #[test]
    fn min_max_and_mean_cover_every_bucket_inside() {
        let (ring, _) = build_ring::<3>(&[(1, 0.5), (2, 0.25), (2, 0.75), (3, 1.0)]);
        let w = Window::Sliding { buckets: 3, bucket_secs: 60 };
        assert_eq!(evaluate(Derivation::Min(w), &ring, 3, &FULL), Some(0.25));
        assert_eq!(evaluate(Derivation::Max(w), &ring, 3, &FULL), Some(1.0));
        assert_eq!(evaluate(Derivation::Mean(w), &ring, 3, &FULL), Some(0.625));
        // At step 4, step 1 has left: the mean of the three readings still inside.
        assert_eq!(evaluate(Derivation::Mean(w), &ring, 4, &FULL), Some(2.0 / 3.0));
    }

    #[test]
    fn a_trend_is_the_slope_per_day_of_the_bucket_means() {
        let week = Window::LocalDays { days: 7 };
        // Falling by 0.1 a day, two readings a day around each day's level.
        let (ring, _) =
            build_ring::<7>(&[(100, 0.85), (100, 0.95), (101, 0.8), (102, 0.7), (103, 0.65), (103, 0.55), (104, 0.5)]);
        let slope = evaluate(Derivation::TrendPerDay(week), &ring, 104, &(-1.0..=1.0)).unwrap();
        assert!((slope + 0.1).abs() < 1e-9, "{slope}");
        // One day of readings is no trend.
        let (one, _) = build_ring::<7>(&[(100, 0.9), (100, 0.1)]);
        assert_eq!(evaluate(Derivation::TrendPerDay(week), &one, 100, &(-1.0..=1.0)), None);
        // Hourly steps: a rise of 0.01 an hour is 0.24 a day.
        let hours = Window::Sliding { buckets: 24, bucket_secs: 3600 };
        let (ring, _) = build_ring::<24>(&[(10, 0.1), (11, 0.11), (12, 0.12)]);
        let slope = evaluate(Derivation::TrendPerDay(hours), &ring, 12, &(-24.0..=24.0)).unwrap();
        assert!((slope - 0.24).abs() < 1e-9, "{slope}");
    }

    #[test]
    fn forgetting_outside_keeps_what_is_inside() {
        let (mut ring, _) = build_ring::<4>(&[(10, 1.0), (12, 2.0), (13, 3.0)]);
        forget_outside(&mut ring, 14);
        assert_eq!(ring.iter().filter(|b| b.count > 0).count(), 2);
        assert!(ring.iter().all(|b| b.count > 0 || *b == Bucket::EMPTY));
    }
}
