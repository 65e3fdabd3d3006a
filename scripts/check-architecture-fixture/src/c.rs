//! c -> d through the root's re-export of `d::Thing` as `Renamed`.

use crate::Renamed;

/// C.
pub struct C;

pub fn thing() -> Option<Renamed> {
    None
}
