//! Journeys (DESIGN §8 step 7, worked out before the offers are matched): where this device stands in each campaign's steps, worked out
//! once per decision from its own impressions and answers, and which of the journey's offers
//! that rules out.
//!
//! A step opens when the earlier step it follows saw its trigger (plus the step's delay; a
//! first step is open from the start) and closes at its first answer. An open step shows one
//! offer: the first `instead` whose group this device is in, else its own. Answers older than
//! [`MEMORY_SECS`] are forgotten, so a journey answered longer ago starts over.

use ledtrad_protocol::decision::Rejection;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::journey::{JourneyState, JourneyStop, Trigger, MEMORY_SECS};
use ledtrad_protocol::{StepId, UnixTime};

use crate::compiled::CompiledOffer;
pub use crate::compiled::{CompiledGroup, CompiledJourney, CompiledStep};
use crate::context::{Context, FeaturesRead};
use crate::history::Past;
use crate::maps::FastMap;

/// Where a step stands at a decision.
#[derive(Debug, Clone, Copy, Default)]
struct StepState {
    /// When its trigger happened (`None` for a first step) and when it opens.
    opened: Option<(Option<UnixTime>, UnixTime)>,
    /// Its first answer.
    answered: Option<(UnixTime, FeedbackKind)>,
}

/// The journey's verdict on each of its offers it rules out at this decision, by catalogue
/// position; offers of an open step are absent. Group conditions are read only for open steps,
/// and every feature read is added to `used`.
pub(crate) fn verdicts(
    journeys: &[CompiledJourney],
    offers: &[CompiledOffer],
    ctx: &Context<'_>,
    past: Past<'_>,
    used: &mut FeaturesRead,
) -> FastMap<usize, Rejection> {
    let mut out = FastMap::default();
    for journey in journeys {
        rule_out(journey, offers, ctx, past, used, &mut out);
    }
    out
}

fn rule_out(
    journey: &CompiledJourney,
    offers: &[CompiledOffer],
    ctx: &Context<'_>,
    past: Past<'_>,
    used: &mut FeaturesRead,
    out: &mut FastMap<usize, Rejection>,
) {
    let memory_from = UnixTime(ctx.now.secs().saturating_sub(MEMORY_SECS));
    let id = |i: usize| &offers[i].offer.id;
    // The first answer (of `kind`, if given) to any of a step's offers within its window.
    let first_answer = |step: &CompiledStep, kind, (trigger, open): (Option<UnixTime>, UnixTime)| {
        step.offers
            .iter()
            .filter_map(|&o| past.answers.first_answer(id(o), kind, open.max(memory_from), trigger))
            .min_by_key(|(t, _)| *t)
    };
    let mut states: Vec<StepState> = Vec::with_capacity(journey.steps.len());
    for step in &journey.steps {
        let opened = match step.after {
            None => Some((None, memory_from)),
            Some((p, when)) => {
                let (earlier, state) = (&journey.steps[p], states[p]);
                state
                    .opened
                    .and_then(|window| match when {
                        Trigger::Shown => earlier
                            .offers
                            .iter()
                            .filter_map(|&o| {
                                past.history.offer_times(id(o))?.first_since(window.1.max(memory_from), window.0)
                            })
                            .min(),
                        Trigger::Converted => first_answer(earlier, Some(FeedbackKind::Converted), window).map(|a| a.0),
                        _ => state.answered.filter(|(_, kind)| Some(*kind) == when.answer()).map(|a| a.0),
                    })
                    .map(|at| (Some(at), at.plus_secs(step.delay_secs)))
            }
        };
        let answered = opened.and_then(|window| first_answer(step, None, window));
        states.push(StepState { opened, answered });
    }
    // Which offer each open step shows here, reading its groups' features only now.
    let mut in_group: Vec<Option<bool>> = vec![None; journey.groups.len()];
    let mut shows: Vec<Option<(usize, Option<usize>)>> = Vec::with_capacity(journey.steps.len());
    for (step, state) in journey.steps.iter().zip(&states) {
        let open = state.opened.is_some_and(|(_, at)| at <= ctx.now) && state.answered.is_none();
        shows.push(open.then(|| {
            let chosen = step
                .instead
                .iter()
                .enumerate()
                .find(|&(_, &g)| *in_group[g].get_or_insert_with(|| member(&journey.groups[g], ctx, used)));
            match chosen {
                Some((k, &g)) => (step.offers[k + 1], Some(g)),
                None => (step.offers[0], None),
            }
        }));
    }
    let shown = |o: usize| shows.iter().flatten().any(|(s, _)| *s == o);
    // Every other offer of the journey gets the most telling reason among its steps: waiting
    // for a step to open, another offer shown at an open step, a step answered, a step not
    // reached; between steps with the same reason, the later one.
    let mut reasons: Vec<(usize, u8, &StepId, JourneyState)> = Vec::new();
    for ((step, state), show) in journey.steps.iter().zip(&states).zip(&shows) {
        for &o in step.offers.iter().filter(|&&o| !shown(o)) {
            let (rank, why) = match (state.opened, show) {
                (Some((_, until)), _) if until > ctx.now => (0, JourneyState::Waiting { until }),
                (_, Some((other, group))) => (
                    1,
                    JourneyState::OtherOffer {
                        offer: id(*other).clone(),
                        group: group.map(|g| journey.groups[g].id.clone()),
                    },
                ),
                (Some(_), None) => (2, JourneyState::Done),
                (None, _) => {
                    let (p, when) = step.after.expect("a first step is always opened");
                    (3, JourneyState::NotReached { after: journey.steps[p].id.clone(), when })
                }
            };
            match reasons.iter_mut().find(|r| r.0 == o) {
                Some(r) if r.1 < rank => {}
                Some(r) => *r = (o, rank, &step.id, why),
                None => reasons.push((o, rank, &step.id, why)),
            }
        }
    }
    for (o, _, step, state) in reasons {
        let stop = JourneyStop { campaign: journey.campaign.clone(), step: step.clone(), state };
        out.insert(o, Rejection::Journey(Box::new(stop)));
    }
}

/// Whether this device is in `group`: every condition holds on a feature it has a value for
/// and may read under its consent.
fn member(group: &CompiledGroup, ctx: &Context<'_>, used: &mut FeaturesRead) -> bool {
    group.conditions.iter().all(|c| c.check(ctx, used).is_ok())
}

#[cfg(test)]
mod tests;
