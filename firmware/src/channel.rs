//! The sensor channels a board can report and the device kind that carries them. The node
//! sends levels and counts, never raw identities; which feature a channel feeds is decided
//! here once, so firmware and agent agree.

use ledtrad_protocol::DeviceKind;

/// A sensor channel on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A shelf slot's fill level (0–1), from a load cell; `slot` is the maker's numbering.
    ShelfLevel {
        /// The slot on the shelf.
        slot: u8,
    },
    /// Door openings (a count).
    DoorOpenings,
    /// Compartment temperature, in hundredths of a degree Celsius.
    Temperature,
    /// Ambient light (0–1).
    AmbientLight,
    /// Motion detections (a count).
    Motion,
}

impl Channel {
    /// The device kind whose board carries this channel.
    pub const fn device_kind(self) -> Option<DeviceKind> {
        match self {
            Self::ShelfLevel { .. } | Self::DoorOpenings | Self::Temperature => Some(DeviceKind::Fridge),
            Self::AmbientLight => Some(DeviceKind::LockScreen),
            Self::Motion => None,
        }
    }

    /// The agent feature a channel feeds directly, if it feeds one without a slot mapping.
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Self::DoorOpenings => Some("fridge.door.opens"),
            Self::AmbientLight => Some("context.ambient_light"),
            Self::ShelfLevel { .. } | Self::Temperature | Self::Motion => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fridge_channels_belong_to_the_fridge() {
        assert_eq!(Channel::ShelfLevel { slot: 2 }.device_kind(), Some(DeviceKind::Fridge));
        assert_eq!(Channel::DoorOpenings.feature(), Some("fridge.door.opens"));
        assert_eq!(Channel::Motion.device_kind(), None);
    }
}
