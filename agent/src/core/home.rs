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
//!
//! [`Store::take_heard`]: crate::store::Store::take_heard

use std::time::Duration;

use ledtrad_protocol::topic::Topic;
use ledtrad_protocol::{DeviceId, Moment};
use tracing::{debug, info, warn};

use super::{storage, AgentCore, OfferStep, RequestToken};
use crate::clock::Now;
use crate::handle::AgentError;
use crate::home::sync::{HomeBody, HomeMessage};
use crate::home::{HomeCommand, HomeKey, HomeView};
use crate::household::effective;

/// The home this device belongs to, while it belongs to one.
pub(super) struct Home {
    key: HomeKey,
    /// This device's id on the channel, naming its ledger rows.
    me: DeviceId,
    /// The last ledger row (an id of this database) sent to the home.
    sent_upto: i64,
    /// Messages sent, numbering the next one.
    seq: u64,
    /// While the channel is not in step after a (re)connection: the number of the hello
    /// this device waits to hear back, and until when it waits at most.
    settling: Option<(u64, Duration)>,
    /// Offers asked for while settling: decided once in step.
    held: Vec<(RequestToken, Moment)>,
}

/// How long decisions wait at most for the home's channel to be in step after a connection:
/// the device's own hello comes back in milliseconds, after whatever the broker kept for it.
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
            HomeCommand::View => Ok(self.home_view(false)),
            HomeCommand::Create => {
                self.enter_home(HomeKey::generate(), now)?;
                Ok(self.home_view(true))
            }
            HomeCommand::Join(code) => {
                let key = HomeKey::from_code(&code).map_err(|e| AgentError::BadRequest(e.to_string()))?;
                self.enter_home(key, now)?;
                Ok(self.home_view(false))
            }
            HomeCommand::Code if self.home.is_none() => Err(AgentError::BadRequest(
                "this device belongs to no home: make one with POST /v1/home, or join one with POST /v1/home/join"
                    .into(),
            )),
            HomeCommand::Code => Ok(self.home_view(true)),
            HomeCommand::Leave => {
                self.store.leave_home().map_err(storage)?;
                self.home_settled(now, "left the home");
                if let Some(home) = self.home.take() {
                    info!(home = %home.key.pseudonym(), "left the home; its key is forgotten");
                }
                if let Err(e) = self.egress.set_home(None) {
                    warn!("home channel: {e}");
                }
                Ok(self.home_view(false))
            }
        }
    }

    fn home_view(&self, with_code: bool) -> HomeView {
        HomeView {
            home: self.home.as_ref().map(|h| h.key.pseudonym()),
            code: self.home.as_ref().filter(|_| with_code).map(|h| h.key.code().to_string()),
            heard: self.home_counts.heard,
            refused: self.home_counts.refused,
        }
    }

    /// Keeps `key` as the home's, subscribes to its channel and says hello.
    fn enter_home(&mut self, key: HomeKey, now: Now) -> Result<(), AgentError> {
        let me = self.config.device.clone();
        self.store.join_home(&key, &me, now.wall).map_err(storage)?;
        info!(home = %key.pseudonym(), "joined a home");
        let topic = key.topic();
        self.home = Some(Home { key, me, sent_upto: 0, seq: 0, settling: None, held: Vec::new() });
        if let Err(e) = self.egress.set_home(Some(topic)) {
            warn!("home channel: {e}; subscribing again with the next connection");
        }
        self.hello(now);
        Ok(())
    }

    /// The home this device belonged to when the agent stopped, if any.
    pub(super) fn restore_home(&mut self) -> Result<(), crate::store::StoreError> {
        if let Some((key, me)) = self.store.home()? {
            let topic = key.topic();
            self.home = Some(Home { key, me, sent_upto: 0, seq: 0, settling: None, held: Vec::new() });
            if let Err(e) = self.egress.set_home(Some(topic)) {
                warn!("home channel: {e}");
            }
        }
        Ok(())
    }

    /// On each connection, and on joining: asks the home's devices for their household, and
    /// sends this device's whole ledger. Until the hello comes back (after whatever the
    /// broker kept for this device while it was offline), decisions wait.
    pub(super) fn hello(&mut self, now: Now) {
        if self.home.is_none() {
            return;
        }
        if self.send_home(HomeBody::Hello) {
            if let Some(home) = &mut self.home {
                home.settling = Some((home.seq, now.mono + HOME_SETTLE_WAIT));
            }
        }
        self.tell_home(true);
    }

    /// Whether decisions wait for the home's channel to be in step.
    pub(super) fn home_settling(&self) -> bool {
        self.home.as_ref().is_some_and(|h| h.settling.is_some())
    }

    /// When the wait for the home's channel ends at the latest.
    pub(super) fn home_deadline(&self) -> Option<Duration> {
        self.home.as_ref().and_then(|h| h.settling).map(|(_, until)| until)
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
        if self.send_home(HomeBody::Household { people, rows }) {
            if let Some(home) = &mut self.home {
                home.sent_upto = home.sent_upto.max(last);
            }
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
                return warn!(%topic, "refused a message on the home channel: {e}");
            }
        };
        if message.from == home.me {
            if message.body == HomeBody::Hello && home.settling.is_some_and(|(seq, _)| seq == message.seq) {
                self.home_settled(now, "in step");
            }
            return;
        }
        self.home_counts.heard += 1;
        match message.body {
            HomeBody::Hello => self.tell_home(true),
            HomeBody::Household { people, rows } => self.take_household(&message.from, &people, &rows, now),
            HomeBody::Caps(_) => {}
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
