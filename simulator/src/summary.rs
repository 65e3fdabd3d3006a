//! The run's results: counted as the run goes, printed as a table or one JSON object.

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Number of samples.
    pub samples: usize,
}

impl Percentiles {
    /// Percentiles of `nanos`, in microseconds rounded to 0.01.
    pub fn of_nanos(mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        let at = |q: f64| percentile_us(&nanos, q);
        Self { p50: at(0.5), p99: at(0.99), max: at(1.0), samples: nanos.len() }
    }
}

/// How long something said on one screen of a home took to reach the home's other screens over
/// the home channel: a revocation to be in force on those serving the person, or a count of
/// the offers shown today to be heard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScreenLag {
    /// Median, milliseconds.
    pub p50: f64,
    /// 99th percentile, milliseconds.
    pub p99: f64,
    /// Largest, milliseconds.
    pub max: f64,
    /// Screens reached (one sample each).
    pub screens: usize,
    /// Screens not reached within 5 s.
    pub late: u64,
}

impl ScreenLag {
    /// The lags, from microseconds.
    pub fn of_micros(micros: Vec<u64>, late: u64) -> Self {
        // Microseconds are to milliseconds what nanoseconds are to microseconds.
        let p = Percentiles::of_nanos(micros);
        Self { p50: p.p50, p99: p.p99, max: p.max, screens: p.samples, late }
    }
}

/// The `q` quantile (nearest rank) of `sorted` nanoseconds, in microseconds rounded to 0.01;
/// 0 when there are none.
pub fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    (sorted[i] as f64 / 10.0).round() / 100.0
}

/// The sensor boards' links over a run on the firmware path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SensorLink {
    /// Boards (fridges and lock screens).
    pub boards: u64,
    /// Frames the boards' firmware sent.
    pub frames_sent: u64,
    /// Of those, frames the link damaged (a bit flipped).
    pub frames_flipped: u64,
    /// Good frames the agents read.
    pub frames_read: u64,
    /// Of those, event frames (door edges, sent at once).
    #[serde(default)]
    pub events_read: u64,
    /// Frames the agents found corrupt.
    pub corrupt: u64,
    /// Frames cut off.
    pub incomplete: u64,
    /// Frames the agents missed by sequence number.
    pub dropped: u64,
    /// Frames read twice.
    pub repeated: u64,
    /// Readings the agents' engines took as signals.
    pub signals: u64,
}

impl SensorLink {
    /// Both links' counts added.
    pub fn plus(self, other: SensorLink) -> SensorLink {
        SensorLink {
            boards: self.boards + other.boards,
            frames_sent: self.frames_sent + other.frames_sent,
            frames_flipped: self.frames_flipped + other.frames_flipped,
            frames_read: self.frames_read + other.frames_read,
            events_read: self.events_read + other.events_read,
            corrupt: self.corrupt + other.corrupt,
            incomplete: self.incomplete + other.incomplete,
            dropped: self.dropped + other.dropped,
            repeated: self.repeated + other.repeated,
            signals: self.signals + other.signals,
        }
    }
}

/// The uplift in conversion rate, shown over held out, from the simulator's own counts (every
/// decision, no noise): what the offers added to what households did anyway.
pub use crate::lab_report::UpliftFigure as Uplift;

impl Uplift {
    /// From conversions among shown offers and among held-out decisions; `None` without both.
    /// The interval is clamped to ±100 points (a difference of two rates is never more), and
    /// whether each arm has the decisions needed to tell is judged by the operator's rule
    /// ([`needed_per_arm`](ledtrad_operator::uplift::needed_per_arm)).
    pub fn of(converted_shown: u64, shown: u64, converted_held: u64, held: u64) -> Option<Self> {
        if shown == 0 || held == 0 {
            return None;
        }
        let (t, h) = (converted_shown as f64 / shown as f64, converted_held as f64 / held as f64);
        let se = (t * (1.0 - t) / shown as f64 + h * (1.0 - h) / held as f64).sqrt();
        let round = |v: f64| (v * 1_000.0).round() / 1_000.0;
        let points = (t - h) * 100.0;
        let (low, high) = (points - 196.0 * se, points + 196.0 * se);
        let within = |v: f64| v.clamp(-100.0, 100.0);
        let pooled = (converted_shown + converted_held) as f64 / (shown + held) as f64;
        let needed = ledtrad_operator::uplift::needed_per_arm(pooled);
        Some(Self {
            treatment_rate: round(t),
            holdout_rate: round(h),
            points: round(within(points)),
            low: round(within(low)),
            high: round(within(high)),
            held_out: held,
            treated: shown,
            needed,
            enough_held_out: needed.is_some_and(|n| held >= n),
            clamped: within(low) != low || within(high) != high,
        })
    }
}

/// Messages and payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
}

/// What the devices sent, as the spy on `#` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Egress {
    /// Retained status (no consent needed; nothing personal).
    pub status: Traffic,
    /// Reports (`measure`).
    pub measure: Traffic,
    /// Offer requests (`request`).
    pub request: Traffic,
    /// Messages on this run's topics that nobody should send.
    pub unexpected: Traffic,
    /// The home channels: sealed with each home's key, needing no personal purpose.
    pub home: Traffic,
}

/// Egress payload bytes per consent purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EgressBytes {
    /// `personalise` allows no egress at all.
    pub personalise: u64,
    /// Offer requests.
    pub request: u64,
    /// Reports.
    pub measure: u64,
    /// Model updates (none yet).
    pub improve: u64,
}

/// Everything a run reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Homes simulated.
    pub homes: usize,
    /// Devices (agents) run.
    pub devices: usize,
    /// People in the homes.
    pub people: usize,
    /// Simulated days.
    pub days: u64,
    /// The seed.
    pub seed: u64,
    /// How consent was drawn.
    pub consent: crate::home::ConsentMode,
    /// How offers were put.
    pub policy: ledtrad_agent::engine::Policy,
    /// The broker used.
    pub broker: String,
    /// The catalogue version pushed.
    pub catalogue_version: u64,
    /// Devices whose retained status on the broker shows the pushed version as the last
    /// simulated day ends, every agent still running.
    pub catalogue_version_applied: usize,
    /// Decisions asked for.
    pub decisions: u64,
    /// Offers shown.
    pub shown: u64,
    /// Of those, chosen with personal features.
    pub shown_personalised: u64,
    /// Accepted.
    pub accepted: u64,
    /// Dismissed (including "not for me").
    pub dismissed: u64,
    /// Of the dismissals, "not for me".
    pub not_for_me: u64,
    /// Shown offers nobody answered.
    pub unanswered: u64,
    /// Signals fed to agents.
    pub signals: u64,
    /// Consent violations found by the independent audit.
    pub consent_violations: u64,
    /// Shown offers whose "why" does not match their decision's trace.
    pub why_inconsistent: u64,
    /// Decisions the audit made again in an engine of its own with the same catalogue,
    /// history and draws but no personal inputs (every decision of up to 1,000 devices, else
    /// those of a sample of homes; none on the firmware path).
    pub decisions_redecided: u64,
    /// Of those, decisions whose offer personal data changed.
    pub personal_influence: u64,
    /// Of those, offers shown without the personalised mark (must be 0).
    pub personal_influence_unmarked: u64,
    /// Of those, decisions on a device without `personalise` (must be 0).
    pub personal_influence_without_consent: u64,
    /// Shown offers drawn by camouflage from the broadly eligible ones.
    pub shown_camouflaged: u64,
    /// Consent revocations the simulated people made during the run, each on one screen.
    pub revocations: u64,
    /// How long those took to be in force on the home's other screens serving the person.
    pub cross_device_consent_lag_ms: ScreenLag,
    /// Home channel messages the spy could read without the home's key (must be 0; each is
    /// counted as a consent violation too).
    pub home_plaintext: u64,
    /// How long a screen's count of the offers it showed today (for the home-wide caps) took
    /// to reach the home's other screens.
    pub home_caps_lag_ms: ScreenLag,
    /// Shown offers that broke a home cap of the catalogue (the same offer on a second screen
    /// of a home the same day where it has personal conditions, an offer's or a campaign's
    /// `per_home_per_day`, the policy's `home_per_day`), by the audit's own count of what the
    /// home's screens showed (must be 0).
    pub home_cap_violations: u64,
    /// Consent prompts shown.
    pub prompts_shown: u64,
    /// Decisions where a campaign's holdout arm showed nothing ("would have shown").
    pub held_out: u64,
    /// Conversions: offers taken up after an accept, and what households did unprompted
    /// (after a shown offer, or a held-out one).
    pub converted: u64,
    /// Conversions per shown offer against per held-out decision, if both happened.
    pub uplift: Option<Uplift>,
    /// Consent prompts answered "no".
    pub prompts_declined: u64,
    /// Reports the audit saw on the broker.
    pub reports_seen: u64,
    /// Reports the audit expected from devices with `measure`.
    pub reports_expected: u64,
    /// Reports the run's collector stored (`--reports FILE`), if it ran one.
    pub reports_stored: Option<u64>,
    /// How sensor signals reached the agents.
    pub sensors: crate::home::SensorPath,
    /// On the firmware path: the boards' frames, as sent and as the agents read them.
    pub sensor_link: Option<SensorLink>,
    /// Device egress the spy saw on the broker, by class.
    pub egress: Egress,
    /// Device egress payload bytes by consent purpose (status needs none and is in `egress`).
    pub egress_bytes_by_purpose: EgressBytes,
    /// The engine's decision time, over all decisions (most of them ruled out by the device-wide
    /// rules before an offer is read, which is cheap).
    pub decision_latency_us: Percentiles,
    /// The engine's time for full decisions only: those that weighed the catalogue's offers.
    pub full_decision_latency_us: Percentiles,
    /// A whole offer call through the agent's handle (engine, storage, channel round trip).
    pub offer_call_latency_us: Percentiles,
    /// Wall-clock seconds for the whole run.
    pub wall_seconds: f64,
    /// CPU seconds (user and system) of the simulator's processes for the whole run: this one
    /// and its workers.
    pub cpu_seconds: f64,
    /// CPU seconds of the run's own Mosquitto, when it started one, or of its broker
    /// processes, when the embedded broker ran in several.
    pub broker_cpu_seconds: Option<f64>,
    /// Whether every MQTT connection of the run was mutual TLS.
    pub tls: bool,
    /// Simulated seconds per wall-clock second over the simulated days (set-up excluded).
    pub sim_ratio: f64,
    /// Messages on this run's topics, as a subscriber to every topic saw them (devices'
    /// status, reports and requests, and the operator's catalogue).
    pub broker_messages: u64,
    /// Their payload bytes.
    pub broker_bytes: u64,
    /// Processes the run took: one, or the run's and its workers'.
    pub processes: usize,
    /// Peak resident memory of the run's processes added up (agents, broker and all), bytes.
    pub peak_rss_bytes: u64,
    /// Payload bytes each device sent per simulated day, by purpose.
    pub uplink_bytes_per_device_day: UplinkPerDeviceDay,
    /// The engine's decision times as a histogram.
    pub latency_histogram: Vec<crate::lab_report::LatencyBucket>,
    /// Each simulated day's figures.
    pub daily: Vec<crate::lab_report::DayFigures>,
}

/// Payload bytes a device sends per day, by purpose (status needs none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UplinkPerDeviceDay {
    /// Status.
    pub status: f64,
    /// Reports (`measure`).
    pub measure: f64,
    /// Offer requests (`request`).
    pub request: f64,
    /// The home channel (sealed).
    pub home: f64,
}

impl Summary {
    /// The summary as an aligned two-column table.
    pub fn table(&self) -> String {
        let pct = |n: u64| if self.shown == 0 { 0.0 } else { 100.0 * n as f64 / self.shown as f64 };
        let mut rows: Vec<(&str, String)> = vec![
            ("homes", self.homes.to_string()),
            ("devices", format!("{} ({} processes)", self.devices, self.processes)),
            ("people", self.people.to_string()),
            ("policy", self.policy.as_str().to_string()),
            ("simulated days", self.days.to_string()),
            ("seed", self.seed.to_string()),
            ("consent", format!("{:?}", self.consent).to_lowercase()),
            ("broker", self.broker.clone()),
            (
                "catalogue version applied",
                format!(
                    "{} of {} devices on version {}",
                    self.catalogue_version_applied, self.devices, self.catalogue_version
                ),
            ),
            ("decisions", self.decisions.to_string()),
            (
                "offers shown",
                format!(
                    "{} ({} personalised, {} camouflage draws)",
                    self.shown, self.shown_personalised, self.shown_camouflaged
                ),
            ),
            ("accepted", format!("{} ({:.1}% of shown)", self.accepted, pct(self.accepted))),
            (
                "dismissed",
                format!("{} ({:.1}% of shown; {} not for me)", self.dismissed, pct(self.dismissed), self.not_for_me),
            ),
            ("unanswered", self.unanswered.to_string()),
            ("converted", self.converted.to_string()),
            ("held out (would have shown)", self.held_out.to_string()),
            (
                "uplift in conversion rate",
                self.uplift.map_or_else(|| "- (needs shown and held-out decisions)".into(), |u| u.text(2)),
            ),
            ("consent revocations", self.revocations.to_string()),
            ("consent prompts", format!("{} shown, {} declined", self.prompts_shown, self.prompts_declined)),
            ("signals", self.signals.to_string()),
        ];
        // What the audit found, in the agents' decisions and on the wire.
        rows.extend(self.audit_rows());
        rows.extend([
            (
                "decision latency (engine)",
                format!(
                    "full decisions ({}) p50 {:.2} µs, p99 {:.2} µs; all ({}) p50 {:.2} µs, p99 {:.2} µs",
                    self.full_decision_latency_us.samples,
                    self.full_decision_latency_us.p50,
                    self.full_decision_latency_us.p99,
                    self.decision_latency_us.samples,
                    self.decision_latency_us.p50,
                    self.decision_latency_us.p99
                ),
            ),
            (
                "offer call latency (agent)",
                format!("p50 {:.2} µs, p99 {:.2} µs", self.offer_call_latency_us.p50, self.offer_call_latency_us.p99),
            ),
            ("wall time", format!("{:.1} s ({:.0}× simulated time)", self.wall_seconds, self.sim_ratio)),
            ("peak memory", format!("{:.0} MiB", self.peak_rss_bytes as f64 / (1024.0 * 1024.0))),
            (
                "uplink per device per day",
                format!(
                    "{:.0} B status, {:.0} B measure, {:.0} B request, {:.0} B home (sealed)",
                    self.uplink_bytes_per_device_day.status,
                    self.uplink_bytes_per_device_day.measure,
                    self.uplink_bytes_per_device_day.request,
                    self.uplink_bytes_per_device_day.home
                ),
            ),
        ]);
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        let mut out = String::from("ledtrad simulation\n");
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        out
    }
}

impl Summary {
    /// The table's rows of what the audit found: consent, "why"s, decisions made again without
    /// personal data, and the traffic seen on the broker.
    fn audit_rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("consent violations", self.consent_violations.to_string()),
            ("whys not matching their trace", self.why_inconsistent.to_string()),
            (
                "decided again without personal data",
                format!(
                    "{} decisions, {} changed by it: {} not marked personalised, {} without consent",
                    self.decisions_redecided,
                    self.personal_influence,
                    self.personal_influence_unmarked,
                    self.personal_influence_without_consent
                ),
            ),
            (
                "revocations in force on the home's other screens",
                format!(
                    "{} screens, p50 {:.1} ms, p99 {:.1} ms, {} late (over 5 s)",
                    self.cross_device_consent_lag_ms.screens,
                    self.cross_device_consent_lag_ms.p50,
                    self.cross_device_consent_lag_ms.p99,
                    self.cross_device_consent_lag_ms.late
                ),
            ),
            (
                "home caps: counts heard on the other screens",
                format!(
                    "{} screens, p50 {:.1} ms, p99 {:.1} ms, {} late (over 5 s); {} offers over a home cap",
                    self.home_caps_lag_ms.screens,
                    self.home_caps_lag_ms.p50,
                    self.home_caps_lag_ms.p99,
                    self.home_caps_lag_ms.late,
                    self.home_cap_violations
                ),
            ),
            ("reports seen / expected", format!("{} / {}", self.reports_seen, self.reports_expected)),
            ("reports stored", self.reports_stored.map_or_else(|| "-".into(), |n| n.to_string())),
            (
                "sensor frames sent / read / corrupt / dropped",
                self.sensor_link.map_or_else(
                    || "- (direct signals)".into(),
                    |l| format!("{} / {} / {} / {}", l.frames_sent, l.frames_read, l.corrupt, l.dropped),
                ),
            ),
            (
                "egress seen on the broker",
                format!(
                    "status {} msgs / {} B, measure {} / {} B, request {} / {} B, unexpected {}",
                    self.egress.status.messages,
                    self.egress.status.bytes,
                    self.egress.measure.messages,
                    self.egress.measure.bytes,
                    self.egress.request.messages,
                    self.egress.request.bytes,
                    self.egress.unexpected.messages
                ),
            ),
            (
                "home channel on the broker",
                format!(
                    "{} msgs / {} B, {} readable without the home's key",
                    self.egress.home.messages, self.egress.home.bytes, self.home_plaintext
                ),
            ),
        ]
    }

    /// The run's figures for the laboratory report.
    pub fn policy_run(&self) -> crate::lab_report::PolicyRun {
        use crate::lab_report::PolicyRun;
        PolicyRun {
            policy: self.policy.as_str().into(),
            devices: self.devices as u64,
            people: self.people as u64,
            decisions: self.decisions,
            shown: self.shown,
            accepted: self.accepted,
            dismissed: self.dismissed,
            not_for_me: self.not_for_me,
            converted: self.converted,
            revocations: self.revocations,
            held_out: self.held_out,
            consent_violations: self.consent_violations,
            uplift: self.uplift,
            days: self.daily.clone(),
            latency_us: self.latency_histogram.clone(),
            uplink_bytes_per_device_day: vec![
                ("status".into(), self.uplink_bytes_per_device_day.status),
                ("measure".into(), self.uplink_bytes_per_device_day.measure),
                ("request".into(), self.uplink_bytes_per_device_day.request),
            ],
        }
    }
}

mod comparison;
pub use comparison::comparison;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_microseconds() {
        let p = Percentiles::of_nanos((1..=100).map(|i| i * 1000).collect());
        assert_eq!((p.p50, p.p99, p.max, p.samples), (51.0, 99.0, 100.0, 100));
        assert_eq!(Percentiles::of_nanos(vec![]).p50, 0.0);
    }

    #[test]
    fn uplift_is_the_difference_of_two_rates_with_its_interval() {
        let u = Uplift::of(150, 1_000, 50, 1_000).unwrap();
        assert_eq!((u.treatment_rate, u.holdout_rate, u.points), (0.15, 0.05, 10.0));
        // sqrt(0.15*0.85/1000 + 0.05*0.95/1000) = 0.01323: ±2.59 points.
        assert!((u.low - 7.407).abs() < 0.01 && (u.high - 12.593).abs() < 0.01, "{u:?}");
        assert_eq!(Uplift::of(1, 10, 0, 0), None);
        // 10% pooled: 5 conversions expected in 50 decisions; both arms have 1,000.
        assert_eq!((u.needed, u.enough_held_out, u.enough(), u.clamped), (Some(50), true, true, false));
        assert_eq!(u.text(2), "+10.00 points (95% CI +7.41 to +12.59)");
    }

    /// The demo's first screen once said "uplift in conversion rate −84.61 points (95% CI
    /// −104.23 to −65.00)" from one held-out decision.
    #[test]
    fn one_held_out_decision_is_too_few_to_tell() {
        let u = Uplift::of(33, 212, 1, 1).unwrap();
        assert!(!u.enough_held_out && !u.enough());
        // Pooled 34 of 213 (16%): 5 / 0.16 = 32 decisions, and never fewer than 30.
        assert_eq!(u.needed, Some(32));
        assert_eq!(u.text(2), "too few held out to tell (1 decision held out, 212 treated; needs at least 32)");
        assert!(u.low >= -100.0 && u.high <= 100.0, "{u:?}");
        // Nothing converted anywhere: no number of decisions would do.
        let none = Uplift::of(0, 500, 0, 400).unwrap();
        assert_eq!(none.needed, None);
        assert_eq!(
            none.text(2),
            "too few held out to tell (400 decisions held out, 500 treated; no conversion yet to measure by)"
        );
    }

    #[test]
    fn an_interval_that_would_cross_100_points_is_clamped_and_says_so() {
        // Every treated decision converts, 1 in 60 held out: 98.3 ± 3.2 points.
        let u = Uplift::of(60, 60, 1, 60).unwrap();
        assert!(u.enough());
        assert_eq!((u.points, u.high, u.clamped), (98.333, 100.0, true));
        assert!((u.low - 95.095).abs() < 0.01, "{u:?}");
        assert_eq!(u.text(1), "+98.3 points (95% CI +95.1 to +100.0, clamped to ±100)");
        // And at the other end.
        let d = Uplift::of(1, 60, 60, 60).unwrap();
        assert_eq!((d.points, d.low, d.clamped), (-98.333, -100.0, true));
    }
}
