//! The features the engine knows (DESIGN §8 step 3). Each declares the consent purpose that
//! allows its use (or none, for contextual features that say nothing about a person), the
//! coarse topic it speaks of, and the coarse, truthful phrase a "why" text may use for it.
//!
//! There are two sorts. *Source* features are fed by sensor signals under their own name
//! (levels, daily counts) or computed from the clock. *Derived* features are computed by the
//! engine from one source's signals over a window (sliding counts and rates, per-day minimum,
//! maximum and mean, trends, time since the last event); no signal carries their name. A
//! derived feature has its source's device kind, purpose and topic, so a consent that lets a
//! signal in lets in everything derived from it, and a revocation that purges the source
//! purges them too.

use alloc::string::String;
use core::ops::RangeInclusive;

use crate::consent::Purpose;
use crate::device::DeviceKind;
use crate::time::DAY_SECS;

/// How signals for a feature are aggregated on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// The latest value (a level, a share, a reading), 0–1, believed for 48 hours.
    Level,
    /// The sum of signal values (count increments) over the current local day.
    DailyCount,
    /// Computed by the engine from the time of the decision (never sent as a signal).
    Clock,
    /// Computed by the engine from the signals of another feature (never sent as a signal).
    Derived {
        /// The source feature's name; its signals feed this feature.
        source: &'static str,
        /// What is computed from them, over which window.
        derivation: Derivation,
    },
}

/// The stretch of time a derived feature looks at, cut into buckets. Memory is one fixed
/// bucket per step, whatever the number of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last `buckets` steps of `bucket_secs` seconds, the current (partial) step included.
    /// Steps are aligned to multiples of `bucket_secs` since the epoch.
    Sliding {
        /// How many steps.
        buckets: u8,
        /// The length of one step, in seconds.
        bucket_secs: u32,
    },
    /// The last `days` local days, today included; days follow the device's time zone with
    /// its daylight-saving changes (a day may be 23 or 25 hours long). One day is a tumbling
    /// window: it starts afresh at local midnight.
    LocalDays {
        /// How many local days.
        days: u8,
    },
}

impl Window {
    /// The last hour, in twelve five-minute steps.
    pub const LAST_HOUR: Window = Window::Sliding { buckets: 12, bucket_secs: 300 };
    /// The last day, in twenty-four one-hour steps.
    pub const LAST_DAY: Window = Window::Sliding { buckets: 24, bucket_secs: 3600 };
    /// The current local day (tumbling).
    pub const TODAY: Window = Window::LocalDays { days: 1 };
    /// The last seven local days, today included.
    pub const LAST_WEEK: Window = Window::LocalDays { days: 7 };

    /// How many buckets it holds.
    pub const fn buckets(self) -> usize {
        match self {
            Window::Sliding { buckets, .. } => buckets as usize,
            Window::LocalDays { days } => days as usize,
        }
    }

    /// Its nominal length in seconds (local days are counted as 24 hours).
    pub const fn span_secs(self) -> u64 {
        match self {
            Window::Sliding { buckets, bucket_secs } => buckets as u64 * bucket_secs as u64,
            Window::LocalDays { days } => days as u64 * DAY_SECS,
        }
    }

    /// The nominal length of one bucket in days.
    pub fn bucket_days(self) -> f64 {
        match self {
            Window::Sliding { bucket_secs, .. } => f64::from(bucket_secs) / DAY_SECS as f64,
            Window::LocalDays { .. } => 1.0,
        }
    }
}

/// What a derived feature computes from its source's signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derivation {
    /// The sum of a count's increments over the window (0 or more).
    Sum(Window),
    /// The sum of a count's increments over the window, per hour of the window (0 or more).
    RatePerHour(Window),
    /// The mean of a level's readings over the window (0–1).
    Mean(Window),
    /// The lowest of a level's readings over the window (0–1).
    Min(Window),
    /// The highest of a level's readings over the window (0–1).
    Max(Window),
    /// How a level changes per day: the least-squares slope of the bucket means against time,
    /// in level per day (negative when falling); needs readings in two buckets.
    TrendPerDay(Window),
    /// Minutes since the last signal with a value above zero, while that was less than
    /// `within_secs` ago; only that instant is kept, not the signal.
    MinutesSinceLast {
        /// How long the instant of the last event is kept.
        within_secs: u32,
    },
}

impl Derivation {
    /// Its window, if it keeps one.
    pub const fn window(self) -> Option<Window> {
        match self {
            Derivation::Sum(w)
            | Derivation::RatePerHour(w)
            | Derivation::Mean(w)
            | Derivation::Min(w)
            | Derivation::Max(w)
            | Derivation::TrendPerDay(w) => Some(w),
            Derivation::MinutesSinceLast { .. } => None,
        }
    }

    /// How many buckets it keeps (none for the time since the last event).
    pub const fn buckets(self) -> usize {
        match self.window() {
            Some(w) => w.buckets(),
            None => 0,
        }
    }
}

/// The most buckets one derived feature may keep.
pub const MAX_WINDOW_BUCKETS: usize = 24;

/// The coarse topic a feature speaks of: what a "why" text may name, and nothing finer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Butter, milk, cheese.
    Dairy,
    /// Vegetables and fruit.
    Produce,
    /// Drinks.
    Drinks,
    /// How the fridge is used (door openings).
    FridgeUse,
    /// Reading on an e-reader: time, finished books, genres.
    Reading,
    /// How a lock screen is used.
    ScreenUse,
    /// The time of day.
    TimeOfDay,
    /// The light around the device.
    Surroundings,
}

impl Topic {
    /// How a "why" text names it.
    pub const fn label(self) -> &'static str {
        match self {
            Topic::Dairy => "dairy",
            Topic::Produce => "fresh produce",
            Topic::Drinks => "drinks",
            Topic::FridgeUse => "use of the fridge",
            Topic::Reading => "reading",
            Topic::ScreenUse => "use of the screen",
            Topic::TimeOfDay => "time of day",
            Topic::Surroundings => "light around the device",
        }
    }
}

/// A feature's definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureSpec {
    /// The dotted name used in signals and catalogue conditions.
    pub name: &'static str,
    /// The device kind that produces it, or `None` for context every device has.
    pub kind: Option<DeviceKind>,
    /// The purpose that must be granted to use it; `None` for non-personal context.
    pub purpose: Option<Purpose>,
    /// How its signals are aggregated.
    pub aggregation: Aggregation,
    /// The coarse topic it speaks of.
    pub topic: Topic,
    /// The coarse phrase for "why am I seeing this", completing "Because …".
    pub why: &'static str,
}

impl FeatureSpec {
    /// Whether signals carry its name (levels and daily counts); computed and derived
    /// features are never sent.
    pub const fn is_source(&self) -> bool {
        matches!(self.aggregation, Aggregation::Level | Aggregation::DailyCount)
    }

    /// The feature whose signals a derived feature is computed from.
    pub fn source(&self) -> Option<FeatureName> {
        match self.aggregation {
            Aggregation::Derived { source, .. } => FeatureName::try_new(source).ok(),
            _ => None,
        }
    }

    /// The values it can take: levels and shares 0–1, counts 0 or more, the hour 0–23,
    /// trends ± one full level per bucket, minutes since an event up to its window.
    pub fn range(&self) -> RangeInclusive<f64> {
        match self.aggregation {
            Aggregation::Level => 0.0..=1.0,
            Aggregation::DailyCount => 0.0..=f64::MAX,
            Aggregation::Clock => 0.0..=23.0,
            Aggregation::Derived { derivation, .. } => {
                let source = self.source().map_or(0.0..=1.0, |s| s.spec().range());
                match derivation {
                    Derivation::Sum(_) | Derivation::RatePerHour(_) => 0.0..=f64::MAX,
                    Derivation::Mean(_) | Derivation::Min(_) | Derivation::Max(_) => source,
                    Derivation::TrendPerDay(w) => {
                        let most = (source.end() - source.start()) / w.bucket_days();
                        -most..=most
                    }
                    Derivation::MinutesSinceLast { within_secs } => 0.0..=f64::from(within_secs) / 60.0,
                }
            }
        }
    }
}

const fn personal(
    name: &'static str,
    kind: DeviceKind,
    aggregation: Aggregation,
    topic: Topic,
    why: &'static str,
) -> FeatureSpec {
    FeatureSpec { name, kind: Some(kind), purpose: Some(Purpose::Personalise), aggregation, topic, why }
}

const fn context(name: &'static str, aggregation: Aggregation, topic: Topic, why: &'static str) -> FeatureSpec {
    FeatureSpec { name, kind: None, purpose: None, aggregation, topic, why }
}

/// A feature derived from `source`: same kind, purpose and topic.
const fn derived(name: &'static str, source: FeatureSpec, derivation: Derivation, why: &'static str) -> FeatureSpec {
    FeatureSpec {
        name,
        kind: source.kind,
        purpose: source.purpose,
        aggregation: Aggregation::Derived { source: source.name, derivation },
        topic: source.topic,
        why,
    }
}

use Aggregation::{Clock, DailyCount, Level};
use Derivation::{Max, Mean, Min, MinutesSinceLast, RatePerHour, Sum, TrendPerDay};
use DeviceKind::{Ereader, Fridge, LockScreen};

// Sources: levels and shares 0–1 (latest value, believed 48 h), counts per local day.
const BUTTER: FeatureSpec =
    personal("fridge.butter.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home");
const MILK: FeatureSpec =
    personal("fridge.milk.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home");
const CHEESE: FeatureSpec =
    personal("fridge.cheese.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home");
const VEGETABLES: FeatureSpec =
    personal("fridge.vegetables.level", Fridge, Level, Topic::Produce, "fresh produce runs low in this home");
const DRINKS: FeatureSpec =
    personal("fridge.drinks.level", Fridge, Level, Topic::Drinks, "drinks run low in this home");
const DOOR_OPENS: FeatureSpec =
    personal("fridge.door.opens", Fridge, DailyCount, Topic::FridgeUse, "this fridge is opened often today");
const BOOKS_FINISHED: FeatureSpec =
    personal("ereader.books.finished", Ereader, DailyCount, Topic::Reading, "books get finished on this reader");
const READING_MINUTES: FeatureSpec =
    personal("ereader.reading.minutes", Ereader, DailyCount, Topic::Reading, "this reader is used a lot");
const UNLOCKS: FeatureSpec =
    personal("lockscreen.unlocks", LockScreen, DailyCount, Topic::ScreenUse, "this screen is used often today");
const AMBIENT_LIGHT: FeatureSpec =
    context("context.ambient_light", Level, Topic::Surroundings, "of the light around the device");

/// How long the instant of the last event is kept for "minutes since": a week.
const LAST_EVENT_KEPT_SECS: u32 = 7 * 86_400;

/// Every known feature: the sources first (their order is fixed), then the derived ones.
/// Units and ranges are in the comments; [`FeatureSpec::range`] states the ranges as data.
/// A `static`, so every [`FeatureName`] points into the one table.
pub static FEATURES: &[FeatureSpec] = &[
    BUTTER,         // share of a full shelf slot, 0–1
    MILK,           // 0–1
    CHEESE,         // 0–1
    VEGETABLES,     // 0–1
    DRINKS,         // 0–1
    DOOR_OPENS,     // openings this local day
    BOOKS_FINISHED, // books finished this local day
    personal("ereader.genre.crime", Ereader, Level, Topic::Reading, "crime stories are read on this reader"), // share 0–1
    personal("ereader.genre.cooking", Ereader, Level, Topic::Reading, "cookbooks are read on this reader"), // share 0–1
    personal("ereader.genre.travel", Ereader, Level, Topic::Reading, "travel books are read on this reader"), // share 0–1
    READING_MINUTES,                                                        // minutes read this local day
    UNLOCKS,                                                                // unlocks this local day
    context("context.hour", Clock, Topic::TimeOfDay, "of the time of day"), // local hour 0–23
    AMBIENT_LIGHT,                                                          // 0 (dark) – 1 (bright)
    // Derived: fridge.
    // Openings in the last hour (twelve five-minute steps), 0 or more.
    derived("fridge.door.opens.last_hour", DOOR_OPENS, Sum(Window::LAST_HOUR), "this fridge was opened often lately"),
    // Openings per hour over the last day (twenty-four one-hour steps), 0 or more.
    derived("fridge.door.opens.per_hour", DOOR_OPENS, RatePerHour(Window::LAST_DAY), "this fridge is opened often"),
    // Minutes since the door was last opened, 0 up to a week (10,080).
    derived(
        "fridge.door.minutes_since_open",
        DOOR_OPENS,
        MinutesSinceLast { within_secs: LAST_EVENT_KEPT_SECS },
        "of when this fridge was last opened",
    ),
    // Change of the level per day over the last seven local days, −1 to 1 (negative: falling).
    derived("fridge.butter.trend", BUTTER, TrendPerDay(Window::LAST_WEEK), "dairy is used up quickly in this home"),
    derived("fridge.milk.trend", MILK, TrendPerDay(Window::LAST_WEEK), "dairy is used up quickly in this home"),
    derived(
        "fridge.vegetables.trend",
        VEGETABLES,
        TrendPerDay(Window::LAST_WEEK),
        "fresh produce is used up quickly in this home",
    ),
    // Lowest level today (local day, tumbling), 0–1.
    derived("fridge.butter.day_min", BUTTER, Min(Window::TODAY), "dairy ran low in this home today"),
    derived("fridge.drinks.day_min", DRINKS, Min(Window::TODAY), "drinks ran low in this home today"),
    // Mean level today (local day, tumbling), 0–1.
    derived("fridge.vegetables.day_mean", VEGETABLES, Mean(Window::TODAY), "fresh produce ran low in this home today"),
    // Derived: e-reader.
    // Minutes read over the last seven local days, 0 or more.
    derived(
        "ereader.reading.minutes.week",
        READING_MINUTES,
        Sum(Window::LAST_WEEK),
        "this reader is used a lot this week",
    ),
    // Minutes read in the last hour (twelve five-minute steps), 0 or more.
    derived(
        "ereader.reading.minutes.last_hour",
        READING_MINUTES,
        Sum(Window::LAST_HOUR),
        "this reader was used lately",
    ),
    // Books finished over the last seven local days, 0 or more.
    derived("ereader.books.finished.week", BOOKS_FINISHED, Sum(Window::LAST_WEEK), "books get finished on this reader"),
    // Minutes since a book was last finished, 0 up to a week (10,080).
    derived(
        "ereader.books.minutes_since_finished",
        BOOKS_FINISHED,
        MinutesSinceLast { within_secs: LAST_EVENT_KEPT_SECS },
        "a book was finished on this reader lately",
    ),
    // Derived: lock screen.
    // Unlocks in the last hour (twelve five-minute steps), 0 or more.
    derived("lockscreen.unlocks.last_hour", UNLOCKS, Sum(Window::LAST_HOUR), "this screen was used often lately"),
    // Unlocks per hour over the last day (twenty-four one-hour steps), 0 or more.
    derived("lockscreen.unlocks.per_hour", UNLOCKS, RatePerHour(Window::LAST_DAY), "this screen is used often"),
    // Minutes since the last unlock, 0 up to a week (10,080).
    derived(
        "lockscreen.minutes_since_unlock",
        UNLOCKS,
        MinutesSinceLast { within_secs: LAST_EVENT_KEPT_SECS },
        "of when this screen was last used",
    ),
    // Derived: context (non-personal).
    // Mean light over the last hour (twelve five-minute steps), 0–1.
    derived(
        "context.ambient_light.hour_mean",
        AMBIENT_LIGHT,
        Mean(Window::LAST_HOUR),
        "of the light around the device",
    ),
    // Brightest light today (local day, tumbling), 0–1.
    derived("context.ambient_light.day_max", AMBIENT_LIGHT, Max(Window::TODAY), "of the light around the device today"),
];

/// The features signals may carry (levels and daily counts), in [`FEATURES`] order.
pub fn signal_features() -> impl Iterator<Item = FeatureName> {
    FEATURES.iter().filter(|f| f.is_source()).map(FeatureName)
}

/// A feature name from [`FEATURES`]. Deserialising checks it.
#[derive(Debug, Clone, Copy, Eq)]
pub struct FeatureName(&'static FeatureSpec);

impl core::hash::Hash for FeatureName {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl PartialEq for FeatureName {
    fn eq(&self, other: &Self) -> bool {
        // Names are unique and every `FeatureName` points into [`FEATURES`], so the entry's
        // address is the name.
        core::ptr::eq(self.0, other.0)
    }
}

/// A feature name that is not in [`FEATURES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown feature {0:?}; known features are listed in the README (e.g. \"fridge.butter.level\", \"context.hour\")"
)]
pub struct UnknownFeature(pub String);

impl FeatureName {
    /// Looks up a feature by name.
    pub fn try_new(name: &str) -> Result<Self, UnknownFeature> {
        FEATURES.iter().find(|f| f.name == name).map(Self).ok_or_else(|| UnknownFeature(name.into()))
    }

    /// The feature's definition.
    #[inline]
    pub fn spec(self) -> &'static FeatureSpec {
        self.0
    }

    /// The feature's name.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Its index in [`FEATURES`], for dense per-feature tables: the offset of its entry in the
    /// table (a `FeatureName` only ever points into [`FEATURES`]), so no search.
    #[inline]
    pub fn index(self) -> usize {
        let offset = (self.0 as *const FeatureSpec as usize).wrapping_sub(FEATURES.as_ptr() as usize);
        let index = offset / core::mem::size_of::<FeatureSpec>();
        debug_assert!(index < FEATURES.len() && core::ptr::eq(&FEATURES[index], self.0));
        index.min(FEATURES.len() - 1)
    }

    /// The feature at `index` in [`FEATURES`] (see [`FeatureName::index`]), if there is one.
    #[inline]
    pub fn at(index: usize) -> Option<Self> {
        FEATURES.get(index).map(Self)
    }

    /// Every feature, in the order of [`FEATURES`].
    pub fn all() -> impl Iterator<Item = Self> {
        FEATURES.iter().map(Self)
    }
}

crate::table_name!(FeatureName, name);

#[cfg(test)]
mod tests {
    use super::*;

    fn build_derived() -> impl Iterator<Item = (&'static FeatureSpec, Derivation, &'static FeatureSpec)> {
        FEATURES.iter().filter_map(|f| match f.aggregation {
            Aggregation::Derived { derivation, .. } => Some((f, derivation, f.source().unwrap().spec())),
            _ => None,
        })
    }

    #[test]
    fn names_are_unique_and_indexed() {
        for (i, f) in FEATURES.iter().enumerate() {
            let name = FeatureName::try_new(f.name).unwrap();
            assert_eq!(name.index(), i);
            assert_eq!(FEATURES.iter().filter(|g| g.name == f.name).count(), 1);
        }
    }

    #[test]
    fn there_are_fourteen_sources_and_eighteen_derived_features() {
        assert_eq!(FEATURES.len(), 32);
        assert_eq!(build_derived().count(), 18);
        assert_eq!(FEATURES.iter().filter(|f| f.aggregation == Aggregation::Clock).count(), 1);
        assert_eq!(signal_features().count(), 13);
        assert!(signal_features().all(|f| f.spec().is_source()));
    }

    #[test]
    fn every_device_feature_needs_personalise() {
        for f in FEATURES.iter().filter(|f| f.kind.is_some()) {
            assert_eq!(f.purpose, Some(Purpose::Personalise), "{}", f.name);
        }
        for f in FEATURES.iter().filter(|f| f.kind.is_none()) {
            assert_eq!(f.purpose, None, "{}", f.name);
            assert!(f.name.starts_with("context."), "{}", f.name);
        }
    }

    #[test]
    fn derived_features_name_a_known_source_with_the_same_purpose_kind_and_topic() {
        for (f, _, source) in build_derived() {
            assert!(source.is_source(), "{} is derived from {}, which gets no signals", f.name, source.name);
            assert_eq!((f.purpose, f.kind, f.topic), (source.purpose, source.kind, source.topic), "{}", f.name);
            let device = |name: &str| name.split('.').next().map(String::from);
            assert_eq!(device(f.name), device(source.name), "{}", f.name);
            assert!(!f.is_source(), "{}", f.name);
        }
    }

    #[test]
    fn derivations_fit_their_source_and_windows_are_bounded() {
        for (f, derivation, source) in build_derived() {
            let fits = match derivation {
                Sum(_) | RatePerHour(_) | MinutesSinceLast { .. } => source.aggregation == DailyCount,
                Mean(_) | Min(_) | Max(_) | TrendPerDay(_) => source.aggregation == Level,
            };
            assert!(fits, "{}: {derivation:?} does not fit {:?}", f.name, source.aggregation);
            match derivation {
                MinutesSinceLast { within_secs } => assert!(within_secs > 0, "{}", f.name),
                TrendPerDay(w) => assert!((2..=MAX_WINDOW_BUCKETS).contains(&w.buckets()), "{}", f.name),
                _ => assert!((1..=MAX_WINDOW_BUCKETS).contains(&derivation.buckets()), "{}", f.name),
            }
            if let Some(Window::Sliding { bucket_secs, .. }) = derivation.window() {
                assert!(bucket_secs > 0, "{}", f.name);
            }
        }
    }

    #[test]
    fn ranges_are_finite_and_ordered() {
        for f in FEATURES {
            let range = f.range();
            assert!(range.start().is_finite() && range.end().is_finite() && range.start() < range.end(), "{}", f.name);
        }
        let range = |name: &str| FeatureName::try_new(name).unwrap().spec().range();
        assert_eq!(range("fridge.butter.trend"), -1.0..=1.0);
        assert_eq!(range("fridge.butter.day_min"), 0.0..=1.0);
        assert_eq!(range("fridge.door.minutes_since_open"), 0.0..=10_080.0);
        assert_eq!(range("context.hour"), 0.0..=23.0);
    }

    #[test]
    fn why_phrases_are_coarse() {
        for f in FEATURES {
            assert!(!f.why.is_empty() && !f.why.ends_with('.'), "{}", f.name);
            assert!(!f.why.chars().any(|c| c.is_ascii_digit() || c == '%'), "{} gives a reading", f.name);
        }
    }

    #[test]
    fn unknown_feature_names_the_value() {
        let err = FeatureName::try_new("fridge.butter.grams").unwrap_err();
        assert!(err.to_string().contains("\"fridge.butter.grams\""));
    }
}
