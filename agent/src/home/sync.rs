//! What the devices of a home tell each other on the home channel.
//!
//! - **Consent ledger rows** as every device names them: when, the database they were made in
//!   and their number there. Each device keeps them in its own ledger and orders them alike
//!   (`store::consent`), so every device ends with the same household whatever order messages
//!   arrive in, however often, and from whichever device first.
//! - **Home-wide caps** are counts per home per local day, kept per device: each device sends
//!   its own counts, a device's count only grows during a day, so merging takes the larger of
//!   what was heard for that device, and the home's count is the sum over its devices.
//!
//! Messages are encoded with postcard and sealed with the home key ([`super::HomeKey::seal`]).

use std::collections::BTreeMap;

use ledtrad_engine::home::DayShown;
use ledtrad_protocol::codec::{self, DecodeError};
use ledtrad_protocol::consent::ConsentSource;
use ledtrad_protocol::{DeviceId, PersonId, Purpose, UnixTime};
use serde::{Deserialize, Serialize};

/// One message on the home channel, before sealing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeMessage {
    /// The device that sent it.
    pub from: DeviceId,
    /// Its number among the sender's messages.
    pub seq: u64,
    /// What it says.
    pub body: HomeBody,
}

/// What a home message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HomeBody {
    /// The sender joined the channel or came back online: every other device answers with
    /// its household and whole ledger, and the sender, hearing its own hello come back, knows
    /// it has taken what was queued for it meanwhile.
    Hello {
        /// A random number the sender recognises its own hello by.
        nonce: u64,
    },
    /// The household as the sender holds it: its people (with which are child profiles) and
    /// ledger rows (those it made since its last message, or all it holds in answer to a
    /// hello).
    Household {
        /// The people of the household, and whether each is a child profile.
        people: Vec<(PersonId, bool)>,
        /// Consent ledger rows.
        rows: Vec<HomeLedgerRow>,
    },
    /// The sender's own impression counts on one local day (after each offer it shows, and
    /// in answer to a hello).
    Caps(DayShown),
}

impl HomeMessage {
    /// The message as sealed bytes' plain text.
    pub fn encode(&self) -> Vec<u8> {
        codec::to_postcard(self)
    }

    /// A message from opened bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::from_postcard(bytes, "home message")
    }
}

/// A consent ledger row as the home's devices share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeLedgerRow {
    /// When the change was made.
    pub at: UnixTime,
    /// The device it was made on.
    pub device: DeviceId,
    /// Its number among that device's ledger rows.
    pub seq: u64,
    /// Whose consent.
    pub person: PersonId,
    /// The purpose.
    pub purpose: Purpose,
    /// Granted or revoked.
    pub granted: bool,
    /// Where the change was made.
    pub source: ConsentSource,
    /// The version of the text the person saw.
    pub text_version: String,
}

/// The home's other devices' impression counts on one local day, as this device heard them.
#[derive(Debug, Clone, Default)]
pub struct HomeCaps {
    day: u64,
    devices: BTreeMap<DeviceId, DayShown>,
}

impl HomeCaps {
    /// Takes `device`'s counts: a later day starts the counts afresh, an earlier one is too
    /// late to matter, and on the same day each count is the larger of what was heard.
    /// Whether anything changed.
    pub fn merge(&mut self, device: &DeviceId, counts: &DayShown) -> bool {
        if counts.day < self.day {
            return false;
        }
        if counts.day > self.day {
            self.day = counts.day;
            self.devices.clear();
        }
        let held =
            self.devices.entry(device.clone()).or_insert_with(|| DayShown { day: counts.day, ..DayShown::default() });
        let before = held.clone();
        held.max(counts);
        *held != before
    }

    /// The other devices' counts summed: what the engine adds to this device's own.
    pub fn others(&self) -> DayShown {
        let mut sum = DayShown { day: self.day, ..DayShown::default() };
        for counts in self.devices.values() {
            sum.add(counts);
        }
        sum
    }
}

#[cfg(test)]
mod tests;
