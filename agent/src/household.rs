//! Household consent: whose consent a device works under. A personal device (a lock screen, an
//! e-reader) uses its owner's. A shared device (a fridge) uses, for each purpose, the strictest
//! consent among the people the device maker reports as present or, when that is unknown,
//! among the whole household. A child profile never counts as granting `personalise`,
//! `request` or `improve`.

use std::collections::BTreeSet;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::{DeviceKind, PersonId, Purpose};
use serde::{Deserialize, Serialize};

use crate::store::{Household, Member};

/// Whether a device serves one person or the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sharing {
    /// One person's device: their consent applies.
    Personal,
    /// The household's device: the strictest consent of the people it serves applies.
    Shared,
}

impl Sharing {
    /// The usual sharing of a device kind: fridges are shared, readers and lock screens personal.
    pub fn default_for(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Fridge => Self::Shared,
            DeviceKind::Ereader | DeviceKind::LockScreen => Self::Personal,
        }
    }
}

/// What a member's consent counts for: a child's grants of purposes children may not grant
/// never count, whatever the ledger says.
pub fn counted(member: &Member) -> ConsentState {
    if member.child {
        Purpose::ALL
            .into_iter()
            .filter(|p| p.child_may_grant())
            .fold(ConsentState::NONE, |s, p| s.with(p, member.consent.allows(p)))
    } else {
        member.consent
    }
}

/// The consent a device works under.
pub fn effective(
    household: &Household,
    sharing: Sharing,
    owner: &PersonId,
    present: Option<&BTreeSet<PersonId>>,
) -> ConsentState {
    match sharing {
        Sharing::Personal => household.get(owner).map_or(ConsentState::NONE, counted),
        Sharing::Shared => {
            let known_present: Vec<&Member> =
                present.map(|p| p.iter().filter_map(|id| household.get(id)).collect()).unwrap_or_default();
            let served: Vec<&Member> =
                if known_present.is_empty() { household.values().collect() } else { known_present };
            if served.is_empty() {
                return ConsentState::NONE;
            }
            served.into_iter().fold(ConsentState::all(), |s, m| s.and(counted(m)))
        }
    }
}

/// The purposes a consent prompt may ask for on this device: those the people it serves could
/// bring into force by saying yes. A child never counts as granting `personalise`, `request`
/// or `improve`, so a device serving a child never asks for them.
pub fn askable(
    household: &Household,
    sharing: Sharing,
    owner: &PersonId,
    present: Option<&BTreeSet<PersonId>>,
) -> ConsentState {
    let served: Vec<&Member> = match sharing {
        Sharing::Personal => household.get(owner).into_iter().collect(),
        Sharing::Shared => {
            let known_present: Vec<&Member> =
                present.map(|p| p.iter().filter_map(|id| household.get(id)).collect()).unwrap_or_default();
            if known_present.is_empty() {
                household.values().collect()
            } else {
                known_present
            }
        }
    };
    Purpose::ALL
        .into_iter()
        .filter(|p| p.child_may_grant() || served.iter().all(|m| !m.child))
        .fold(ConsentState::NONE, |s, p| s.with(p, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str) -> PersonId {
        PersonId::try_new(id).unwrap()
    }

    fn build_household(members: &[(&str, bool, ConsentState)]) -> Household {
        members.iter().map(|(id, child, consent)| (person(id), Member { child: *child, consent: *consent })).collect()
    }

    fn grants(purposes: &[Purpose]) -> ConsentState {
        purposes.iter().fold(ConsentState::NONE, |s, p| s.with(*p, true))
    }

    #[test]
    fn a_personal_device_uses_its_owners_consent() {
        let h = build_household(&[("anna", false, grants(&[Purpose::Personalise])), ("bo", false, ConsentState::NONE)]);
        assert_eq!(effective(&h, Sharing::Personal, &person("anna"), None), grants(&[Purpose::Personalise]));
        assert_eq!(effective(&h, Sharing::Personal, &person("bo"), None), ConsentState::NONE);
        assert_eq!(effective(&h, Sharing::Personal, &person("nobody"), None), ConsentState::NONE);
    }

    #[test]
    fn a_shared_device_uses_the_strictest_of_those_present_or_of_everyone() {
        let both = grants(&[Purpose::Personalise, Purpose::Measure]);
        let h = build_household(&[("anna", false, both), ("bo", false, grants(&[Purpose::Measure]))]);
        let owner = person("anna");
        assert_eq!(effective(&h, Sharing::Shared, &owner, None), grants(&[Purpose::Measure]));
        let anna_only: BTreeSet<_> = [person("anna")].into();
        assert_eq!(effective(&h, Sharing::Shared, &owner, Some(&anna_only)), both);
        // Presence naming nobody of the household is treated as unknown.
        let strangers: BTreeSet<_> = [person("guest")].into();
        assert_eq!(effective(&h, Sharing::Shared, &owner, Some(&strangers)), grants(&[Purpose::Measure]));
        assert_eq!(effective(&Household::new(), Sharing::Shared, &owner, None), ConsentState::NONE);
    }

    #[test]
    fn a_device_serving_a_child_never_asks_for_what_a_child_cannot_grant() {
        let h = build_household(&[("anna", false, ConsentState::NONE), ("kim", true, ConsentState::NONE)]);
        let measure_only = grants(&[Purpose::Measure]);
        assert_eq!(askable(&h, Sharing::Shared, &person("anna"), None), measure_only);
        assert_eq!(askable(&h, Sharing::Personal, &person("kim"), None), measure_only);
        assert_eq!(askable(&h, Sharing::Personal, &person("anna"), None), ConsentState::all());
        let anna: BTreeSet<_> = [person("anna")].into();
        assert_eq!(askable(&h, Sharing::Shared, &person("anna"), Some(&anna)), ConsentState::all());
    }

    #[test]
    fn a_childs_grants_of_forbidden_purposes_never_count() {
        let h = build_household(&[("kim", true, ConsentState::all())]);
        assert_eq!(effective(&h, Sharing::Personal, &person("kim"), None), grants(&[Purpose::Measure]));
        let h = build_household(&[("anna", false, ConsentState::all()), ("kim", true, ConsentState::all())]);
        assert_eq!(effective(&h, Sharing::Shared, &person("anna"), None), grants(&[Purpose::Measure]));
    }
}
