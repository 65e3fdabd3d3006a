//! The features the engine knows (DESIGN §8 step 3). Each declares the consent purpose that
//! allows its use (or none, for contextual features that say nothing about a person) and the
//! coarse, truthful phrase a "why" text may use for it.

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
    /// The coarse phrase for "why am I seeing this", completing "Because …".
    pub why: &'static str,
}

const fn personal(name: &'static str, kind: DeviceKind, aggregation: Aggregation, why: &'static str) -> FeatureSpec {
    FeatureSpec { name, kind: Some(kind), purpose: Some(Purpose::Personalise), aggregation, why }
}

use Aggregation::{DailyCount, Level};
use DeviceKind::{Ereader, Fridge, LockScreen};

/// Every known feature.
pub const FEATURES: &[FeatureSpec] = &[
    personal("fridge.butter.level", Fridge, Level, "dairy runs low often in this home"),
    personal("fridge.milk.level", Fridge, Level, "dairy runs low often in this home"),
    personal("fridge.cheese.level", Fridge, Level, "dairy runs low often in this home"),
    personal("fridge.vegetables.level", Fridge, Level, "fresh produce runs low in this home"),
    personal("fridge.drinks.level", Fridge, Level, "drinks run low in this home"),
    personal("fridge.door.opens", Fridge, DailyCount, "this fridge is opened often today"),
    personal("ereader.books.finished", Ereader, DailyCount, "books get finished on this reader"),
    personal("ereader.genre.crime", Ereader, Level, "crime stories are read on this reader"),
    personal("ereader.genre.cooking", Ereader, Level, "cookbooks are read on this reader"),
    personal("ereader.genre.travel", Ereader, Level, "travel books are read on this reader"),
    personal("ereader.reading.minutes", Ereader, DailyCount, "this reader is used a lot"),
    personal("lockscreen.unlocks", LockScreen, DailyCount, "this screen is used often today"),
    FeatureSpec {
        name: "context.hour",
        kind: None,
        purpose: None,
        aggregation: Aggregation::Clock,
        why: "of the time of day",
    },
    FeatureSpec {
        name: "context.ambient_light",
        kind: None,
        purpose: None,
        aggregation: Level,
        why: "of the light around the device",
    },
];

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
    fn every_device_feature_needs_personalise() {
        for f in FEATURES.iter().filter(|f| f.kind.is_some()) {
            assert_eq!(f.purpose, Some(Purpose::Personalise), "{}", f.name);
        }
    }

    #[test]
    fn unknown_feature_names_the_value() {
        let err = FeatureName::try_new("fridge.butter.grams").unwrap_err();
        assert!(err.to_string().contains("\"fridge.butter.grams\""));
    }
}
