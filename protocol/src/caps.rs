//! Frequency rules (DESIGN §2, "frequency is a product decision, tested and capped"): caps per
//! offer and per campaign over an hour, a local day, a week, a month and in total; a device-wide
//! cap per hour and per day; a minimum gap between any two offers; quiet hours; and caps per
//! home per local day, counted over all the screens of a home (DESIGN §6).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// A window a cap counts impressions over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The last 60 minutes.
    Hour,
    /// The current local calendar day.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
    /// Ever, on this device.
    Total,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Total => "total",
        })
    }
}

/// Caps for an offer: impressions per device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Per local day (≥ 1; default 1).
    #[serde(default = "default_per_day")]
    pub per_day: u32,
    /// Per rolling hour.
    #[serde(default)]
    pub per_hour: Option<u32>,
    /// Per rolling 7 days.
    #[serde(default)]
    pub per_week: Option<u32>,
    /// Per rolling 30 days.
    #[serde(default)]
    pub per_month: Option<u32>,
    /// Ever.
    #[serde(default)]
    pub total: Option<u32>,
    /// Per home (all its screens together) per local day. Unset, an offer that is personalised
    /// or has personal conditions is shown on one screen of a home per day
    /// ([`HomeCap::OneScreen`]); others have no home cap.
    #[serde(default)]
    pub per_home_per_day: Option<u32>,
}

/// How often an offer may be shown in a home (on all its screens together) per local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HomeCap {
    /// At most this many impressions in the home per day (`per_home_per_day`).
    PerDay(u32),
    /// On one screen of the home per day, as often as that screen's own caps allow: the default
    /// for an offer that is personalised or has personal conditions, so what one screen noticed
    /// about the household is not repeated on every other screen.
    OneScreen,
}

impl Caps {
    /// The offer's home cap, `personal` when it is personalised or its conditions read personal
    /// features.
    pub fn home(&self, personal: bool) -> Option<HomeCap> {
        match self.per_home_per_day {
            Some(n) => Some(HomeCap::PerDay(n)),
            None if personal => Some(HomeCap::OneScreen),
            None => None,
        }
    }
}

fn default_per_day() -> u32 {
    1
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            per_day: default_per_day(),
            per_hour: None,
            per_week: None,
            per_month: None,
            total: None,
            per_home_per_day: None,
        }
    }
}

impl Caps {
    /// Every cap that is set, with its window (no allocation: checked for every candidate).
    pub fn limits(&self) -> impl Iterator<Item = (Window, u32)> {
        [
            (Window::Day, Some(self.per_day)),
            (Window::Hour, self.per_hour),
            (Window::Week, self.per_week),
            (Window::Month, self.per_month),
            (Window::Total, self.total),
        ]
        .into_iter()
        .filter_map(|(w, n)| n.map(|n| (w, n)))
    }
}

/// Caps for a campaign: impressions of any of its offers per device. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignCaps {
    /// Per rolling hour.
    #[serde(default)]
    pub per_hour: Option<u32>,
    /// Per local day.
    #[serde(default)]
    pub per_day: Option<u32>,
    /// Per rolling 7 days.
    #[serde(default)]
    pub per_week: Option<u32>,
    /// Per rolling 30 days.
    #[serde(default)]
    pub per_month: Option<u32>,
    /// Ever.
    #[serde(default)]
    pub total: Option<u32>,
    /// Per home (all its screens together) per local day.
    #[serde(default)]
    pub per_home_per_day: Option<u32>,
}

impl CampaignCaps {
    /// Every cap that is set, with its window.
    pub fn limits(&self) -> Vec<(Window, u32)> {
        [
            (Window::Hour, self.per_hour),
            (Window::Day, self.per_day),
            (Window::Week, self.per_week),
            (Window::Month, self.per_month),
            (Window::Total, self.total),
        ]
        .into_iter()
        .filter_map(|(w, n)| n.map(|n| (w, n)))
        .collect()
    }
}

/// Hours of the device-local day in which no offer is shown: from `from` up to `to`, across
/// midnight when `from > to` (e.g. 22 to 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// First quiet hour (0–23).
    pub from: u8,
    /// First hour that is no longer quiet (0–23).
    pub to: u8,
}

impl QuietHours {
    /// Whether local hour `hour` is quiet.
    pub fn contains(self, hour: u64) -> bool {
        let (from, to) = (u64::from(self.from), u64::from(self.to));
        if from <= to {
            (from..to).contains(&hour)
        } else {
            hour >= from || hour < to
        }
    }
}

/// Device-wide rules, the same for every offer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Offers per device per rolling hour.
    #[serde(default)]
    pub device_per_hour: Option<u32>,
    /// Offers per device per local day.
    #[serde(default)]
    pub device_per_day: Option<u32>,
    /// Minutes between any two offers on a device.
    #[serde(default)]
    pub min_gap_minutes: Option<u32>,
    /// Hours without offers.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Offers per home (all its screens together) per local day.
    #[serde(default)]
    pub home_per_day: Option<u32>,
}

/// Problems with a set of caps: a cap of zero can never be met. `per_home_per_day` is the
/// home cap, if set.
pub fn zero_caps(limits: &[(Window, u32)], per_home_per_day: Option<u32>, prefix: &str) -> Vec<(String, String)> {
    let home = (per_home_per_day == Some(0)).then(|| format!("{prefix}.per_home_per_day"));
    limits
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(w, _)| match w {
            Window::Total => format!("{prefix}.total"),
            w => format!("{prefix}.per_{w}"),
        })
        .chain(home)
        .map(|field| (field, "0 means it can never be shown; use 1 or more, or leave the cap out".into()))
        .collect()
}

impl Policy {
    /// Problems with the policy, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (field, value) in [
            ("policy.device_per_hour", self.device_per_hour),
            ("policy.device_per_day", self.device_per_day),
            ("policy.home_per_day", self.home_per_day),
        ] {
            if value == Some(0) {
                out.push((field.into(), "0 means no offer can ever be shown; use 1 or more, or leave it out".into()));
            }
        }
        if self.min_gap_minutes.is_some_and(|m| m > 24 * 60) {
            out.push(("policy.min_gap_minutes".into(), "more than a day between offers; use at most 1440".into()));
        }
        if let Some(q) = self.quiet_hours {
            if q.from > 23 || q.to > 23 {
                out.push(("policy.quiet_hours".into(), format!("hours {}..{} must be 0–23", q.from, q.to)));
            } else if q.from == q.to {
                out.push(("policy.quiet_hours".into(), "from and to are equal; leave quiet_hours out for none".into()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_across_midnight() {
        let night = QuietHours { from: 22, to: 7 };
        for (hour, quiet) in [(21, false), (22, true), (0, true), (6, true), (7, false), (12, false)] {
            assert_eq!(night.contains(hour), quiet, "{hour}");
        }
        let lunch = QuietHours { from: 12, to: 13 };
        assert!(lunch.contains(12) && !lunch.contains(13) && !lunch.contains(11));
    }

    #[test]
    fn caps_list_what_is_set() {
        let caps = Caps { per_day: 2, per_hour: Some(1), total: Some(5), ..Caps::default() };
        assert_eq!(
            caps.limits().collect::<Vec<_>>(),
            alloc::vec![(Window::Day, 2), (Window::Hour, 1), (Window::Total, 5)]
        );
        let never = "0 means it can never be shown; use 1 or more, or leave the cap out";
        assert_eq!(zero_caps(&[(Window::Week, 0)], None, "caps"), alloc::vec![("caps.per_week".into(), never.into())]);
        assert_eq!(
            zero_caps(&[(Window::Day, 1)], Some(0), "caps"),
            alloc::vec![("caps.per_home_per_day".into(), never.into())]
        );
    }

    #[test]
    fn an_offer_with_personal_conditions_is_shown_on_one_screen_of_a_home_unless_its_cap_says_otherwise() {
        let unset = Caps::default();
        assert_eq!(unset.home(true), Some(HomeCap::OneScreen));
        assert_eq!(unset.home(false), None);
        let set = Caps { per_home_per_day: Some(3), ..Caps::default() };
        assert_eq!(set.home(true), Some(HomeCap::PerDay(3)));
        assert_eq!(set.home(false), Some(HomeCap::PerDay(3)));
    }
}
