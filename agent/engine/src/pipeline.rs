//! The decision pipeline of DESIGN §8, one function per step, each returning a named value,
//! called in order by [`run`], which reads top to bottom like the design. The pipeline only
//! reads the device's state: what a decision changes (an impression to count, a prompt put, the
//! decision to keep for feedback) comes back in its [`CallToAction`] for the engine to apply.

mod choose;
mod influence;

use ledtrad_protocol::consent::ConsentState;
use ledtrad_protocol::decision::{Decision, DecisionId, ScorerUsed, ShownOffer, ShownPrompt};
use ledtrad_protocol::feature::FeatureName;
use ledtrad_protocol::{CampaignId, DeviceKind, Moment, OfferId, Purpose, UnixTime};

use crate::answers::Answers;
use crate::compiled::{AppliedCatalogue, CompiledOffer};
use crate::context::{Context, Draw, Identity, Occasion};
use crate::eligibility::{Standing, Verdicts};
use crate::features::FeatureStore;
use crate::history::{History, Past};
use crate::home::HomeShown;
use crate::model::FleetModel;
use crate::profile::DeviceProfile;
use crate::prompts::PromptState;
use crate::scoring::Propensity;
use crate::why;

pub(crate) use choose::Choice;
use choose::{Keep, Matched};
use influence::{Influence, PersonalInputs};

/// The state of the device a decision reads, borrowed from the engine for its duration.
pub(crate) struct Device<'a> {
    pub profile: &'a DeviceProfile,
    pub consent: ConsentState,
    pub features: &'a FeatureStore,
    pub history: &'a History,
    pub answers: &'a Answers,
    pub model: Option<&'a FleetModel>,
    pub prompts: &'a PromptState,
    /// What the home's other screens showed.
    pub home: &'a HomeShown,
}

/// Where the offers decided on come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The catalogue in force.
    Catalogue,
    /// The offer service's answer; `interests_sent` when the request carried interests.
    Service { interests_sent: bool },
}

/// The offers a decision is made on, with each one's history slot by position.
pub(crate) struct Offers<'a> {
    pub catalogue: &'a AppliedCatalogue,
    pub slots: &'a [Option<u32>],
    /// Each offer's answers slot, by position.
    pub answer_slots: &'a [Option<u32>],
    pub source: Source,
}

/// Runs DESIGN §8's ten steps for decision `id` at `moment`.
pub(crate) fn run(
    device: &Device<'_>,
    offers: &Offers<'_>,
    id: DecisionId,
    moment: Moment,
    now: UnixTime,
    draw: Draw,
) -> CallToAction {
    let catalogue = offers.catalogue;
    // 1. Identify: the device pseudonym, its local time and the household's consent.
    let who = identify(device.profile, device.consent, now);
    // 2. Know the history: impressions, answers and caps, and the rules the same for every offer.
    let standing = history(catalogue, device, offers, &who, now);
    // 3. Needs and potential: every feature's value from the signal windows.
    let needs = needs(device.features, now);
    // 4. Propensity: the fleet's model where one is applied, else the built-in scorers.
    let propensity = propensity(device.model, device.consent);
    // 5. Reason for the visit: the moment that triggered the decision.
    let occasion = reason(who.kind, moment, now);
    let ctx = Context::new(&who, occasion, &needs.values, draw);
    // 6. Match and 7. decide: the offers whose kinds, moments and conditions hold, arbitration
    // with holdout and camouflage, then whether a prompt takes the offer's place.
    let mut first = choose::match_offers(catalogue, &ctx, &standing);
    let (choice, prompt) =
        choose(catalogue, &ctx, &standing, propensity, &who, device.prompts, &mut first, Keep::Trace);
    // 7, last: whether personal data influenced the offer shown: the same steps without it.
    let inputs = PersonalInputs {
        noticed: needs.any_personal(),
        answered: device.consent.allows(Purpose::Personalise) && device.history.any_learning(),
    };
    let influence = choice.shown.map(|i| {
        influence::influence(i, &catalogue.offers[i], choice.camouflage, offers.source, inputs, |withhold| {
            let withheld;
            let values = if withhold.noticed {
                withheld = needs.withheld();
                &withheld
            } else {
                &needs.values
            };
            let ctx = Context { answers_withheld: withhold.answered, ..Context::new(&who, occasion, values, draw) };
            let mut again = choose::match_again(catalogue, &ctx, &standing, &first);
            choose(catalogue, &ctx, &standing, propensity, &who, device.prompts, &mut again, Keep::ShownOnly).0.shown
        })
    });
    // 8. Content and 9. assemble: the creative, put as a question with its "why".
    let shown = choice.shown.zip(influence).map(|(i, influence)| {
        assemble(content(&catalogue.offers[i]), catalogue, i, &ctx, choice.camouflage, influence, offers.source)
    });
    // 10. Call to action: what the UI shows, and what the engine keeps for feedback.
    call_to_action(id, occasion, catalogue, choice, shown, prompt, who.day)
}

/// Step 7 on `ctx` from what step 6 `matched`: the offer chosen, or the prompt put in its
/// place; `keep` says whether the trace is kept.
#[allow(clippy::too_many_arguments)]
fn choose(
    catalogue: &AppliedCatalogue,
    ctx: &Context<'_>,
    standing: &Standing<'_>,
    propensity: Propensity<'_>,
    who: &Identity<'_>,
    prompts: &PromptState,
    matched: &mut Matched,
    keep: Keep,
) -> (Choice, Option<ShownPrompt>) {
    let mut choice = choose::decide(catalogue, ctx, standing, propensity, matched, keep);
    let prompt = choose::ask(catalogue, standing, who, ctx.occasion(), prompts, &mut choice);
    (choice, prompt)
}

/// Step 1: who the decision is for.
fn identify(profile: &DeviceProfile, consent: ConsentState, now: UnixTime) -> Identity<'_> {
    Identity {
        device: &profile.device,
        kind: profile.kind,
        consent,
        policy: profile.policy,
        camouflage_share: profile.camouflage_share,
        day: profile.local.day(now),
        day_start: profile.local.day_start(now),
        hour: profile.local.hour(now),
    }
}

/// Step 2: what the device remembers, and the device-wide and campaign rules it implies.
fn history<'a>(
    catalogue: &AppliedCatalogue,
    device: &Device<'a>,
    offers: &Offers<'a>,
    who: &Identity<'_>,
    now: UnixTime,
) -> Standing<'a> {
    let past = Past {
        history: device.history,
        answers: device.answers,
        slots: offers.slots,
        answer_slots: offers.answer_slots,
        home: device.home,
    };
    Standing::new(catalogue, past, who, now)
}

/// What step 3 found: every feature's value at the decision.
pub(crate) struct Needs {
    /// By [`FeatureName::index`]; `None` where the feature has no value.
    pub values: Vec<Option<f64>>,
}

impl Needs {
    /// Whether a personal feature has a value.
    fn any_personal(&self) -> bool {
        FeatureName::all().zip(&self.values).any(|(f, v)| v.is_some() && f.spec().purpose.is_some())
    }

    /// The values with every personal feature's withheld.
    fn withheld(&self) -> Vec<Option<f64>> {
        FeatureName::all().zip(&self.values).map(|(f, v)| v.filter(|_| f.spec().purpose.is_none())).collect()
    }
}

/// Step 3: the features' values from the signal windows, worked out once per decision.
fn needs(features: &FeatureStore, now: UnixTime) -> Needs {
    Needs { values: FeatureName::all().map(|f| features.value(f, now)).collect() }
}

/// Step 4: how propensity is worked out (the candidates are scored in one batch at step 7).
fn propensity(model: Option<&FleetModel>, consent: ConsentState) -> Propensity<'_> {
    Propensity::new(model, consent)
}

/// Step 5: the reason for the visit.
fn reason(kind: DeviceKind, moment: Moment, now: UnixTime) -> Occasion {
    Occasion { kind, moment, now }
}

/// What step 8 takes from the chosen offer: its creative as authored.
pub(crate) struct Creative {
    pub offer: OfferId,
    pub campaign: CampaignId,
    pub title: String,
    pub body: String,
    pub image: Option<String>,
}

/// Step 8: the offer's creative.
fn content(offer: &CompiledOffer) -> Creative {
    let o = &offer.offer;
    Creative {
        offer: o.id.clone(),
        campaign: o.campaign.clone(),
        title: o.title.clone(),
        body: o.body.clone(),
        image: o.image.clone(),
    }
}

/// Step 9: the creative put as a question (a statement under [`crate::context::Policy::Blunt`])
/// with a truthful "why" and mark: the offer service's interests where it chose from them; an
/// offer personal in itself gets its coarse reason (the reading under `Blunt`); one that
/// personal data picked says so coarsely; "from this week's offers" for a camouflage draw;
/// else the offer's contextual reason. Personalised whenever personal data influenced it.
fn assemble(
    creative: Creative,
    catalogue: &AppliedCatalogue,
    i: usize,
    ctx: &Context<'_>,
    camouflage: bool,
    influence: Influence,
    source: Source,
) -> ShownOffer {
    let (offer, conditions) = (&catalogue.offers[i], catalogue.conditions_of(i));
    let clues = ctx.policy.is_clues();
    let question = if clues { offer.offer.question.clone() } else { format!("{}.", creative.title) };
    let why = match source {
        Source::Service { interests_sent: true } => why::suggested_for_interests(ctx.kind),
        _ if influence.offer && !clues => why::precise(offer, conditions, ctx.values, ctx.kind),
        _ if influence.offer => why::explain(offer, conditions, ctx.kind),
        _ if influence.any() => why::influenced(ctx.kind, influence.noticed, influence.answered),
        _ if camouflage => why::camouflage(ctx.kind),
        _ if clues => why::explain(offer, conditions, ctx.kind),
        _ => why::precise(offer, conditions, ctx.values, ctx.kind),
    };
    let Creative { offer: id, campaign, title, body, image } = creative;
    ShownOffer { offer: id, campaign, title, question, body, image, why, personalised: influence.any() }
}

/// What a decision's offer, shown or held out, is about: kept with the decision, so feedback
/// on it works whichever catalogue (the one in force, an earlier one, the offer service's) it
/// came from.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub campaign: CampaignId,
    pub category: String,
}

/// Step 10: the decision for the UI, and what the engine must apply and keep.
#[derive(Debug)]
pub(crate) struct CallToAction {
    /// The decision, without its candidates (the trace names them on request).
    pub decision: Decision,
    /// Each offer's verdict, for the trace.
    pub verdicts: Verdicts,
    /// The offer (by position) whose impression counts against the caps: the one shown, or
    /// the one held out (so the two arms see the same number of moments).
    pub impression: Option<usize>,
    /// What that offer is about.
    pub subject: Option<Subject>,
    /// The local day a consent prompt was put on, if one was.
    pub prompted_on: Option<u64>,
}

impl CallToAction {
    /// Decision `id` at `moment` without a catalogue: nothing to show.
    pub fn nothing(id: DecisionId, moment: Moment, now: UnixTime) -> Self {
        let decision = Decision {
            id,
            moment,
            at: now,
            catalogue_version: None,
            shown: None,
            candidates: Vec::new(),
            features_used: Vec::new(),
            camouflage: false,
            prompt: None,
            would_have_shown: None,
            scores: Vec::new(),
            scorer: ScorerUsed::Builtin,
        };
        Self { decision, verdicts: Verdicts::NoCatalogue, impression: None, subject: None, prompted_on: None }
    }
}

fn call_to_action(
    id: DecisionId,
    occasion: Occasion,
    catalogue: &AppliedCatalogue,
    choice: Choice,
    shown: Option<ShownOffer>,
    prompt: Option<ShownPrompt>,
    day: u64,
) -> CallToAction {
    let impression = choice.shown.or(choice.would_have_shown);
    let subject = impression.map(|i| {
        let o = &catalogue.offers[i];
        Subject { campaign: o.offer.campaign.clone(), category: o.category.path().to_string() }
    });
    let prompted_on = prompt.is_some().then_some(day);
    let decision = Decision {
        id,
        moment: occasion.moment,
        at: occasion.now,
        catalogue_version: Some(catalogue.version),
        shown: shown.map(Box::new),
        candidates: Vec::new(),
        features_used: choice.features_used,
        camouflage: choice.camouflage,
        prompt: prompt.map(Box::new),
        would_have_shown: choice.would_have_shown.map(|i| catalogue.offers[i].offer.id.clone()),
        scores: choice.scores,
        scorer: choice.scorer,
    };
    CallToAction { decision, verdicts: choice.verdicts, impression, subject, prompted_on }
}
