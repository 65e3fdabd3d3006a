//! Journeys (DESIGN §7): a campaign's offers shown as steps that follow from what the person
//! answered — show A; if accepted, B a day later; if dismissed, A again after a week; for the
//! devices in a group, C instead of A. The device works out where it stands from its own
//! impressions and answers; nothing about its progress leaves it.
//!
//! A campaign without steps is not a journey: its offers are eligible on their own rules.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Condition, Offer, MAX_CONDITIONS};
use crate::consent::Purpose;
use crate::feature::FeatureName;
use crate::feedback::FeedbackKind;
use crate::id::{GroupId, OfferId, StepId};
use crate::time::{UnixTime, DAY_SECS};

/// The most steps one campaign's journey may have.
pub const MAX_STEPS: usize = 32;
/// The most groups one campaign may define.
pub const MAX_GROUPS: usize = 8;
/// The longest wait a step may set after its trigger, in days: a device remembers impressions
/// for 30 days, so a longer wait could outlive what it waits on.
pub const MAX_DELAY_DAYS: u32 = 30;
/// How far back a journey looks at answers: the device keeps answers for 90 days (the longest
/// suppression), so a journey answered longer ago than that starts over.
pub const MEMORY_SECS: u64 = 90 * DAY_SECS;

/// One step of a campaign's journey, written `[[campaign.step]]` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique within the campaign.
    pub id: StepId,
    /// The offer this step shows.
    pub offer: OfferId,
    /// Offers shown instead to the devices in a group; the first whose group holds wins.
    #[serde(default)]
    pub instead: Vec<Instead>,
    /// The earlier step this one follows; a step without one starts the journey.
    #[serde(default)]
    pub after: Option<StepId>,
    /// What has to happen at the earlier step.
    #[serde(default)]
    pub when: Option<Trigger>,
    /// Days to wait after the trigger.
    #[serde(default)]
    pub delay_days: u32,
    /// Hours to wait after the trigger, added to the days.
    #[serde(default)]
    pub delay_hours: u32,
}

impl Step {
    /// The wait after the trigger, in seconds.
    pub fn delay_secs(&self) -> u64 {
        u64::from(self.delay_days) * DAY_SECS + u64::from(self.delay_hours) * 3600
    }

    /// The step's offers: its own first, then those shown instead.
    pub fn offers(&self) -> impl Iterator<Item = &OfferId> {
        core::iter::once(&self.offer).chain(self.instead.iter().map(|i| &i.offer))
    }
}

/// An offer a step shows instead to the devices in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instead {
    /// The group, defined in the same campaign.
    pub group: GroupId,
    /// The offer its devices see.
    pub offer: OfferId,
}

/// A group of devices, by conditions on the device's own features, written
/// `[[campaign.group]]` in TOML. A device is in the group while every condition holds; a
/// feature it has no value for, or may not read without a consent, keeps it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Unique within the campaign.
    pub id: GroupId,
    /// The conditions, all of which must hold.
    pub conditions: Vec<Condition>,
}

/// What has to happen at the earlier step for a step to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The earlier step's offer was shown.
    Shown,
    /// Its first answer was "yes".
    Accepted,
    /// Its first answer was a dismissal.
    Dismissed,
    /// Its first answer was "not for me".
    NotForMe,
    /// Its offer was taken up.
    Converted,
}

impl Trigger {
    /// The answer this trigger waits for; `None` for [`Trigger::Shown`].
    pub fn answer(self) -> Option<FeedbackKind> {
        match self {
            Self::Shown => None,
            Self::Accepted => Some(FeedbackKind::Accepted),
            Self::Dismissed => Some(FeedbackKind::Dismissed),
            Self::NotForMe => Some(FeedbackKind::NotForMe),
            Self::Converted => Some(FeedbackKind::Converted),
        }
    }

    /// The trigger as written in a catalogue.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Shown => "shown",
            Self::Accepted => "accepted",
            Self::Dismissed => "dismissed",
            Self::NotForMe => "not_for_me",
            Self::Converted => "converted",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a journey that does not show an offer stands ([`crate::decision::Rejection::Journey`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JourneyStop {
    /// The campaign.
    pub campaign: crate::id::CampaignId,
    /// The step that would show the offer.
    pub step: StepId,
    /// Where the device stands at that step.
    pub state: JourneyState,
}

/// Why a journey does not show an offer at a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JourneyState {
    /// The earlier step has not seen what this step waits for.
    NotReached {
        /// The earlier step.
        after: StepId,
        /// What it waits for.
        when: Trigger,
    },
    /// The trigger happened; the step opens at `until`.
    Waiting {
        /// When the step opens.
        until: UnixTime,
    },
    /// The step was answered; the journey has moved on from it.
    Done,
    /// The step shows another offer on this device.
    OtherOffer {
        /// The offer it shows.
        offer: OfferId,
        /// The group that chose it, if one did.
        group: Option<GroupId>,
    },
}

/// Every problem with a campaign's groups and steps, as (field, message) pairs; `offers` is
/// the whole catalogue's.
pub(crate) fn problems(
    steps: &[Step],
    groups: &[Group],
    campaign: &crate::id::CampaignId,
    offers: &[Offer],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if steps.len() > MAX_STEPS {
        out.push(("step".into(), format!("{} steps is over the limit of {MAX_STEPS}; split the journey", steps.len())));
    }
    if groups.len() > MAX_GROUPS {
        out.push(("group".into(), format!("{} groups is over the limit of {MAX_GROUPS}", groups.len())));
    }
    let personal_groups = group_problems(groups, &mut out);
    for (s, step) in steps.iter().enumerate() {
        let at = |field: &str| format!("step[{s}].{field}");
        if steps[..s].iter().any(|t| t.id == step.id) {
            out.push((at("id"), format!("duplicate step '{}'; give each step its own id", step.id)));
        }
        if let Some(message) = offer_problem(&step.offer, campaign, offers) {
            out.push((at("offer"), message));
        }
        instead_problems(s, step, groups, &personal_groups, campaign, offers, &mut out);
        order_problems(s, step, &steps[..s], &mut out);
    }
    coverage_problems(steps, groups, campaign, offers, &mut out);
    out
}

/// The problems with each group; returns the groups that read a personal feature (offers
/// shown for them must be personalised).
fn group_problems<'g>(groups: &'g [Group], out: &mut Vec<(String, String)>) -> Vec<&'g GroupId> {
    let mut personal_groups: Vec<&GroupId> = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let at = |field: &str| format!("group[{g}].{field}");
        if groups[..g].iter().any(|h| h.id == group.id) {
            out.push((at("id"), format!("duplicate group '{}'; give each group its own id", group.id)));
        }
        if group.conditions.is_empty() {
            out.push((
                at("conditions"),
                "a group needs at least one condition; without one every device is in it".into(),
            ));
        }
        if group.conditions.len() > MAX_CONDITIONS {
            out.push((
                at("conditions"),
                format!("{} conditions is over the limit of {MAX_CONDITIONS}", group.conditions.len()),
            ));
        }
        for (i, c) in group.conditions.iter().enumerate() {
            match FeatureName::try_new(&c.feature) {
                Err(e) => out.push((at(&format!("conditions[{i}].feature")), e.to_string())),
                Ok(f) if f.spec().purpose == Some(Purpose::Personalise) => personal_groups.push(&group.id),
                Ok(_) => {}
            }
            if !c.value.is_finite() {
                out.push((at(&format!("conditions[{i}].value")), format!("{} is not a finite number", c.value)));
            }
        }
    }
    personal_groups
}

/// What is wrong with a step naming offer `id`, if anything: it must be one of the campaign's.
fn offer_problem(id: &OfferId, campaign: &crate::id::CampaignId, offers: &[Offer]) -> Option<String> {
    match offers.iter().find(|o| &o.id == id) {
        None => Some(format!("no offer '{id}' in the catalogue; name one of the campaign's offers")),
        Some(o) if &o.campaign != campaign => Some(format!(
            "offer '{id}' belongs to campaign '{}'; a journey shows only its own campaign's offers",
            o.campaign
        )),
        Some(_) => None,
    }
}

/// The problems with step `s`'s offers shown instead for groups.
fn instead_problems(
    s: usize,
    step: &Step,
    groups: &[Group],
    personal_groups: &[&GroupId],
    campaign: &crate::id::CampaignId,
    offers: &[Offer],
    out: &mut Vec<(String, String)>,
) {
    let at = |field: &str| format!("step[{s}].{field}");
    for (i, instead) in step.instead.iter().enumerate() {
        if let Some(message) = offer_problem(&instead.offer, campaign, offers) {
            out.push((at(&format!("instead[{i}].offer")), message));
        }
        if !groups.iter().any(|g| g.id == instead.group) {
            out.push((
                at(&format!("instead[{i}].group")),
                format!("no group '{}' in this campaign; define it with [[campaign.group]]", instead.group),
            ));
        } else if personal_groups.contains(&&instead.group)
            && offers.iter().find(|o| o.id == instead.offer).is_some_and(|o| !o.personalised)
        {
            out.push((
                at(&format!("instead[{i}].offer")),
                format!(
                    "group '{}' reads a personal feature, so offer '{}' shown for it is personal; set personalised = true on the offer",
                    instead.group, instead.offer
                ),
            ));
        }
    }
}

/// The problems with step `s`'s place in the journey: what it follows (one of the `earlier`
/// steps), on what, and after how long.
fn order_problems(s: usize, step: &Step, earlier: &[Step], out: &mut Vec<(String, String)>) {
    let at = |field: &str| format!("step[{s}].{field}");
    match (&step.after, step.when) {
        (None, None) => {}
        (Some(after), Some(_)) => {
            if !earlier.iter().any(|t| &t.id == after) {
                out.push((
                    at("after"),
                    format!("'{after}' is not an earlier step of this journey; a step follows one listed before it"),
                ));
            }
        }
        (Some(_), None) => out.push((
            at("when"),
            "say what has to happen at the earlier step: shown, accepted, dismissed, not_for_me or converted".into(),
        )),
        (None, Some(_)) => out.push((at("after"), "'when' needs 'after', the step it waits on".into())),
    }
    if step.after.is_none() && step.delay_secs() > 0 {
        out.push((at("delay_days"), "a first step has nothing to wait after; drop the delay or add 'after'".into()));
    }
    if step.delay_days > MAX_DELAY_DAYS || step.delay_secs() > u64::from(MAX_DELAY_DAYS) * DAY_SECS {
        out.push((
            at("delay_days"),
            format!(
                "a wait of {} days and {} hours is over {MAX_DELAY_DAYS} days; wait at most {MAX_DELAY_DAYS} days",
                step.delay_days, step.delay_hours
            ),
        ));
    }
}

/// Every offer of a journey's campaign must be in a step, and groups need steps to choose for.
fn coverage_problems(
    steps: &[Step],
    groups: &[Group],
    campaign: &crate::id::CampaignId,
    offers: &[Offer],
    out: &mut Vec<(String, String)>,
) {
    if !steps.is_empty() {
        for o in offers.iter().filter(|o| &o.campaign == campaign) {
            if !steps.iter().any(|s| s.offers().any(|id| id == &o.id)) {
                out.push((
                    "step".into(),
                    format!("offer '{}' of this journey is in no step, so it could never be shown; add a step for it or move it to another campaign", o.id),
                ));
            }
        }
    } else if !groups.is_empty() {
        out.push((
            "group".into(),
            "groups choose offers for journey steps, and this campaign has no [[campaign.step]]".into(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogue::Catalogue;

    fn offer(id: &str, campaign: &str, personalised: bool) -> serde_json::Value {
        serde_json::json!({
            "id": id, "campaign": campaign, "title": id, "question": "Could this be something for you?",
            "body": "…", "category": "food.dairy", "device_kinds": ["fridge"], "moments": ["door_opened"],
            "value": 1.0, "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z",
            "personalised": personalised
        })
    }

    fn problems(campaign: serde_json::Value) -> Vec<(String, String)> {
        let value = serde_json::json!({
            "offer": [offer("a", "j", false), offer("b", "j", false), offer("c", "j", false), offer("x", "other", false)],
            "campaign": [campaign],
        });
        match Catalogue::from_value(value) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    #[test]
    fn a_good_journey_has_no_problems() {
        let found = problems(serde_json::json!({
            "id": "j",
            "group": [{ "id": "busy", "conditions": [{ "feature": "context.hour", "op": "ge", "value": 17 }] }],
            "step": [
                { "id": "s1", "offer": "a", "instead": [{ "group": "busy", "offer": "c" }] },
                { "id": "s2", "offer": "b", "after": "s1", "when": "accepted", "delay_days": 1 },
                { "id": "s3", "offer": "a", "after": "s1", "when": "dismissed", "delay_days": 30 }
            ]
        }));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn every_journey_problem_is_named_with_its_field_and_fix() {
        let found = problems(serde_json::json!({
            "id": "j",
            "group": [
                { "id": "busy", "conditions": [{ "feature": "fridge.door.opens", "op": "ge", "value": 10 }] },
                { "id": "busy", "conditions": [] }
            ],
            "step": [
                { "id": "s1", "offer": "a", "instead": [{ "group": "busy", "offer": "b" }, { "group": "nobody", "offer": "a" }] },
                { "id": "s1", "offer": "nothing", "after": "s3", "when": "accepted" },
                { "id": "s3", "offer": "x", "after": "s1" },
                { "id": "s4", "offer": "a", "when": "shown", "delay_days": 31 }
            ]
        }));
        let expect = [
            ("group[1].id", "duplicate group 'busy'"),
            ("group[1].conditions", "at least one condition"),
            ("step[0].instead[0].offer", "set personalised = true"),
            ("step[0].instead[1].group", "no group 'nobody'"),
            ("step[1].id", "duplicate step 's1'"),
            ("step[1].offer", "no offer 'nothing'"),
            ("step[1].after", "'s3' is not an earlier step"),
            ("step[2].offer", "belongs to campaign 'other'"),
            ("step[2].when", "say what has to happen"),
            ("step[3].after", "'when' needs 'after'"),
            ("step[3].delay_days", "nothing to wait after"),
            ("step[3].delay_days", "over 30 days"),
            ("step", "offer 'c' of this journey is in no step"),
        ];
        for (field, message) in expect {
            assert!(
                found.iter().any(|(f, m)| f == field && m.contains(message)),
                "no problem at {field} saying {message:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "{found:#?}");
    }

    #[test]
    fn groups_without_steps_and_unknown_triggers_are_refused() {
        let found = problems(serde_json::json!({
            "id": "j", "group": [{ "id": "g", "conditions": [{ "feature": "context.hour", "op": "ge", "value": 1 }] }]
        }));
        assert!(found.iter().any(|(f, m)| f == "group" && m.contains("no [[campaign.step]]")), "{found:?}");
        let found = problems(serde_json::json!({
            "id": "j", "step": [{ "id": "s", "offer": "a", "after": "s", "when": "clicked" }]
        }));
        assert!(found.iter().any(|(_, m)| m.contains("unknown variant `clicked`")), "{found:?}");
    }
}
