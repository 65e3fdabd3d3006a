//! One simulated device: its agent, started with the household's people and their consent,
//! and on the firmware path its sensor board and the link between them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ledtrad_agent::engine::SharedCatalogues;
use ledtrad_agent::handle::PersonChange;
use ledtrad_agent::{AgentHandle, Config, ConsentChange, ManualClock, RawConfig, RawKey, RunningAgent};
use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feedback::{Feedback, FeedbackKind};
use ledtrad_protocol::{DeviceId, DeviceKind, OfferId, PersonId, Purpose, UnixTime};
use rand::SeedableRng as _;

use super::redecide::Shadow;
use super::ShardSpec;
use crate::board::Board;
use crate::clock::{STEP_MINUTES, UTC_OFFSET_MINUTES};
use crate::home::{Home, SensorPath, SHELF};

/// A device's sensor board on the firmware path, and its end of the link.
pub(super) struct BoardLink {
    pub(super) board: Board,
    pub(super) stream: tokio::net::TcpStream,
    /// Which frames the link damages: the board's own draws, so they do not depend on how a
    /// run splits its homes.
    pub(super) flips: rand_chacha::ChaCha8Rng,
}

impl BoardLink {
    /// Takes the agent's connection within 10 s.
    async fn accept(
        listener: tokio::net::TcpListener,
        board: Board,
        flips: rand_chacha::ChaCha8Rng,
    ) -> anyhow::Result<Self> {
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .context("the agent did not connect to its sensor board within 10 s")??;
        stream.set_nodelay(true)?;
        Ok(Self { board, stream, flips })
    }
}

/// A running device as its shard drives it.
pub(super) struct Device {
    pub(super) kind: DeviceKind,
    pub(super) id: DeviceId,
    pub(super) handle: AgentHandle,
    pub(super) consent: ConsentState,
    pub(super) board: Option<BoardLink>,
    /// The audit's engine that makes this device's decisions again without personal inputs,
    /// where the audit samples the device's home.
    pub(super) shadow: Option<Shadow>,
    /// The device's local time, which its days are counted in.
    pub(super) local: ledtrad_agent::engine::LocalTime,
}

/// A number for device `slot` of home `h`, mixed into its seeds so every device draws its own.
fn device_salt(h: usize, slot: usize) -> u64 {
    ((h * 16 + slot) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Device {
    /// Starts the agent of device `slot` of home `h` (and, on the firmware path, its board),
    /// and gives it the people it serves with their consent. Its engines share compiled
    /// catalogues with the shard's others (`shared`).
    pub(super) async fn start(
        spec: &ShardSpec,
        clock: &ManualClock,
        shared: &SharedCatalogues,
        h: usize,
        home: &Home,
        slot: usize,
    ) -> anyhow::Result<(Self, RunningAgent)> {
        let d = &home.devices[slot];
        // Pseudonyms follow from the seed, so holdout arms (a hash of pseudonym and
        // campaign) are the same in every run with it. Runs sharing a broker need
        // different seeds.
        let id = device_id(spec.seed, h, &d.name)?;
        let window_ms = u32::try_from(STEP_MINUTES * 60_000).unwrap_or(u32::MAX);
        let board = match (spec.sensors, d.kind) {
            (SensorPath::Firmware, DeviceKind::Fridge) => Some(Board::fridge(window_ms)?),
            (SensorPath::Firmware, DeviceKind::LockScreen) => Some(Board::lock_screen(window_ms)?),
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
        let mut raw = agent_config(spec, &id, home, h, slot, sensor_link);
        if let Some(tls) = &spec.tls {
            let client = tls.certificate(&id)?;
            (raw.ca_file, raw.cert_file, raw.key_file) =
                (Some(tls.ca_file.clone()), Some(client.cert), Some(client.key));
        }
        let mut config = Config::from_raw(raw, "simulator")?;
        config.policy = spec.policy;
        config.shared_catalogues = Some(shared.clone());
        let shadow = match spec.redecide_every {
            // On the firmware path the agent reads its board's signals, which the audit's
            // engine could only approximate; there the audit does not decide again.
            every if every > 0 && h % every == 0 && spec.sensors != SensorPath::Firmware => Some(Shadow::start(
                &config,
                &spec.catalogue,
                home.consent(slot),
                askable(home, slot),
                spec.local_midnight,
                shared,
            )?),
            _ => None,
        };
        let local = config.local;
        let agent = ledtrad_agent::spawn(config, Arc::new(clock.clone())).await?;
        let board = match (listener, board) {
            (Some(listener), Some(board)) => {
                let flips = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed ^ 0x11_4e_f1_1b ^ device_salt(h, slot));
                Some(BoardLink::accept(listener, board, flips).await?)
            }
            _ => None,
        };
        let handle = agent.handle();
        introduce_people(&handle, home, slot).await?;
        Ok((Self { kind: d.kind, id, handle, consent: home.consent(slot), board, shadow, local }, agent))
    }
}

impl Device {
    /// Sends the people's answer to `decision` (about `offer`, of `category`) to the agent, and
    /// what it rules out to the audit's engine.
    pub(super) async fn answer(
        &mut self,
        decision: DecisionId,
        offer: &OfferId,
        category: &str,
        kind: FeedbackKind,
        now: UnixTime,
    ) -> anyhow::Result<()> {
        self.handle.feedback(Feedback { decision, kind }).await?;
        if let Some(shadow) = self.shadow.as_mut() {
            shadow.answered(offer, category, kind, now);
        }
        Ok(())
    }
}

/// The purposes the people device `slot` serves could grant by answering a prompt: a child
/// among them may grant only what children may.
fn askable(home: &Home, slot: usize) -> ConsentState {
    let child = home.devices[slot].people.iter().any(|&i| home.people[i].child);
    Purpose::ALL.into_iter().filter(|p| p.child_may_grant() || !child).fold(ConsentState::NONE, |s, p| s.with(p, true))
}

/// The pseudonym of device `name` of home `h` in a run with `seed`.
pub(crate) fn device_id(seed: u64, h: usize, name: &str) -> anyhow::Result<DeviceId> {
    Ok(DeviceId::try_new(format!("s{seed}-h{h}-{name}"))?)
}

/// The home of a device of a run, from its pseudonym ([`device_id`]).
pub(crate) fn home_of(id: &DeviceId) -> Option<usize> {
    let (_seed, rest) = id.as_str().split_once("-h")?;
    rest.split_once('-')?.0.parse().ok()
}

/// The agent configuration of device `slot` of home `h`.
fn agent_config(
    spec: &ShardSpec,
    id: &DeviceId,
    home: &Home,
    h: usize,
    slot: usize,
    sensor_link: Option<String>,
) -> RawConfig {
    let d = &home.devices[slot];
    RawConfig {
        device_id: id.to_string(),
        kind: d.kind.as_str().into(),
        fleet: spec.fleet.clone(),
        broker: spec.brokers[h % spec.brokers.len()].clone(),
        mqtt_username: None,
        mqtt_password_file: None,
        database: spec.dir.join(format!("{id}.db")),
        api: None,
        sharing: None,
        report_epsilon: None,
        camouflage_share: None,
        model_runtime: None,
        rng_seed: Some(spec.seed ^ device_salt(h, slot)),
        owner: Some(home.people[d.people[0]].id.clone()),
        utc_offset_minutes: UTC_OFFSET_MINUTES,
        timezone: None,
        offer_request_timeout_ms: None,
        sensor_link,
        sensor_baud: None,
        operator_keys: vec![RawKey { id: spec.key.0.clone(), public_key: spec.key.1.clone(), retired: false }],
        // The simulated UI (or the test) chooses its moments itself.
        raise_moments: Some(false),
        ..RawConfig::default()
    }
}

/// The people device `slot` serves, and each one's consent as given at set-up. The agent
/// works out what a shared fridge may do; the audit checks it independently.
async fn introduce_people(handle: &AgentHandle, home: &Home, slot: usize) -> anyhow::Result<()> {
    for &i in &home.devices[slot].people {
        let person = &home.people[i];
        let pid = PersonId::try_new(&person.id)?;
        handle.put_person(pid.clone(), PersonChange { child: person.child }).await?;
        for purpose in Purpose::ALL.into_iter().filter(|p| person.consent.allows(*p)) {
            let change = consent_change(true, ConsentSource::SetupWizard);
            handle.set_person_consent(Some(pid.clone()), purpose, change).await?;
        }
    }
    Ok(())
}

/// The simulator's consent text version.
const TEXT_VERSION: &str = "sim-2026-11";

/// A consent change as the simulated people make it.
pub(super) fn consent_change(granted: bool, source: ConsentSource) -> ConsentChange {
    ConsentChange { granted, source, text_version: TEXT_VERSION.into() }
}

/// Whether a sensor board carries `feature` on the firmware path.
pub(super) fn board_feature(feature: &str) -> bool {
    SHELF.contains(&feature) || matches!(feature, "fridge.door.opens" | "context.ambient_light")
}

/// Waits (up to 10 s) until the agent behind `handle` has read `sent` frames, good or not,
/// from its board, so a moment is decided on what the board reported.
pub(super) async fn wait_for_frames(handle: &AgentHandle, sent: u64) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_devices_home_is_read_back_from_its_pseudonym() {
        for (h, name) in [(0, "fridge"), (12, "lockscreen-p2"), (34_999, "ereader-p1")] {
            assert_eq!(home_of(&device_id(7, h, name).unwrap()), Some(h));
        }
        assert_eq!(home_of(&DeviceId::try_new("kitchen-fridge").unwrap()), None);
    }
}
