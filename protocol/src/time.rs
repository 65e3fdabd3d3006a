//! Wall-clock instants as whole seconds since the Unix epoch (UTC).
//!
//! In human-readable formats (JSON, TOML) a [`UnixTime`] is an RFC 3339 string in UTC such as
//! `"2026-11-23T18:00:00Z"`; in postcard it is a varint. The conversion is done here, without a
//! date crate, so the type stays usable on `no_std` targets.

use core::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

/// Seconds in a day.
pub const DAY_SECS: u64 = 86_400;

impl UnixTime {
    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    #[inline]
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// This instant plus `secs` seconds, saturating.
    #[inline]
    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// Parses an RFC 3339 UTC time with a `Z` suffix, e.g. `2026-11-23T18:00:00Z`.
    pub fn parse_rfc3339(s: &str) -> Result<Self, InvalidTime> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 20
            && b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b'T' || b[10] == b't')
            && b[13] == b':'
            && b[16] == b':'
            && (b[19] == b'Z' || b[19] == b'z');
        if !shape_ok {
            return Err(InvalidTime::Shape);
        }
        let num = |from: usize, to: usize| -> Result<u64, InvalidTime> {
            let mut n = 0u64;
            for &c in &b[from..to] {
                if !c.is_ascii_digit() {
                    return Err(InvalidTime::Shape);
                }
                n = n * 10 + u64::from(c - b'0');
            }
            Ok(n)
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(InvalidTime::Date);
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(InvalidTime::TimeOfDay);
        }
        let days = days_from_civil(year, month, day);
        Ok(Self(days * DAY_SECS + hour * 3600 + minute * 60 + second))
    }

    /// The UTC calendar date and time of day: (year, month, day, hour, minute, second).
    pub fn to_civil(self) -> (u64, u64, u64, u64, u64, u64) {
        let days = self.0 / DAY_SECS;
        let rem = self.0 % DAY_SECS;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
    }
}

/// Why a string is not an RFC 3339 UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTime {
    /// The text does not have the shape `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("expected an RFC 3339 UTC time like \"2026-11-23T18:00:00Z\"")]
    Shape,
    /// The date does not exist (or is before 1970).
    #[error("the date does not exist or is before 1970")]
    Date,
    /// The hour, minute or second is out of range.
    #[error("the time of day is out of range")]
    TimeOfDay,
}

fn is_leap(year: u64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.to_civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

impl Serialize for UnixTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for UnixTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimeVisitor;
        impl Visitor<'_> for TimeVisitor {
            type Value = UnixTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 UTC time like \"2026-11-23T18:00:00Z\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<UnixTime, E> {
                Ok(UnixTime(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UnixTime, E> {
                UnixTime::parse_rfc3339(v).map_err(|e| E::custom(format_args!("time {v:?}: {e}")))
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimeVisitor)
        } else {
            deserializer.deserialize_u64(TimeVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates_round_trip() {
        for (text, secs) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2026-11-23T18:00:00Z", 1_795_456_800),
        ] {
            let t = UnixTime::parse_rfc3339(text).unwrap();
            assert_eq!(t.secs(), secs, "{text}");
            assert_eq!(format!("{t}"), text);
        }
    }

    #[test]
    fn rejects_bad_times_with_the_reason() {
        assert_eq!(UnixTime::parse_rfc3339("2026-11-23"), Err(InvalidTime::Shape));
        assert_eq!(UnixTime::parse_rfc3339("2026-02-30T00:00:00Z"), Err(InvalidTime::Date));
        assert_eq!(UnixTime::parse_rfc3339("2026-02-03T24:00:00Z"), Err(InvalidTime::TimeOfDay));
        assert_eq!(UnixTime::parse_rfc3339("2026-02-03T2x:00:00Z"), Err(InvalidTime::Shape));
    }

    #[test]
    fn every_day_for_a_century_round_trips() {
        for day in 0..36_600u64 {
            let t = UnixTime(day * DAY_SECS + 3_723);
            let text = format!("{t}");
            assert_eq!(UnixTime::parse_rfc3339(&text), Ok(t), "{text}");
        }
    }
}
