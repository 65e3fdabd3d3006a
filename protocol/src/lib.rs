//! ledtrad's wire vocabulary: the messages that pass between sensor boards, agents, the offer
//! service and operators, the MQTT topic scheme, and their encodings.
//!
//! Everything here is plain data with checks; nothing does IO. The crate is `no_std`: the
//! message types need the `alloc` feature, and `std` (on by default) adds `std::error::Error`
//! impls.
//!
//! # Layout
//!
//! - [`time`]: [`UnixTime`], seconds since the epoch, written as RFC 3339 in JSON and TOML.
//! - [`id`]: checked identifiers (devices, fleets, offers, campaigns, keys) safe in topics.
//! - [`device`]: device kinds and the moments that can trigger a decision.
//! - [`consent`]: the closed set of consent purposes and consent changes.
//! - [`taxonomy`]: offer categories; sensitive branches can never be targeted.
//! - [`feature`]: the features the engine knows, each with its purpose and coarse "why".
//! - [`signal`]: sensor signals as they reach the agent.
//! - [`link`]: the sensor node's serial frames (postcard + CRC + COBS), without `alloc`.
//! - [`caps`]: frequency caps, device-wide policy and quiet hours.
//! - [`catalogue`]: offers, conditions, caps, and the checks operators and agents both run.
//! - [`propensity`]: the built-in logistic scorer an offer may carry.
//! - [`prompt`]: consent prompts, the questions that ask for a purpose at a moment.
//! - [`envelope`]: the signed catalogue envelope pushed to fleets.
//! - [`model`]: the fleet's signed scoring model and the manifest of its inputs.
//! - [`decision`]: a decision with the reason for every candidate.
//! - [`feedback`], [`status`], [`offers`], [`report`]: the other messages.
//! - [`topic`]: the MQTT topic scheme, built and parsed only here.
//! - [`broker`]: broker addresses as users write them (`mqtt://HOST:PORT`).
//! - [`codec`]: JSON (operators, local API) and postcard (device links, envelopes).
//! - `openapi` (feature `openapi`): schemas of the hand-written serde shapes, for the agent's
//!   local API description; the other types derive theirs beside their serde attributes.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

/// Display and serde for a newtype over a `&'static` table entry: written as the entry's
/// `$field`, read by looking the text up with the type's `try_new`, which names a bad value.
#[cfg(feature = "alloc")]
macro_rules! table_name {
    ($ty:ident, $field:ident) => {
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.0.$field)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.0.$field)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <alloc::string::String as serde::Deserialize>::deserialize(d)?;
                Self::try_new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
#[cfg(feature = "alloc")]
pub(crate) use table_name;

pub mod consent;
pub mod device;
pub mod time;

#[cfg(feature = "alloc")]
pub mod broker;
#[cfg(feature = "alloc")]
pub mod caps;
#[cfg(feature = "alloc")]
pub mod catalogue;
#[cfg(feature = "alloc")]
pub mod codec;
#[cfg(feature = "alloc")]
pub mod decision;
#[cfg(feature = "alloc")]
pub mod envelope;
#[cfg(feature = "alloc")]
pub mod feature;
#[cfg(feature = "alloc")]
pub mod feedback;
#[cfg(feature = "alloc")]
pub mod id;
#[cfg(feature = "alloc")]
pub use catalogue::journey;
pub mod link;
#[cfg(feature = "alloc")]
pub mod model;
#[cfg(feature = "alloc")]
pub mod offers;
#[cfg(feature = "openapi")]
mod openapi;
#[cfg(feature = "alloc")]
pub use catalogue::prompt;
#[cfg(feature = "alloc")]
pub mod propensity;
#[cfg(feature = "alloc")]
pub mod report;
#[cfg(feature = "alloc")]
pub mod signal;
#[cfg(feature = "alloc")]
pub mod status;
#[cfg(feature = "alloc")]
pub mod taxonomy;
#[cfg(feature = "alloc")]
pub mod topic;

pub use consent::Purpose;
pub use device::{DeviceKind, Moment};
pub use time::UnixTime;

#[cfg(feature = "alloc")]
pub use id::{CampaignId, DeviceId, FleetId, GroupId, HomeId, InstanceId, KeyId, OfferId, PersonId, StepId};
