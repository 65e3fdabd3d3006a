//! The features the engine knows (DESIGN §8 step 3). Each declares the consent purpose that
//! allows its use (or none, for contextual features that say nothing about a person), the
//! coarse topic it speaks of, and the coarse, truthful phrase a "why" text may use for it.

use alloc::string::String;

use crate::consent::Purpose;
use crate::device::DeviceKind;

/// How signals for a feature are aggregated on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// The latest value (a level, a share, a reading).
    Level,
    /// The sum of signal values over the current local day.
    DailyCount,
    /// Computed by the engine from the time of the decision (never sent as a signal).
    Clock,
}

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
    /// Whether signals carry its name (levels and daily counts); computed features are never
    /// sent.
    pub const fn is_source(&self) -> bool {
        matches!(self.aggregation, Aggregation::Level | Aggregation::DailyCount)
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

use Aggregation::{Clock, DailyCount, Level};
use DeviceKind::{Ereader, Fridge, LockScreen};

/// Every known feature. A `static`, so every [`FeatureName`] points into the one table.
pub static FEATURES: &[FeatureSpec] = &[
    personal("fridge.butter.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home"),
    personal("fridge.milk.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home"),
    personal("fridge.cheese.level", Fridge, Level, Topic::Dairy, "dairy runs low often in this home"),
    personal("fridge.vegetables.level", Fridge, Level, Topic::Produce, "fresh produce runs low in this home"),
    personal("fridge.drinks.level", Fridge, Level, Topic::Drinks, "drinks run low in this home"),
    personal("fridge.door.opens", Fridge, DailyCount, Topic::FridgeUse, "this fridge is opened often today"),
    personal("ereader.books.finished", Ereader, DailyCount, Topic::Reading, "books get finished on this reader"),
    personal("ereader.genre.crime", Ereader, Level, Topic::Reading, "crime stories are read on this reader"),
    personal("ereader.genre.cooking", Ereader, Level, Topic::Reading, "cookbooks are read on this reader"),
    personal("ereader.genre.travel", Ereader, Level, Topic::Reading, "travel books are read on this reader"),
    personal("ereader.reading.minutes", Ereader, DailyCount, Topic::Reading, "this reader is used a lot"),
    personal("lockscreen.unlocks", LockScreen, DailyCount, Topic::ScreenUse, "this screen is used often today"),
    context("context.hour", Clock, Topic::TimeOfDay, "of the time of day"),
    context("context.ambient_light", Level, Topic::Surroundings, "of the light around the device"),
];

/// The features signals may carry (levels and daily counts), in [`FEATURES`] order.
pub fn signal_features() -> impl Iterator<Item = FeatureName> {
    FEATURES.iter().filter(|f| f.is_source()).map(FeatureName)
}

/// A feature name from [`FEATURES`]. Deserialising checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureName(&'static FeatureSpec);

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
    pub fn spec(self) -> &'static FeatureSpec {
        self.0
    }

    /// The feature's name.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Its index in [`FEATURES`], for dense per-feature tables.
    pub fn index(self) -> usize {
        FEATURES.iter().position(|f| core::ptr::eq(f, self.0)).unwrap_or(0)
    }
}

crate::table_name!(FeatureName, name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed() {
        for (i, f) in FEATURES.iter().enumerate() {
            let name = FeatureName::try_new(f.name).unwrap();
            assert_eq!(name.index(), i);
            assert_eq!(FEATURES.iter().filter(|g| g.name == f.name).count(), 1);
        }
    }

    #[test]
    fn signals_carry_every_feature_but_the_clock() {
        assert_eq!(signal_features().count(), FEATURES.len() - 1);
        assert!(signal_features().all(|f| f.spec().is_source() && f.spec().aggregation != Clock));
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
