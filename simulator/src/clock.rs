//! The simulated homes' time: their local offset from UTC, the length of a simulation step,
//! and the UTC instant of their local midnight. A leaf: runs, shards and the soak all read it.

use ledtrad_protocol::UnixTime;

/// The local time offset of the simulated homes (Central European Time).
pub const UTC_OFFSET_MINUTES: i32 = 60;

/// Minutes per simulation step.
pub const STEP_MINUTES: u64 = 10;

/// The UTC instant of local midnight at the start of the day `start` names: the homes live at
/// UTC+1, so their midnight is an hour earlier in UTC.
pub fn local_midnight(start: UnixTime) -> UnixTime {
    UnixTime(start.secs().saturating_add_signed(-i64::from(UTC_OFFSET_MINUTES) * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_agent::{RawConfig, RawKey};
    use ledtrad_protocol::time::DAY_SECS;

    #[test]
    fn the_simulated_hours_are_the_agents_local_hours() {
        let start = UnixTime::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let local = ledtrad_agent::config::Config::from_raw(
            RawConfig {
                device_id: "d".into(),
                kind: "fridge".into(),
                fleet: "f".into(),
                broker: "mqtt://127.0.0.1:1883".into(),
                mqtt_username: None,
                mqtt_password_file: None,
                database: "x.db".into(),
                api: None,
                sharing: None,
                report_epsilon: None,
                camouflage_share: None,
                model_runtime: None,
                rng_seed: None,
                owner: None,
                utc_offset_minutes: UTC_OFFSET_MINUTES,
                timezone: None,
                offer_request_timeout_ms: None,
                sensor_link: None,
                sensor_baud: None,
                operator_keys: vec![RawKey {
                    id: "k".into(),
                    public_key: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into(),
                    retired: false,
                }],
                // The simulated UI (or the test) chooses its moments itself.
                raise_moments: Some(false),
                ..RawConfig::default()
            },
            "test",
        )
        .unwrap()
        .local;
        let midnight = local_midnight(start);
        for hour in 0..24 {
            let now = midnight.plus_secs(hour * 3600 + 59 * 60);
            assert_eq!(local.hour(now), hour);
            assert_eq!(local.day(now), start.secs() / DAY_SECS, "every step of a simulated day is one local day");
        }
    }
}
