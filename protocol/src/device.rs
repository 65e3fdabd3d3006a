//! Device kinds and the moments that can trigger a decision on them.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of device the agent runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A fridge's display board, with shelf, door and temperature sensors.
    Fridge,
    /// An e-reader.
    Ereader,
    /// A phone or tablet lock screen.
    LockScreen,
}

impl DeviceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [DeviceKind; 3] = [Self::Fridge, Self::Ereader, Self::LockScreen];

    /// The name used in config files, catalogues and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Fridge => "fridge",
            Self::Ereader => "ereader",
            Self::LockScreen => "lock_screen",
        }
    }

    /// How the device is called in a "why" text.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Fridge => "fridge",
            Self::Ereader => "e-reader",
            Self::LockScreen => "lock screen",
        }
    }
}

/// A moment: the device event that asks for a decision (DESIGN §8 step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    /// The fridge door was opened.
    DoorOpened,
    /// A shelf item crossed its low-level threshold.
    InventoryLow,
    /// A book was finished on the e-reader.
    BookFinished,
    /// The e-reader was put to sleep.
    ReaderSleep,
    /// The lock screen was woken.
    ScreenWoken,
}

impl Moment {
    /// Every moment, in a fixed order.
    pub const ALL: [Moment; 5] =
        [Self::DoorOpened, Self::InventoryLow, Self::BookFinished, Self::ReaderSleep, Self::ScreenWoken];

    /// The name used in catalogues, the local API and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DoorOpened => "door_opened",
            Self::InventoryLow => "inventory_low",
            Self::BookFinished => "book_finished",
            Self::ReaderSleep => "reader_sleep",
            Self::ScreenWoken => "screen_woken",
        }
    }

    /// The device kind on which this moment happens.
    pub const fn device_kind(self) -> DeviceKind {
        match self {
            Self::DoorOpened | Self::InventoryLow => DeviceKind::Fridge,
            Self::BookFinished | Self::ReaderSleep => DeviceKind::Ereader,
            Self::ScreenWoken => DeviceKind::LockScreen,
        }
    }
}

/// A name that is not one of a closed set of names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} (expected one of: {expected})")]
pub struct UnknownName {
    /// What kind of name it was meant to be.
    pub what: &'static str,
    /// The accepted names, comma separated.
    pub expected: &'static str,
}

impl FromStr for DeviceKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownName { what: "device kind", expected: "fridge, ereader, lock_screen" })
    }
}

impl FromStr for Moment {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|m| m.as_str() == s).ok_or(UnknownName {
            what: "moment",
            expected: "door_opened, inventory_low, book_finished, reader_sleep, screen_woken",
        })
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in DeviceKind::ALL {
            assert_eq!(k.as_str().parse::<DeviceKind>(), Ok(k));
        }
        for m in Moment::ALL {
            assert_eq!(m.as_str().parse::<Moment>(), Ok(m));
        }
        let err = "toaster".parse::<DeviceKind>().unwrap_err();
        assert!(err.to_string().contains("fridge, ereader, lock_screen"));
    }
}
