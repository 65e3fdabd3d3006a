//! Reconnecting, and the only code in ledtrad that touches rumqttc's internals: what a broken
//! connection leaves queued ([`discard_unsent`]).

use std::pin::Pin;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{ConnectionError, Event, EventLoop, Request};
use rumqttc::Outgoing;
use tokio::time::Sleep;

use crate::Backoff;

/// Empties what rumqttc kept of a lost connection and returns how many publishes were
/// discarded that the caller never saw numbered (no `Outgoing::Publish`/`AwaitAck` event).
///
/// rumqttc moves its request queue into `pending` (to resend on the next connection) only
/// when an open connection breaks, not when one fails to open; this drains it always
/// (`EventLoop::clean`), so that nothing handed over before the error (a report, say, before a
/// revocation) goes out later. Then it discards, and counts: the numbering events still
/// buffered (the write failed after them), and the publishes still queued with packet id 0.
/// Publishes numbered already were counted by the caller as they were numbered, and it hands
/// them over again itself. Finally it clears `pending` and any held-back (collided) publish.
///
/// Call it only right after `EventLoop::poll` returned an error.
pub fn discard_unsent(eventloop: &mut EventLoop) -> usize {
    eventloop.clean();
    let mut unsent = 0;
    eventloop.state.events.retain(|event| {
        let numbered = matches!(event, Event::Outgoing(Outgoing::Publish(_) | Outgoing::AwaitAck(_)));
        unsent += usize::from(numbered);
        !numbered
    });
    unsent += eventloop.pending.iter().filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0)).count();
    eventloop.pending.clear();
    eventloop.state.collision = None;
    unsent
}

/// Events rumqttc's queue keeps room for once a burst of them (a batch of packets read at
/// once) has been handed on: an event is about 390 bytes.
const KEPT_EVENTS: usize = 4;

/// Gives back the room a burst of events made rumqttc's queue grow to, once they have all
/// been handed on; otherwise a client keeps room for its largest burst ever (16 events, some
/// 6 KiB, after a reconnection's).
fn give_back_event_room(eventloop: &mut EventLoop) {
    let events = &mut eventloop.state.events;
    if events.is_empty() && events.capacity() > KEPT_EVENTS {
        events.shrink_to(KEPT_EVENTS);
    }
}

/// What one [`Connection::poll`] gave.
#[derive(Debug)]
// As large as rumqttc's own `Result<Event, _>`, which it stands in for: boxing would cost an
// allocation per packet.
#[allow(clippy::large_enum_variant)]
pub enum Polled {
    /// An event of the connection.
    Event(Event),
    /// The connection was lost or could not be made; the next poll first waits `retry_in`.
    Lost {
        /// Why.
        error: ConnectionError,
        /// Publishes discarded un-numbered (always 0 unless the connection discards, see
        /// [`Connection::discarding_unsent`]).
        unsent: usize,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

/// An event loop that reconnects with [`Backoff`]: after an error the next poll waits, then
/// tries again; a CONNACK resets the backoff.
///
/// Polling is cancel-safe as far as the wait goes (a poll dropped in a `select!` resumes the
/// same wait), so the loop can sit beside a shutdown signal.
pub struct Connection {
    eventloop: EventLoop,
    backoff: Backoff,
    keep_session: bool,
    discard: bool,
    retry: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    /// Polls `eventloop`, waiting `backoff` between attempts.
    pub fn new(eventloop: EventLoop, backoff: Backoff) -> Self {
        Self { eventloop, backoff, keep_session: false, discard: false, retry: None }
    }

    /// Starts clean (as the options say) on the first connection only: from the first CONNACK
    /// on, reconnections ask the broker to keep the session.
    pub fn keeping_session_after_first(mut self) -> Self {
        self.keep_session = true;
        self
    }

    /// After each error, discards the publishes the lost connection left queued (see
    /// [`discard_unsent`]) instead of letting rumqttc send them on the next connection.
    pub fn discarding_unsent(mut self) -> Self {
        self.discard = true;
        self
    }

    /// The next event, or the loss of the connection. Waits first if the last poll lost it.
    pub async fn poll(&mut self) -> Polled {
        if let Some(wait) = self.retry.as_mut() {
            wait.await;
            self.retry = None;
        }
        let polled = self.eventloop.poll().await;
        give_back_event_room(&mut self.eventloop);
        match polled {
            Ok(event) => {
                if let Event::Incoming(Packet::ConnAck(_)) = &event {
                    self.backoff.reset();
                    if self.keep_session {
                        self.eventloop.options.set_clean_start(false);
                    }
                }
                Polled::Event(event)
            }
            Err(error) => {
                let unsent = if self.discard { discard_unsent(&mut self.eventloop) } else { 0 };
                let retry_in = self.backoff.next_delay();
                self.retry = Some(Box::pin(tokio::time::sleep(retry_in)));
                Polled::Lost { error, unsent, retry_in }
            }
        }
    }

    /// Polls until the client's DISCONNECT has gone out or the connection is lost, at most
    /// `within`: a clean goodbye, so the broker keeps the session and holds back the will.
    pub async fn finish(&mut self, within: Duration) {
        let eventloop = &mut self.eventloop;
        let _ = tokio::time::timeout(within, async {
            while !matches!(eventloop.poll().await, Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)) {}
        })
        .await;
    }

    /// Whether the next poll first waits out the backoff (the last one lost the connection).
    pub fn is_waiting(&self) -> bool {
        self.retry.is_some()
    }

    /// Drops the wait before the next attempt: a client stopping tries at once to say goodbye
    /// (its last status, its DISCONNECT) rather than after the backoff.
    pub fn skip_wait(&mut self) {
        self.retry = None;
    }

    /// The event loop, for what this type does not cover.
    pub fn eventloop_mut(&mut self) -> &mut EventLoop {
        &mut self.eventloop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientOptions;
    use ledtrad_protocol::broker::BrokerUrl;

    #[test]
    fn a_burst_of_events_gives_its_room_back_once_handed_on() {
        let (_client, mut eventloop) = ClientOptions::new(&BrokerUrl::tcp("127.0.0.1", 9), "burst").connect();
        for pkid in 0..20 {
            eventloop.state.events.push_back(Event::Outgoing(Outgoing::Publish(pkid)));
        }
        let grown = eventloop.state.events.capacity();
        assert!(grown >= 20);
        eventloop.state.events.pop_front();
        give_back_event_room(&mut eventloop);
        assert_eq!(eventloop.state.events.capacity(), grown, "kept while events wait");
        eventloop.state.events.clear();
        give_back_event_room(&mut eventloop);
        assert!(eventloop.state.events.capacity() <= KEPT_EVENTS, "{}", eventloop.state.events.capacity());
    }
}
