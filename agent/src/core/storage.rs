//! Keeping the database bounded on the agent's clock: once a local day (and sooner when it is
//! over its budget), the store prunes every table to its retention window and, if still over
//! the budget, the oldest data it may prune; the status says what was pruned. The shell then
//! gives what was freed back to the system ([`crate::memory`]).

use tracing::{debug, warn};

use super::AgentCore;
use crate::clock::Now;
use crate::handle::StorageStatus;

/// What the core remembers of pruning.
#[derive(Debug, Default)]
pub(super) struct Storage {
    status: StorageStatus,
    /// The local day of the last prune.
    pruned_on: Option<u32>,
    /// Whether the last prune left the database over its budget (said once until it is not).
    over_budget: bool,
}

impl AgentCore {
    /// Prunes the database once a local day, and whenever it is over its budget. Returns
    /// whether it pruned.
    pub(super) fn keep_storage_bounded(&mut self, now: Now) -> bool {
        let day = self.local_day(now.wall);
        let budget = self.config.database_budget;
        if self.storage.pruned_on == Some(day) && self.store.database_bytes() <= budget {
            return false;
        }
        self.storage.pruned_on = Some(day);
        // A failure here is logged but not tracked as the storage failing: a prune with
        // nothing to delete succeeds on a read-only database, and must not say writes work.
        let kept = match self.store.keep_bounded(now.wall, budget) {
            Ok(kept) => kept,
            Err(e) => {
                warn!("storage: pruning failed: {e}");
                return false;
            }
        };
        let status = &mut self.storage.status;
        status.pruned_by_retention += kept.by_retention.rows();
        status.pruned_by_budget += kept.by_budget.rows();
        status.last_prune = Some(now.wall);
        debug!(
            retention = kept.by_retention.rows(),
            budget = kept.by_budget.rows(),
            bytes = kept.bytes,
            "storage pruned"
        );
        let database = self.config.database.display();
        if kept.by_budget.rows() > 0 {
            warn!(
                %database,
                "the database was over its budget of {budget} bytes: pruned {} rows the engine still read (oldest first), now {} bytes; raise database_budget_bytes to keep more",
                kept.by_budget.rows(),
                kept.bytes
            );
        }
        let over = kept.bytes > budget;
        if over && !self.storage.over_budget {
            warn!(
                %database,
                "the database is still {} bytes, over its budget of {budget}, with nothing left the agent may prune (the consent ledger and unacknowledged reports stay); raise database_budget_bytes, or let a collector take the reports",
                kept.bytes
            );
        }
        self.storage.over_budget = over;
        true
    }

    /// The storage part of the status, with the database's size now.
    pub(super) fn storage_status(&self) -> StorageStatus {
        StorageStatus {
            database_bytes: self.store.database_bytes(),
            budget_bytes: self.config.database_budget,
            ..self.storage.status
        }
    }
}
