//! The feature store's tests: sources as before, each window kind (sliding hour and day,
//! tumbling local day across daylight saving, seven local days, trend, minutes since the last
//! event), consent, expiry, time going backwards and fixed memory.

use ledtrad_protocol::feature::signal_features;
use ledtrad_protocol::Purpose;
use proptest::prelude::*;

use super::window::Bucket;
use super::*;

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
    // The level, the day's lowest level and the trend's window.
    assert_eq!(store.purge(ConsentState::NONE), 3);
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

/// 2026-11-23T10:00:00Z (11:00 at UTC+1), on a five-minute and an hour boundary.
const T0: UnixTime = UnixTime(1_795_428_000);

fn at(rfc3339: &str) -> UnixTime {
    UnixTime::parse_rfc3339(rfc3339).unwrap()
}

fn value(store: &FeatureStore, name: &str, now: UnixTime) -> Option<f64> {
    store.value(FeatureName::try_new(name).unwrap(), now)
}

/// Feeds `name` the `(instant, value)` signals with `personalise`; each must be aggregated.
fn feed(store: &mut FeatureStore, name: &str, signals: &[(UnixTime, f64)]) {
    for &(now, v) in signals {
        assert_eq!(store.handle_signal(build_signal(name, v), personalised(), now), SignalOutcome::Aggregated);
    }
}

/// A store at UTC+1 with one door opening at each of `minutes` after [`T0`].
fn build_openings(minutes: &[u64]) -> FeatureStore {
    let mut store = FeatureStore::new(LocalTime::fixed(3600));
    let signals: Vec<_> = minutes.iter().map(|m| (T0.plus_secs(m * 60), 1.0)).collect();
    feed(&mut store, "fridge.door.opens", &signals);
    store
}

/// A store in `local` time with `name` read at the given instants.
fn build_levels(local: LocalTime, name: &str, readings: &[(UnixTime, f64)]) -> FeatureStore {
    let mut store = FeatureStore::new(local);
    feed(&mut store, name, readings);
    store
}

/// A store at UTC+1 with `name` read (or counted) once a day, at 11:00 local from [`T0`]'s
/// day on.
fn build_daily_levels(name: &str, levels: &[f64]) -> FeatureStore {
    let readings: Vec<_> = (0u64..).zip(levels).map(|(d, v)| (T0.plus_secs(d * DAY_SECS), *v)).collect();
    build_levels(LocalTime::fixed(3600), name, &readings)
}

/// A store at UTC+1 with `name` counted once a day, at 11:00 local from [`T0`]'s day on.
fn build_daily_counts(name: &str, per_day: &[f64]) -> FeatureStore {
    build_daily_levels(name, per_day)
}

#[test]
fn openings_in_the_last_hour_slide_in_five_minute_steps() {
    let store = build_openings(&[0, 10, 50]);
    let last_hour = |minutes: u64| value(&store, "fridge.door.opens.last_hour", T0.plus_secs(minutes * 60));
    assert_eq!(last_hour(55), Some(3.0));
    // The window is the current five-minute step and the eleven before it: at 60 minutes the
    // step that began at 0 has left.
    assert_eq!(last_hour(59), Some(3.0));
    assert_eq!(last_hour(60), Some(2.0));
    assert_eq!(last_hour(70), Some(1.0));
    assert_eq!(last_hour(109), Some(1.0));
    // Nothing left inside: no value (not a zero that would outlive the window).
    assert_eq!(last_hour(110), None);
    // The day's count does not slide.
    assert_eq!(value(&store, "fridge.door.opens", T0.plus_secs(110 * 60)), Some(3.0));
}

#[test]
fn openings_per_hour_are_the_last_day_over_its_hours() {
    let store = build_openings(&[0, 30, 60, 120, 600, 1200]);
    let per_hour = |minutes: u64| value(&store, "fridge.door.opens.per_hour", T0.plus_secs(minutes * 60));
    assert_eq!(per_hour(1200), Some(0.25));
    // A day and a minute on, the first hour (two openings) has left.
    assert_eq!(per_hour(24 * 60 + 1), Some(4.0 / 24.0));
    assert_eq!(per_hour(44 * 60), None);
}

#[test]
fn minutes_since_the_last_opening_count_from_the_last_one() {
    let mut store = build_openings(&[0, 30]);
    let since = |store: &FeatureStore, secs: u64| value(store, "fridge.door.minutes_since_open", T0.plus_secs(secs));
    assert_eq!(since(&store, 30 * 60), Some(0.0));
    assert_eq!(since(&store, 30 * 60 + 90), Some(1.5));
    // A zero increment is not an opening.
    feed(&mut store, "fridge.door.opens", &[(T0.plus_secs(40 * 60), 0.0)]);
    assert_eq!(since(&store, 45 * 60), Some(15.0));
    // Read before the last opening (a clock set back): zero, never negative.
    assert_eq!(since(&store, 10 * 60), Some(0.0));
    // Kept a week, then gone, for reads and expiry alike.
    let week = 7 * DAY_SECS;
    assert_eq!(since(&store, 30 * 60 + week - 60), Some(10_079.0));
    assert_eq!(since(&store, 30 * 60 + week), None);
    // The day's count, both windows and the last opening: everything about the door.
    assert_eq!(store.expire(T0.plus_secs(30 * 60 + week)), 4);
    assert!(store.snapshot(T0.plus_secs(30 * 60)).is_empty());
}

#[test]
fn a_day_minimum_covers_the_local_day_across_the_autumn_change() {
    // 2026-10-25 lasts 25 hours in Stockholm: from 22:00Z on the 24th to 23:00Z on the 25th.
    let stockholm = LocalTime::zone(chrono_tz::Europe::Stockholm);
    let first = at("2026-10-24T22:30:00Z"); // 00:30 summer time
    let last = at("2026-10-25T22:30:00Z"); // 23:30 winter time, a day later, the same local day
    let readings = [(first, 0.2), (last, 0.6)];
    let store = build_levels(stockholm, "fridge.butter.level", &readings);
    assert_eq!(value(&store, "fridge.butter.day_min", last), Some(0.2));
    // At local midnight a new day begins, with no reading yet.
    assert_eq!(value(&store, "fridge.butter.day_min", at("2026-10-25T23:00:00Z")), None);
    // A fixed summer offset knows nothing of that: the second reading is on the next day.
    let fixed = build_levels(LocalTime::fixed(7200), "fridge.butter.level", &readings);
    assert_eq!(value(&fixed, "fridge.butter.day_min", last), Some(0.6));
}

#[test]
fn day_minimum_maximum_and_means() {
    let hour = |h: u64| T0.plus_secs(h * 3600);
    let mut store = build_levels(LocalTime::fixed(3600), "fridge.vegetables.level", &[(hour(0), 0.9), (hour(1), 0.3)]);
    feed(&mut store, "fridge.vegetables.level", &[(hour(2), 0.6)]);
    feed(&mut store, "fridge.drinks.level", &[(hour(0), 0.5), (hour(3), 0.1), (hour(4), 0.7)]);
    let minutes = |m: u64| T0.plus_secs(m * 60);
    feed(&mut store, "context.ambient_light", &[(minutes(0), 0.2), (minutes(30), 0.8), (minutes(50), 0.5)]);
    assert_eq!(value(&store, "fridge.vegetables.day_mean", hour(5)), Some(0.6));
    assert_eq!(value(&store, "fridge.drinks.day_min", hour(5)), Some(0.1));
    assert_eq!(value(&store, "fridge.drinks.level", hour(5)), Some(0.7));
    assert_eq!(value(&store, "context.ambient_light.day_max", hour(5)), Some(0.8));
    assert_eq!(value(&store, "context.ambient_light.hour_mean", minutes(55)), Some(0.5));
    // An hour on, the first reading has left the hour.
    assert_eq!(value(&store, "context.ambient_light.hour_mean", minutes(65)), Some(0.65));
    // Contextual: no consent needed to read or feed them.
    let light = Signal { feature: FeatureName::try_new("context.ambient_light").unwrap(), value: 1.0 };
    assert_eq!(store.handle_signal(light, ConsentState::NONE, hour(6)), SignalOutcome::Aggregated);
    assert_eq!(value(&store, "context.ambient_light.day_max", hour(6)), Some(1.0));
}

#[test]
fn a_falling_level_trends_below_zero_by_its_fall_per_day() {
    let store = build_daily_levels("fridge.butter.level", &[0.9, 0.8, 0.7, 0.6]);
    let trend = |days: u64| value(&store, "fridge.butter.trend", T0.plus_secs(days * DAY_SECS));
    assert!((trend(3).unwrap() + 0.1).abs() < 1e-9, "{:?}", trend(3));
    // Seven local days on, the first day has left; the rest fall just as fast.
    assert!((trend(7).unwrap() + 0.1).abs() < 1e-9, "{:?}", trend(7));
    // Ten days on, the last reading has left the week.
    assert_eq!(trend(10), None);
    // Rising, flat, and a single day (no trend).
    let rising = build_daily_levels("fridge.milk.level", &[0.2, 0.5]);
    assert!((value(&rising, "fridge.milk.trend", T0.plus_secs(DAY_SECS)).unwrap() - 0.3).abs() < 1e-9);
    let flat = build_daily_levels("fridge.vegetables.level", &[0.4, 0.4, 0.4]);
    assert_eq!(value(&flat, "fridge.vegetables.trend", T0.plus_secs(2 * DAY_SECS)), Some(0.0));
    assert_eq!(value(&build_daily_levels("fridge.butter.level", &[0.5]), "fridge.butter.trend", T0), None);
    // Emptied and refilled within a day: the trend follows the day's mean, within its range.
    let refilled = build_daily_levels("fridge.butter.level", &[0.0, 1.0]);
    assert_eq!(value(&refilled, "fridge.butter.trend", T0.plus_secs(DAY_SECS)), Some(1.0));
}

#[test]
fn weekly_sums_cover_the_last_seven_local_days() {
    let store = build_daily_counts("ereader.reading.minutes", &[30.0; 9]);
    let day = |d: u64| T0.plus_secs(d * DAY_SECS);
    assert_eq!(value(&store, "ereader.reading.minutes.week", day(8)), Some(210.0));
    assert_eq!(value(&store, "ereader.reading.minutes", day(8)), Some(30.0));
    let books = build_daily_counts("ereader.books.finished", &[1.0, 0.0, 0.0, 1.0]);
    assert_eq!(value(&books, "ereader.books.finished.week", day(6)), Some(2.0));
    assert_eq!(value(&books, "ereader.books.finished.week", day(7)), Some(1.0));
    assert_eq!(value(&books, "ereader.books.minutes_since_finished", day(3).plus_secs(600)), Some(10.0));
}

#[test]
fn derived_features_take_no_signals_of_their_own() {
    let mut store = FeatureStore::new(LocalTime::default());
    for spec in FEATURES.iter().filter(|f| matches!(f.aggregation, Aggregation::Derived { .. })) {
        let signal = build_signal(spec.name, 0.5);
        assert_eq!(store.handle_signal(signal, ConsentState::all(), T0), SignalOutcome::DroppedComputed);
        if spec.purpose.is_some() {
            assert_eq!(store.handle_signal(signal, ConsentState::NONE, T0), SignalOutcome::DroppedNoConsent);
        }
    }
    assert!(store.snapshot(T0).is_empty());
}

#[test]
fn personal_signals_without_consent_enter_no_window() {
    let mut store = FeatureStore::new(LocalTime::fixed(3600));
    for feature in signal_features() {
        let outcome = store.handle_signal(Signal { feature, value: 0.5 }, ConsentState::NONE, T0);
        let expected = match feature.spec().purpose {
            Some(_) => SignalOutcome::DroppedNoConsent,
            None => SignalOutcome::Aggregated,
        };
        assert_eq!(outcome, expected, "{feature}");
    }
    for (i, spec) in FEATURES.iter().enumerate().filter(|(_, f)| f.purpose.is_some()) {
        let slot = &store.slots[i];
        assert_eq!(slot.held, Held::Nothing, "{}", spec.name);
        assert!(store.buckets[slot.ring()].iter().all(|b| *b == Bucket::EMPTY), "{}", spec.name);
    }
    // Granting later brings nothing of it back: only what comes after counts.
    feed(&mut store, "fridge.door.opens", &[(T0.plus_secs(60), 1.0)]);
    assert_eq!(value(&store, "fridge.door.opens.last_hour", T0.plus_secs(60)), Some(1.0));
}

#[test]
fn revoking_purges_sources_and_every_window_derived_from_them() {
    let mut store = FeatureStore::new(LocalTime::fixed(3600));
    for d in 0..3 {
        for feature in signal_features() {
            store.handle_signal(Signal { feature, value: 0.5 }, personalised(), T0.plus_secs(d * DAY_SECS));
        }
    }
    let now = T0.plus_secs(2 * DAY_SECS);
    let personal = FEATURES.iter().filter(|f| f.purpose.is_some()).count();
    // Every personal feature held something: the twelve personal sources and all sixteen
    // features derived from them.
    assert_eq!(store.purge(ConsentState::NONE), personal);
    assert_eq!(personal, 28);
    for (i, spec) in FEATURES.iter().enumerate().filter(|(_, f)| f.purpose.is_some()) {
        let slot = &store.slots[i];
        assert_eq!(value(&store, spec.name, now), None, "{}", spec.name);
        assert!(store.buckets[slot.ring()].iter().all(|b| *b == Bucket::EMPTY), "{}", spec.name);
    }
    // Context stays, until the context is cleared too.
    let held: Vec<_> = store.snapshot(now).into_iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(held, ["context.ambient_light", "context.ambient_light.hour_mean", "context.ambient_light.day_max"]);
    assert_eq!(store.clear_context(), 3);
    assert!(store.buckets.iter().all(|b| *b == Bucket::EMPTY));
}

#[test]
fn expiry_drops_windows_whose_data_are_all_older_than_their_span() {
    let mut store = build_openings(&[0, 20]);
    let later = |m: u64| T0.plus_secs(m * 60);
    assert_eq!(store.expire(later(30)), 0);
    // At 65 minutes the step at 0 has left the hour, and expiry empties its bucket.
    assert_eq!(store.expire(later(65)), 0);
    let last_hour = store.slots[FeatureName::try_new("fridge.door.opens.last_hour").unwrap().index()];
    let ring = &store.buckets[last_hour.ring()];
    assert_eq!(ring.iter().filter(|b| **b != Bucket::EMPTY).count(), 1);
    assert_eq!(value(&store, "fridge.door.opens.last_hour", later(65)), Some(1.0));
    // At 80 minutes nothing is left inside the hour: the window goes, the others stay.
    let before = value(&store, "fridge.door.opens.last_hour", later(80));
    assert_eq!(store.expire(later(80)), 1);
    assert_eq!(before, None);
    assert_eq!(value(&store, "fridge.door.opens.last_hour", later(80)), None);
    assert_eq!(value(&store, "fridge.door.opens.per_hour", later(80)), Some(2.0 / 24.0));
}

#[test]
fn time_going_backwards_neither_panics_nor_moves_windows_back() {
    let mut store = build_openings(&[0, 30]);
    // Set back ten minutes before the first opening: inside the hour, so into its own step.
    let back = UnixTime(T0.secs() - 600);
    feed(&mut store, "fridge.door.opens", &[(back, 1.0)]);
    // Read at the earlier time, the hour is seen as of its newest step.
    assert_eq!(value(&store, "fridge.door.opens.last_hour", back), Some(3.0));
    // The last opening is the last one handled.
    assert_eq!(value(&store, "fridge.door.minutes_since_open", T0), Some(10.0));
    // Set back two days: the hour starts afresh; so does the day's count.
    let far = UnixTime(T0.secs() - 2 * DAY_SECS);
    feed(&mut store, "fridge.door.opens", &[(far, 1.0)]);
    assert_eq!(value(&store, "fridge.door.opens.last_hour", far), Some(1.0));
    assert_eq!(value(&store, "fridge.door.opens", far), Some(1.0));
    // Reads and expiry at any instant: no panic, nothing out of range.
    for now in [UnixTime(0), UnixTime(1), far, T0, UnixTime(u64::MAX)] {
        for spec in FEATURES {
            if let Some(v) = value(&store, spec.name, now) {
                assert!(spec.range().contains(&v), "{} = {v} at {}", spec.name, now.secs());
            }
        }
    }
    store.expire(UnixTime(u64::MAX));
    store.expire(UnixTime(0));
}

/// The number of buckets the registry's windows need.
fn window_buckets() -> usize {
    FEATURES
        .iter()
        .map(|f| match f.aggregation {
            Aggregation::Derived { derivation, .. } => derivation.buckets(),
            _ => 0,
        })
        .sum()
}

#[test]
fn memory_is_bounded_and_grows_only_at_a_sources_first_signal() {
    let mut store = FeatureStore::new(LocalTime::zone(chrono_tz::Europe::Stockholm));
    assert_eq!(window_buckets(), 135);
    assert_eq!((store.slots.len(), store.buckets.len()), (FEATURES.len(), 0));
    let empty = core::mem::size_of::<FeatureStore>() + FEATURES.len() * core::mem::size_of::<Slot>();
    assert_eq!(store.memory_bytes(), empty);
    // On 64-bit targets: 40 bytes a bucket, 32 a slot, 48 for the store itself: 6,536 at most.
    assert!(core::mem::size_of::<Bucket>() <= 40);
    assert!(core::mem::size_of::<Slot>() <= 32);
    assert_eq!(FeatureStore::most_memory_bytes(), empty + window_buckets() * core::mem::size_of::<Bucket>());
    assert!(FeatureStore::most_memory_bytes() <= 7 * 1024, "{}", FeatureStore::most_memory_bytes());

    // A fridge's signals (and the light) make the rings of their windows only: 60 and 13.
    for feature in signal_features().filter(|f| f.as_str().starts_with("fridge.") || f.as_str().starts_with("context."))
    {
        store.handle_signal(Signal { feature, value: 0.5 }, personalised(), T0);
    }
    assert_eq!(store.buckets.len(), 73);
    let fridge = store.memory_bytes();
    assert_eq!(fridge, empty + 73 * core::mem::size_of::<Bucket>());
    // A personal signal without `personalise` makes nothing.
    let reading = FeatureName::try_new("ereader.reading.minutes").unwrap();
    store.handle_signal(Signal { feature: reading, value: 5.0 }, ConsentState::NONE, T0);
    assert_eq!(store.memory_bytes(), fridge);
    // Every source spoken: every ring, and no more.
    for feature in signal_features() {
        store.handle_signal(Signal { feature, value: 0.5 }, personalised(), T0);
    }
    assert_eq!(store.buckets.len(), window_buckets());
    assert_eq!(store.memory_bytes(), FeatureStore::most_memory_bytes());
}

#[test]
fn a_flood_of_a_million_signals_leaves_memory_unchanged() {
    let mut store = FeatureStore::new(LocalTime::zone(chrono_tz::Europe::Stockholm));
    let sources: Vec<FeatureName> = signal_features().collect();
    for feature in &sources {
        store.handle_signal(Signal { feature: *feature, value: 0.5 }, ConsentState::all(), T0);
    }
    let before = store.memory_bytes();
    let tables = (store.slots.as_ptr(), store.buckets.as_ptr());
    let mut now = T0;
    for k in 0..1_000_000u64 {
        // Three seconds apart on average: some five weeks, so every window turns many times.
        now = now.plus_secs(k % 7);
        let feature = sources[k as usize % sources.len()];
        let outcome =
            store.handle_signal(Signal { feature, value: (k % 101) as f64 / 100.0 }, ConsentState::all(), now);
        assert_eq!(outcome, SignalOutcome::Aggregated);
    }
    assert_eq!(store.memory_bytes(), before);
    assert_eq!((store.slots.as_ptr(), store.buckets.as_ptr()), tables);
    for spec in FEATURES {
        let v = value(&store, spec.name, now);
        assert!(v.is_some_and(|v| spec.range().contains(&v)), "{} = {v:?}", spec.name);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Signal(usize, f64),
    Step(i64),
    Consent(bool),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop_oneof![
        4 => 0.0..=1.0f64,
        2 => 0.0..=MAX_COUNT_INCREMENT,
        1 => -5.0..50.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ];
    let step = prop_oneof![
        6 => -120i64..900,
        2 => -2 * 86_400i64..3 * 86_400,
        1 => -40 * 86_400i64..40 * 86_400,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ];
    prop_oneof![
        8 => (0..FEATURES.len(), value).prop_map(|(f, v)| Op::Signal(f, v)),
        4 => step.prop_map(Op::Step),
        1 => any::<bool>().prop_map(Op::Consent),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn values_stay_finite_and_inside_their_ranges(stockholm in any::<bool>(), ops in proptest::collection::vec(op(), 1..300)) {
        let local = if stockholm { LocalTime::zone(chrono_tz::Europe::Stockholm) } else { LocalTime::fixed(-5 * 3600) };
        let mut store = FeatureStore::new(local);
        let mut memory = store.memory_bytes();
        let mut consent = personalised();
        let mut now = T0;
        for op in ops {
            match op {
                Op::Signal(f, v) => {
                    let feature = FeatureName::try_new(FEATURES[f].name).unwrap();
                    store.handle_signal(Signal { feature, value: v }, consent, now);
                }
                Op::Step(secs) => now = UnixTime(now.secs().saturating_add_signed(secs)),
                Op::Consent(personalise) => {
                    consent = ConsentState::NONE.with(Purpose::Personalise, personalise);
                    store.purge(consent);
                }
                Op::Expire => {
                    // Expiry changes no value: it only forgets what reads no longer see.
                    let before = store.snapshot(now);
                    store.expire(now);
                    prop_assert_eq!(before, store.snapshot(now));
                }
            }
            for spec in FEATURES {
                if let Some(v) = value(&store, spec.name, now) {
                    prop_assert!(v.is_finite() && spec.range().contains(&v), "{} = {} at {}", spec.name, v, now.secs());
                    prop_assert!(spec.purpose.is_none() || consent.allows(Purpose::Personalise), "{} held", spec.name);
                }
            }
            // Memory grows only by a source's first rings, and never past the bound.
            prop_assert!(store.memory_bytes() >= memory && store.memory_bytes() <= FeatureStore::most_memory_bytes());
            memory = store.memory_bytes();
        }
    }
}
