//! A decision, explained for people: what was shown and why, how the best candidates scored,
//! and why every other candidate was not shown, grouped by reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ledtrad_protocol::decision::{Decision, Rejection, ScorerUsed, Verdict};
use ledtrad_protocol::journey::{JourneyState, JourneyStop, Trigger};

/// The decision as readable text.
pub fn explain(d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "decision {} at {} for moment '{}' (catalogue version {})",
        d.id.0,
        d.at,
        d.moment,
        d.catalogue_version.map_or("none".into(), |v| v.to_string())
    );
    match (&d.shown, &d.prompt, &d.would_have_shown) {
        (Some(s), _, _) => {
            let how = if d.camouflage {
                ", drawn by camouflage"
            } else if s.personalised {
                ", personalised"
            } else {
                ""
            };
            let _ = writeln!(out, "shown: {} ({}{how})\n  {}\n  why: {}", s.offer, s.campaign, s.question, s.why);
        }
        (None, Some(p), _) => {
            let _ = writeln!(out, "asked for consent '{}': {}\n  in return: {}", p.purpose, p.question, p.incentive);
        }
        (None, None, Some(offer)) => {
            let _ = writeln!(out, "nothing shown: this device is in the holdout arm; it would have shown {offer}");
        }
        (None, None, None) => {
            let _ = writeln!(out, "nothing shown");
        }
    }
    if !d.scores.is_empty() {
        let scorer = match &d.scorer {
            ScorerUsed::Builtin => "the catalogue's built-in scorers".to_string(),
            ScorerUsed::Model { name, version, runtime } => {
                format!("the fleet's model '{name}' v{version} ({runtime})")
            }
            ScorerUsed::ModelFailed { version, reason } => {
                format!("the built-in scorers, because model v{version} failed: {reason}")
            }
        };
        let _ = writeln!(out, "propensities from {scorer}");
        let _ = writeln!(out, "best candidates (score = value × priority × max(propensity − penalty, 0)):");
        for p in &d.scores {
            let _ = writeln!(
                out,
                "  {:<24} score {:>7.3}  = {:.2} × {:.2} × max({:.3} − {:.3}, 0)",
                p.offer.as_str(),
                p.score,
                p.value,
                p.priority,
                p.propensity,
                p.penalty
            );
        }
    }
    let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for c in &d.candidates {
        if let Verdict::Rejected { reason } = &c.verdict {
            by_reason.entry(reason_text(reason)).or_default().push(c.offer.as_str());
        }
    }
    if !by_reason.is_empty() {
        let _ = writeln!(out, "not shown:");
        for (reason, offers) in by_reason {
            let _ = writeln!(out, "  {reason}: {}", offers.join(", "));
        }
    }
    if !d.features_used.is_empty() {
        let used: Vec<String> = d
            .features_used
            .iter()
            .map(|u| match u.allowed_by {
                Some(p) => format!("{} (allowed by '{p}')", u.feature),
                None => format!("{} (not personal)", u.feature),
            })
            .collect();
        let _ = writeln!(out, "features read: {}", used.join(", "));
    }
    out
}

fn reason_text(r: &Rejection) -> String {
    match r {
        Rejection::DeviceKind { kind } => format!("not for a {}", kind.label()),
        Rejection::Moment { moment } => format!("not for moment '{moment}'"),
        Rejection::NotYetValid { from } => format!("not valid before {from}"),
        Rejection::Expired { until } => format!("ended at {until}"),
        Rejection::NeedsConsent { purpose } => format!("needs '{purpose}' consent"),
        Rejection::NoData { feature } => format!("no current value for {feature}"),
        Rejection::ConditionNotMet { feature, op, threshold } => {
            format!("{feature} is not {} {threshold}", op.as_str())
        }
        Rejection::DailyCap { per_day } => format!("shown {per_day} time(s) today already"),
        Rejection::CatalogueExpired { at } => format!("the catalogue expired at {at}"),
        Rejection::DismissedRecently { until } => format!("dismissed; blocked until {until}"),
        Rejection::CategorySuppressed { category, until } => format!("'not for me' to {category} until {until}"),
        Rejection::Converted => "already taken up".into(),
        Rejection::Holdout { campaign } => format!("holdout arm of campaign {campaign}"),
        Rejection::OfferCap { window, limit } => format!("offer cap of {limit} per {window} reached"),
        Rejection::CampaignCap { campaign, window, limit } => {
            format!("campaign {campaign}'s cap of {limit} per {window} reached")
        }
        Rejection::DeviceCap { window, limit } => format!("device cap of {limit} per {window} reached"),
        Rejection::ShownOnAnotherScreen => "shown on another screen of this home today".into(),
        Rejection::HomeOfferCap { per_home_per_day } => {
            format!("shown {per_home_per_day} time(s) in this home today already")
        }
        Rejection::HomeCampaignCap { campaign, per_home_per_day } => {
            format!("campaign {campaign}'s cap of {per_home_per_day} per home per day reached")
        }
        Rejection::HomeCap { per_day } => format!("home cap of {per_day} offers per day reached"),
        Rejection::MinGap { until } => format!("too soon after the last offer; next at {until}"),
        Rejection::QuietHours { from, to } => format!("quiet hours {from:02}:00–{to:02}:00"),
        Rejection::Journey(stop) => {
            let JourneyStop { campaign, step, state } = stop.as_ref();
            let at = format!("journey {campaign}, step '{step}'");
            match state {
                JourneyState::NotReached { after, when } => {
                    format!("{at}: waits for '{after}' to be {}", when_text(*when))
                }
                JourneyState::Waiting { until } => format!("{at}: opens at {until}"),
                JourneyState::Done => format!("{at}: already answered"),
                JourneyState::OtherOffer { offer, group: Some(group) } => {
                    format!("{at}: shows {offer} to group '{group}'")
                }
                JourneyState::OtherOffer { offer, group: None } => format!("{at}: shows {offer} on this device"),
            }
        }
    }
}

/// A trigger as the end of "waits for 'intro' to be …".
fn when_text(when: Trigger) -> &'static str {
    match when {
        Trigger::Shown => "shown",
        Trigger::Accepted => "accepted",
        Trigger::Dismissed => "dismissed",
        Trigger::NotForMe => "answered 'not for me'",
        Trigger::Converted => "taken up",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledtrad_protocol::decision::{Candidate, DecisionId, ShownOffer};
    use ledtrad_protocol::{CampaignId, DeviceKind, Moment, OfferId, Purpose, UnixTime};

    #[test]
    fn an_explanation_names_what_was_shown_and_why_the_rest_was_not() {
        let offer = |id: &str| OfferId::try_new(id).unwrap();
        let d = Decision {
            id: DecisionId(4),
            moment: Moment::DoorOpened,
            at: UnixTime(1_795_428_000),
            catalogue_version: Some(2),
            shown: Some(Box::new(ShownOffer {
                offer: offer("milk"),
                campaign: CampaignId::try_new("dairy").unwrap(),
                title: "Milk".into(),
                question: "Milk?".into(),
                body: "b".into(),
                image: None,
                why: "Because dairy runs low often in this home.".into(),
                personalised: true,
            })),
            candidates: vec![
                Candidate { offer: offer("milk"), verdict: Verdict::Chosen { score: 1.0 } },
                Candidate {
                    offer: offer("film"),
                    verdict: Verdict::Rejected { reason: Rejection::DeviceKind { kind: DeviceKind::Fridge } },
                },
                Candidate {
                    offer: offer("book"),
                    verdict: Verdict::Rejected { reason: Rejection::DeviceKind { kind: DeviceKind::Fridge } },
                },
                Candidate {
                    offer: offer("veg"),
                    verdict: Verdict::Rejected { reason: Rejection::NeedsConsent { purpose: Purpose::Measure } },
                },
            ],
            features_used: vec![],
            camouflage: false,
            prompt: None,
            would_have_shown: None,
            scores: vec![ledtrad_protocol::decision::ScoreParts {
                offer: offer("milk"),
                propensity: 0.6,
                value: 2.0,
                priority: 1.0,
                penalty: 0.05,
                score: 1.1,
            }],
            scorer: ScorerUsed::Model { name: "propensity-mlp".into(), version: 3, runtime: "tract".into() },
        };
        let text = explain(&d);
        assert!(text.contains("propensities from the fleet's model 'propensity-mlp' v3 (tract)"), "{text}");
        assert!(text.contains("shown: milk (dairy, personalised)"), "{text}");
        assert!(text.contains("why: Because dairy runs low often in this home."), "{text}");
        assert!(text.contains("not for a fridge: film, book"), "{text}");
        assert!(text.contains("needs 'measure' consent: veg"), "{text}");
    }

    #[test]
    fn a_journey_reason_says_which_step_and_where_the_device_stands() {
        let step = |id: &str| ledtrad_protocol::StepId::try_new(id).unwrap();
        let stop = |state| {
            reason_text(&Rejection::Journey(Box::new(JourneyStop {
                campaign: CampaignId::try_new("recipes").unwrap(),
                step: step("box"),
                state,
            })))
        };
        assert_eq!(
            stop(JourneyState::NotReached { after: step("first-recipe"), when: Trigger::Accepted }),
            "journey recipes, step 'box': waits for 'first-recipe' to be accepted"
        );
        assert_eq!(
            stop(JourneyState::Waiting { until: UnixTime(1_795_428_000) }),
            format!("journey recipes, step 'box': opens at {}", UnixTime(1_795_428_000))
        );
        assert_eq!(stop(JourneyState::Done), "journey recipes, step 'box': already answered");
        let other = JourneyState::OtherOffer {
            offer: OfferId::try_new("big-box").unwrap(),
            group: Some(ledtrad_protocol::GroupId::try_new("families").unwrap()),
        };
        assert_eq!(stop(other), "journey recipes, step 'box': shows big-box to group 'families'");
    }
}
