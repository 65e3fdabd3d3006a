//! Signal windows into features (DESIGN §8 step 3). Raw signal values live only here, in
//! memory, inside their window; the rest of the engine sees features.
//!
//! A signal feeds its source feature (a level or a daily count) and every feature derived from
//! it (see [`ledtrad_protocol::feature`]): sliding sums and rates, per-day minimum, maximum and
//! mean, trends, minutes since the last event. Derived features keep a fixed ring of buckets
//! (`window`); the time since the last event keeps one instant.
//!
//! Memory is bounded whatever the number of signals ([`FeatureStore::memory_bytes`]): one slot
//! per known feature, and a window's ring of buckets, made at the first signal its source lets
//! in and kept from then on. A device has rings only for the signals it gives (a fridge none
//! for an e-reader's reading), and once each of its sources has spoken, its memory is fixed.
//! Personal signals are dropped on arrival unless `personalise` is granted, so they never
//! enter any window, and revoking it clears the sources and every window derived from them.
//!
//! Time may go backwards. Sources keep their rules (a level read at an earlier time is still
//! believed; a daily count for an earlier day starts afresh); windows never move back (see
//! `window`); the time since the last event is zero when the event is later than `now`, and
//! the event is forgotten once it is a whole window away either way.

mod window;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::feature::{Aggregation, Derivation, FeatureName, Window, FEATURES};
use ledtrad_protocol::signal::Signal;
use ledtrad_protocol::time::{UnixTime, DAY_SECS};

/// How long a level is believed without a new reading.
pub const LEVEL_RETENTION_SECS: u64 = 2 * DAY_SECS;

/// The largest increment one signal may add to a daily count.
pub const MAX_COUNT_INCREMENT: f64 = 10_000.0;

/// Local time arithmetic for one device: a time zone with its daylight-saving rules, or a
/// fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalTime {
    /// Seconds east of UTC, used when there is no time zone.
    pub utc_offset_secs: i32,
    /// The device's time zone (e.g. Europe/Stockholm), if known.
    pub zone: Option<chrono_tz::Tz>,
}

impl LocalTime {
    /// A fixed offset from UTC.
    pub const fn fixed(utc_offset_secs: i32) -> Self {
        Self { utc_offset_secs, zone: None }
    }

    /// A time zone, with its daylight-saving changes.
    pub const fn zone(zone: chrono_tz::Tz) -> Self {
        Self { utc_offset_secs: 0, zone: Some(zone) }
    }

    /// The offset from UTC in force at `now`.
    pub fn offset_at(self, now: UnixTime) -> i32 {
        use chrono::{Offset, TimeZone};
        let Some(zone) = self.zone else { return self.utc_offset_secs };
        match i64::try_from(now.secs()).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
            Some(utc) => zone.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc(),
            None => self.utc_offset_secs,
        }
    }

    fn local_secs(self, now: UnixTime) -> u64 {
        now.secs().saturating_add_signed(i64::from(self.offset_at(now)))
    }

    /// Days since the epoch in local time.
    pub fn day(self, now: UnixTime) -> u64 {
        self.local_secs(now) / DAY_SECS
    }

    /// The instant the current local day began (a change of offset during the day is taken
    /// into account: the day began at local midnight under the offset in force then).
    pub fn day_start(self, now: UnixTime) -> UnixTime {
        use chrono::TimeZone;
        let local_midnight = self.day(now) * DAY_SECS;
        if let Some(zone) = self.zone {
            let midnight = i64::try_from(local_midnight).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            if let Some(start) = midnight.and_then(|m| zone.from_local_datetime(&m.naive_utc()).earliest()) {
                return UnixTime(u64::try_from(start.timestamp()).unwrap_or(0));
            }
        }
        UnixTime(local_midnight.saturating_add_signed(-i64::from(self.offset_at(now))))
    }

    /// The local hour, 0–23.
    pub fn hour(self, now: UnixTime) -> u64 {
        (self.local_secs(now) % DAY_SECS) / 3600
    }
}

/// What one feature's slot holds now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Held {
    /// Nothing yet, or cleared.
    Nothing,
    /// A level's latest reading.
    Level { value: f64, updated: UnixTime },
    /// A daily count's sum for a local day.
    DailyCount { value: f64, day: u64 },
    /// A derived window, whose buckets hold the figures; its newest step.
    Window { newest: u64 },
    /// The instant of the last event.
    LastEvent { at: UnixTime },
}

/// One feature's slot: what it holds, and where its buckets are.
#[derive(Debug, Clone, Copy)]
struct Slot {
    held: Held,
    /// The index of the feature whose signals feed it (its own, for a source).
    source: u16,
    /// Its buckets: `first..first + len` in the store's table once placed ([`UNPLACED`] until
    /// its source's first signal; none but for windows).
    first: u16,
    len: u16,
}

/// The `first` of a slot whose buckets are not in the table yet.
const UNPLACED: u16 = u16::MAX;

impl Slot {
    fn ring(self) -> core::ops::Range<usize> {
        match self.first {
            UNPLACED => 0..0,
            first => usize::from(first)..usize::from(first) + usize::from(self.len),
        }
    }
}

/// What happened to a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Aggregated into its feature and every feature derived from it.
    Aggregated,
    /// Dropped: the feature is personal and `personalise` is not granted.
    DroppedNoConsent,
    /// Dropped: the feature is computed by the engine (from the clock, or derived from another
    /// feature's signals), not fed by signals of its own.
    DroppedComputed,
    /// Dropped: the value is outside its feature's range (levels and shares 0–1, count
    /// increments 0–[`MAX_COUNT_INCREMENT`]) or not a number.
    DroppedOutOfRange,
}

/// The current features of one device.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    /// One per feature in [`FEATURES`], in its order; never grows.
    slots: Box<[Slot]>,
    /// The rings of the windows whose sources have had a signal, side by side; grows by a
    /// ring at a time, up to every window's.
    buckets: Vec<window::Bucket>,
    local: LocalTime,
}

impl FeatureStore {
    /// An empty store for a device in `local` time, with no window's ring yet.
    pub fn new(local: LocalTime) -> Self {
        let index = |i: usize| u16::try_from(i).expect("the registry has fewer than 65,535 features");
        let slots: Box<[Slot]> = FEATURES
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let (source, len) = match spec.aggregation {
                    Aggregation::Derived { derivation, .. } => {
                        (spec.source().map_or(i, FeatureName::index), derivation.buckets())
                    }
                    _ => (i, 0),
                };
                let len = u16::try_from(len).expect("a window has at most MAX_WINDOW_BUCKETS buckets");
                Slot { held: Held::Nothing, source: index(source), first: UNPLACED, len }
            })
            .collect();
        Self { slots, buckets: Vec::new(), local }
    }

    /// The bytes the store takes, its own and on the heap. It grows only when a source lets in
    /// its first signal (by the rings of the windows derived from it), never beyond
    /// [`FeatureStore::most_memory_bytes`].
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of::<Self>()
            + core::mem::size_of_val::<[Slot]>(&self.slots)
            + self.buckets.capacity() * core::mem::size_of::<window::Bucket>()
    }

    /// The bytes a store takes once every source has had a signal.
    pub fn most_memory_bytes() -> usize {
        let buckets: usize = FEATURES
            .iter()
            .map(|f| match f.aggregation {
                Aggregation::Derived { derivation, .. } => derivation.buckets(),
                _ => 0,
            })
            .sum();
        core::mem::size_of::<Self>()
            + FEATURES.len() * core::mem::size_of::<Slot>()
            + buckets * core::mem::size_of::<window::Bucket>()
    }

    /// Aggregates one signal into its feature and every feature derived from it.
    pub fn handle_signal(&mut self, signal: Signal, consent: ConsentState, now: UnixTime) -> SignalOutcome {
        let spec = signal.feature.spec();
        if let Some(purpose) = spec.purpose {
            if !consent.allows(purpose) {
                return SignalOutcome::DroppedNoConsent;
            }
        }
        let in_range = match spec.aggregation {
            Aggregation::Level => (0.0..=1.0).contains(&signal.value),
            Aggregation::DailyCount => (0.0..=MAX_COUNT_INCREMENT).contains(&signal.value),
            Aggregation::Clock | Aggregation::Derived { .. } => return SignalOutcome::DroppedComputed,
        };
        if !in_range {
            return SignalOutcome::DroppedOutOfRange;
        }
        let day = self.local.day(now);
        let source = signal.feature.index();
        let slot = &mut self.slots[source];
        let source = u16::try_from(source).expect("a feature of the registry");
        slot.held = match (spec.aggregation, slot.held) {
            (Aggregation::DailyCount, Held::DailyCount { value, day: d }) if d == day => {
                Held::DailyCount { value: value + signal.value, day }
            }
            (Aggregation::DailyCount, _) => Held::DailyCount { value: signal.value, day },
            _ => Held::Level { value: signal.value, updated: now },
        };
        // Every feature derived from this one. The same purpose guards them (the protocol's
        // tests hold derived features to their source's purpose), so consent was checked above.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Aggregation::Derived { derivation, .. } = FEATURES[i].aggregation else { continue };
            if slot.source != source {
                continue;
            }
            match derivation.window() {
                None if signal.value > 0.0 => slot.held = Held::LastEvent { at: now },
                None => {}
                Some(w) => {
                    let newest = match slot.held {
                        Held::Window { newest } => Some(newest),
                        _ => None,
                    };
                    if slot.first == UNPLACED {
                        slot.first = u16::try_from(self.buckets.len())
                            .ok()
                            .filter(|first| *first < UNPLACED)
                            .expect("the registry's windows have fewer than 65,535 buckets");
                        self.buckets.reserve_exact(usize::from(slot.len));
                        self.buckets.resize(self.buckets.len() + usize::from(slot.len), window::Bucket::EMPTY);
                    }
                    let ring = &mut self.buckets[slot.ring()];
                    let step = step_at(w, now, || day);
                    slot.held = Held::Window { newest: window::record(ring, newest, step, signal.value) };
                }
            }
        }
        SignalOutcome::Aggregated
    }

    /// The feature's current value, if it has one now. Cheap: at most one pass over the
    /// feature's buckets, no allocation.
    pub fn value(&self, feature: FeatureName, now: UnixTime) -> Option<f64> {
        let slot = &self.slots[feature.index()];
        match (feature.spec().aggregation, slot.held) {
            // Precision loss is impossible: an hour is 0–23.
            #[allow(clippy::cast_precision_loss)]
            (Aggregation::Clock, _) => Some(self.local.hour(now) as f64),
            (Aggregation::Level, Held::Level { value, updated }) => {
                (now.secs().saturating_sub(updated.secs()) < LEVEL_RETENTION_SECS).then_some(value)
            }
            (Aggregation::DailyCount, Held::DailyCount { value, day }) => {
                // No signal today means a count of zero while yesterday's count is kept; after
                // that the count has expired (the same rule as `expire`), whenever that runs.
                match (day, self.local.day(now)) {
                    (d, today) if d == today => Some(value),
                    (d, today) if d + 1 >= today => Some(0.0),
                    _ => None,
                }
            }
            (
                Aggregation::Derived { derivation: Derivation::MinutesSinceLast { within_secs }, .. },
                Held::LastEvent { at },
            ) => {
                (now.secs().abs_diff(at.secs()) < u64::from(within_secs)).then(|| {
                    // Precision loss is impossible: the gap is under `within_secs`, a u32.
                    #[allow(clippy::cast_precision_loss)]
                    let secs = now.secs().saturating_sub(at.secs()) as f64;
                    secs / 60.0
                })
            }
            (Aggregation::Derived { derivation, .. }, Held::Window { newest }) => {
                let w = derivation.window()?;
                let at = window::as_of(usize::from(slot.len), newest, step_at(w, now, || self.local.day(now)))?;
                window::evaluate(derivation, &self.buckets[slot.ring()], at, &feature.spec().range())
            }
            _ => None,
        }
    }

    /// Drops every value whose window has passed (retention), and the buckets that have left
    /// their window; returns how many features lost their value.
    pub fn expire(&mut self, now: UnixTime) -> usize {
        let today = self.local.day(now);
        let mut dropped = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let ring = &mut self.buckets[slot.ring()];
            let stale = match (FEATURES[i].aggregation, slot.held) {
                (_, Held::Nothing) => false,
                (_, Held::Level { updated, .. }) => now.secs().saturating_sub(updated.secs()) >= LEVEL_RETENTION_SECS,
                (_, Held::DailyCount { day, .. }) => day + 1 < today,
                (
                    Aggregation::Derived { derivation: Derivation::MinutesSinceLast { within_secs }, .. },
                    Held::LastEvent { at },
                ) => now.secs().abs_diff(at.secs()) >= u64::from(within_secs),
                (Aggregation::Derived { derivation, .. }, Held::Window { newest }) => {
                    let step = derivation.window().map(|w| step_at(w, now, || today));
                    match step.and_then(|step| window::as_of(ring.len(), newest, step)) {
                        Some(at) => {
                            window::forget_outside(ring, at);
                            false
                        }
                        None => true,
                    }
                }
                _ => true,
            };
            if stale {
                clear(slot, ring);
                dropped += 1;
            }
        }
        dropped
    }

    /// Clears every feature `consent` no longer allows, with its windows, returning how many
    /// held something.
    pub fn purge(&mut self, consent: ConsentState) -> usize {
        let mut purged = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if FEATURES[i].purpose.is_some_and(|p| !consent.allows(p)) && slot.held != Held::Nothing {
                clear(slot, &mut self.buckets[slot.ring()]);
                purged += 1;
            }
        }
        purged
    }

    /// Clears the non-personal feature values too, returning how many held something.
    pub fn clear_context(&mut self) -> usize {
        let mut cleared = 0;
        for slot in self.slots.iter_mut().filter(|s| s.held != Held::Nothing) {
            clear(slot, &mut self.buckets[slot.ring()]);
            cleared += 1;
        }
        cleared
    }

    /// Every feature with a value now, for export.
    pub fn snapshot(&self, now: UnixTime) -> Vec<(FeatureName, f64)> {
        FEATURES
            .iter()
            .filter_map(|f| FeatureName::try_new(f.name).ok())
            .filter(|f| f.spec().aggregation != Aggregation::Clock)
            .filter_map(|f| self.value(f, now).map(|v| (f, v)))
            .collect()
    }
}

/// The step of window `w` that `now` falls in; `day` gives the local day of `now`, asked
/// only for windows of local days (a time-zone lookup is not free, and `value` is hot).
fn step_at(w: Window, now: UnixTime, day: impl FnOnce() -> u64) -> u64 {
    match w {
        Window::Sliding { bucket_secs, .. } => window::step(now.secs(), bucket_secs),
        Window::LocalDays { .. } => day(),
    }
}

/// Empties a slot and its buckets: nothing of what it held is left in memory.
fn clear(slot: &mut Slot, ring: &mut [window::Bucket]) {
    slot.held = Held::Nothing;
    ring.fill(window::Bucket::EMPTY);
}

#[cfg(test)]
mod tests;
