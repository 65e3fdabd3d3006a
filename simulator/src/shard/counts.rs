//! A shard's counts: what its devices decided, showed and heard back, per run and per
//! simulated day, added up across shards; and what a shard hands back when it finishes.

use ledtrad_agent::engine::Policy;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::DeviceId;
use serde::{Deserialize, Serialize};

use super::device::Device;
use super::redecide::Finding;

use crate::summary::SensorLink;

/// A shard's counts; a run adds its shards'.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Moments that asked for a decision.
    pub decisions: u64,
    /// Offers shown.
    pub shown: u64,
    /// Of those, chosen with personal features.
    pub shown_personalised: u64,
    /// Answers.
    pub accepted: u64,
    /// Dismissals, "not for me" included.
    pub dismissed: u64,
    /// "Not for me".
    pub not_for_me: u64,
    /// Shown offers nobody answered.
    pub unanswered: u64,
    /// Signals fed.
    pub signals: u64,
    /// Decisions the audit found reading or showing what consent did not allow.
    pub violations: u64,
    /// Shown offers whose "why" does not match their trace (checked under `clues` only).
    pub why_inconsistent: u64,
    /// Decisions the audit made again without personal inputs.
    pub redecided: u64,
    /// Of those, decisions whose offer personal data changed.
    pub personal_influence: u64,
    /// Of those, offers shown without the personalised mark.
    pub personal_influence_unmarked: u64,
    /// Of those, decisions on a device without `personalise`.
    pub personal_influence_without_consent: u64,
    /// Camouflage draws.
    pub camouflaged: u64,
    /// Consents revoked.
    pub revocations: u64,
    /// Of a revocation made on one screen, for each other screen of the home that serves the
    /// person: how long it took to be in force there (microseconds of wall time, from the
    /// moment it was in force on the screen it was made on).
    pub consent_lag_micros: Vec<u64>,
    /// Screens a revocation did not reach within [`super::home_channel::LATE`].
    pub consent_late: u64,
    /// Of an impression counted on one screen of a home, for each other screen: how long its
    /// agent took to hear the count (microseconds of wall time, from the decision's answer).
    pub home_caps_lag_micros: Vec<u64>,
    /// Screens that did not hear a count within [`super::home_channel::LATE`].
    pub home_caps_late: u64,
    /// Shown offers that broke a home cap of the catalogue, by the audit's own count of what
    /// the home's screens showed that day.
    pub home_cap_violations: u64,
    /// Consent prompts shown.
    pub prompts: u64,
    /// Consent prompts declined.
    pub prompts_declined: u64,
    /// Decisions that held an offer out.
    pub held_out: u64,
    /// Conversions, all.
    pub converted: u64,
    /// Shown offers of campaigns with a holdout arm.
    pub shown_measured: u64,
    /// Of those, followed by a conversion (through the offer or unprompted).
    pub converted_shown: u64,
    /// Held-out decisions followed by a conversion (unprompted).
    pub converted_held_out: u64,
    /// Reports the devices with `measure` could send.
    pub reports_expected: u64,
    /// Whether any device works under `request`.
    pub any_request: bool,
    /// The engine's decision times, nanoseconds.
    pub decide_nanos: Vec<u64>,
    /// Of those, the full decisions' (that weighed the catalogue's offers one by one).
    #[serde(default)]
    pub decide_full_nanos: Vec<u64>,
    /// Whole offer calls, nanoseconds.
    pub call_nanos: Vec<u64>,
    /// Per simulated day.
    pub daily: Vec<DayCounts>,
}

impl Counts {
    /// Counts what making a decision again without personal inputs found.
    pub(super) fn redecided(&mut self, finding: Finding) {
        self.redecided += u64::from(finding.redecided);
        self.personal_influence += u64::from(finding.influenced);
        self.personal_influence_unmarked += u64::from(finding.unmarked);
        self.personal_influence_without_consent += u64::from(finding.without_consent);
    }

    /// The audit of one decision of `device` under `policy` on the decision's word: its
    /// consent, its "why", and whether it is a camouflage draw.
    pub(super) fn audit(&mut self, device: &Device, decision: &Decision, policy: Policy) {
        if crate::audit::decision_violates(device.consent, decision) {
            self.violations += 1;
        }
        if policy.is_clues() && !crate::audit::why_consistent(device.kind, decision) {
            self.why_inconsistent += 1;
        }
        self.camouflaged += u64::from(decision.camouflage);
    }

    /// Counts how long a revocation took to be in force on each other screen of its home.
    pub(super) fn heard_elsewhere(&mut self, lags: &[(usize, Option<std::time::Duration>)]) {
        lags_into(lags, &mut self.consent_lag_micros, &mut self.consent_late);
    }

    /// Counts how long a screen's count of the day took to reach each other screen of its home.
    pub(super) fn home_heard(&mut self, lags: &[(usize, Option<std::time::Duration>)]) {
        lags_into(lags, &mut self.home_caps_lag_micros, &mut self.home_caps_late);
    }

    /// Counts an answer to a shown offer, in the run's and `today`'s figures.
    pub(super) fn answered(&mut self, kind: FeedbackKind, today: &mut DayCounts) {
        match kind {
            FeedbackKind::Accepted => {
                self.accepted += 1;
                today.accepted += 1;
            }
            FeedbackKind::Dismissed => {
                self.dismissed += 1;
                today.dismissed += 1;
            }
            FeedbackKind::NotForMe => {
                self.dismissed += 1;
                self.not_for_me += 1;
                today.dismissed += 1;
            }
            FeedbackKind::Converted => self.converted += 1,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Counts) {
        let Counts {
            decisions,
            shown,
            shown_personalised,
            accepted,
            dismissed,
            not_for_me,
            unanswered,
            signals,
            violations,
            why_inconsistent,
            redecided,
            personal_influence,
            personal_influence_unmarked,
            personal_influence_without_consent,
            camouflaged,
            revocations,
            consent_lag_micros,
            consent_late,
            home_caps_lag_micros,
            home_caps_late,
            home_cap_violations,
            prompts,
            prompts_declined,
            held_out,
            converted,
            shown_measured,
            converted_shown,
            converted_held_out,
            reports_expected,
            any_request,
            decide_nanos,
            decide_full_nanos,
            call_nanos,
            daily,
        } = other;
        for (mine, theirs) in [
            (&mut self.decisions, decisions),
            (&mut self.shown, shown),
            (&mut self.shown_personalised, shown_personalised),
            (&mut self.accepted, accepted),
            (&mut self.dismissed, dismissed),
            (&mut self.not_for_me, not_for_me),
            (&mut self.unanswered, unanswered),
            (&mut self.signals, signals),
            (&mut self.violations, violations),
            (&mut self.why_inconsistent, why_inconsistent),
            (&mut self.redecided, redecided),
            (&mut self.personal_influence, personal_influence),
            (&mut self.personal_influence_unmarked, personal_influence_unmarked),
            (&mut self.personal_influence_without_consent, personal_influence_without_consent),
            (&mut self.camouflaged, camouflaged),
            (&mut self.revocations, revocations),
            (&mut self.consent_late, consent_late),
            (&mut self.home_caps_late, home_caps_late),
            (&mut self.home_cap_violations, home_cap_violations),
            (&mut self.prompts, prompts),
            (&mut self.prompts_declined, prompts_declined),
            (&mut self.held_out, held_out),
            (&mut self.converted, converted),
            (&mut self.shown_measured, shown_measured),
            (&mut self.converted_shown, converted_shown),
            (&mut self.converted_held_out, converted_held_out),
            (&mut self.reports_expected, reports_expected),
        ] {
            *mine += theirs;
        }
        self.any_request |= any_request;
        self.consent_lag_micros.extend(consent_lag_micros);
        self.home_caps_lag_micros.extend(home_caps_lag_micros);
        self.decide_nanos.extend(decide_nanos);
        self.decide_full_nanos.extend(decide_full_nanos);
        self.call_nanos.extend(call_nanos);
        for day in daily {
            match self.daily.iter_mut().find(|d| d.day == day.day) {
                Some(mine) => mine.add(&day),
                None => self.daily.push(day),
            }
        }
        self.daily.sort_by_key(|d| d.day);
    }
}

/// Adds each screen's lag to `micros`, or counts it in `late`.
fn lags_into(lags: &[(usize, Option<std::time::Duration>)], micros: &mut Vec<u64>, late: &mut u64) {
    for (_, lag) in lags {
        match lag {
            Some(lag) => micros.push(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX)),
            None => *late += 1,
        }
    }
}

/// One simulated day's figures, as the report plots them.
pub use crate::lab_report::DayFigures as DayCounts;

impl DayCounts {
    fn add(&mut self, other: &DayCounts) {
        // Destructured, so a new field cannot be left out.
        let DayCounts { day: _, shown, accepted, dismissed, revocations, people, personalise, measure, request } =
            *other;
        self.shown += shown;
        self.accepted += accepted;
        self.dismissed += dismissed;
        self.revocations += revocations;
        self.people += people;
        self.personalise += personalise;
        self.measure += measure;
        self.request += request;
    }
}

/// What a shard hands back when it finishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Its counts.
    pub counts: Counts,
    /// Its devices' ids.
    pub devices: Vec<DeviceId>,
    /// Its homes' pseudonyms on the broker.
    #[serde(default)]
    pub homes: Vec<ledtrad_protocol::HomeId>,
    /// Its people.
    pub people: u64,
    /// On the firmware path, its boards' links.
    pub sensor_link: Option<SensorLink>,
    /// The shard process's peak resident memory, bytes (0 when it runs in the run's process).
    pub peak_rss_bytes: u64,
}
