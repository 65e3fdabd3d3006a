//! What the devices of a home tell each other on the home channel.
//!
//! - **Consent ledger rows** as every device names them: when, the database they were made in
//!   and their number there. Each device keeps them in its own ledger and orders them alike
//!   (`store::consent`), so every device ends with the same household whatever order messages
//!   arrive in, however often, and from whichever device first.
//! - **Home-wide caps** are counts per home per local day, kept per device: each device sends
//!   its own counts of its day; within one process of a device they only grow during a day, so
//!   merging takes the larger of what was heard, and counts from a restarted process replace
//!   the old ones. The home's count of a day is the sum over its devices.
//!
//! Messages are encoded with postcard and sealed with the home key ([`super::HomeKey::seal`]).

use std::collections::BTreeMap;

use ledtrad_engine::home::{DayShown, HomeShown};
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
    /// The sender's own impression counts of its local day (after each impression it counts,
    /// and before its household on a hello and in answer to one).
    Caps {
        /// A random number of the sender's process: counts from a new one replace the old.
        boot: u64,
        /// The counts.
        shown: DayShown,
    },
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

/// The home's other devices' impression counts, as this device heard them: each device's
/// latest day.
#[derive(Debug, Clone, Default)]
pub struct HomeCaps {
    devices: BTreeMap<DeviceId, (u64, DayShown)>,
}

/// Why a device's counts were not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CountsRefused {
    /// Stamped with a local day more than a day from this device's.
    #[error(
        "counts of local day {day}, more than a day from this device's day {mine}: is a clock or time zone wrong?"
    )]
    FarDay {
        /// The day they were stamped with.
        day: u64,
        /// This device's day.
        mine: u64,
    },
}

impl HomeCaps {
    /// Takes `device`'s counts, sent by its process numbered `boot`, at this device's local day
    /// `mine`. From a new process (a restart), they replace what was held: they are what the
    /// device counts now. From the same process, a later day replaces the counts, an earlier
    /// one is too late to matter, and on the same day each count is the larger of what was
    /// heard (they only grow within a process and a day, so a copy that arrives late changes
    /// nothing). Whether anything changed; counts of a day more than one from `mine` are
    /// refused.
    pub fn merge(&mut self, device: &DeviceId, boot: u64, counts: &DayShown, mine: u64) -> Result<bool, CountsRefused> {
        if counts.day.abs_diff(mine) > 1 {
            return Err(CountsRefused::FarDay { day: counts.day, mine });
        }
        let Some((held_boot, held)) = self.devices.get_mut(device) else {
            self.devices.insert(device.clone(), (boot, counts.clone()));
            return Ok(true);
        };
        let before = held.clone();
        if *held_boot != boot || counts.day > held.day {
            (*held_boot, *held) = (boot, counts.clone());
        } else if counts.day == held.day {
            held.max(counts);
        }
        Ok(*held != before)
    }

    /// The other devices' counts summed per day: what the engine adds to this device's own.
    pub fn others(&self) -> HomeShown {
        HomeShown::new(self.devices.values().map(|(_, counts)| counts.clone()))
    }
}

#[cfg(test)]
mod tests;
