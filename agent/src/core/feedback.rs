//! Feedback on shown offers, and the measurement reports counted from decisions and feedback.

use ledtrad_protocol::feedback::Feedback;
use ledtrad_protocol::report::Arm;
use ledtrad_protocol::Purpose;
use tracing::warn;

use super::{storage, AgentCore};
use crate::clock::Now;
use crate::handle::AgentError;

impl AgentCore {
    /// Applies feedback on a shown offer.
    pub fn feedback(&mut self, feedback: Feedback, now: Now) -> Result<(), AgentError> {
        let target = self.engine.check_feedback(feedback)?;
        // The answer (it rules offers out across restarts) and, only while `personalise`
        // allows it, the learning row are stored in one transaction before the engine changes,
        // so a storage failure changes nothing.
        let learning = self.engine.consent().allows(Purpose::Personalise) && !target.held_out;
        let stored = self.store.record_feedback_event(
            feedback.decision,
            &target.offer,
            target.category.as_deref(),
            target.kind,
            now.wall,
            learning,
        );
        self.track(stored).map_err(storage)?;
        let applied = self.engine.handle_feedback(feedback, now.wall)?;
        if self.engine.consent().allows(Purpose::Measure) {
            let arm = if applied.held_out { Arm::Holdout } else { Arm::Treatment };
            let version = applied.catalogue_version.unwrap_or(0);
            self.tally.feedback(self.local_day(now.wall), &applied.campaign, arm, version, applied.kind);
        }
        Ok(())
    }

    /// Queues every count gathered so far as noised reports in the outbox (only with
    /// `measure`) and hands what is queued to the broker if connected. Returns how many
    /// reports were queued. (The agent itself reports each day once it is over, on its tick.)
    pub fn flush_reports(&mut self, now: Now) -> usize {
        let queued = self.queue_reports(u32::MAX, now);
        self.deliver(now);
        queued
    }

    /// Queues the counts of days before `before` as noised reports (only with `measure`).
    pub(super) fn queue_reports(&mut self, before: u32, now: Now) -> usize {
        if !self.engine.consent().allows(Purpose::Measure) {
            self.tally.clear();
            return 0;
        }
        let mut queued = 0;
        for report in self.tally.drain_noised_before(before, self.config.report_epsilon, &mut self.rng) {
            match self.egress.report(&self.store, &report, now.wall) {
                Ok(()) => queued += 1,
                Err(e) => warn!(campaign = %report.campaign, "report: {e}"),
            }
        }
        queued
    }

    /// The answers given to decision `id`, oldest first.
    pub fn answers(
        &self,
        id: ledtrad_protocol::decision::DecisionId,
    ) -> Result<Vec<crate::handle::DecisionAnswer>, AgentError> {
        let rows = self.store.feedback_rows().map_err(super::storage)?;
        Ok(rows
            .into_iter()
            .filter(|(decision, ..)| *decision == id)
            .map(|(_, _, kind, at)| crate::handle::DecisionAnswer { kind, at })
            .collect())
    }
}
