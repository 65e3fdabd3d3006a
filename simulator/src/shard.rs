//! A shard of a run: a slice of the homes, each device a real agent with its own database,
//! stepped on the shard's virtual clock. A run drives its shards in lockstep, in its own
//! process or, for more homes than one process may hold files for, in worker processes
//! ([`crate::worker`]); the shard is the same either way.
//!
//! [`device`] starts one device's agent (and its board on the firmware path); [`counts`]
//! holds what the shard counts and hands back.

mod counts;
mod device;
pub(crate) use device::device_id;
pub(crate) use device::home_of;
mod home_caps;
mod home_channel;
mod redecide;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ledtrad_agent::engine::{Policy, SharedCatalogues};
use ledtrad_agent::handle::{PromptAnswer, YesNo};
use ledtrad_agent::{ManualClock, RunningAgent};
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::time::DAY_SECS;
use ledtrad_protocol::{CampaignId, DeviceKind, OfferId, PersonId, Purpose, UnixTime};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

pub use counts::{Counts, DayCounts, Finished};
use device::{board_feature, consent_change, wait_for_frames, Device};

use crate::clock::STEP_MINUTES;
use crate::home::{Home, Population, SensorPath};
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
    /// The broker, `mqtt://HOST:PORT` or `mqtts://HOST:PORT`: one address, or several of one
    /// broker (the embedded broker's for many devices), home `h`'s devices using `h`'s turn.
    pub brokers: Vec<String>,
    /// For an `mqtts://` broker: where each agent's certificate comes from.
    #[serde(default)]
    pub tls: Option<crate::tls::DeviceTls>,
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
    /// The signed catalogue the run pushed, for the audit's own engines.
    #[serde(default)]
    pub catalogue: Vec<u8>,
    /// The audit makes the decisions of every `redecide_every`-th home's devices again without
    /// personal inputs (1: every home; 0: none).
    #[serde(default)]
    pub redecide_every: usize,
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
    /// The homes' pseudonyms on the broker.
    home_ids: Vec<ledtrad_protocol::HomeId>,
    /// The catalogue's home caps.
    home_rules: home_caps::HomeRules,
    /// Per home: what each of its screens counted today.
    home_today: Vec<home_caps::HomeToday>,
}

impl Shard {
    /// Starts every agent of the shard's homes and gives each its household and consent.
    pub async fn start(spec: ShardSpec, mut started: impl FnMut()) -> anyhow::Result<Self> {
        let dir = &spec.dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating '{}' for the agents' databases", dir.display()))?;
        let clock = ManualClock::new(spec.local_midnight);
        // Every agent and audit engine of the shard gets the run's one catalogue: compiled once.
        let shared = SharedCatalogues::new();
        let (from, to) = spec.homes;
        let mut homes = Vec::with_capacity(to - from);
        let mut devices = Vec::new();
        let mut first_device = Vec::with_capacity(to - from);
        let mut running = Vec::new();
        let mut home_ids = Vec::with_capacity(to - from);
        for h in from..to {
            let home = Home::new(spec.seed, h, &spec.population);
            first_device.push(devices.len());
            for slot in 0..home.devices.len() {
                let (device, agent) = Device::start(&spec, &clock, &shared, h, &home, slot).await?;
                devices.push(device);
                running.push(agent);
                started();
            }
            home_ids.push(home_channel::join(&devices[first_device[h - from]..]).await?);
            homes.push(home);
        }
        let campaigns = spec.offers.iter().map(|(o, c, _)| (o.clone(), c.clone())).collect();
        let categories = spec.offers.iter().map(|(o, _, c)| (o.clone(), c.clone())).collect();
        let measured = spec.measured_campaigns.iter().cloned().collect();
        let home_rules = home_caps::HomeRules::of_envelope(&spec.catalogue)?;
        let home_today = homes.iter().map(|h| home_caps::HomeToday::new(h.devices.len())).collect();
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
            home_ids,
            home_rules,
            home_today,
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
                self.event(h, event, now).await?;
            }
        }
        Ok(())
    }

    /// People who change their minds now, each on one screen (their own, else the fridge): the
    /// home channel takes the revocation to the home's other screens that serve them, and the
    /// step waits until it is in force on each (how long that took is counted); the audit's
    /// expectations follow.
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
                self.revoke(h, person, purpose).await?;
            }
        }
        Ok(())
    }

    /// Person `person` of home `h` revokes `purpose` on their screen.
    async fn revoke(&mut self, h: usize, person: usize, purpose: Purpose) -> anyhow::Result<()> {
        self.homes[h].revoke(person, purpose);
        self.counts.revocations += 1;
        self.today.revocations += 1;
        let pid = PersonId::try_new(&self.homes[h].people[person].id)?;
        let serves: Vec<Vec<usize>> = self.homes[h].devices.iter().map(|d| d.people.clone()).collect();
        let Some(screen) = home_channel::screen_of(&serves, person) else { return Ok(()) };
        let first = self.first_device[h];
        let elsewhere: Vec<(usize, &RunningAgent)> = (0..serves.len())
            .filter(|&slot| slot != screen && serves[slot].contains(&person))
            .map(|slot| (slot, &self.running[first + slot]))
            .collect();
        let mut watch = home_channel::Watch::start(&elsewhere)?;
        let change = consent_change(false, ConsentSource::DeviceUi);
        self.devices[first + screen].handle.set_person_consent(Some(pid.clone()), purpose, change).await?;
        watch.made();
        let lags = watch.revoked(&pid, purpose).await;
        self.counts.heard_elsewhere(&lags);
        for slot in (0..serves.len()).filter(|&slot| serves[slot].contains(&person)) {
            let device = &mut self.devices[first + slot];
            device.consent = self.homes[h].consent(slot);
            if let Some(shadow) = device.shadow.as_mut() {
                shadow.consent(device.consent);
            }
            if !device.consent.allows(Purpose::Measure) {
                self.campaigns_today.remove(&(first + slot));
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

    /// One device's signals and moment in a step at `now`, the decision, and the people's answer.
    async fn event(&mut self, h: usize, mut event: crate::home::DeviceEvent, now: UnixTime) -> anyhow::Result<()> {
        let slot = event.device;
        let index = self.first_device[h] + slot;
        let device = &mut self.devices[index];
        if let Some(shadow) = device.shadow.as_mut() {
            shadow.signals(&event.signals, now);
        }
        if device.board.is_some() {
            // The board carries its sensors' readings; the rest (a lock screen's unlocks)
            // still come from the device's own software.
            event.signals.retain(|s| !board_feature(s.feature.as_str()));
        }
        self.counts.signals += event.signals.len() as u64;
        device.handle.signals(event.signals).await?;
        let Some(moment) = event.moment else { return Ok(()) };
        let mut watch = self.watch_home(h, slot)?;
        let decision = self.decide(index, moment).await?;
        if let Some(watch) = watch.as_mut() {
            // The lag counts from the decision's answer: its count is on its way.
            watch.made();
        }
        self.count_in_home(h, slot, &decision, now, watch).await;
        self.answer(h, slot, decision, now).await
    }

    /// The device at `index` decides at `moment`; the audit judges the decision.
    async fn decide(&mut self, index: usize, moment: ledtrad_protocol::Moment) -> anyhow::Result<Decision> {
        let device = &mut self.devices[index];
        let counts = &mut self.counts;
        let started = Instant::now();
        let outcome = device.handle.offer(moment).await?;
        counts.call_nanos.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        counts.decide_nanos.push(outcome.decide_nanos);
        if outcome.weighed {
            counts.decide_full_nanos.push(outcome.decide_nanos);
        }
        counts.decisions += 1;
        if let Some(shadow) = device.shadow.as_mut() {
            // Made again without personal inputs, then followed: the audit's engine counts the
            // decision's impression and prompt as the agent did.
            let held = outcome.decision.would_have_shown.as_ref().and_then(|o| self.campaigns.get(o));
            counts.redecided(shadow.redecide(&outcome, held, device.consent));
        }
        counts.audit(device, &outcome.decision, self.spec.policy);
        Ok(outcome.decision)
    }

    /// Watches the home's other screens from before screen `slot` of home `h` decides, where
    /// it has any.
    fn watch_home(&self, h: usize, slot: usize) -> anyhow::Result<Option<home_channel::Watch>> {
        let first = self.first_device[h];
        let screens = self.homes[h].devices.len();
        if screens < 2 {
            return Ok(None);
        }
        let others: Vec<(usize, &RunningAgent)> =
            (0..screens).filter(|&s| s != slot).map(|s| (s, &self.running[first + s])).collect();
        home_channel::Watch::start(&others).map(Some)
    }

    /// Screen `slot` of home `h` counted `decision`'s impression (shown, or held out): the
    /// audit checks a shown offer against the home caps, the home's other screens' audit
    /// engines are handed the count, and the step waits until their agents heard it.
    async fn count_in_home(
        &mut self,
        h: usize,
        slot: usize,
        decision: &Decision,
        now: UnixTime,
        watch: Option<home_channel::Watch>,
    ) {
        let counted = match (&decision.shown, &decision.would_have_shown) {
            (Some(s), _) => Some((s.offer.clone(), s.campaign.clone(), true)),
            (None, Some(o)) => self.campaigns.get(o).map(|c| (o.clone(), c.clone(), false)),
            (None, None) => None,
        };
        let Some((offer, campaign, shown)) = counted else { return };
        let first = self.first_device[h];
        let today = &mut self.home_today[h];
        today.on(self.devices[first + slot].local.day(now));
        if shown && self.home_rules.broken(today, slot, &offer, &campaign) {
            self.counts.home_cap_violations += 1;
        }
        today.count(slot, &offer, &campaign);
        let screens = self.homes[h].devices.len();
        for other in (0..screens).filter(|&s| s != slot) {
            if let Some(shadow) = self.devices[first + other].shadow.as_mut() {
                shadow.home_shown(today.others(other));
            }
        }
        if let Some(watch) = watch {
            let lags = watch.shown(today.home().total).await;
            self.counts.home_heard(&lags);
        }
    }

    /// The people of home `h` answer what screen `slot` showed or asked.
    async fn answer(&mut self, h: usize, slot: usize, decision: Decision, now: UnixTime) -> anyhow::Result<()> {
        let index = self.first_device[h] + slot;
        let responses = self.spec.population.responses;
        let device = &mut self.devices[index];
        let home = &mut self.homes[h];
        let counts = &mut self.counts;
        if decision.prompt.is_some() {
            counts.prompts += 1;
            // The people decline (a "yes" would change one device's ledger, which this
            // household model keeps per person); "yes" is tested end to end.
            if home.declines_prompt(&responses) {
                counts.prompts_declined += 1;
                if let (Some(shadow), Some(prompt)) = (device.shadow.as_mut(), &decision.prompt) {
                    shadow.prompt_refused(prompt.purpose, now);
                }
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
            let category = self.categories.get(offer).map_or("", String::as_str);
            if home.converts_unprompted(slot, category) {
                counts.converted += 1;
                counts.converted_held_out += 1;
                device.answer(decision.id, offer, category, FeedbackKind::Converted, now).await?;
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
        match home.respond(slot, &shown, category, &responses) {
            None => counts.unanswered += 1,
            Some(kind) => {
                counts.answered(kind, &mut self.today);
                device.answer(decision.id, &shown.offer, category, kind, now).await?;
                if kind == FeedbackKind::Accepted && home.converts(&responses) {
                    converted = true;
                }
            }
        }
        // Taken up through the offer, or as the household would have anyway.
        if converted || home.converts_unprompted(slot, category) {
            counts.converted += 1;
            counts.converted_shown += u64::from(measured);
            device.answer(decision.id, &shown.offer, category, FeedbackKind::Converted, now).await?;
        }
        Ok(())
    }

    /// Ends the day: the agents send their reports where `measure` allows it, the night
    /// passes, and the day's figures are kept. Returns the reports the day should bring.
    pub async fn end_day(&mut self) -> anyhow::Result<u64> {
        let night = self.spec.local_midnight.plus_secs(u64::from(self.today.day) * DAY_SECS);
        for device in &mut self.devices {
            device.handle.flush_reports().await?;
            if let Some(shadow) = device.shadow.as_mut() {
                shadow.overnight(night);
            }
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
                    link.events_read += l.events;
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
        Ok(Finished { counts: self.counts, devices, homes: self.home_ids, people, sensor_link, peak_rss_bytes: 0 })
    }
}
