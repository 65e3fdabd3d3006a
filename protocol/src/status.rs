//! A device's retained status (DESIGN §5): the only egress that needs no consent, and it
//! carries nothing personal.

use alloc::string::String;

use serde::{Deserialize, Serialize};

use crate::id::{DeviceId, FleetId};

/// Whether the agent is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Connected.
    Online,
    /// Gone (the broker publishes this as the agent's last will).
    Offline,
}

/// Published retained on `ledtrad/v1/device/{device}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device's pseudonym.
    pub device: DeviceId,
    /// Its fleet.
    pub fleet: FleetId,
    /// Online or offline.
    pub state: Connection,
    /// The agent's version.
    pub agent_version: String,
    /// The catalogue version applied, if any.
    pub catalogue_version: Option<u64>,
    /// Why the last catalogue pushed was refused, if it was.
    pub last_refusal: Option<String>,
    /// The scoring model version applied, if any.
    #[serde(default)]
    pub model_version: Option<u64>,
    /// Why the last model pushed was refused, if it was.
    #[serde(default)]
    pub last_model_refusal: Option<String>,
    /// A catalogue version rolling out to a share of the fleet that does not include this
    /// device yet (it keeps `catalogue_version` meanwhile).
    #[serde(default)]
    pub rollout_waiting: Option<u64>,
}
