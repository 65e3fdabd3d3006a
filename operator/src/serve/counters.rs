//! What an offer service or collector has done, read while it runs, and the reports it
//! committed, for whoever measures them.

use std::sync::atomic::{AtomicU64, Ordering};

use ledtrad_protocol::report::ReportId;

/// What the service has done so far; read while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Offer requests received.
    pub requests: AtomicU64,
    /// Requests answered.
    pub answered: AtomicU64,
    /// Requests without a usable response topic or correlation data, or unreadable.
    pub refused: AtomicU64,
    /// Answers the MQTT client could not take (its queue full, or the connection closing).
    pub unsent: AtomicU64,
    /// Reports stored.
    pub reports: AtomicU64,
    /// Reports that could not be read or stored.
    pub reports_refused: AtomicU64,
    /// Reports received again that were stored already (a device sends a report again when the
    /// broker's acknowledgement of it was lost).
    pub reports_duplicate: AtomicU64,
    /// Told of each report as it is committed, where something measures it ([`Counters::watch_stored`]).
    stored: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<StoredReport>>>,
}

/// A report committed to the store, as [`Counters::watch_stored`] tells of it.
#[derive(Debug, Clone, Copy)]
pub struct StoredReport {
    /// The report's id (reports from agents that predate ids have none).
    pub id: Option<ReportId>,
    /// When its insert returned: it was committed then, and is acknowledged after.
    pub at: std::time::Instant,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// From now on, each report committed is sent to the receiver returned (one watcher at a
    /// time: a second call replaces the first). For measuring the time from a report's publish
    /// to its commit.
    pub fn watch_stored(&self) -> tokio::sync::mpsc::UnboundedReceiver<StoredReport> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
        rx
    }

    pub(super) fn committed(&self, id: Option<ReportId>) {
        Self::add(&self.reports);
        if let Some(watcher) = self.stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            let _ = watcher.send(StoredReport { id, at: std::time::Instant::now() });
        }
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> ServeSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServeSummary {
            requests: get(&self.requests),
            answered: get(&self.answered),
            refused: get(&self.refused),
            unsent: get(&self.unsent),
            reports: get(&self.reports),
            reports_refused: get(&self.reports_refused),
            reports_duplicate: get(&self.reports_duplicate),
        }
    }
}

/// The counts, as printed when the service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ServeSummary {
    /// Offer requests received.
    pub requests: u64,
    /// Requests answered.
    pub answered: u64,
    /// Requests refused.
    pub refused: u64,
    /// Answers that could not be sent.
    pub unsent: u64,
    /// Reports stored.
    pub reports: u64,
    /// Reports refused.
    pub reports_refused: u64,
    /// Reports received again and not stored twice.
    pub reports_duplicate: u64,
}
