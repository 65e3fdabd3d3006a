//! Property tests of frequency rules: over random caps, policies and schedules of moments —
//! including the clock jumping forwards and backwards by hours, and a daylight-saving change in
//! Stockholm — no shown offer breaks a cap, a quiet hour or the minimum gap, as counted
//! independently (with chrono) from the list of what was shown. Schedules start near the spring
//! and the autumn change as well as away from them.

// Test helpers unwrap: a panic is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod common;

use common::START;
use ledtrad_engine::{Draw, LocalTime};
use ledtrad_protocol::caps::{CampaignCaps, Caps, Policy, QuietHours, Window};
use ledtrad_protocol::catalogue::{Campaign, Catalogue, Offer};
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, DeviceKind, Moment, OfferId, UnixTime};
use proptest::prelude::*;

const OFFSET: i32 = 3600;

/// Where the device is: a fixed UTC+1, or Stockholm with its daylight-saving changes.
#[derive(Debug, Clone, Copy)]
enum Zone {
    Fixed,
    Stockholm,
}

impl Zone {
    fn local_time(self) -> LocalTime {
        match self {
            Zone::Fixed => LocalTime::fixed(OFFSET),
            Zone::Stockholm => LocalTime::zone(chrono_tz::Europe::Stockholm),
        }
    }

    /// (local hour, instant the local day began), worked out with chrono directly.
    fn local(self, t: UnixTime) -> (u64, u64) {
        use chrono::{TimeZone, Timelike};
        match self {
            Zone::Fixed => {
                let local = t.secs().saturating_add_signed(i64::from(OFFSET));
                ((local % DAY_SECS) / 3600, (local / DAY_SECS) * DAY_SECS - OFFSET as u64)
            }
            Zone::Stockholm => {
                let tz = chrono_tz::Europe::Stockholm;
                let local = tz.timestamp_opt(t.secs() as i64, 0).unwrap();
                let midnight = local.date_naive().and_hms_opt(0, 0, 0).unwrap();
                let start = tz.from_local_datetime(&midnight).earliest().unwrap();
                (u64::from(local.hour()), start.timestamp() as u64)
            }
        }
    }
}

fn offer(i: usize, campaign: usize, caps: Caps) -> Offer {
    Offer {
        id: OfferId::try_new(format!("o{i}")).unwrap(),
        campaign: CampaignId::try_new(format!("c{campaign}")).unwrap(),
        title: "t".into(),
        question: "q?".into(),
        body: "b".into(),
        image: None,
        category: "home.kitchen".into(),
        device_kinds: vec![DeviceKind::Fridge],
        moments: vec![Moment::DoorOpened],
        conditions: vec![],
        value: 1.0 + i as f64,
        priority: 1.0,
        valid_from: UnixTime(0),
        valid_until: UnixTime(4_000_000_000),
        caps,
        personalised: false,
        propensity: None,
    }
}

fn opt_cap() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (1u32..4).prop_map(Some)]
}

fn caps() -> impl Strategy<Value = Caps> {
    (1u32..4, opt_cap(), opt_cap(), opt_cap(), prop_oneof![Just(None), (2u32..12).prop_map(Some)]).prop_map(
        |(per_day, per_hour, per_week, per_month, total)| Caps {
            per_day,
            per_hour,
            per_week,
            per_month,
            total,
            per_home_per_day: None,
        },
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        opt_cap(),
        prop_oneof![Just(None), (1u32..6).prop_map(Some)],
        prop_oneof![Just(None), (1u32..180).prop_map(Some)],
        prop_oneof![
            Just(None),
            (0u8..24, 0u8..24)
                .prop_filter("from != to", |(a, b)| a != b)
                .prop_map(|(from, to)| Some(QuietHours { from, to }))
        ],
    )
        .prop_map(|(device_per_hour, device_per_day, min_gap_minutes, quiet_hours)| Policy {
            device_per_hour,
            device_per_day,
            min_gap_minutes,
            quiet_hours,
            home_per_day: None,
        })
}

/// Steps between moments in seconds; now and then the clock jumps back by hours.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 1i64..3 * 3600, 1 => 3600i64..3 * 86_400, 1 => -6 * 3600i64..-3600]
}

/// Shown impressions in `window` as of `now`, counted from the list. As in the engine,
/// impressions after `now` (the clock went back) count too.
fn count(
    zone: Zone,
    shown: &[(usize, usize, UnixTime)],
    keep: impl Fn(&(usize, usize, UnixTime)) -> bool,
    window: Window,
    now: UnixTime,
) -> usize {
    let from = match window {
        Window::Hour => now.secs().saturating_sub(3600),
        Window::Day => zone.local(now).1,
        Window::Week => now.secs().saturating_sub(7 * DAY_SECS),
        Window::Month => now.secs().saturating_sub(30 * DAY_SECS),
        Window::Total => 0,
    };
    shown.iter().filter(|s| keep(s) && s.2.secs() >= from).count()
}

/// Schedules per run: 100,000 by default (about half a minute: the engine and the crates it
/// leans on are optimised in test builds, see the workspace manifest); `LEDTRAD_SCHEDULES=N`
/// runs N instead.
// A test setting, not the engine's: the engine itself never reads the environment.
#[allow(clippy::disallowed_methods)]
fn schedules() -> u32 {
    match std::env::var("LEDTRAD_SCHEDULES") {
        Ok(n) => n.parse().unwrap_or_else(|_| panic!("LEDTRAD_SCHEDULES={n:?} is not a whole number")),
        Err(_) => 100_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: schedules(), ..ProptestConfig::default() })]

    #[test]
    fn no_schedule_breaks_a_cap_a_quiet_hour_or_the_gap(
        offer_caps in proptest::collection::vec(caps(), 1..5),
        campaign_caps in proptest::collection::vec((opt_cap(), opt_cap(), opt_cap()), 2),
        policy in policy(),
        steps in proptest::collection::vec(step(), 1..100),
        zone in prop_oneof![Just(Zone::Fixed), Just(Zone::Stockholm)],
        dst in 0u8..3,
    ) {
        let offers: Vec<Offer> = offer_caps.iter().cloned().enumerate().map(|(i, c)| offer(i, i % 2, c)).collect();
        let campaigns: Vec<Campaign> = campaign_caps
            .iter()
            .enumerate()
            .map(|(i, (per_hour, per_day, total))| Campaign {
                caps: CampaignCaps { per_hour: *per_hour, per_day: *per_day, per_week: None, per_month: None, total: *total, per_home_per_day: None },
                ..Campaign::new(CampaignId::try_new(format!("c{i}")).unwrap())
            })
            .filter(|c| offers.iter().any(|o| o.campaign == c.id))
            .collect();
        let catalogue = Catalogue { name: String::new(), offers: offers.clone(), prompts: vec![], campaigns: campaigns.clone(), policy: policy.clone() };
        prop_assert!(catalogue.problems().is_empty(), "{:?}", catalogue.problems());
        let mut engine = common::build_engine_at(DeviceKind::Fridge, zone.local_time(), 0.3, catalogue);
        // Two thirds of the schedules start the day before a change of clocks in Stockholm:
        // autumn (2026-10-25, a 25-hour day) or spring (2027-03-28, a 23-hour day).
        let first = match dst {
            0 => START,
            1 => UnixTime::parse_rfc3339("2026-10-24T12:00:00Z").unwrap(),
            _ => UnixTime::parse_rfc3339("2027-03-27T12:00:00Z").unwrap(),
        };
        let mut now = first;
        let mut shown: Vec<(usize, usize, UnixTime)> = Vec::new();
        let mut latest = now;
        for (k, step) in steps.into_iter().enumerate() {
            now = UnixTime(now.secs().saturating_add_signed(step).max(first.secs()));
            let draw = Draw { camouflage: (k % 7) as f64 / 7.0, pick: k as u64, explore: Some(k as u64) };
            let decision = engine.decide(Moment::DoorOpened, now, draw).clone();
            let Some(s) = decision.shown else { continue };
            let i: usize = s.offer.as_str()[1..].parse().unwrap();
            let c = i % 2;
            if let Some(q) = policy.quiet_hours {
                let hour = zone.local(now).0;
                prop_assert!(!q.contains(hour), "shown in quiet hours {q:?} at local hour {hour}");
            }
            if let Some(gap) = policy.min_gap_minutes {
                if let Some(last) = shown.last() {
                    let last = shown.iter().map(|s| s.2).max().unwrap_or(last.2);
                    prop_assert!(now.secs() >= last.secs() + u64::from(gap) * 60 || now < latest, "gap of {gap} min broken");
                }
            }
            shown.push((i, c, now));
            for (window, limit) in offers[i].caps.limits() {
                let n = count(zone, &shown, |s| s.0 == i, window, now);
                prop_assert!(n <= limit as usize, "offer o{i}: {n} in a {window} over its cap of {limit}");
            }
            if let Some(campaign) = campaigns.iter().find(|x| x.id.as_str() == format!("c{c}")) {
                for (window, limit) in campaign.caps.limits() {
                    let n = count(zone, &shown, |s| s.1 == c, window, now);
                    prop_assert!(n <= limit as usize, "campaign c{c}: {n} in a {window} over its cap of {limit}");
                }
            }
            for (window, limit) in [(Window::Hour, policy.device_per_hour), (Window::Day, policy.device_per_day)] {
                if let Some(limit) = limit {
                    let n = count(zone, &shown, |_| true, window, now);
                    prop_assert!(n <= limit as usize, "device: {n} in a {window} over its cap of {limit}");
                }
            }
            latest = latest.max(now);
        }
    }
}
