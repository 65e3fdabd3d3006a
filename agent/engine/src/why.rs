//! "Why am I seeing this" (DESIGN §8 step 9): true and coarse. It names the kind of thing
//! that was noticed, never a reading ("because dairy runs low often in this home", never
//! "because your butter is at 3%").

use ledtrad_protocol::feature::Aggregation;
use ledtrad_protocol::DeviceKind;

use crate::compiled::{CompiledCondition, CompiledOffer};

/// The "why" for an offer drawn from the broadly eligible ones (camouflage): true, and it says
/// nothing about what the device noticed.
pub fn camouflage(kind: DeviceKind) -> String {
    format!("From this week's offers for every {}.", kind.label())
}

/// The "why" for a chosen offer, with its `conditions`.
pub fn explain(offer: &CompiledOffer, conditions: &[CompiledCondition], kind: DeviceKind) -> String {
    let personal = conditions.iter().find(|c| c.feature.spec().purpose.is_some());
    let contextual = conditions.iter().find(|c| c.feature.spec().purpose.is_none());
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

/// The "why" under the blunt policy: the reading itself ("Because fridge.butter.level
/// is at 3%."), the personal one where there is one. ledtrad never says this; the simulator
/// measures what saying it does.
pub fn precise(
    offer: &CompiledOffer,
    conditions: &[CompiledCondition],
    values: &[Option<f64>],
    kind: DeviceKind,
) -> String {
    let personal = conditions.iter().find(|c| c.feature.spec().purpose.is_some());
    let Some(c) = personal.or_else(|| conditions.first()) else { return explain(offer, conditions, kind) };
    let spec = c.feature.spec();
    match values.get(c.feature.index()).copied().flatten() {
        Some(v) if matches!(spec.aggregation, Aggregation::Level) => {
            format!("Because {} is at {:.0}%.", spec.name, v * 100.0)
        }
        Some(v) => format!("Because {} is {v:.2}.", spec.name),
        None => format!("Because of {}.", spec.name),
    }
}

/// The "why" for an offer without personal conditions that personal data picked: what the
/// device noticed (through the fleet's model or the offer's scorer), what the household
/// answered before (the posteriors learned from it), or both.
pub fn influenced(kind: DeviceKind, noticed: bool, answered: bool) -> String {
    let from = match (noticed, answered) {
        (true, true) => "what it noticed and what this home answered before",
        (false, true) => "what this home answered before",
        _ => "what it noticed in this home",
    };
    format!("Picked on this {} from {from}.", kind.label())
}

/// The "why" for an offer the fleet's offer service suggested from the interest categories the
/// device sent with its request (those of the offers taken up here).
pub fn suggested_for_interests(kind: DeviceKind) -> String {
    format!("Suggested for the kinds of offers taken up on this {}.", kind.label())
}
