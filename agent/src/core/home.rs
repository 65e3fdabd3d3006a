//! The home channel as the core runs it (DESIGN §6): joining and leaving a home through the
//! local API, telling the home's other devices about each consent-bearing change, and taking
//! what they say as a consent-bearing change of this device's own.
//!
//! - **Joining.** The first screen of a home makes its key ([`AgentCore::create_home`]) and
//!   shows its code; each further screen is joined with that code ([`AgentCore::join_home`]).
//!   The key is kept in the database until the device leaves ([`AgentCore::leave_home`]),
//!   which forgets it.
//! - **Telling.** After every change of the household put in force here (a consent change,
//!   a person added or made a child, an erasure), the device sends its people and the ledger
//!   rows it made since its last message. On each connection it says hello, and every other
//!   device answers with its people and its whole ledger: a device that was offline, or that
//!   joined late, catches up, and one whose broker session kept messages gets those first.
//! - **Taking.** A message that does not open with the home's key is refused and counted. One
//!   that opens is taken in one consent-bearing write ([`Store::take_heard`]): a revocation
//!   made on another screen is in force here, purge and all, as soon as the message is taken.
//! - **Home-wide caps.** After each offer it shows, and on each hello (its own or another
//!   device's), a device tells the home how many offers it showed today, by offer and by
//!   campaign; the engine counts the other devices' with its own ([`AgentCore::tell_shown`]).
//!   They are kept in memory only: after a restart, the hello brings them back.
//!
//! [`Store::take_heard`]: crate::store::Store::take_heard

use std::time::Duration;

use ledtrad_engine::home::{DayShown, HomeShown};
use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceId, Moment};
use tracing::{debug, info, warn};

use super::{storage, AgentCore, OfferStep, RequestToken};
use crate::clock::Now;
use crate::config::DEFAULT_OWNER;
use crate::events::UiEvent;
use crate::handle::AgentError;
use crate::home::sync::{HomeBody, HomeCaps, HomeMessage};
use crate::home::{HomeCommand, HomeKey, HomeView};
use crate::household::effective;

/// The home this device belongs to, while it belongs to one.
pub(super) struct Home {
    key: HomeKey,
    /// This database's name on the channel ([`crate::store::Store::ledger_origin`]), naming
    /// its ledger rows and messages.
    me: DeviceId,
    /// The last ledger row (an id of this database) sent to the home.
    sent_upto: i64,
    /// Messages sent, numbering the next one.
    seq: u64,
    /// A change the home has not heard yet (the client's queue refused it): sent again on the
    /// next tick.
    unsent: bool,
    /// While the channel is not in step after a (re)connection.
    settling: Option<Settling>,
    /// Another device of the home was heard (and noted in the database).
    others_known: bool,
    /// Offers asked for while settling: decided once in step.
    held: Vec<(RequestToken, Moment)>,
    /// What the other devices showed today, as heard.
    caps: HomeCaps,
    /// A random number of this process on the channel: the others replace this device's counts
    /// when it changes (after a restart, the counts are what the device kept).
    boot: u64,
    /// This device's counts of today have not reached the home (the client's queue refused
    /// them): sent again on the next tick.
    shown_unsent: bool,
}

impl Home {
    fn new(key: HomeKey, me: DeviceId) -> Self {
        Self {
            key,
            me,
            sent_upto: 0,
            seq: 0,
            unsent: false,
            settling: None,
            others_known: false,
            held: Vec::new(),
            caps: HomeCaps::default(),
            boot: rand::random(),
            shown_unsent: false,
        }
    }
}

/// What ends the wait after a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settling {
    /// The hello this device waits to hear back (a random number, so that an old hello
    /// replayed on the channel cannot end the wait).
    nonce: u64,
    /// Heard back: what the broker kept for this device's session came before it.
    echoed: bool,
    /// Whether an answer from another device is needed too: the broker kept no session (so
    /// nothing that was said while the device was away), and the home has other devices.
    answer_needed: bool,
    /// Until when it waits at most.
    until: Duration,
}

/// How long decisions wait at most for the home's channel to be in step after a connection:
/// the device's own hello comes back in milliseconds, after whatever the broker kept for it,
/// and the other devices' answers soon after.
pub const HOME_SETTLE_WAIT: Duration = Duration::from_secs(2);

/// Counts for the view.
#[derive(Debug, Default)]
pub(super) struct HomeCounts {
    heard: u64,
    refused: u64,
}

impl AgentCore {
    /// Runs a home command.
    pub fn home(&mut self, command: HomeCommand, now: Now) -> Result<HomeView, AgentError> {
        match command {
            HomeCommand::View => Ok(self.home_view(false, now)),
            HomeCommand::Create => {
                self.enter_home(HomeKey::generate(), now)?;
                Ok(self.home_view(true, now))
            }
            HomeCommand::Join(code) => {
                let key = HomeKey::from_code(&code).map_err(|e| AgentError::BadRequest(e.to_string()))?;
                if self.home.as_ref().is_some_and(|h| h.key.pseudonym() == key.pseudonym()) {
                    return Ok(self.home_view(false, now));
                }
                self.enter_home(key, now)?;
                Ok(self.home_view(false, now))
            }
            HomeCommand::Code if self.home.is_none() => Err(AgentError::BadRequest(
                "this device belongs to no home: make one with POST /v1/home, or join one with POST /v1/home/join"
                    .into(),
            )),
            HomeCommand::Code => Ok(self.home_view(true, now)),
            HomeCommand::Leave => {
                self.store.leave_home().map_err(storage)?;
                self.home_settled(now, "left the home");
                if let Some(home) = self.home.take() {
                    info!(home = %home.key.pseudonym(), "left the home; its key is forgotten");
                }
                self.engine.set_home_shown(HomeShown::default());
                if let Err(e) = self.egress.set_home(None) {
                    warn!("home channel: {e}");
                }
                Ok(self.home_view(false, now))
            }
        }
    }

    fn home_view(&self, with_code: bool, now: Now) -> HomeView {
        let shown_today = self.home.as_ref().map_or(0, |h| {
            let here = self.engine.shown_today(now.wall);
            here.total.saturating_add(h.caps.others().total(here.day))
        });
        HomeView {
            home: self.home.as_ref().map(|h| h.key.pseudonym()),
            code: self.home.as_ref().filter(|_| with_code).map(|h| h.key.code().to_string()),
            heard: self.home_counts.heard,
            refused: self.home_counts.refused,
            shown_today,
        }
    }

    /// Keeps `key` as the home's, subscribes to its channel and says hello. A device belongs to
    /// one home at a time, and its people's ids must mean the same person on every screen.
    fn enter_home(&mut self, key: HomeKey, now: Now) -> Result<(), AgentError> {
        if let Some(home) = &self.home {
            return Err(AgentError::BadRequest(format!(
                "this device belongs to home {} already; leave it first with DELETE /v1/home",
                home.key.pseudonym()
            )));
        }
        if self.config.owner.as_str() == DEFAULT_OWNER {
            return Err(AgentError::BadRequest(format!(
                "the config's owner is the default '{DEFAULT_OWNER}', which on another screen of the home would be someone else; set owner = \"anna\" (the person's id, the same on every screen of the home) and start the agent again"
            )));
        }
        let me = self.store.ledger_origin().map_err(storage)?;
        self.store.join_home(&key, now.wall).map_err(storage)?;
        info!(home = %key.pseudonym(), "joined a home");
        let topic = key.topic();
        self.home = Some(Home::new(key, me));
        if let Err(e) = self.egress.set_home(Some(topic)) {
            warn!("home channel: {e}; subscribing again with the next connection");
        }
        self.hello(now, false);
        Ok(())
    }

    /// The home this device belonged to when the agent stopped, if any.
    pub(super) fn restore_home(&mut self) -> Result<(), crate::store::StoreError> {
        if let Some(key) = self.store.home()? {
            let topic = key.topic();
            self.home = Some(Home::new(key, self.store.ledger_origin()?));
            if let Err(e) = self.egress.set_home(Some(topic)) {
                warn!("home channel: {e}");
            }
        }
        Ok(())
    }

    /// On each connection (`session_kept`: the broker kept this device's session), and on
    /// joining: asks the home's devices for their household, and sends this device's whole
    /// ledger. Decisions wait until the hello comes back (after whatever the broker kept for
    /// this device while it was offline) and, where the broker kept nothing and the home has
    /// other devices, until one of them answered; [`HOME_SETTLE_WAIT`] at most.
    pub(super) fn hello(&mut self, now: Now, session_kept: bool) {
        if self.home.is_none() {
            return;
        }
        let nonce = rand::random::<u64>();
        let others = !session_kept && self.store.others_heard().unwrap_or(true);
        if self.send_home(HomeBody::Hello { nonce }) {
            if let Some(home) = &mut self.home {
                let until = now.mono + HOME_SETTLE_WAIT;
                home.settling = Some(Settling { nonce, echoed: false, answer_needed: others, until });
            }
        }
        // The counts before the household: an answer to the household ends the wait for the
        // channel, and by then the counts are taken too (one sender's messages keep their order).
        self.tell_shown(now);
        self.tell_home(true);
    }

    /// Sends the home what it has not heard because the client's queue refused it (each tick).
    pub(super) fn retell_home(&mut self, now: Now) {
        if self.home.as_ref().is_some_and(|h| h.unsent) {
            self.tell_home(false);
        }
        if self.home.as_ref().is_some_and(|h| h.shown_unsent) {
            self.tell_shown(now);
        }
    }

    /// Tells the home what this device showed today (after each offer shown, on each hello
    /// and in answer to another device's), for the home-wide caps.
    pub(super) fn tell_shown(&mut self, now: Now) {
        let Some(boot) = self.home.as_ref().map(|h| h.boot) else { return };
        let shown = self.engine.shown_today(now.wall);
        let sent = self.send_home(HomeBody::Caps { boot, shown });
        let connected = self.egress.connected();
        if let Some(home) = &mut self.home {
            // Offline, the next hello sends them anyway.
            home.shown_unsent = !sent && connected;
        }
    }

    /// Whether decisions wait for the home's channel to be in step.
    pub(super) fn home_settling(&self) -> bool {
        self.home.as_ref().is_some_and(|h| h.settling.is_some())
    }

    /// When the wait for the home's channel ends at the latest.
    pub(super) fn home_deadline(&self) -> Option<Duration> {
        self.home.as_ref().and_then(|h| h.settling).map(|s| s.until)
    }

    /// Holds an offer asked for while the home's channel settles.
    pub(super) fn hold_for_home(&mut self, token: RequestToken, moment: Moment) {
        if let Some(home) = &mut self.home {
            home.held.push((token, moment));
        }
    }

    /// The channel is in step (or the wait is over, the connection lost, the home left, the
    /// agent stopping): the offers held are decided now, in the order they were asked for.
    pub(super) fn home_settled(&mut self, now: Now, why: &str) {
        let Some(home) = &mut self.home else { return };
        if home.settling.take().is_none() && home.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut home.held);
        debug!(held = held.len(), why, "the home's channel is settled");
        for (token, moment) in held {
            if let OfferStep::Decided(outcome) = self.offer_now(moment, now, Some(token)) {
                self.requests.answer(token, *outcome);
            }
        }
    }

    /// Sends the household to the home: the people and the ledger rows made here since the
    /// last message (`all`: every row this device holds, its own and those it heard).
    pub(super) fn tell_home(&mut self, all: bool) {
        let Some(home) = &self.home else { return };
        let after = if all { 0 } else { home.sent_upto };
        let me = home.me.clone();
        let read = self.store.home_rows(&me, after).and_then(|rows| Ok((rows, self.store.household()?)));
        let ((rows, last), household) = match read {
            Ok(read) => read,
            Err(e) => return warn!("home channel: {e}; the home hears with the next change"),
        };
        // The people go every time: adding one writes no ledger row.
        let rows: Vec<_> = rows.into_iter().filter(|r| all || r.device == me).collect();
        let people = household.iter().map(|(id, m)| (id.clone(), m.child)).collect();
        let sent = self.send_home(HomeBody::Household { people, rows });
        if let Some(home) = &mut self.home {
            if sent {
                home.sent_upto = home.sent_upto.max(last);
            }
            // Offline, the next hello sends everything anyway.
            home.unsent = !sent && self.egress.connected();
        }
    }

    /// Seals and sends one message; whether it left.
    fn send_home(&mut self, body: HomeBody) -> bool {
        let Some(home) = &mut self.home else { return false };
        home.seq += 1;
        let message = HomeMessage { from: home.me.clone(), seq: home.seq, body };
        let sealed = home.key.seal_for_channel(&message.encode());
        match self.egress.home(sealed) {
            Ok(()) => true,
            Err(e) => {
                debug!("home channel: {e}; sent with the next connection");
                false
            }
        }
    }

    /// A message on a home channel.
    pub(super) fn on_home_message(&mut self, topic: &Topic, payload: &[u8], now: Now) {
        let Some(home) = &self.home else { return };
        if &home.key.topic() != topic {
            return debug!(%topic, "ignoring a message for a home this device does not belong to");
        }
        let message = match home
            .key
            .open(topic, payload)
            .map_err(|e| e.to_string())
            .and_then(|plain| HomeMessage::decode(&plain).map_err(|e| e.to_string()))
        {
            Ok(message) => message,
            Err(e) => {
                self.home_counts.refused += 1;
                // Said now and then, not for each of a flood.
                if self.home_counts.refused.is_power_of_two() {
                    warn!(%topic, refused = self.home_counts.refused, "refused a message on the home channel: {e}");
                }
                return;
            }
        };
        if message.from == home.me {
            if let HomeBody::Hello { nonce } = message.body {
                self.echoed(nonce, now);
            }
            return;
        }
        self.home_counts.heard += 1;
        if !home.others_known {
            if let Err(e) = self.store.note_others_heard() {
                debug!("home channel: {e}");
            }
        }
        if let Some(home) = &mut self.home {
            home.others_known = true;
        }
        match message.body {
            HomeBody::Hello { .. } => {
                // The counts first, as in a hello: see there.
                self.tell_shown(now);
                self.tell_home(true);
            }
            HomeBody::Household { people, rows } => {
                self.take_household(&message.from, &people, &rows, now);
                self.answered(now);
            }
            HomeBody::Caps { boot, shown } => self.take_shown(&message.from, boot, &shown, now),
        }
    }

    /// Takes another device's counts of a day: the engine's home-wide caps count them from
    /// the next decision on.
    fn take_shown(&mut self, from: &DeviceId, boot: u64, shown: &DayShown, now: Now) {
        let mine = self.engine.profile().local.day(now.wall);
        let Some(home) = &mut self.home else { return };
        match home.caps.merge(from, boot, shown, mine) {
            Ok(false) => {}
            Ok(true) => {
                debug!(%from, day = shown.day, total = shown.total, "took another device's offers of the day");
                self.engine.set_home_shown(home.caps.others());
                let view = self.home_view(false, now);
                self.ui_events.push_back(UiEvent::Home(view));
            }
            Err(e) => warn!(%from, "home channel: not taking another device's counts: {e}"),
        }
    }

    /// This device's hello came back.
    fn echoed(&mut self, nonce: u64, now: Now) {
        let Some(settling) = self.home.as_mut().and_then(|h| h.settling.as_mut()).filter(|s| s.nonce == nonce) else {
            return;
        };
        settling.echoed = true;
        if !settling.answer_needed {
            self.home_settled(now, "in step");
        }
    }

    /// Another device told its household, after this device's hello went out.
    fn answered(&mut self, now: Now) {
        let Some(settling) = self.home.as_mut().and_then(|h| h.settling.as_mut()) else { return };
        settling.answer_needed = false;
        if settling.echoed {
            self.home_settled(now, "in step");
        }
    }

    /// Takes another device's household as a consent-bearing change of this device's own.
    fn take_household(
        &mut self,
        from: &DeviceId,
        people: &[(ledtrad_protocol::PersonId, bool)],
        rows: &[crate::home::sync::HomeLedgerRow],
        now: Now,
    ) {
        let Some(home) = &self.home else { return };
        let me = home.me.clone();
        let (sharing, owner, present) = (self.config.sharing, self.config.owner.clone(), self.present.clone());
        let taken =
            self.store.take_heard(&me, people, rows, now.wall, &|h| effective(h, sharing, &owner, present.as_ref()));
        match self.track(taken) {
            Ok((_, _, 0)) => {}
            Ok((household, purge, new)) => {
                debug!(%from, new, "took the household from another device of the home");
                self.put_in_force(&household, purge, "home channel");
            }
            Err(e) => warn!(%from, "home channel: {e}; taken when the device says hello again"),
        }
    }
}

#[cfg(test)]
mod tests;
