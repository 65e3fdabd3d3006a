//! Reading devices' retained status topics: which catalogue version each device applied, and
//! why a device refused one.

use std::collections::BTreeMap;
use std::time::Duration;

use ledtrad_protocol::broker::{BrokerUrl, Credentials};
use ledtrad_protocol::codec;
use ledtrad_protocol::status::DeviceStatus;
use ledtrad_protocol::topic::{Topic, ALL_STATUS_FILTER};
use ledtrad_protocol::DeviceId;
use rumqttc::{Event, Packet, QoS};

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
    watch_statuses_as(broker, None, client_id, timeout, done).await
}

/// Like [`watch_statuses`], logging in with `login` when given.
pub async fn watch_statuses_as(
    broker: &BrokerUrl,
    login: Option<&Credentials>,
    client_id: &str,
    timeout: Duration,
    mut done: impl FnMut(&Statuses) -> bool,
) -> Result<Statuses, PushError> {
    let (client, mut eventloop) = crate::mqtt::connect_as(broker, login, client_id);
    // QoS 0: rumqttd hands a new QoS 1 subscriber at most as many retained messages as it has
    // free in-flight slots (about 100), and drops the rest; at QoS 0 it sends them all.
    // Statuses are retained, so a lost one is read again on the next watch.
    client
        .subscribe(ALL_STATUS_FILTER, QoS::AtMostOnce)
        .await
        .map_err(|e| PushError::Connection { broker: broker.clone(), detail: e.to_string() })?;
    let mut statuses = Statuses::new();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let event = match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => break,
            Ok(Err(e)) => return Err(crate::push::connection_error(broker, login, e)),
            Ok(Ok(event)) => event,
        };
        if let Event::Incoming(Packet::Publish(p)) = event {
            if let (Ok(Topic::Status(device)), Ok(status)) =
                (Topic::parse(&p.topic), codec::from_json::<DeviceStatus>(&p.payload, "device status"))
            {
                statuses.insert(device, status);
                if done(&statuses) {
                    break;
                }
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(statuses)
}
