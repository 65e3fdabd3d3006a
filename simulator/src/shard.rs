//! A shard of a run: a slice of the homes, each device a real agent with its own database,
//! stepped on the shard's virtual clock. A run drives its shards in lockstep, in its own
//! process or, for more homes than one process may hold files for, in worker processes
//! ([`crate::worker`]); the shard is the same either way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ledtrad_agent::engine::Policy;
use ledtrad_agent::handle::{PersonChange, PromptAnswer, YesNo};
use ledtrad_agent::{AgentHandle, Config, ConsentChange, ManualClock, RawConfig, RawKey, RunningAgent};
use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, DeviceId, DeviceKind, OfferId, PersonId, Purpose, UnixTime};
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

use crate::home::{Home, Population, SensorPath, SHELF};
use crate::run::{STEP_MINUTES, UTC_OFFSET_MINUTES};
use crate::summary::SensorLink;

/// What a shard runs: everything it needs, sent to a worker process as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSpec {
    /// The run's seed.
    pub seed: u64,
    /// The first home (by the run's numbering) and one past the last.
    pub homes: (usize, usize),
    /// Who lives there.
    pub population: Population,
    /// How offers are put.
    pub policy: Policy,
    /// The broker, `mqtt://HOST:PORT`.
    pub broker: String,
    /// The fleet.
    pub fleet: String,
    /// The operator key the agents trust: id and public key (hex).
    pub key: (String, String),
    /// Local midnight of the first simulated day.
    pub local_midnight: UnixTime,
    /// How signals reach the agents.
    pub sensors: SensorPath,
    /// On the firmware path, the share of frames the link damages.
    pub link_flips: f64,
    /// The catalogue's offers: id, campaign and category.
    pub offers: Vec<(OfferId, CampaignId, String)>,
    /// The campaigns with a holdout arm: uplift compares their shown offers with their
    /// held-out decisions.
    pub measured_campaigns: Vec<CampaignId>,
    /// The directory the run keeps the agents' databases in (removed with the run's, whatever
    /// becomes of the shard).
    pub dir: std::path::PathBuf,
}

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
    /// Camouflage draws.
    pub camouflaged: u64,
    /// Consents revoked.
    pub revocations: u64,
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
    /// Whole offer calls, nanoseconds.
    pub call_nanos: Vec<u64>,
    /// Per simulated day.
    pub daily: Vec<DayCounts>,
}

impl Counts {
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
            camouflaged,
            revocations,
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
            (&mut self.camouflaged, camouflaged),
            (&mut self.revocations, revocations),
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
        self.decide_nanos.extend(decide_nanos);
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
    /// Its people.
    pub people: u64,
    /// On the firmware path, its boards' links.
    pub sensor_link: Option<SensorLink>,
    /// The shard process's peak resident memory, bytes (0 when it runs in the run's process).
    pub peak_rss_bytes: u64,
}

/// A device's sensor board on the firmware path, and its end of the link.
struct BoardLink {
    board: crate::board::Board,
    stream: tokio::net::TcpStream,
    /// Which frames the link damages: the board's own draws, so they do not depend on how a
    /// run splits its homes.
    flips: rand_chacha::ChaCha8Rng,
}

impl BoardLink {
    /// Takes the agent's connection within 10 s.
    async fn accept(
        listener: tokio::net::TcpListener,
        board: crate::board::Board,
        flips: rand_chacha::ChaCha8Rng,
    ) -> anyhow::Result<Self> {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .context("the agent did not connect to its sensor board within 10 s")??;
        stream.set_nodelay(true)?;
        Ok(Self { board, stream, flips })
    }
}

struct Device {
    kind: DeviceKind,
    id: DeviceId,
    handle: AgentHandle,
    consent: ConsentState,
    board: Option<BoardLink>,
}

/// A slice of a run's homes and their agents.
pub struct Shard {
    spec: ShardSpec,
    clock: ManualClock,
    homes: Vec<Home>,
    /// Each home's first device, by index into `devices`.
    first_device: Vec<usize>,
    devices: Vec<Device>,
    running: Vec<RunningAgent>,
    counts: Counts,
    campaigns: BTreeMap<OfferId, CampaignId>,
    categories: BTreeMap<OfferId, String>,
    /// Today's revocations per home: (step, person, purpose).
    plans: Vec<Vec<(u64, usize, Purpose)>>,
    /// Per device: the (campaign, held out?) pairs it has counts for today, if it measures.
    campaigns_today: BTreeMap<usize, BTreeSet<(CampaignId, bool)>>,
    today: DayCounts,
    /// The campaigns with a holdout arm.
    measured: BTreeSet<CampaignId>,
}

/// The simulator's consent text version.
const TEXT_VERSION: &str = "sim-2026-11";

fn consent_change(granted: bool, source: ConsentSource) -> ConsentChange {
    ConsentChange { granted, source, text_version: TEXT_VERSION.into() }
}

impl Shard {
    /// Starts every agent of the shard's homes and gives each its household and consent.
    pub async fn start(spec: ShardSpec, mut started: impl FnMut()) -> anyhow::Result<Self> {
        let dir = &spec.dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating '{}' for the agents' databases", dir.display()))?;
        let clock = ManualClock::new(spec.local_midnight);
        let (from, to) = spec.homes;
        let mut homes = Vec::with_capacity(to - from);
        let mut devices = Vec::new();
        let mut first_device = Vec::with_capacity(to - from);
        let mut running = Vec::new();
        for h in from..to {
            let home = Home::new(spec.seed, h, &spec.population);
            first_device.push(devices.len());
            for (slot, d) in home.devices.iter().enumerate() {
                // Pseudonyms follow from the seed, so holdout arms (a hash of pseudonym and
                // campaign) are the same in every run with it. Runs sharing a broker need
                // different seeds.
                let id = DeviceId::try_new(format!("s{}-h{h}-{}", spec.seed, d.name))?;
                let window_ms = u32::try_from(STEP_MINUTES * 60_000).unwrap_or(u32::MAX);
                let board = match (spec.sensors, d.kind) {
                    (SensorPath::Firmware, DeviceKind::Fridge) => Some(crate::board::Board::fridge(window_ms)?),
                    (SensorPath::Firmware, DeviceKind::LockScreen) => {
                        Some(crate::board::Board::lock_screen(window_ms)?)
                    }
                    _ => None,
                };
                let listener = match board {
                    Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await?),
                    None => None,
                };
                let sensor_link = match &listener {
                    Some(l) => Some(format!("tcp://{}", l.local_addr()?)),
                    None => None,
                };
                let raw = RawConfig {
                    device_id: id.to_string(),
                    kind: d.kind.as_str().into(),
                    fleet: spec.fleet.clone(),
                    broker: spec.broker.clone(),
                    mqtt_username: None,
                    mqtt_password_file: None,
                    database: dir.join(format!("{id}.db")),
                    api: None,
                    sharing: None,
                    report_epsilon: None,
                    camouflage_share: None,
                    model_runtime: None,
                    rng_seed: Some(spec.seed ^ ((h * 16 + slot) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                    owner: Some(home.people[d.people[0]].id.clone()),
                    utc_offset_minutes: UTC_OFFSET_MINUTES,
                    timezone: None,
                    offer_request_timeout_ms: None,
                    sensor_link,
                    sensor_baud: None,
                    operator_keys: vec![RawKey {
                        id: spec.key.0.clone(),
                        public_key: spec.key.1.clone(),
                        retired: false,
                    }],
                };
                let mut config = Config::from_raw(raw, "simulator")?;
                config.policy = spec.policy;
                let agent = ledtrad_agent::spawn(config, Arc::new(clock.clone())).await?;
                let board = match (listener, board) {
                    (Some(listener), Some(board)) => {
                        let flips = rand_chacha::ChaCha8Rng::seed_from_u64(
                            spec.seed ^ 0x11_4e_f1_1b ^ ((h * 16 + slot) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        Some(BoardLink::accept(listener, board, flips).await?)
                    }
                    _ => None,
                };
                let handle = agent.handle();
                // The people the device serves, and each one's consent as given at set-up.
                // The agent works out what a shared fridge may do; the audit checks it
                // independently.
                for &i in &d.people {
                    let person = &home.people[i];
                    let pid = PersonId::try_new(&person.id)?;
                    handle.put_person(pid.clone(), PersonChange { child: person.child }).await?;
                    for purpose in Purpose::ALL.into_iter().filter(|p| person.consent.allows(*p)) {
                        let change = consent_change(true, ConsentSource::SetupWizard);
                        handle.set_person_consent(Some(pid.clone()), purpose, change).await?;
                    }
                }
                devices.push(Device { kind: d.kind, id, handle, consent: home.consent(slot), board });
                running.push(agent);
                started();
            }
            homes.push(home);
        }
        let campaigns = spec.offers.iter().map(|(o, c, _)| (o.clone(), c.clone())).collect();
        let categories = spec.offers.iter().map(|(o, _, c)| (o.clone(), c.clone())).collect();
        let measured = spec.measured_campaigns.iter().cloned().collect();
        let counts =
            Counts { any_request: devices.iter().any(|d| d.consent.allows(Purpose::Request)), ..Counts::default() };
        Ok(Self {
            spec,
            clock,
            homes,
            first_device,
            devices,
            running,
            counts,
            campaigns,
            categories,
            plans: Vec::new(),
            campaigns_today: BTreeMap::new(),
            today: DayCounts::default(),
            measured,
        })
    }

    /// Devices in the shard.
    pub fn devices(&self) -> usize {
        self.devices.len()
    }

    /// Devices whose agent is connected to the broker now.
    pub async fn online(&self) -> anyhow::Result<usize> {
        let mut online = 0;
        for d in &self.devices {
            online += usize::from(d.handle.status().await?.connected);
        }
        Ok(online)
    }

    /// Waits up to `within` until every agent applied catalogue `version`.
    pub async fn wait_applied(&self, version: u64, within: Duration, mut applied: impl FnMut()) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        for device in &self.devices {
            loop {
                let status = device.handle.status().await?;
                if status.catalogue_version == Some(version) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "device {} did not apply catalogue version {version} within {} s (status: {status:?})",
                        device.id,
                        within.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            applied();
        }
        Ok(())
    }

    /// Starts simulated day `day` (from 0): who will change their mind today.
    pub fn begin_day(&mut self, day: u64, steps_per_day: u64) {
        let responses = self.spec.population.responses;
        self.plans = self.homes.iter_mut().map(|home| home.plan_revocations(steps_per_day, &responses)).collect();
        self.campaigns_today.clear();
        self.today = DayCounts { day: u32::try_from(day + 1).unwrap_or(u32::MAX), ..DayCounts::default() };
    }

    /// Simulates the 10 minutes from `minutes` past local midnight of `day`.
    pub async fn step(&mut self, day: u64, step: u64) -> anyhow::Result<()> {
        let minutes = step * STEP_MINUTES;
        let now = self.spec.local_midnight.plus_secs(day * DAY_SECS + minutes * 60);
        self.clock.set(now);
        self.revocations(step).await?;
        let (hour, minute) = (minutes / 60, minutes % 60);
        for h in 0..self.homes.len() {
            let events = self.homes[h].step(day, hour, minute);
            if self.spec.sensors == SensorPath::Firmware {
                self.boards(h, now, &events).await?;
            }
            for event in events {
                self.event(h, event).await?;
            }
        }
        Ok(())
    }

    /// People who change their minds now: the revocation goes to every device that serves
    /// them, and the audit's expectations follow.
    async fn revocations(&mut self, step: u64) -> anyhow::Result<()> {
        for h in 0..self.homes.len() {
            let due: Vec<(usize, Purpose)> = self
                .plans
                .get(h)
                .into_iter()
                .flatten()
                .filter(|(at, _, _)| *at == step)
                .map(|(_, p, u)| (*p, *u))
                .collect();
            for (person, purpose) in due {
                self.homes[h].revoke(person, purpose);
                self.counts.revocations += 1;
                self.today.revocations += 1;
                let pid = PersonId::try_new(&self.homes[h].people[person].id)?;
                for (slot, d) in self.homes[h].devices.iter().enumerate() {
                    if !d.people.contains(&person) {
                        continue;
                    }
                    let index = self.first_device[h] + slot;
                    let change = consent_change(false, ConsentSource::DeviceUi);
                    self.devices[index].handle.set_person_consent(Some(pid.clone()), purpose, change).await?;
                    self.devices[index].consent = self.homes[h].consent(slot);
                    if !self.devices[index].consent.allows(Purpose::Measure) {
                        self.campaigns_today.remove(&index);
                    }
                }
            }
        }
        Ok(())
    }

    /// On the firmware path: each board samples its scene and sends its frames, and the step
    /// waits until the agent read them, so a moment is decided on what the board reported.
    async fn boards(&mut self, h: usize, now: UnixTime, events: &[crate::home::DeviceEvent]) -> anyhow::Result<()> {
        let at_ms = (now.secs() - self.spec.local_midnight.secs()) * 1_000;
        for slot in 0..self.homes[h].devices.len() {
            let index = self.first_device[h] + slot;
            let kind = self.devices[index].kind;
            let event = events.iter().find(|e| e.device == slot);
            let scene = match kind {
                DeviceKind::Fridge => crate::board::Scene::Fridge {
                    levels: self.homes[h].shelf_levels().map(|l| l as f32),
                    door_opened: event.is_some(),
                    celsius: 4.0,
                },
                DeviceKind::LockScreen => crate::board::Scene::LockScreen {
                    light: event
                        .and_then(|e| e.signals.iter().find(|s| s.feature.as_str() == "context.ambient_light"))
                        .map_or(0.0, |s| s.value as f32),
                    moved: event.is_some(),
                },
                DeviceKind::Ereader => continue,
            };
            let device = &mut self.devices[index];
            let Some(link) = device.board.as_mut() else { continue };
            let sent_before = link.board.frames_sent;
            for mut frame in link.board.step(at_ms, scene)? {
                if link.flips.random_bool(self.spec.link_flips) {
                    crate::board::flip_a_bit(&mut frame, &mut link.flips);
                    link.board.frames_flipped += 1;
                }
                link.stream.write_all(&frame).await?;
            }
            if link.board.frames_sent > sent_before {
                wait_for_frames(&device.handle, link.board.frames_sent).await?;
            }
        }
        Ok(())
    }

    /// One device's signals and moment in a step, the decision, and the people's answer.
    async fn event(&mut self, h: usize, mut event: crate::home::DeviceEvent) -> anyhow::Result<()> {
        let index = self.first_device[h] + event.device;
        let responses = self.spec.population.responses;
        let device = &self.devices[index];
        let home = &mut self.homes[h];
        let counts = &mut self.counts;
        if device.board.is_some() {
            // The board carries its sensors' readings; the rest (a lock screen's unlocks)
            // still come from the device's own software.
            event.signals.retain(|s| !board_feature(s.feature.as_str()));
        }
        counts.signals += event.signals.len() as u64;
        device.handle.signals(event.signals).await?;
        let Some(moment) = event.moment else { return Ok(()) };
        let started = Instant::now();
        let outcome = device.handle.offer(moment).await?;
        counts.call_nanos.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        counts.decide_nanos.push(outcome.decide_nanos);
        counts.decisions += 1;
        let decision = outcome.decision;
        if crate::audit::decision_violates(device.consent, &decision) {
            counts.violations += 1;
        }
        if self.spec.policy.is_clues() && !crate::audit::why_consistent(device.kind, &decision) {
            counts.why_inconsistent += 1;
        }
        counts.camouflaged += u64::from(decision.camouflage);
        if decision.prompt.is_some() {
            counts.prompts += 1;
            // The people decline (a "yes" would change one device's ledger, which this
            // household model keeps per person); "yes" is tested end to end.
            if home.declines_prompt(&responses) {
                counts.prompts_declined += 1;
                let answer = PromptAnswer { decision: decision.id, answer: YesNo::No, person: None };
                device.handle.prompt_answer(answer).await?;
            }
        }
        let measures = device.consent.allows(Purpose::Measure);
        if let Some(offer) = &decision.would_have_shown {
            counts.held_out += 1;
            if let (true, Some(campaign)) = (measures, self.campaigns.get(offer)) {
                self.campaigns_today.entry(index).or_default().insert((campaign.clone(), true));
            }
            // Held out, the household may still do what the offer was about.
            if home.converts_unprompted(event.device, self.categories.get(offer).map_or("", String::as_str)) {
                counts.converted += 1;
                counts.converted_held_out += 1;
                device.handle.feedback(Feedback { decision: decision.id, kind: FeedbackKind::Converted }).await?;
            }
        }
        let Some(shown) = decision.shown else { return Ok(()) };
        counts.shown += 1;
        self.today.shown += 1;
        counts.shown_personalised += u64::from(shown.personalised);
        if measures {
            self.campaigns_today.entry(index).or_default().insert((shown.campaign.clone(), false));
        }
        let category = self.categories.get(&shown.offer).map_or("", String::as_str);
        let measured = self.measured.contains(&shown.campaign);
        counts.shown_measured += u64::from(measured);
        let mut converted = false;
        match home.respond(event.device, &shown, category, &responses) {
            None => counts.unanswered += 1,
            Some(kind) => {
                match kind {
                    FeedbackKind::Accepted => {
                        counts.accepted += 1;
                        self.today.accepted += 1;
                    }
                    FeedbackKind::Dismissed => {
                        counts.dismissed += 1;
                        self.today.dismissed += 1;
                    }
                    FeedbackKind::NotForMe => {
                        counts.dismissed += 1;
                        counts.not_for_me += 1;
                        self.today.dismissed += 1;
                    }
                    FeedbackKind::Converted => counts.converted += 1,
                }
                device.handle.feedback(Feedback { decision: decision.id, kind }).await?;
                if kind == FeedbackKind::Accepted && home.converts(&responses) {
                    converted = true;
                }
            }
        }
        // Taken up through the offer, or as the household would have anyway.
        if converted || home.converts_unprompted(event.device, category) {
            counts.converted += 1;
            counts.converted_shown += u64::from(measured);
            device.handle.feedback(Feedback { decision: decision.id, kind: FeedbackKind::Converted }).await?;
        }
        Ok(())
    }

    /// Ends the day: the agents send their reports where `measure` allows it, the night
    /// passes, and the day's figures are kept. Returns the reports the day should bring.
    pub async fn end_day(&mut self) -> anyhow::Result<u64> {
        for device in &self.devices {
            device.handle.flush_reports().await?;
        }
        let expected = self.campaigns_today.values().map(|c| c.len() as u64).sum::<u64>();
        self.counts.reports_expected += expected;
        let responses = self.spec.population.responses;
        for home in &mut self.homes {
            home.overnight(&responses);
            for person in &home.people {
                self.today.people += 1;
                self.today.personalise += u64::from(person.consent.allows(Purpose::Personalise));
                self.today.measure += u64::from(person.consent.allows(Purpose::Measure));
                self.today.request += u64::from(person.consent.allows(Purpose::Request));
            }
        }
        self.counts.daily.push(self.today);
        Ok(expected)
    }

    /// Reads the boards' links, stops every agent and hands back the counts.
    pub async fn finish(self, mut stopped: impl FnMut()) -> anyhow::Result<Finished> {
        let sensor_link = if self.spec.sensors == SensorPath::Firmware {
            let mut link = SensorLink::default();
            for device in &self.devices {
                let Some(board) = &device.board else { continue };
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
        let devices = self.devices.iter().map(|d| d.id.clone()).collect();
        let people = self.homes.iter().map(|h| h.people.len() as u64).sum();
        drop(self.devices);
        for agent in self.running {
            agent.shutdown().await;
            stopped();
        }
        Ok(Finished { counts: self.counts, devices, people, sensor_link, peak_rss_bytes: 0 })
    }
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
            bail!("the agent read {read} of {sent} frames from its board within 10 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
