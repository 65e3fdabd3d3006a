//! "Why am I seeing this" (DESIGN §8 step 9): true and coarse. It names the kind of thing
//! that was noticed, never a reading ("because dairy runs low often in this home", never
//! "because your butter is at 3%").

use ledtrad_protocol::DeviceKind;

use crate::compiled::CompiledOffer;

/// The "why" for an offer drawn from the broadly eligible ones (camouflage): true, and it says
/// nothing about what the device noticed.
pub fn camouflage(kind: DeviceKind) -> String {
    format!("From this week's offers for every {}.", kind.label())
}

/// The "why" for a chosen offer.
pub fn explain(offer: &CompiledOffer, kind: DeviceKind) -> String {
    let personal = offer.conditions.iter().find(|c| c.feature.spec().purpose.is_some());
    let contextual = offer.conditions.iter().find(|c| c.feature.spec().purpose.is_none());
    match (personal, contextual) {
        (Some(c), _) => format!("Because {}.", c.feature.spec().why),
        (None, Some(c)) => {
            format!("Because {}; it is one of this week's offers for {}.", c.feature.spec().why, offer.category.label())
        }
        (None, None) if offer.needs.is_some() => {
            format!("Picked on this {} from this week's offers for {}.", kind.label(), offer.category.label())
        }
        (None, None) => format!("From this week's offers for every {}.", kind.label()),
    }
}

/// The "why" for an offer the fleet's offer service suggested from the interest categories the
/// device sent with its request (those of the offers taken up here).
pub fn suggested_for_interests(kind: DeviceKind) -> String {
    format!("Suggested for the kinds of offers taken up on this {}.", kind.label())
}
