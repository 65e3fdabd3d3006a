//! One simulation run: broker, operator key, signed catalogue push, real agents per device on
//! a shared virtual clock, simulated days, the audit, and the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use ledtrad_agent::handle::{PersonChange, PromptAnswer, YesNo};
use ledtrad_agent::{AgentHandle, Config, ConsentChange, ManualClock, RawConfig, RawKey, RunningAgent};
use ledtrad_operator::status::watch_statuses;
use ledtrad_operator::{push_envelope, sign_catalogue, OperatorKey, SignOptions};
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::catalogue::Catalogue;
use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, FleetId, KeyId, PersonId, Purpose, UnixTime};
use rand::{Rng as _, SeedableRng as _};
use tokio::io::AsyncWriteExt as _;

use crate::audit::Audit;
use crate::home::{ConsentMode, Home, SensorPath, SHELF};
use crate::summary::{Egress, EgressBytes, Percentiles, Summary, Traffic};

/// The local time offset of the simulated homes (Central European Time).
pub const UTC_OFFSET_MINUTES: i32 = 60;

/// Minutes per simulation step.
pub const STEP_MINUTES: u64 = 10;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Number of homes (three devices each).
    pub homes: usize,
    /// Simulated days.
    pub days: u64,
    /// Seed for homes, people and their answers.
    pub seed: u64,
    /// An external broker, or `None` for the embedded one.
    pub broker: Option<BrokerUrl>,
    /// How consent is drawn.
    pub consent: ConsentMode,
    /// The catalogue to push.
    pub catalogue: Catalogue,
    /// The first simulated day: the run starts at this date's local midnight (UTC+1).
    pub start: UnixTime,
    /// Whether to draw progress bars (on stderr).
    pub progress: bool,
    /// Where to store the fleet's reports for `ledtrad-op report`, if anywhere: the run then
    /// also runs the operator's report collector (`ledtrad-op serve --reports`).
    pub reports: Option<std::path::PathBuf>,
    /// How sensor signals reach the agents.
    pub sensors: SensorPath,
    /// On the firmware path, the share of frames the link damages (one bit flipped each).
    pub link_flips: f64,
    /// The survey figures people's consent is drawn from in [`ConsentMode::Survey`].
    pub survey: crate::survey::Survey,
}

/// A device's sensor board on the firmware path, and its end of the link.
struct BoardLink {
    board: crate::board::Board,
    stream: tokio::net::TcpStream,
}

impl BoardLink {
    /// Listens for the agent's link on a free loopback port: the address to put in its config.
    async fn listen() -> anyhow::Result<tokio::net::TcpListener> {
        Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
    }

    /// Takes the agent's connection within 10 s.
    async fn accept(listener: tokio::net::TcpListener, board: crate::board::Board) -> anyhow::Result<Self> {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .context("the agent did not connect to its sensor board within 10 s")??;
        stream.set_nodelay(true)?;
        Ok(Self { board, stream })
    }
}

struct Device {
    home: usize,
    kind: DeviceKind,
    id: DeviceId,
    handle: AgentHandle,
    consent: ConsentState,
}

#[derive(Default)]
struct Counts {
    decisions: u64,
    shown: u64,
    shown_personalised: u64,
    accepted: u64,
    dismissed: u64,
    not_for_me: u64,
    unanswered: u64,
    signals: u64,
    violations: u64,
    why_inconsistent: u64,
    camouflaged: u64,
    revocations: u64,
    prompts: u64,
    prompts_declined: u64,
    held_out: u64,
    converted: u64,
    decide_nanos: Vec<u64>,
    call_nanos: Vec<u64>,
}

fn bar(progress: bool, len: u64, message: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_string());
    bar
}

fn kind_index(kind: DeviceKind) -> usize {
    DeviceKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// An id for this run, unique on a shared broker: process, run number in the process, and time.
fn run_id() -> String {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::SeqCst), nanos % 10_000)
}

/// The UTC instant of local midnight at the start of the day `start` names: the homes live at
/// UTC+1, so their midnight is an hour earlier in UTC.
pub fn local_midnight(start: UnixTime) -> UnixTime {
    UnixTime(start.secs().saturating_add_signed(-i64::from(UTC_OFFSET_MINUTES) * 60))
}

/// Runs a simulation and returns its summary.
pub async fn run(options: RunOptions) -> anyhow::Result<Summary> {
    let wall = Instant::now();
    if options.homes == 0 {
        bail!("--homes must be at least 1");
    }
    let devices_total = options.homes * DeviceKind::ALL.len();
    let (broker, broker_label) = match &options.broker {
        Some(url) => (url.clone(), url.to_string()),
        None => {
            let embedded = ledtrad_agent::broker::EmbeddedBroker::start(devices_total + 16)?;
            let url = embedded.url().clone();
            // The broker lives until the process ends.
            std::mem::forget(embedded);
            (url, "embedded".to_string())
        }
    };
    let run_id = run_id();
    let fleet = FleetId::try_new(format!("sim-{run_id}"))?;
    let key = OperatorKey::generate(KeyId::try_new("sim-operator")?);
    let local_midnight = local_midnight(options.start);
    let clock = ManualClock::new(local_midnight);
    let audit = Audit::start(&broker, &fleet, &format!("s{}-h", options.seed), &format!("ledtrad-sim-audit-{run_id}"))
        .await
        .with_context(|| format!("connecting to the broker at {broker}"))?;

    let collector = match &options.reports {
        None => None,
        Some(path) => Some(start_collector(&broker, path, &run_id).await?),
    };

    // Agents, one per device, each on its own database.
    let dir = tempfile::tempdir().context("creating a directory for the agents' databases")?;
    let starting = bar(options.progress, devices_total as u64, "starting agents");
    let mut homes = Vec::with_capacity(options.homes);
    let mut devices = Vec::with_capacity(devices_total);
    let mut running: Vec<RunningAgent> = Vec::with_capacity(devices_total);
    let mut boards: Vec<Option<BoardLink>> = Vec::with_capacity(devices_total);
    let mut flips = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed ^ 0x11_4e_f1_1b);
    for h in 0..options.homes {
        let home = Home::with_survey(options.seed, h, options.consent, &options.survey);
        for kind in DeviceKind::ALL {
            // Pseudonyms follow from the seed, so holdout arms (a hash of pseudonym and campaign)
            // are the same in every run with it. Runs sharing a broker need different seeds.
            let id = DeviceId::try_new(format!("s{}-h{h}-{}", options.seed, kind.as_str().replace('_', "-")))?;
            let window_ms = u32::try_from(STEP_MINUTES * 60_000).unwrap_or(u32::MAX);
            let board = match (options.sensors, kind) {
                (SensorPath::Firmware, DeviceKind::Fridge) => Some(crate::board::Board::fridge(window_ms)?),
                (SensorPath::Firmware, DeviceKind::LockScreen) => Some(crate::board::Board::lock_screen(window_ms)?),
                _ => None,
            };
            let listener = match board {
                Some(_) => Some(BoardLink::listen().await?),
                None => None,
            };
            let sensor_link = match &listener {
                Some(l) => Some(format!("tcp://{}", l.local_addr()?)),
                None => None,
            };
            let raw = RawConfig {
                device_id: id.to_string(),
                kind: kind.as_str().into(),
                fleet: fleet.to_string(),
                broker: broker.to_string(),
                mqtt_username: None,
                mqtt_password_file: None,
                database: dir.path().join(format!("{id}.db")),
                api: None,
                sharing: None,
                report_epsilon: None,
                camouflage_share: None,
                model_runtime: None,
                rng_seed: Some(
                    options.seed
                        ^ ((h * DeviceKind::ALL.len() + kind_index(kind)) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
                owner: Some(Home::PEOPLE[Home::people_of(kind)[0]].into()),
                utc_offset_minutes: UTC_OFFSET_MINUTES,
                timezone: None,
                offer_request_timeout_ms: None,
                sensor_link,
                sensor_baud: None,
                operator_keys: vec![RawKey { id: key.id.to_string(), public_key: key.public_hex(), retired: false }],
            };
            let config = Config::from_raw(raw, "simulator")?;
            let agent = ledtrad_agent::spawn(config, Arc::new(clock.clone())).await?;
            boards.push(match (listener, board) {
                (Some(listener), Some(board)) => Some(BoardLink::accept(listener, board).await?),
                _ => None,
            });
            devices.push(Device { home: h, kind, id, handle: agent.handle(), consent: home.consent(kind) });
            running.push(agent);
            starting.inc(1);
        }
        homes.push(home);
    }
    starting.finish_and_clear();

    // The household on each device, and each person's consent as they gave it at setup. The
    // agents work out what a shared fridge may do; the audit checks it independently.
    for device in &devices {
        let home = &homes[device.home];
        for &i in Home::people_of(device.kind) {
            let person = PersonId::try_new(Home::PEOPLE[i])?;
            device.handle.put_person(person.clone(), PersonChange { child: false }).await?;
            for purpose in Purpose::ALL.into_iter().filter(|p| home.person_consent(i).allows(*p)) {
                let change = ConsentChange {
                    granted: true,
                    source: ConsentSource::SetupWizard,
                    text_version: "sim-2026-11".into(),
                };
                device.handle.set_person_consent(Some(person.clone()), purpose, change).await?;
            }
        }
    }

    // The operator signs and pushes the catalogue; wait until every agent applied it.
    let version = 1;
    let sign = SignOptions {
        fleet: fleet.clone(),
        version,
        issued_at: local_midnight,
        expires_at: local_midnight.plus_secs((options.days + 7) * DAY_SECS),
    };
    let envelope = sign_catalogue(&options.catalogue, &key, &sign)?;
    push_envelope(&broker, &fleet, envelope, &format!("ledtrad-sim-op-{run_id}")).await?;
    let applying = bar(options.progress, devices_total as u64, "applying catalogue");
    let deadline = Instant::now() + Duration::from_secs(120);
    for device in &devices {
        loop {
            let status = device.handle.status().await?;
            if status.catalogue_version == Some(version) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "device {} did not apply catalogue version {version} within 120 s (status: {status:?})",
                    device.id
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        applying.inc(1);
    }
    applying.finish_and_clear();

    // The simulated days.
    let campaigns: BTreeMap<_, _> =
        options.catalogue.offers.iter().map(|o| (o.id.clone(), o.campaign.clone())).collect();
    let categories: BTreeMap<_, _> =
        options.catalogue.offers.iter().map(|o| (o.id.clone(), o.category.clone())).collect();
    let mut counts = Counts::default();
    let mut reports_expected = 0u64;
    let steps_per_day = 24 * 60 / STEP_MINUTES;
    let simulating = bar(options.progress, options.days * steps_per_day, "simulating");
    let simulated_from = Instant::now();
    for day in 0..options.days {
        // Per device: the (campaign, held out?) pairs it has counts for today, if it measures.
        let mut campaigns_today: BTreeMap<usize, BTreeSet<(CampaignId, bool)>> = BTreeMap::new();
        let plans: Vec<Vec<(u64, usize, Purpose)>> =
            homes.iter_mut().map(|home| home.plan_revocations(steps_per_day)).collect();
        for step in 0..steps_per_day {
            let minutes = step * STEP_MINUTES;
            let now = local_midnight.plus_secs(day * DAY_SECS + minutes * 60);
            clock.set(now);
            let (hour, minute) = (minutes / 60, minutes % 60);
            // People who change their minds now: the revocation goes to every device that
            // serves them, and the audit's expectations follow.
            for (h, plan) in plans.iter().enumerate() {
                for &(_, person, purpose) in plan.iter().filter(|(at, _, _)| *at == step) {
                    homes[h].revoke(person, purpose);
                    counts.revocations += 1;
                    for (k, kind) in DeviceKind::ALL.into_iter().enumerate() {
                        if !Home::people_of(kind).contains(&person) {
                            continue;
                        }
                        let index = h * DeviceKind::ALL.len() + k;
                        let change = ConsentChange {
                            granted: false,
                            source: ConsentSource::DeviceUi,
                            text_version: "sim-2026-11".into(),
                        };
                        let id = PersonId::try_new(Home::PEOPLE[person])?;
                        devices[index].handle.set_person_consent(Some(id), purpose, change).await?;
                        devices[index].consent = homes[h].consent(kind);
                        if !devices[index].consent.allows(Purpose::Measure) {
                            campaigns_today.remove(&index);
                        }
                    }
                }
            }
            for (h, home) in homes.iter_mut().enumerate() {
                let events = home.step(day, hour, minute);
                if options.sensors == SensorPath::Firmware {
                    let at_ms = (now.secs() - local_midnight.secs()) * 1_000;
                    for kind in [DeviceKind::Fridge, DeviceKind::LockScreen] {
                        let index = h * DeviceKind::ALL.len() + kind_index(kind);
                        let Some(link) = boards[index].as_mut() else { continue };
                        let event = events.iter().find(|e| e.kind == kind);
                        let scene = match kind {
                            DeviceKind::Fridge => crate::board::Scene::Fridge {
                                levels: home.shelf_levels().map(|l| l as f32),
                                door_opened: event.is_some(),
                                celsius: 4.0,
                            },
                            _ => crate::board::Scene::LockScreen {
                                light: event
                                    .and_then(|e| {
                                        e.signals.iter().find(|s| s.feature.as_str() == "context.ambient_light")
                                    })
                                    .map_or(0.0, |s| s.value as f32),
                                moved: event.is_some(),
                            },
                        };
                        let sent_before = link.board.frames_sent;
                        for mut frame in link.board.step(at_ms, scene)? {
                            if flips.random_bool(options.link_flips) {
                                crate::board::flip_a_bit(&mut frame, &mut flips);
                                link.board.frames_flipped += 1;
                            }
                            link.stream.write_all(&frame).await?;
                        }
                        if link.board.frames_sent > sent_before {
                            wait_for_frames(&devices[index].handle, link.board.frames_sent).await?;
                        }
                    }
                }
                for mut event in events {
                    let index =
                        h * DeviceKind::ALL.len() + DeviceKind::ALL.iter().position(|k| *k == event.kind).unwrap_or(0);
                    let device = &devices[index];
                    if boards[index].is_some() {
                        // The board carries its sensors' readings; the rest (a lock screen's
                        // unlocks) still come from the device's own software.
                        event.signals.retain(|s| !board_feature(s.feature.as_str()));
                    }
                    counts.signals += event.signals.len() as u64;
                    device.handle.signals(event.signals).await?;
                    let Some(moment) = event.moment else { continue };
                    let started = Instant::now();
                    let outcome = device.handle.offer(moment).await?;
                    counts.call_nanos.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    counts.decide_nanos.push(outcome.decide_nanos);
                    counts.decisions += 1;
                    let decision = outcome.decision;
                    if crate::audit::decision_violates(device.consent, &decision) {
                        counts.violations += 1;
                    }
                    if !crate::audit::why_consistent(device.kind, &decision) {
                        counts.why_inconsistent += 1;
                    }
                    counts.camouflaged += u64::from(decision.camouflage);
                    if decision.prompt.is_some() {
                        counts.prompts += 1;
                        // The people decline (a "yes" would change one device's ledger, which
                        // this household model keeps per person); "yes" is tested end to end.
                        if home.declines_prompt() {
                            counts.prompts_declined += 1;
                            let answer = PromptAnswer { decision: decision.id, answer: YesNo::No, person: None };
                            device.handle.prompt_answer(answer).await?;
                        }
                    }
                    if let Some(offer) = &decision.would_have_shown {
                        counts.held_out += 1;
                        if let (true, Some(campaign)) = (device.consent.allows(Purpose::Measure), campaigns.get(offer))
                        {
                            campaigns_today.entry(index).or_default().insert((campaign.clone(), true));
                        }
                        // Held out, the household may still do what the offer was about.
                        if home.converts_unprompted(categories.get(offer).map_or("", String::as_str)) {
                            counts.converted += 1;
                            let converted = Feedback { decision: decision.id, kind: FeedbackKind::Converted };
                            device.handle.feedback(converted).await?;
                        }
                    }
                    let Some(shown) = decision.shown else { continue };
                    counts.shown += 1;
                    counts.shown_personalised += u64::from(shown.personalised);
                    if device.consent.allows(Purpose::Measure) {
                        campaigns_today.entry(index).or_default().insert((shown.campaign.clone(), false));
                    }
                    let category = categories.get(&shown.offer).map_or("", String::as_str);
                    let mut converted = false;
                    match home.respond(&shown, category) {
                        None => counts.unanswered += 1,
                        Some(kind) => {
                            match kind {
                                FeedbackKind::Accepted => counts.accepted += 1,
                                FeedbackKind::Dismissed => counts.dismissed += 1,
                                FeedbackKind::NotForMe => {
                                    counts.dismissed += 1;
                                    counts.not_for_me += 1;
                                }
                                FeedbackKind::Converted => counts.converted += 1,
                            }
                            device.handle.feedback(Feedback { decision: decision.id, kind }).await?;
                            if kind == FeedbackKind::Accepted && home.converts() {
                                converted = true;
                            }
                        }
                    }
                    // Taken up through the offer, or as the household would have anyway.
                    if converted || home.converts_unprompted(category) {
                        counts.converted += 1;
                        let converted = Feedback { decision: decision.id, kind: FeedbackKind::Converted };
                        device.handle.feedback(converted).await?;
                    }
                }
            }
            simulating.inc(1);
            simulating.set_message(format!("day {} {hour:02}:{minute:02}, {} agents", day + 1, devices.len()));
        }
        // End of day: agents send their reports where `measure` allows it.
        for device in &devices {
            device.handle.flush_reports().await?;
        }
        reports_expected += campaigns_today.values().map(|c| c.len() as u64).sum::<u64>();
        let wait_until = Instant::now() + Duration::from_secs(10);
        while audit.reports() < reports_expected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    simulating.finish_and_clear();
    let simulated_wall = simulated_from.elapsed().as_secs_f64();
    // Let any late message arrive before judging.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = &audit.seen;
    let traffic = |t: &crate::audit::Traffic| {
        let (messages, bytes) = t.get();
        Traffic { messages, bytes }
    };
    let egress = Egress {
        status: traffic(&seen.status),
        measure: traffic(&seen.measure),
        request: traffic(&seen.request),
        unexpected: traffic(&seen.unexpected),
    };
    let reports_seen = egress.measure.messages;
    let catalogue = traffic(&seen.catalogue);
    let broker_messages = egress.status.messages
        + egress.measure.messages
        + egress.request.messages
        + egress.unexpected.messages
        + catalogue.messages;
    let broker_bytes =
        egress.status.bytes + egress.measure.bytes + egress.request.bytes + egress.unexpected.bytes + catalogue.bytes;
    let reports_stored = match collector {
        None => None,
        Some(collector) => {
            collector.wait_for_reports(reports_seen, Duration::from_secs(10)).await;
            Some(collector.stop().await?.reports)
        }
    };
    let any_request = devices.iter().any(|d| d.consent.allows(Purpose::Request));
    counts.violations += crate::audit::message_violations(
        reports_seen,
        reports_expected,
        egress.request.messages,
        any_request,
        egress.unexpected.messages,
    );
    audit.stop();

    // The operator's view: which version each device reports on its retained status.
    let ids: BTreeSet<DeviceId> = devices.iter().map(|d| d.id.clone()).collect();
    let statuses = watch_statuses(&broker, &format!("ledtrad-sim-watch-{run_id}"), Duration::from_secs(30), |seen| {
        ids.iter().all(|id| seen.get(id).is_some_and(|s| s.catalogue_version == Some(version)))
    })
    .await?;
    let applied =
        ids.iter().filter(|id| statuses.get(*id).is_some_and(|s| s.catalogue_version == Some(version))).count();

    // The boards' links, as the boards and the agents count them.
    let sensor_link = if options.sensors == SensorPath::Firmware {
        let mut link = crate::summary::SensorLink::default();
        for (device, board) in devices.iter().zip(&boards) {
            let Some(board) = board else { continue };
            link.boards += 1;
            link.frames_sent += board.board.frames_sent;
            link.frames_flipped += board.board.frames_flipped;
            if let Some(l) = device.handle.status().await?.link {
                link.frames_read += l.frames;
                link.corrupt += l.corrupt;
                link.incomplete += l.incomplete;
                link.dropped += l.dropped;
                link.repeated += l.repeated;
                link.signals += l.signals;
            }
        }
        Some(link)
    } else {
        None
    };

    let stopping = bar(options.progress, running.len() as u64, "stopping agents");
    for agent in running {
        agent.shutdown().await;
        stopping.inc(1);
    }
    stopping.finish_and_clear();
    if options.broker.is_some() {
        // Leave nothing retained behind on a shared broker.
        let cleaner = format!("ledtrad-sim-clean-{run_id}");
        ledtrad_operator::push_envelope(&broker, &fleet, Vec::new(), &cleaner).await?;
        for id in &ids {
            let topic = ledtrad_protocol::topic::Topic::Status(id.clone());
            ledtrad_operator::publish_retained(&broker, &topic, Vec::new(), &cleaner).await?;
        }
    }
    drop(dir);

    Ok(Summary {
        homes: options.homes,
        devices: devices_total,
        days: options.days,
        seed: options.seed,
        consent: options.consent,
        broker: broker_label,
        catalogue_version: version,
        catalogue_version_applied: applied,
        decisions: counts.decisions,
        shown: counts.shown,
        shown_personalised: counts.shown_personalised,
        accepted: counts.accepted,
        dismissed: counts.dismissed,
        not_for_me: counts.not_for_me,
        unanswered: counts.unanswered,
        signals: counts.signals,
        consent_violations: counts.violations,
        why_inconsistent: counts.why_inconsistent,
        shown_camouflaged: counts.camouflaged,
        revocations: counts.revocations,
        prompts_shown: counts.prompts,
        held_out: counts.held_out,
        converted: counts.converted,
        prompts_declined: counts.prompts_declined,
        reports_seen,
        reports_expected,
        reports_stored,
        sensors: options.sensors,
        sensor_link,
        egress_bytes_by_purpose: EgressBytes {
            measure: egress.measure.bytes,
            request: egress.request.bytes,
            personalise: 0,
            improve: 0,
        },
        egress,
        decision_latency_us: Percentiles::of_nanos(counts.decide_nanos),
        offer_call_latency_us: Percentiles::of_nanos(counts.call_nanos),
        wall_seconds: (wall.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        sim_ratio: ((options.days * DAY_SECS) as f64 / simulated_wall.max(1e-3)).round(),
        broker_messages,
        broker_bytes,
        peak_rss_bytes: crate::footprint::proc_status("VmHWM").unwrap_or(0),
        uplink_bytes_per_device_day: {
            let per = |bytes: u64| {
                let device_days = (devices_total as u64 * options.days).max(1);
                (bytes as f64 / device_days as f64 * 10.0).round() / 10.0
            };
            crate::summary::UplinkPerDeviceDay {
                status: per(egress.status.bytes),
                measure: per(egress.measure.bytes),
                request: per(egress.request.bytes),
            }
        },
    })
}

/// Whether a sensor board carries `feature` on the firmware path.
fn board_feature(feature: &str) -> bool {
    SHELF.contains(&feature) || matches!(feature, "fridge.door.opens" | "context.ambient_light")
}

/// Waits (up to 10 s) until the agent behind `handle` has read `sent` frames, good or not,
/// from its board, so a moment is decided on what the board reported.
async fn wait_for_frames(handle: &AgentHandle, sent: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = handle.status().await?;
        let read = status.link.as_ref().map_or(0, |l| l.frames + l.corrupt + l.incomplete);
        if read >= sent {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("the agent read {read} of {sent} frames from its board within 10 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Starts the operator's report collector (`ledtrad-op serve --reports`, as a library) for a
/// run, storing into `path`.
async fn start_collector(
    broker: &BrokerUrl,
    path: &std::path::Path,
    run_id: &str,
) -> anyhow::Result<ledtrad_operator::serve::Running> {
    let options = ledtrad_operator::serve::ServeOptions {
        broker: broker.clone(),
        login: None,
        client_id: format!("ledtrad-sim-collector-{run_id}"),
        service: None,
        reports: Some(ledtrad_operator::collect::ReportStore::open(path)?),
    };
    Ok(ledtrad_operator::serve::start(options, Duration::from_secs(10)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
