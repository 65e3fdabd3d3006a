//! Signal windows into features (DESIGN §8 step 3). Raw signal values live only here, in
//! memory, inside their window; the rest of the engine sees features.
//!
//! Memory is one slot per known feature, whatever the number of signals. Personal signals are
//! dropped on arrival unless `personalise` is granted, and revoking it clears them.

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::feature::{Aggregation, FeatureName, FEATURES};
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
        match (self.zone, i64::try_from(now.secs()).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0))) {
            (Some(zone), Some(utc)) => zone.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc(),
            _ => self.utc_offset_secs,
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

#[derive(Debug, Clone, Copy)]
struct Slot {
    value: f64,
    updated: UnixTime,
    day: u64,
}

/// What happened to a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Aggregated into its feature.
    Aggregated,
    /// Dropped: the feature is personal and `personalise` is not granted.
    DroppedNoConsent,
    /// Dropped: the feature is computed by the engine, not fed by signals.
    DroppedComputed,
    /// Dropped: the value is outside its feature's range (levels and shares 0–1, count
    /// increments 0–[`MAX_COUNT_INCREMENT`]) or not a number.
    DroppedOutOfRange,
}

/// The current features of one device.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    slots: Vec<Option<Slot>>,
    local: LocalTime,
}

impl FeatureStore {
    /// An empty store for a device in `local` time.
    pub fn new(local: LocalTime) -> Self {
        Self { slots: vec![None; FEATURES.len()], local }
    }

    /// Aggregates one signal.
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
            Aggregation::Clock => true,
        };
        if !in_range {
            return SignalOutcome::DroppedOutOfRange;
        }
        let day = self.local.day(now);
        let slot = &mut self.slots[signal.feature.index()];
        match spec.aggregation {
            Aggregation::Clock => return SignalOutcome::DroppedComputed,
            Aggregation::Level => *slot = Some(Slot { value: signal.value, updated: now, day }),
            Aggregation::DailyCount => {
                let value = match slot {
                    Some(s) if s.day == day => s.value + signal.value,
                    _ => signal.value,
                };
                *slot = Some(Slot { value, updated: now, day });
            }
        }
        SignalOutcome::Aggregated
    }

    /// The feature's current value, if it has one now.
    pub fn value(&self, feature: FeatureName, now: UnixTime) -> Option<f64> {
        let spec = feature.spec();
        match spec.aggregation {
            // Precision loss is impossible: an hour is 0–23.
            #[allow(clippy::cast_precision_loss)]
            Aggregation::Clock => Some(self.local.hour(now) as f64),
            Aggregation::Level => self.slots[feature.index()]
                .filter(|s| now.secs().saturating_sub(s.updated.secs()) < LEVEL_RETENTION_SECS)
                .map(|s| s.value),
            Aggregation::DailyCount => {
                let today = self.local.day(now);
                // No signal today means a count of zero while yesterday's count is kept; after
                // that the count has expired (the same rule as `expire`), whenever that runs.
                self.slots[feature.index()].and_then(|s| match s.day {
                    d if d == today => Some(s.value),
                    d if d + 1 >= today => Some(0.0),
                    _ => None,
                })
            }
        }
    }

    /// Drops every value whose window has passed (retention), returning how many.
    pub fn expire(&mut self, now: UnixTime) -> usize {
        let today = self.local.day(now);
        let mut dropped = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let stale = slot.is_some_and(|s| match FEATURES[i].aggregation {
                Aggregation::Level => now.secs().saturating_sub(s.updated.secs()) >= LEVEL_RETENTION_SECS,
                Aggregation::DailyCount => s.day + 1 < today,
                Aggregation::Clock => true,
            });
            if stale {
                *slot = None;
                dropped += 1;
            }
        }
        dropped
    }

    /// Clears every feature `consent` no longer allows, returning how many held a value.
    pub fn purge(&mut self, consent: ConsentState) -> usize {
        let mut purged = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if FEATURES[i].purpose.is_some_and(|p| !consent.allows(p)) && slot.take().is_some() {
                purged += 1;
            }
        }
        purged
    }

    /// Clears the non-personal feature values too, returning how many held a value.
    pub fn clear_context(&mut self) -> usize {
        self.slots.iter_mut().filter_map(Option::take).count()
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::Purpose;

    fn build_signal(name: &str, value: f64) -> Signal {
        Signal { feature: FeatureName::try_new(name).unwrap(), value }
    }

    fn personalised() -> ConsentState {
        ConsentState::NONE.with(Purpose::Personalise, true)
    }

    #[test]
    fn personal_signals_without_consent_are_never_stored() {
        let mut store = FeatureStore::new(LocalTime::default());
        let now = UnixTime(1_000_000);
        let butter = build_signal("fridge.butter.level", 0.1);
        assert_eq!(store.handle_signal(butter, ConsentState::NONE, now), SignalOutcome::DroppedNoConsent);
        assert_eq!(store.value(butter.feature, now), None);
        assert_eq!(store.handle_signal(butter, personalised(), now), SignalOutcome::Aggregated);
        assert_eq!(store.value(butter.feature, now), Some(0.1));
        assert_eq!(store.purge(ConsentState::NONE), 1);
        assert_eq!(store.value(butter.feature, now), None);
    }

    #[test]
    fn daily_counts_restart_each_local_day() {
        let local = LocalTime::fixed(3600);
        let mut store = FeatureStore::new(local);
        let opens = build_signal("fridge.door.opens", 1.0);
        // 22:30 UTC is 23:30 local; an hour later is the next local day.
        let evening = UnixTime(20 * DAY_SECS + 22 * 3600 + 1800);
        store.handle_signal(opens, personalised(), evening);
        store.handle_signal(opens, personalised(), evening);
        assert_eq!(store.value(opens.feature, evening), Some(2.0));
        let next_day = evening.plus_secs(3600);
        assert_eq!(store.value(opens.feature, next_day), Some(0.0));
        store.handle_signal(opens, personalised(), next_day);
        assert_eq!(store.value(opens.feature, next_day), Some(1.0));
    }

    #[test]
    fn out_of_range_values_are_dropped() {
        let mut store = FeatureStore::new(LocalTime::default());
        let now = UnixTime(5 * DAY_SECS);
        for (name, value) in [
            ("fridge.butter.level", 1.5),
            ("fridge.butter.level", -0.1),
            ("fridge.butter.level", f64::NAN),
            ("fridge.door.opens", -1.0),
            ("fridge.door.opens", 1e9),
            ("fridge.door.opens", f64::INFINITY),
        ] {
            let outcome = store.handle_signal(build_signal(name, value), personalised(), now);
            assert_eq!(outcome, SignalOutcome::DroppedOutOfRange, "{name} = {value}");
        }
    }

    #[test]
    fn a_count_reads_the_same_before_and_after_expiry_runs() {
        let mut store = FeatureStore::new(LocalTime::default());
        let opens = build_signal("fridge.door.opens", 3.0);
        let day = UnixTime(10 * DAY_SECS);
        store.handle_signal(opens, personalised(), day);
        assert_eq!(store.value(opens.feature, day.plus_secs(DAY_SECS)), Some(0.0));
        let later = day.plus_secs(2 * DAY_SECS);
        let before = store.value(opens.feature, later);
        store.expire(later);
        assert_eq!(before, store.value(opens.feature, later));
        assert_eq!(before, None);
    }

    #[test]
    fn levels_expire_after_their_retention() {
        let mut store = FeatureStore::new(LocalTime::default());
        let milk = build_signal("fridge.milk.level", 0.5);
        let now = UnixTime(5 * DAY_SECS);
        store.handle_signal(milk, personalised(), now);
        let later = now.plus_secs(LEVEL_RETENTION_SECS);
        assert_eq!(store.value(milk.feature, later), None);
        assert_eq!(store.expire(later), 1);
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        let stockholm = LocalTime::zone(chrono_tz::Europe::Stockholm);
        // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST (01:00 UTC).
        let before = UnixTime::parse_rfc3339("2026-03-29T00:30:00Z").unwrap();
        let after = UnixTime::parse_rfc3339("2026-03-29T01:30:00Z").unwrap();
        assert_eq!((stockholm.hour(before), stockholm.hour(after)), (1, 3));
        assert_eq!(stockholm.day(before), stockholm.day(after));
        // The day began at local midnight, under winter time: 23:00 UTC the day before.
        assert_eq!(stockholm.day_start(after), UnixTime::parse_rfc3339("2026-03-28T23:00:00Z").unwrap());
        // Summer: 22:30 UTC is 00:30 the next local day.
        let summer = UnixTime::parse_rfc3339("2026-07-01T22:30:00Z").unwrap();
        assert_eq!(stockholm.hour(summer), 0);
        assert_eq!(stockholm.day_start(summer), UnixTime::parse_rfc3339("2026-07-01T22:00:00Z").unwrap());
        // A fixed offset knows nothing of that.
        assert_eq!(LocalTime::fixed(3600).hour(after), 2);
    }

    #[test]
    fn the_clock_feature_is_the_local_hour() {
        let store = FeatureStore::new(LocalTime::fixed(-5 * 3600));
        let hour = FeatureName::try_new("context.hour").unwrap();
        assert_eq!(store.value(hour, UnixTime(20 * DAY_SECS + 3 * 3600)), Some(22.0));
        let mut store = store;
        let signal = Signal { feature: hour, value: 4.0 };
        assert_eq!(store.handle_signal(signal, ConsentState::NONE, UnixTime(0)), SignalOutcome::DroppedComputed);
    }
}
