//! What the agent tells a connected UI, live: an offer to show now, the consent view changed, a
//! catalogue applied or refused, the home's offers of the day. The core queues [`UiEvent`]s; the shell stamps each with an id
//! in the [`EventHub`], which keeps the last [`RESUME_EVENTS`] for clients that reconnect with
//! `Last-Event-ID`, and hands each client its own bounded buffer ([`CLIENT_BUFFER`] events): a
//! slow client never slows the agent, it is told how many events it missed instead. Until the
//! first client comes, an event is only counted: no one can have seen it, so no one can ask
//! for what followed it, and an agent without a UI keeps and writes out nothing.

#[cfg(feature = "client")]
pub mod client;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use ledtrad_protocol::decision::{DecisionId, ShownOffer, ShownPrompt};
use ledtrad_protocol::Moment;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::handle::{ConsentView, OfferOutcome, RequestOutcome};
use crate::home::HomeView;

/// Events kept for clients that come back with `Last-Event-ID`.
pub const RESUME_EVENTS: usize = 256;

/// Events a client may fall behind by before the oldest are dropped for it (and it is told).
pub const CLIENT_BUFFER: usize = 64;

/// Clients that may follow the events at once; one more is refused until one leaves.
pub const MAX_CLIENTS: usize = 16;

/// What a decision shows, as `GET /v1/offer` answers it and an `offer` event carries it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OfferBody {
    /// The moment decided at.
    pub moment: Moment,
    /// The decision (give it back with feedback).
    pub decision: DecisionId,
    /// The offer to show, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub offer: Option<ShownOffer>,
    /// A consent prompt to show, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub prompt: Option<ShownPrompt>,
    /// Set when the offer came from the offer service (request mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request: Option<RequestOutcome>,
}

impl OfferBody {
    /// What `outcome`, decided at `moment`, shows.
    pub fn new(moment: Moment, outcome: &OfferOutcome) -> Self {
        Self {
            moment,
            decision: outcome.decision.id,
            offer: outcome.decision.shown.as_deref().cloned(),
            prompt: outcome.decision.prompt.as_deref().cloned(),
            request: outcome.request,
        }
    }

    /// Whether there is anything to show.
    pub fn shows_something(&self) -> bool {
        self.offer.is_some() || self.prompt.is_some()
    }
}

/// A catalogue version the agent applied or refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CatalogueEvent {
    /// Its version, if it could be read.
    pub version: Option<u64>,
    /// Whether it is now the one in force.
    pub applied: bool,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// Something a connected UI should know now.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    /// A decision at a moment the agent raised itself shows something: show it now.
    Offer(Box<OfferBody>),
    /// The consent view changed.
    Consent(ConsentView),
    /// A catalogue was applied or refused.
    Catalogue(CatalogueEvent),
    /// Another screen of the home told what it showed today.
    Home(HomeView),
}

impl UiEvent {
    /// The event's name in the stream.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Offer(_) => "offer",
            Self::Consent(_) => "consent",
            Self::Catalogue(_) => "catalogue",
            Self::Home(_) => "home",
        }
    }

    fn data(&self) -> String {
        let json = match self {
            Self::Offer(body) => serde_json::to_string(body),
            Self::Consent(view) => serde_json::to_string(view),
            Self::Catalogue(catalogue) => serde_json::to_string(catalogue),
            Self::Home(view) => serde_json::to_string(view),
        };
        json.unwrap_or_else(|e| format!("{{\"error\":\"unserialisable event: {e}\"}}"))
    }
}

/// An event with its number, ready for the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// Its id in the stream: the hub's epoch and the event's number.
    pub id: String,
    /// Its number, counting from 1 since the agent started.
    pub seq: u64,
    /// Its name (`offer`, `consent`, `catalogue`, `home`).
    pub name: &'static str,
    /// Its data, JSON.
    pub data: String,
}

/// What a client missed, said in the stream as a `missed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Missed {
    /// How many events, when known.
    pub missed: Option<u64>,
    /// Why, and what to do.
    pub why: &'static str,
}

impl Missed {
    fn lagged(n: u64) -> Self {
        Self { missed: Some(n), why: "the client read too slowly; fetch the state again" }
    }
}

/// Numbers events and hands them to the clients that follow them.
#[derive(Debug)]
pub struct EventHub {
    /// Told apart from the ids of an earlier run of the agent, whose events are gone.
    epoch: u64,
    inner: Mutex<Recent>,
    clients: Arc<()>,
}

#[derive(Debug, Default)]
struct Recent {
    next: u64,
    kept: VecDeque<Arc<Stamped>>,
    /// The clients' channel, made when the first one comes.
    live: Option<broadcast::Sender<Arc<Stamped>>>,
}

/// A client's place in the stream: what it missed, what it gets again, and the live events.
#[derive(Debug)]
pub struct Subscription {
    /// What it missed and cannot get again.
    pub missed: Option<Missed>,
    /// Events it gets again (after its `Last-Event-ID`).
    pub backlog: Vec<Arc<Stamped>>,
    /// Live events from here on.
    pub live: broadcast::Receiver<Arc<Stamped>>,
    /// Held while the client follows (counts clients).
    pub _client: Arc<()>,
}

/// More clients than [`MAX_CLIENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_CLIENTS} clients already follow /v1/events; close one (a UI needs one stream) and try again")]
pub struct TooManyClients;

impl EventHub {
    /// A hub whose ids start with `epoch` (e.g. the agent's start in milliseconds).
    pub fn new(epoch: u64) -> Self {
        Self { epoch, inner: Mutex::new(Recent { next: 1, kept: VecDeque::new(), live: None }), clients: Arc::new(()) }
    }

    /// How many clients follow the events now.
    pub fn clients(&self) -> usize {
        Arc::strong_count(&self.clients) - 1
    }

    /// Numbers `event` and sends it to every client; never waits. Before the first client,
    /// it is only numbered.
    pub fn publish(&self, event: &UiEvent) {
        let mut recent = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = recent.next;
        recent.next += 1;
        let Some(live) = recent.live.clone() else { return };
        let stamped =
            Arc::new(Stamped { id: format!("{}-{seq}", self.epoch), seq, name: event.name(), data: event.data() });
        if recent.kept.len() == RESUME_EVENTS {
            recent.kept.pop_front();
        }
        recent.kept.push_back(stamped.clone());
        // No client now: nothing to do (the send fails only then).
        let _ = live.send(stamped);
    }

    /// A client joins, having seen events up to `last_event_id` (the header a reconnecting
    /// `EventSource` sends), if any.
    pub fn subscribe(&self, last_event_id: Option<&str>) -> Result<Subscription, TooManyClients> {
        // The hub holds one count itself.
        if Arc::strong_count(&self.clients) > MAX_CLIENTS {
            return Err(TooManyClients);
        }
        let mut recent = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Subscribed under the lock: nothing published between the backlog and the live events.
        let live = recent.live.get_or_insert_with(|| broadcast::channel(CLIENT_BUFFER).0).subscribe();
        let (missed, backlog) = match last_event_id.map(|id| self.resume_point(id)) {
            None => (None, Vec::new()),
            Some(Resume::From(seen)) => {
                let backlog: Vec<_> = recent.kept.iter().filter(|e| e.seq > seen).cloned().collect();
                let oldest_kept = recent.kept.front().map_or(recent.next, |e| e.seq);
                let lost = oldest_kept.saturating_sub(seen + 1);
                let missed = (lost > 0).then_some(Missed {
                    missed: Some(lost),
                    why: "the agent keeps the last 256 events only; fetch the state again",
                });
                (missed, backlog)
            }
            Some(Resume::Unknown) => (
                Some(Missed { missed: None, why: "the agent restarted since that event; fetch the state again" }),
                Vec::new(),
            ),
        };
        Ok(Subscription { missed, backlog, live, _client: self.clients.clone() })
    }

    fn resume_point(&self, id: &str) -> Resume {
        let Some((epoch, seq)) = id.trim().split_once('-') else { return Resume::Unknown };
        match (epoch.parse::<u64>(), seq.parse::<u64>()) {
            (Ok(epoch), Ok(seq)) if epoch == self.epoch => Resume::From(seq),
            _ => Resume::Unknown,
        }
    }
}

enum Resume {
    From(u64),
    Unknown,
}

/// One step of a client's stream: an event, or word of what it missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// An event.
    Event(Arc<Stamped>),
    /// Events it missed.
    Missed(Missed),
}

impl Subscription {
    /// The next item for the client, waiting for a live event; `None` when the agent stopped.
    pub async fn next(&mut self) -> Option<StreamItem> {
        if let Some(missed) = self.missed.take() {
            return Some(StreamItem::Missed(missed));
        }
        if !self.backlog.is_empty() {
            return Some(StreamItem::Event(self.backlog.remove(0)));
        }
        match self.live.recv().await {
            Ok(event) => Some(StreamItem::Event(event)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(StreamItem::Missed(Missed::lagged(n))),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue(version: u64) -> UiEvent {
        UiEvent::Catalogue(CatalogueEvent { version: Some(version), applied: true, reason: None })
    }

    async fn names(sub: &mut Subscription, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            match sub.next().await.expect("an item") {
                StreamItem::Event(e) => out.push(e.id.clone()),
                StreamItem::Missed(m) => out.push(format!("missed {:?}", m.missed)),
            }
        }
        out
    }

    #[tokio::test]
    async fn a_client_gets_live_events_in_order_with_ids() {
        let hub = EventHub::new(7);
        let mut sub = hub.subscribe(None).unwrap();
        hub.publish(&catalogue(1));
        hub.publish(&catalogue(2));
        assert_eq!(names(&mut sub, 2).await, ["7-1", "7-2"]);
        hub.publish(&catalogue(3));
        let Some(StreamItem::Event(event)) = sub.next().await else { panic!("an event") };
        assert_eq!(event.name, "catalogue");
        assert_eq!(event.data, r#"{"version":3,"applied":true}"#);
    }

    #[tokio::test]
    async fn a_reconnecting_client_gets_what_it_missed_again() {
        let hub = EventHub::new(7);
        let mut first = hub.subscribe(None).unwrap();
        for v in 1..=5 {
            hub.publish(&catalogue(v));
        }
        assert_eq!(names(&mut first, 3).await, ["7-1", "7-2", "7-3"]);
        drop(first);
        let mut sub = hub.subscribe(Some("7-3")).unwrap();
        hub.publish(&catalogue(6));
        assert_eq!(names(&mut sub, 3).await, ["7-4", "7-5", "7-6"]);
    }

    #[tokio::test]
    async fn events_before_the_first_client_are_counted_not_kept() {
        let hub = EventHub::new(7);
        for v in 1..=5 {
            hub.publish(&catalogue(v));
        }
        assert!(hub.inner.lock().unwrap().kept.is_empty(), "no one could ask for them again");
        let mut sub = hub.subscribe(None).unwrap();
        hub.publish(&catalogue(6));
        assert_eq!(names(&mut sub, 1).await, ["7-6"], "numbered on from the events before");
        // A client claiming an event of this run that no one was sent is told it missed some.
        let mut claims = hub.subscribe(Some("7-2")).unwrap();
        assert_eq!(names(&mut claims, 1).await, ["missed Some(3)"]);
    }

    #[tokio::test]
    async fn a_client_too_far_behind_or_from_another_run_is_told_so() {
        let hub = EventHub::new(7);
        let _following = hub.subscribe(None).unwrap();
        for v in 0..(RESUME_EVENTS as u64 + 10) {
            hub.publish(&catalogue(v));
        }
        let mut sub = hub.subscribe(Some("7-5")).unwrap();
        assert_eq!(names(&mut sub, 2).await, ["missed Some(5)", "7-11"]);
        let mut other = hub.subscribe(Some("6-5")).unwrap();
        hub.publish(&catalogue(1));
        assert_eq!(names(&mut other, 2).await, ["missed None".to_string(), format!("7-{}", RESUME_EVENTS + 11)]);
        let mut garbage = hub.subscribe(Some("not an id")).unwrap();
        assert!(matches!(garbage.next().await, Some(StreamItem::Missed(Missed { missed: None, .. }))));
    }

    #[tokio::test]
    async fn a_slow_client_never_holds_the_hub_up_and_learns_what_it_lost() {
        let hub = EventHub::new(1);
        let mut slow = hub.subscribe(None).unwrap();
        for v in 0..(CLIENT_BUFFER as u64 * 3) {
            hub.publish(&catalogue(v));
        }
        let first = slow.next().await.unwrap();
        assert_eq!(
            first,
            StreamItem::Missed(Missed::lagged(CLIENT_BUFFER as u64 * 2)),
            "the oldest were dropped for it alone"
        );
        assert!(matches!(slow.next().await, Some(StreamItem::Event(e)) if e.seq == CLIENT_BUFFER as u64 * 2 + 1));
    }

    #[test]
    fn clients_beyond_the_limit_are_refused_until_one_leaves() {
        let hub = EventHub::new(1);
        let subs: Vec<_> = (0..MAX_CLIENTS).map(|_| hub.subscribe(None).unwrap()).collect();
        assert_eq!(hub.subscribe(None).unwrap_err(), TooManyClients);
        assert_eq!(hub.clients(), MAX_CLIENTS);
        drop(subs);
        assert_eq!(hub.clients(), 0);
        assert!(hub.subscribe(None).is_ok());
    }
}
