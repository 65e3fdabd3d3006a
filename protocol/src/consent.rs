//! Consent purposes (DESIGN §6): a closed, versioned set. There is no purpose that shares data
//! with third parties, and none can be added without a new [`PURPOSES_VERSION`].

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::device::UnknownName;

/// The version of the purpose set; bumped whenever a purpose is added or its meaning changes.
pub const PURPOSES_VERSION: u32 = 1;

/// What a person can allow the device to do with data about them. All are off until granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Use on-device signals to choose offers on the device.
    Personalise,
    /// Send coarse context (device kind, moment, up to 3 interest categories) to the offer service.
    Request,
    /// Send aggregated, noised counts for campaign measurement.
    Measure,
    /// Contribute noised model updates for the fleet's scoring model. Not used by this
    /// version (see [`Purpose::used_by_this_version`]).
    Improve,
}

impl Purpose {
    /// Every purpose, in a fixed order.
    pub const ALL: [Purpose; 4] = [Self::Personalise, Self::Request, Self::Measure, Self::Improve];

    /// The purpose's name in the API, the ledger and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Personalise => "personalise",
            Self::Request => "request",
            Self::Measure => "measure",
            Self::Improve => "improve",
        }
    }

    /// Whether a child profile may grant this purpose: children can never grant
    /// `personalise`, `request` or `improve`.
    pub const fn child_may_grant(self) -> bool {
        matches!(self, Self::Measure)
    }

    /// Whether this version of ledtrad uses data under the purpose. `improve` can be granted
    /// and is kept in the ledger, but nothing uses it until model updates exist: the consent
    /// view says so and no prompt may ask for it.
    pub const fn used_by_this_version(self) -> bool {
        !matches!(self, Self::Improve)
    }

    const fn bit(self) -> u8 {
        match self {
            Self::Personalise => 1,
            Self::Request => 2,
            Self::Measure => 4,
            Self::Improve => 8,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Purpose {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or(UnknownName { what: "consent purpose", expected: "personalise, request, measure, improve" })
    }
}

/// Which purposes are granted right now. Derived from the consent ledger; never stored on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ConsentState(u8);

impl ConsentState {
    /// Nothing granted.
    pub const NONE: Self = Self(0);

    /// Every purpose granted.
    pub const fn all() -> Self {
        Self(0b1111)
    }

    /// Whether `purpose` is granted.
    #[inline]
    pub const fn allows(self, purpose: Purpose) -> bool {
        self.0 & purpose.bit() != 0
    }

    /// Each purpose granted in both states: the stricter of the two.
    #[must_use]
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether every purpose granted here is also granted in `other`.
    pub const fn is_within(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// This state with `purpose` granted or revoked.
    #[must_use]
    pub const fn with(self, purpose: Purpose, granted: bool) -> Self {
        if granted {
            Self(self.0 | purpose.bit())
        } else {
            Self(self.0 & !purpose.bit())
        }
    }
}

/// Where a consent change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// The device's own screen.
    DeviceUi,
    /// A voice assistant.
    Voice,
    /// The device maker's setup wizard.
    SetupWizard,
    /// The local API, on behalf of the device maker's UI.
    Api,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_and_revoke_touch_only_their_purpose() {
        let s = ConsentState::NONE.with(Purpose::Measure, true);
        assert!(s.allows(Purpose::Measure));
        for p in [Purpose::Personalise, Purpose::Request, Purpose::Improve] {
            assert!(!s.allows(p));
        }
        let all = ConsentState::all().with(Purpose::Personalise, false);
        assert!(!all.allows(Purpose::Personalise));
        assert!(all.allows(Purpose::Request));
    }

    #[test]
    fn the_stricter_state_keeps_only_what_both_grant() {
        let a = ConsentState::NONE.with(Purpose::Personalise, true).with(Purpose::Measure, true);
        let b = ConsentState::NONE.with(Purpose::Measure, true).with(Purpose::Request, true);
        let both = a.and(b);
        assert!(both.allows(Purpose::Measure));
        assert!(!both.allows(Purpose::Personalise) && !both.allows(Purpose::Request));
        assert!(both.is_within(a) && both.is_within(b) && !a.is_within(b));
        assert!(Purpose::ALL.iter().filter(|p| p.child_may_grant()).eq([Purpose::Measure].iter()));
    }

    #[test]
    fn purpose_names_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>(), Ok(p));
        }
        assert!("share_with_partners".parse::<Purpose>().is_err());
    }
}
