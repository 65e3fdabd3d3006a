//! The sensor board's link as the core follows it: frames counted, and good ones' readings
//! handed to the engine as signals (which it takes only under the consent their features need).

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
            LinkEvent::Frame(summary) => {
                let fresh = status.count_frame(link.last_seq, summary.seq);
                link.last_seq = Some(summary.seq);
                if !fresh {
                    return;
                }
                let (signals, skipped) = crate::link::signals(&summary);
                link.status.readings_skipped += skipped;
                for signal in signals {
                    if self.engine.handle_signal(signal, now.wall) == SignalOutcome::Aggregated {
                        link.status.signals += 1;
                    }
                }
            }
        }
    }
}
