//! Offers at a moment: the local decision and, in request mode, the offer service's answer.
//! One request waits at a time; its caller's answer is handed out by
//! [`AgentCore::poll_answer`] when the service answers, the request times out, or a consent
//! change drops it.

use std::time::Duration;

use ledtrad_engine::Draw;
use ledtrad_protocol::decision::Decision;
use ledtrad_protocol::offers::{OfferRequest, OfferResponse, TimeOfDay};
use ledtrad_protocol::report::Arm;
use ledtrad_protocol::{codec, Moment, Purpose};
use rand::Rng;
use tracing::debug;
use tracing::warn;

use super::AgentCore;
use crate::clock::{Now, Stopwatch};
use crate::handle::{OfferOutcome, RequestOutcome};
use crate::store::ImpressionRow;

/// Names the caller of an offer request, to match its answer to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestToken(u64);

/// What came of asking for an offer.
#[derive(Debug)]
pub enum OfferStep {
    /// Decided: here is the answer.
    Decided(Box<OfferOutcome>),
    /// The offer service was asked: the answer comes from [`AgentCore::poll_answer`] with
    /// this token.
    Waiting(RequestToken),
}

/// An offer request waiting for the offer service's answer.
#[derive(Debug)]
struct PendingRequest {
    token: RequestToken,
    correlation: [u8; 16],
    moment: Moment,
    /// Whether the request carried interest categories (the "why" then says so).
    interests_sent: bool,
    /// The local decision (nothing), which stands if no answer comes in time.
    local: OfferOutcome,
    /// Measures the round trip (a measurement only: the deadline is on the monotonic clock).
    sent: Stopwatch,
    deadline: Duration,
}

/// Offer requests: the one waiting, answers ready for their callers, and counts.
#[derive(Debug, Default)]
pub(super) struct Requests {
    pending: Option<PendingRequest>,
    answers: Vec<(RequestToken, OfferOutcome)>,
    next_token: u64,
    pub(super) sent: u64,
    pub(super) answered: u64,
    /// Timed out, unusable, or dropped by a consent change.
    pub(super) unanswered: u64,
}

impl Requests {
    /// A new token.
    pub(super) fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        RequestToken(self.next_token)
    }

    /// A decided answer for the caller waiting with `token`.
    pub(super) fn answer(&mut self, token: RequestToken, outcome: OfferOutcome) {
        self.answers.push((token, outcome));
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// Answers a pending request's caller with its `local` decision (the one on the service's
    /// offers when `answered`), saying what came of the request.
    fn finish(&mut self, pending: PendingRequest, answered: bool, received: usize, kept: usize) {
        if answered {
            self.answered += 1;
        } else {
            self.unanswered += 1;
        }
        let round_trip_micros = pending.sent.micros();
        let request = RequestOutcome { answered, offers_received: received, offers_kept: kept, round_trip_micros };
        self.answers.push((pending.token, OfferOutcome { request: Some(request), ..pending.local }));
    }
}

impl AgentCore {
    /// Decides what to show at `moment`. In request mode, when the local decision found
    /// nothing it could show and asking is configured, consented and worthwhile, the offer
    /// service is asked and the answer comes later (see [`OfferStep::Waiting`]).
    /// On a device of a home that has just reconnected, the decision waits until the home's
    /// channel is in step ([`AgentCore::home_settling`]), and its answer comes the same way.
    pub fn offer(&mut self, moment: Moment, now: Now) -> OfferStep {
        if self.home_settling() {
            let token = self.requests.token();
            self.hold_for_home(token, moment);
            return OfferStep::Waiting(token);
        }
        self.offer_now(moment, now, None)
    }

    /// Decides at `moment` now; an offer request, if one is sent, is answered under `token`
    /// (a new one when `None`).
    pub(super) fn offer_now(&mut self, moment: Moment, now: Now, token: Option<RequestToken>) -> OfferStep {
        let local = self.decide_locally(moment, now);
        let ask = self.config.offer_request_timeout.filter(|_| {
            self.requests.pending.is_none()
                && self.egress.connected()
                && self.engine.request_worthwhile(local.decision.id, now.wall)
        });
        let Some(timeout) = ask else { return OfferStep::Decided(Box::new(local)) };
        let request = OfferRequest {
            device_kind: self.config.kind,
            moment,
            interests: self.engine.interests(),
            time_of_day: TimeOfDay::from_hour(self.config.local.hour(now.wall)),
        };
        let correlation: [u8; 16] = self.rng.random();
        if let Err(e) = self.egress.offer_request(&request, &correlation, timeout) {
            debug!("offer request not sent, deciding locally: {e}");
            return OfferStep::Decided(Box::new(local));
        }
        self.requests.sent += 1;
        let token = token.unwrap_or_else(|| self.requests.token());
        self.requests.pending = Some(PendingRequest {
            token,
            correlation,
            moment,
            interests_sent: !request.interests.is_empty(),
            local,
            sent: Stopwatch::start(),
            deadline: now.mono + timeout,
        });
        OfferStep::Waiting(token)
    }

    /// An answer a request's caller waits for, if one is ready.
    /// (Answers to moments the agent raised itself become `offer` events instead.)
    pub fn poll_answer(&mut self) -> Option<(RequestToken, OfferOutcome)> {
        while let Some((token, outcome)) = self.requests.answers.pop() {
            if !self.answer_raised(token, &outcome) {
                return Some((token, outcome));
            }
        }
        None
    }

    /// The random draws of one decision.
    fn draw(&mut self) -> Draw {
        Draw {
            camouflage: self.rng.random::<f64>(),
            pick: self.rng.random::<u64>(),
            explore: Some(self.rng.random::<u64>()),
        }
    }

    fn decide_locally(&mut self, moment: Moment, now: Now) -> OfferOutcome {
        let draw = self.draw();
        let watch = Stopwatch::start();
        let decision: &Decision = self.engine.decide(moment, now.wall, draw);
        let decide_nanos = watch.nanos();
        let decision = decision.clone();
        let weighed = self.engine.weighed_offers(decision.id).unwrap_or(false);
        self.record_decision(&decision, now);
        OfferOutcome { decision, decide_nanos, weighed, draw, request: None }
    }

    /// Stores a decision's impression, counts it for the reports and tells the home.
    fn record_decision(&mut self, decision: &Decision, now: Now) {
        // A "would have shown" counts against the caps as a shown offer does, here and in the
        // home.
        if decision.shown.is_some() || decision.would_have_shown.is_some() {
            self.tell_shown(now);
        }
        let now = now.wall;
        let measure = self.engine.consent().allows(Purpose::Measure);
        let version = decision.catalogue_version.unwrap_or(0);
        if let Some(shown) = &decision.shown {
            let row = ImpressionRow {
                decision: decision.id,
                offer: shown.offer.clone(),
                campaign: shown.campaign.clone(),
                at: now,
            };
            let stored = self.store.record_impression(&row);
            if let Err(e) = self.track(stored) {
                debug!("impression of '{}' not stored; caps after a restart may undercount: {e}", shown.offer);
            }
            if measure {
                self.tally.impression(self.local_day(now), &shown.campaign, Arm::Treatment, version);
            }
        }
        if decision.would_have_shown.is_some() && measure {
            if let Some(campaign) = self.engine.decision_campaign(decision.id) {
                self.tally.impression(self.local_day(now), &campaign, Arm::Holdout, version);
            }
        }
    }

    /// The offer service's answer: decided on if it answers the pending request, ignored
    /// otherwise (late, or for a request this agent no longer waits for).
    pub(super) fn handle_offers(&mut self, payload: &[u8], correlation: Option<&[u8]>, now: Now) {
        let Some(pending) = self.requests.pending.take_if(|p| correlation == Some(p.correlation.as_slice())) else {
            debug!("an offer-service answer for no waiting request (late, or not ours); ignored");
            return;
        };
        let response = match codec::from_json::<OfferResponse>(payload, "offer response") {
            Ok(response) => response,
            Err(e) => {
                warn!("the offer service's answer is unreadable, deciding without it: {e}");
                return self.requests.finish(pending, false, 0, 0);
            }
        };
        let draw = self.draw();
        let watch = Stopwatch::start();
        match self.engine.decide_remote(pending.moment, now.wall, draw, response.offers, pending.interests_sent) {
            Ok((decision, counted)) => {
                let decide_nanos = watch.nanos();
                let decision = decision.clone();
                self.record_decision(&decision, now);
                let outcome = OfferOutcome { decision, decide_nanos, weighed: true, draw, request: None };
                self.requests.finish(
                    PendingRequest { local: outcome, ..pending },
                    true,
                    counted.received,
                    counted.kept,
                );
            }
            Err(e) => {
                warn!("the offer service's answer cannot be used, deciding without it: {e}");
                self.requests.finish(pending, false, 0, 0);
            }
        }
    }

    /// No answer in time (or no longer wanted): the local decision stands.
    pub(super) fn request_timed_out(&mut self) {
        if let Some(pending) = self.requests.pending.take() {
            debug!(moment = %pending.moment, "the offer service did not answer in time; nothing shown");
            self.requests.finish(pending, false, 0, 0);
        }
    }
}
