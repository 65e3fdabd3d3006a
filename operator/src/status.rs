//! Reading devices' retained status topics: which catalogue version each device applied, and
//! why a device refused one.

use std::collections::BTreeMap;
use std::time::Duration;

use ledtrad_mqtt::Access;
use ledtrad_protocol::broker::BrokerUrl;
use ledtrad_protocol::codec;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::{Topic, ALL_STATUS_FILTER};
use ledtrad_protocol::DeviceId;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::Event;

use crate::push::PushError;

/// Device statuses by device.
pub type Statuses = BTreeMap<DeviceId, DeviceStatus>;

/// Subscribes to every device's status and collects them until `done` holds or `timeout`
/// passes; returns what was collected either way. Payloads that are not statuses are skipped.
pub async fn watch_statuses(
    broker: &BrokerUrl,
    client_id: &str,
    timeout: Duration,
    done: impl FnMut(&Statuses) -> bool,
) -> Result<Statuses, PushError> {
    watch_statuses_as(broker, &Access::default(), client_id, timeout, done).await
}

/// Like [`watch_statuses`], presenting `access` (a login, TLS).
pub async fn watch_statuses_as(
    broker: &BrokerUrl,
    access: &Access,
    client_id: &str,
    timeout: Duration,
    mut done: impl FnMut(&Statuses) -> bool,
) -> Result<Statuses, PushError> {
    let mut statuses = Statuses::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempts = crate::push::Attempts::new();
    loop {
        let result = watch_once(broker, access, client_id, deadline, &mut statuses, &mut done).await;
        // The wait before another try ends with the watch: it never runs past its timeout.
        let again = tokio::time::timeout_at(deadline, attempts.again(broker, &result)).await.unwrap_or(false);
        if !again {
            return result.map(|()| statuses);
        }
    }
}

/// One connection's worth of [`watch_statuses_as`]: adds what it reads to `statuses`, so a
/// watch the broker cut short goes on from there.
async fn watch_once(
    broker: &BrokerUrl,
    access: &Access,
    client_id: &str,
    deadline: tokio::time::Instant,
    statuses: &mut Statuses,
    done: &mut impl FnMut(&Statuses) -> bool,
) -> Result<(), PushError> {
    let (client, mut eventloop) = crate::mqtt::connect_as(broker, access, client_id);
    // QoS 0: rumqttd hands a new QoS 1 subscriber at most as many retained messages as it has
    // free in-flight slots (about 100), and drops the rest; at QoS 0 it sends them all.
    // Statuses are retained, so a lost one is read again on the next watch.
    client
        .subscribe(ALL_STATUS_FILTER, QoS::AtMostOnce)
        .await
        .map_err(|e| PushError::Connection { broker: broker.clone(), detail: e.to_string() })?;
    loop {
        let event = match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(crate::push::connection_error(broker, access, e)),
            Ok(Ok(event)) => event,
        };
        if let Event::Incoming(Packet::Publish(p)) = event {
            if let (Ok(Topic::Status(device)), Ok(status)) =
                (Topic::parse(crate::mqtt::topic_of(&p)), codec::from_json::<DeviceStatus>(&p.payload, "device status"))
            {
                statuses.insert(device, status);
                if done(statuses) {
                    break;
                }
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(())
}

/// A fleet's devices counted by what they report: catalogue and model versions, connection,
/// and refusals grouped by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetSummary {
    /// Devices of the fleet that reported a status.
    pub devices: usize,
    /// Of them, online.
    pub online: usize,
    /// Of them, offline (their last will).
    pub offline: usize,
    /// Devices per applied catalogue version (`none` where none is applied).
    pub catalogue_versions: BTreeMap<String, usize>,
    /// Devices per applied model version (`none` for the built-in scorers).
    pub model_versions: BTreeMap<String, usize>,
    /// Devices per reason their last catalogue was refused.
    pub catalogue_refusals: BTreeMap<String, usize>,
    /// Devices per reason their last model was refused.
    pub model_refusals: BTreeMap<String, usize>,
    /// Devices per catalogue version rolling out that does not include them yet.
    pub rollout_waiting: BTreeMap<String, usize>,
}

/// Counts the statuses of `fleet`'s devices (others are left out).
pub fn summarise(statuses: &Statuses, fleet: &ledtrad_protocol::FleetId) -> FleetSummary {
    let version = |v: Option<u64>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
    let mut s = FleetSummary::default();
    for status in statuses.values().filter(|s| &s.fleet == fleet) {
        s.devices += 1;
        match status.state {
            ledtrad_protocol::status::Connection::Online => s.online += 1,
            ledtrad_protocol::status::Connection::Offline => s.offline += 1,
        }
        *s.catalogue_versions.entry(version(status.catalogue_version)).or_default() += 1;
        *s.model_versions.entry(version(status.model_version)).or_default() += 1;
        if let Some(reason) = &status.last_refusal {
            *s.catalogue_refusals.entry(reason.clone()).or_default() += 1;
        }
        if let Some(reason) = &status.last_model_refusal {
            *s.model_refusals.entry(reason.clone()).or_default() += 1;
        }
        if let Some(v) = status.rollout_waiting {
            *s.rollout_waiting.entry(v.to_string()).or_default() += 1;
        }
    }
    s
}

impl std::fmt::Display for FleetSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} device(s): {} online, {} offline", self.devices, self.online, self.offline)?;
        for (title, counts) in [
            ("catalogue version", &self.catalogue_versions),
            ("model version", &self.model_versions),
            ("catalogue refused", &self.catalogue_refusals),
            ("model refused", &self.model_refusals),
            ("waiting for rollout of version", &self.rollout_waiting),
        ] {
            for (value, n) in counts {
                writeln!(f, "  {title} {value}: {n}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::status::Connection;
    use ledtrad_protocol::FleetId;

    fn build_status(device: &str, fleet: &str, version: Option<u64>, refusal: Option<&str>) -> DeviceStatus {
        DeviceStatus {
            device: DeviceId::try_new(device).unwrap(),
            fleet: FleetId::try_new(fleet).unwrap(),
            state: if device.ends_with('0') { Connection::Offline } else { Connection::Online },
            agent_version: "0.1.0".into(),
            catalogue_version: version,
            last_refusal: refusal.map(Into::into),
            model_version: None,
            last_model_refusal: None,
            rollout_waiting: None,
        }
    }

    #[test]
    fn a_fleet_is_counted_by_version_connection_and_refusal() {
        let statuses: Statuses = [
            build_status("d0", "home", Some(3), None),
            build_status("d1", "home", Some(3), None),
            build_status(
                "d2",
                "home",
                Some(2),
                Some("catalogue signed with retired key 'op-1'; sign it with a current operator key"),
            ),
            build_status("d3", "home", None, None),
            build_status("d4", "office", Some(9), None),
        ]
        .into_iter()
        .map(|s| (s.device.clone(), s))
        .collect();
        let s = summarise(&statuses, &FleetId::try_new("home").unwrap());
        assert_eq!((s.devices, s.online, s.offline), (4, 3, 1));
        assert_eq!(s.catalogue_versions.get("3"), Some(&2));
        assert_eq!(s.catalogue_versions.get("none"), Some(&1));
        assert_eq!(s.catalogue_refusals.values().sum::<usize>(), 1);
        let text = s.to_string();
        assert!(text.starts_with("4 device(s): 3 online, 1 offline\n"), "{text}");
        assert!(text.contains("  catalogue version 2: 1\n"), "{text}");
        assert!(text.contains("  catalogue refused catalogue signed with retired key 'op-1'"), "{text}");
    }
}

/// How a rollout of one catalogue version stands across a fleet.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RolloutProgress {
    /// The version rolling out.
    pub version: u64,
    /// Devices that applied it (or a later one).
    pub applied: usize,
    /// Online devices the rollout's share does not include yet.
    pub waiting: usize,
    /// Online devices that refused it (on an earlier version, with a refusal on their status).
    pub refused: usize,
    /// Online devices on an earlier version with no word of it yet.
    pub pending: usize,
    /// Offline devices (their last will), whatever they had.
    pub offline: usize,
    /// Refused over applied and refused: the share of the devices the rollout reached that
    /// refused it.
    pub refused_share: f64,
}

/// Counts `fleet`'s devices by where they stand with `version`.
pub fn rollout_progress(statuses: &Statuses, fleet: &ledtrad_protocol::FleetId, version: u64) -> RolloutProgress {
    let mut p = RolloutProgress { version, ..RolloutProgress::default() };
    for status in statuses.values().filter(|s| &s.fleet == fleet) {
        if status.state == ledtrad_protocol::status::Connection::Offline {
            p.offline += 1;
        } else if status.catalogue_version.is_some_and(|v| v >= version) {
            p.applied += 1;
        } else if status.rollout_waiting == Some(version) {
            p.waiting += 1;
        } else if status.last_refusal.is_some() {
            p.refused += 1;
        } else {
            p.pending += 1;
        }
    }
    let reached = p.applied + p.refused;
    #[allow(clippy::cast_precision_loss)]
    let share = if reached == 0 { 0.0 } else { p.refused as f64 / reached as f64 };
    p.refused_share = share;
    p
}

impl RolloutProgress {
    /// Whether more than `limit` of the devices the rollout reached refused it.
    pub fn over_refusal_limit(&self, limit: f64) -> bool {
        self.refused > 0 && self.refused_share > limit
    }
}

impl std::fmt::Display for RolloutProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "version {}: {} applied, {} waiting for their share, {} refused ({:.1}% of those reached), {} not reached yet, {} offline",
            self.version,
            self.applied,
            self.waiting,
            self.refused,
            self.refused_share * 100.0,
            self.pending,
            self.offline
        )
    }
}

#[cfg(test)]
mod rollout_tests {
    use super::*;
    use ledtrad_protocol::status::Connection;
    use ledtrad_protocol::FleetId;

    #[test]
    fn a_rollout_is_counted_by_where_each_device_stands() {
        let status = |device: &str, state, version, waiting, refusal: Option<&str>| DeviceStatus {
            device: DeviceId::try_new(device).unwrap(),
            fleet: FleetId::try_new("home").unwrap(),
            state,
            agent_version: "0.1.0".into(),
            catalogue_version: version,
            last_refusal: refusal.map(Into::into),
            model_version: None,
            last_model_refusal: None,
            rollout_waiting: waiting,
        };
        let statuses: Statuses = [
            status("a", Connection::Online, Some(5), None, None),
            status("b", Connection::Online, Some(5), None, None),
            status("c", Connection::Online, Some(5), None, None),
            status("d", Connection::Online, Some(4), None, Some("bad signature for key 'op'")),
            status("e", Connection::Online, Some(4), Some(5), None),
            status("f", Connection::Online, Some(4), None, None),
            status("g", Connection::Offline, Some(5), None, None),
        ]
        .into_iter()
        .map(|s| (s.device.clone(), s))
        .collect();
        let p = rollout_progress(&statuses, &FleetId::try_new("home").unwrap(), 5);
        assert_eq!((p.applied, p.waiting, p.refused, p.pending, p.offline), (3, 1, 1, 1, 1));
        assert!((p.refused_share - 0.25).abs() < 1e-12);
        assert!(p.over_refusal_limit(0.02) && !p.over_refusal_limit(0.25));
        assert!(p
            .to_string()
            .starts_with("version 5: 3 applied, 1 waiting for their share, 1 refused (25.0% of those reached)"));
    }
}
