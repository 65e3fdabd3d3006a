//! The sensor board's link as the core follows it: frames counted, good summaries' readings
//! handed to the engine as signals (which it takes only under the consent their features
//! need), and door edges handed on the moment they arrive. An edge feeds no signal: the
//! window's summary already counts the door's openings.

use ledtrad_engine::SignalOutcome;
use tracing::{debug, info, warn};

use super::AgentCore;
use crate::clock::Now;
use crate::link::{LinkEvent, LinkStatus};

/// The sensor board's link as the core follows it.
#[derive(Debug)]
pub struct LinkState {
    status: LinkStatus,
    /// The last good frame's number.
    last_seq: Option<u8>,
}

impl LinkState {
    /// A link read from `source` (a serial port, a pty or a TCP address), not open yet.
    pub fn new(source: String) -> Self {
        Self { status: LinkStatus { source, ..LinkStatus::default() }, last_seq: None }
    }

    /// What the status says of it.
    pub(super) fn status(&self) -> &LinkStatus {
        &self.status
    }
}

impl AgentCore {
    /// An event of the sensor board's link.
    pub fn handle_link(&mut self, event: LinkEvent, now: Now) {
        let Some(link) = &mut self.link else { return };
        let status = &mut link.status;
        match event {
            LinkEvent::Connected => {
                info!(source = %status.source, "sensor board link open");
                status.connected = true;
            }
            LinkEvent::Disconnected(why) => {
                if status.connected {
                    warn!(source = %status.source, "sensor board link lost: {why}; retrying");
                } else {
                    warn!(source = %status.source, "{why}; retrying");
                }
                status.connected = false;
            }
            LinkEvent::Corrupt(e) => {
                status.corrupt += 1;
                debug!(source = %status.source, "corrupt frame from the sensor board: {e}");
            }
            LinkEvent::Incomplete => {
                status.incomplete += 1;
                debug!(source = %status.source, "a frame from the sensor board was cut off");
            }
            LinkEvent::Edge(event) => {
                let fresh = status.count_frame(link.last_seq, event.seq);
                status.events += 1;
                link.last_seq = Some(event.seq);
                if fresh {
                    self.on_board_edge(event.edge, now);
                }
            }
            LinkEvent::Summary(summary) => {
                let fresh = status.count_frame(link.last_seq, summary.seq);
                link.last_seq = Some(summary.seq);
                if !fresh {
                    return;
                }
                let (signals, skipped) = crate::link::signals(&summary);
                link.status.readings_skipped += skipped;
                let mut taken = Vec::with_capacity(signals.len());
                for signal in signals {
                    let outcome = self.engine.handle_signal(signal, now.wall);
                    if outcome == SignalOutcome::Aggregated {
                        link.status.signals += 1;
                    }
                    taken.push((signal, outcome));
                }
                self.raise_from_signals(&taken, super::moments::Origin::Summary, now);
            }
        }
    }

    /// A door edge the board sent just now.
    /// An opening raises `door_opened` (see `moments`); a closing is only logged.
    pub(super) fn on_board_edge(&mut self, edge: ledtrad_protocol::link::Edge, now: crate::clock::Now) {
        debug!(?edge, wall = ?now.wall, "door edge from the sensor board");
        if edge == ledtrad_protocol::link::Edge::DoorOpened {
            self.raise(ledtrad_protocol::Moment::DoorOpened, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use ledtrad_protocol::link::{Edge, Event, Quantity, Reading, Readings, Summary, LINK_VERSION};
    use ledtrad_protocol::UnixTime;
    use rand::SeedableRng;
    use rumqttc::v5::AsyncClient;

    use super::*;
    use crate::config::Config;
    use crate::store::Store;

    fn now() -> Now {
        Now::at(UnixTime(1_795_428_000), Duration::ZERO)
    }

    /// A fridge's core reading a board, on an in-memory database.
    fn build_core() -> AgentCore {
        let key = hex::encode(ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes());
        let text = format!(
            "device_id = \"fridge-1\"\nkind = \"fridge\"\nfleet = \"home\"\nbroker = \"mqtt://127.0.0.1:1883\"\ndatabase = \"agent.db\"\nrng_seed = 7\n[[operator_keys]]\nid = \"op\"\npublic_key = \"{key}\"\n"
        );
        let config = Config::from_toml(&text, "agent.toml").expect("a valid config");
        let store = Store::open(Path::new(":memory:")).expect("an in-memory database");
        let (tx, _rx) = flume::bounded(16);
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        let link = Some(LinkState::new("tcp://127.0.0.1:7070".into()));
        AgentCore::restore(config, store, AsyncClient::from_senders(tx), rng, link, now()).expect("the core restores")
    }

    fn edge(seq: u8, edge: Edge) -> LinkEvent {
        LinkEvent::Edge(Event { version: LINK_VERSION, seq, edge })
    }

    /// Edges share the summaries' sequence and are counted as frames and events, feeding no
    /// signal; a repeat is counted once more, as a repeat.
    #[test]
    fn edges_are_counted_in_the_sequence_and_feed_no_signal() {
        let mut core = build_core();
        let change = crate::handle::ConsentChange {
            granted: true,
            source: ledtrad_protocol::consent::ConsentSource::Api,
            text_version: "2026-11".into(),
        };
        core.set_consent(None, ledtrad_protocol::Purpose::Personalise, change, now()).expect("consent stored");
        let mut readings = Readings::new();
        readings.push(Reading::new(Quantity::DoorOpenings, 1.0));
        core.handle_link(LinkEvent::Summary(Summary { version: LINK_VERSION, seq: 1, readings }), now());
        core.handle_link(edge(2, Edge::DoorOpened), now());
        core.handle_link(edge(2, Edge::DoorOpened), now());
        core.handle_link(edge(5, Edge::DoorClosed), now());
        let status = core.link.as_ref().map(|l| l.status().clone()).expect("a link");
        assert_eq!(
            (status.frames, status.events, status.repeated, status.dropped, status.signals),
            (4, 3, 1, 2, 1),
            "{status:?}"
        );
        assert_eq!(core.moments.raised, 1, "the opening raised door_opened once; the repeat and the closing none");
    }
}
