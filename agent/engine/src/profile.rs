//! Who the engine decides for: the device's pseudonym, kind, fleet, local time and settings.

use ledtrad_protocol::{DeviceId, DeviceKind, FleetId};

use crate::context::Policy;
use crate::features::LocalTime;
use crate::model::RuntimeKind;

/// The default camouflage share: one shown offer in ten.
pub const DEFAULT_CAMOUFLAGE_SHARE: f64 = 0.1;

/// Who the engine decides for.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    /// The device's pseudonym (for the holdout hash).
    pub device: DeviceId,
    /// The device's kind.
    pub kind: DeviceKind,
    /// Its fleet.
    pub fleet: FleetId,
    /// Its local time.
    pub local: LocalTime,
    /// The share of shown offers drawn from the broadly eligible ones (0 to 0.5; default 0.1).
    pub camouflage_share: f64,
    /// The runtime that runs the fleet's scoring model.
    pub model_runtime: RuntimeKind,
    /// How offers are put and chosen: ledtrad's way unless a laboratory says otherwise.
    pub policy: Policy,
}
