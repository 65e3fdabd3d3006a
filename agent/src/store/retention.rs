//! Bounded storage (DESIGN §9): every table but the consent ledger (and the erasure record
//! beside it) is pruned to the windows the engine reads, and the whole database is kept under
//! its budget by pruning the oldest of that data further.
//!
//! What rules look back on for good is folded before its rows go: pruned impressions into
//! per-offer and per-campaign lifetime counts (`impression_totals`, so all-time caps hold
//! exactly), pruned learning rows into per-offer posterior counts (`learning_totals`), and of
//! the answers, the latest conversion of each offer stays (a conversion excludes its offer for
//! good). Unacknowledged reports (the outbox) are never pruned: they leave when the broker
//! acknowledges them. After pruning, freed pages go back to the file system (incremental
//! vacuum) and the write-ahead log is checkpointed and truncated.

use ledtrad_engine::answers::NOT_FOR_ME_SECS;
use ledtrad_engine::history::KEEP_SECS;
use ledtrad_protocol::journey::MEMORY_SECS;
use ledtrad_protocol::prompt::QUIET_AFTER_NO_SECS;
use ledtrad_protocol::time::DAY_SECS;

use super::*;

/// How long impressions are stored as rows: the longest rolling cap window (a month).
pub const IMPRESSIONS_KEEP_SECS: u64 = KEEP_SECS;

/// How long learning rows are stored as rows before they are folded into posterior counts:
/// as long as the impressions they answer.
pub const FEEDBACK_KEEP_SECS: u64 = KEEP_SECS;

/// How long answers are stored: the 90 days of a "not for me" suppression and of journeys
/// (the latest conversion of each offer stays for good).
pub const ANSWERS_KEEP_SECS: u64 = max(NOT_FOR_ME_SECS, MEMORY_SECS);

/// How long answers to consent prompts are stored: the quiet after a "no".
pub const PROMPT_ANSWERS_KEEP_SECS: u64 = QUIET_AFTER_NO_SECS;

/// The default database budget: 4 MiB.
pub const DEFAULT_BUDGET_BYTES: u64 = 4 * 1024 * 1024;

/// The smallest budget the config accepts: an empty database's tables and indexes take about
/// 100 KiB with their write-ahead log where its pages are SQLite's default 4 KiB (less at
/// [`PAGE_SIZE`]), and the consent ledger (kept whole) needs room to grow.
pub const MIN_BUDGET_BYTES: u64 = 256 * 1024;

/// The page size of a new database: 1 KiB (SQLite's default is 4 KiB). Whatever the cache size
/// asks, a connection keeps about ten pages of cache resident, so small pages take about 30 KB
/// less memory per agent (a process of a thousand simulated agents feels it); every table and
/// index takes at least one page, so an empty database is smaller too. A device's database is
/// small (a few MiB at most), so the deeper B-trees cost little.
pub const PAGE_SIZE: i64 = 1024;

/// The most the write-ahead log grows to before it is checkpointed (pages: 64 KiB at
/// [`PAGE_SIZE`], 256 KiB in a database made with 4 KiB pages), and the size it is cut back to
/// afterwards (bytes): the log counts against the budget too.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 64;
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 128 * 1024;

const fn max(a: u64, b: u64) -> u64 {
    if a > b {
        a
    } else {
        b
    }
}

/// Rows one prune deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Impressions (folded into lifetime counts).
    pub impressions: u64,
    /// Learning rows (folded into posterior counts).
    pub feedback: u64,
    /// Answers to offers.
    pub answers: u64,
    /// Answers to consent prompts.
    pub prompt_answers: u64,
    /// Older catalogue and model envelopes.
    pub envelopes: u64,
}

impl Pruned {
    /// Rows deleted in all.
    pub fn rows(&self) -> u64 {
        self.impressions + self.feedback + self.answers + self.prompt_answers + self.envelopes
    }

    fn add(&mut self, other: Pruned) {
        self.impressions += other.impressions;
        self.feedback += other.feedback;
        self.answers += other.answers;
        self.prompt_answers += other.prompt_answers;
        self.envelopes += other.envelopes;
    }
}

/// What keeping the database bounded did: rows pruned by retention and by the budget, and the
/// database's size on disk afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    /// Rows past their retention window.
    pub by_retention: Pruned,
    /// Rows within their window, pruned (oldest first) to get back under the budget.
    pub by_budget: Pruned,
    /// The database and its write-ahead log on disk afterwards.
    pub bytes: u64,
}

/// The cut-off times of one prune: rows before them go.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    impressions: UnixTime,
    answers: UnixTime,
    prompt_answers: UnixTime,
    /// Catalogue and model envelopes kept, newest first.
    envelopes: u32,
}

impl Cutoffs {
    fn retention(now: UnixTime) -> Self {
        let back = |secs: u64| UnixTime(now.secs().saturating_sub(secs));
        Self {
            impressions: back(IMPRESSIONS_KEEP_SECS),
            answers: back(ANSWERS_KEEP_SECS),
            prompt_answers: back(PROMPT_ANSWERS_KEEP_SECS),
            envelopes: ENVELOPES_KEPT,
        }
    }

    /// One step further for the budget: every table cut at `at`, one envelope of each kind.
    fn budget(at: UnixTime) -> Self {
        Self { impressions: at, answers: at, prompt_answers: at, envelopes: 1 }
    }
}

/// Catalogue and model envelopes kept of each kind: the newest few.
pub(super) const ENVELOPES_KEPT: u32 = 3;

impl Store {
    /// Sets the write-ahead log's limits; called on open.
    pub(super) fn limit_log(conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)
    }

    /// Gives a new database pages of [`PAGE_SIZE`]; a database that exists keeps its own (its
    /// pages cannot change size in write-ahead-log mode). Called on open, before anything is
    /// written.
    pub(super) fn size_new_pages(conn: &Connection) -> rusqlite::Result<()> {
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        if pages == 0 {
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        }
        Ok(())
    }

    /// Makes the database give freed pages back to the file system on request (incremental
    /// auto-vacuum). A new database takes the setting at once; an existing one made before it
    /// is rebuilt once with `VACUUM`. Called on open, before the migrations.
    pub(super) fn ensure_incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
        let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
        if mode == 2 {
            return Ok(());
        }
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        if pages > 0 {
            conn.execute_batch("VACUUM")?;
        }
        Ok(())
    }

    /// The database file and its write-ahead log on disk, in bytes.
    pub fn database_bytes(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        len(&self.path) + len(Path::new(&wal))
    }

    /// Prunes every table to its retention window at `now`, then, while the database is over
    /// `budget` bytes, the oldest rows it may prune a day at a time; gives the freed pages
    /// back and truncates the log after each step.
    pub fn keep_bounded(&mut self, now: UnixTime, budget: u64) -> Result<Kept, StoreError> {
        let mut kept = Kept { by_retention: self.prune(Cutoffs::retention(now))?, ..Kept::default() };
        self.compact();
        kept.bytes = self.database_bytes();
        while kept.bytes > budget {
            let Some(oldest) = self.oldest_prunable()? else { break };
            // A day past the oldest row, but never past now: what is left after that is
            // only what the agent may not prune.
            let at = UnixTime(oldest.secs().saturating_add(DAY_SECS).min(now.secs().saturating_add(1)));
            let pruned = self.prune(Cutoffs::budget(at))?;
            self.compact();
            kept.bytes = self.database_bytes();
            kept.by_budget.add(pruned);
            if pruned.rows() == 0 && at.secs() > now.secs() {
                break;
            }
        }
        Ok(kept)
    }

    /// The time of the oldest row the budget may prune, if any is left.
    fn oldest_prunable(&self) -> Result<Option<UnixTime>, StoreError> {
        self.conn
            .query_row(
                "SELECT MIN(at) FROM (
                    SELECT MIN(at) AS at FROM impressions
                    UNION ALL SELECT MIN(at) FROM feedback
                    UNION ALL SELECT MIN(at) FROM answers WHERE id NOT IN (SELECT id FROM lasting_answers)
                    UNION ALL SELECT MIN(at) FROM prompt_answers
                    UNION ALL SELECT MIN(applied_at) FROM catalogues
                        WHERE version < (SELECT MAX(version) FROM catalogues)
                    UNION ALL SELECT MIN(applied_at) FROM models WHERE version < (SELECT MAX(version) FROM models))",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|at| at.map(from_sql_time))
            .map_err(|e| self.err(e))
    }

    /// Deletes, in one transaction, the rows before `cut`, folding what must outlive them.
    fn prune(&mut self, cut: Cutoffs) -> Result<Pruned, StoreError> {
        let result = (|| -> rusqlite::Result<Pruned> {
            let tx = self.conn.transaction()?;
            let impressions = to_sql_time(cut.impressions);
            // Numbering continues past the impressions pruned.
            tx.execute(
                "INSERT INTO storage_meta (key, value) SELECT 'last_decision_id', MAX(decision_id) FROM impressions
                 WHERE decision_id IS NOT NULL AND at < ?1 GROUP BY 'x'
                 ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
                [impressions],
            )?;
            // Learning rows of pruned impressions go with them (they reference them).
            let doomed = "at < ?1 OR decision_id IN (SELECT decision_id FROM impressions WHERE at < ?1)";
            tx.execute(
                &format!(
                    "INSERT INTO learning_totals (offer, accepts, rejections)
                     SELECT offer, SUM(kind = 'accepted'), SUM(kind IN ('dismissed', 'not_for_me')) FROM feedback
                     WHERE {doomed} GROUP BY offer
                     ON CONFLICT (offer) DO UPDATE SET accepts = accepts + excluded.accepts,
                         rejections = rejections + excluded.rejections"
                ),
                [impressions],
            )?;
            let feedback = tx.execute(&format!("DELETE FROM feedback WHERE {doomed}"), [impressions])?;
            tx.execute(
                "INSERT INTO impression_totals (offer, campaign, count)
                 SELECT offer, campaign, COUNT(*) FROM impressions WHERE at < ?1 GROUP BY offer, campaign
                 ON CONFLICT (offer, campaign) DO UPDATE SET count = count + excluded.count",
                [impressions],
            )?;
            let shown = tx.execute("DELETE FROM impressions WHERE at < ?1", [impressions])?;
            let answers = tx.execute(
                "DELETE FROM answers WHERE at < ?1 AND id NOT IN (SELECT id FROM lasting_answers)",
                [to_sql_time(cut.answers)],
            )?;
            let prompts = tx.execute("DELETE FROM prompt_answers WHERE at < ?1", [to_sql_time(cut.prompt_answers)])?;
            let mut envelopes = 0;
            for table in [Signed::Catalogues, Signed::Models].map(Signed::table) {
                envelopes += tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE version NOT IN (SELECT version FROM {table} ORDER BY version DESC LIMIT ?1)"
                    ),
                    [cut.envelopes],
                )?;
            }
            tx.commit()?;
            let n = |rows: usize| rows as u64;
            Ok(Pruned {
                impressions: n(shown),
                feedback: n(feedback),
                answers: n(answers),
                prompt_answers: n(prompts),
                envelopes: n(envelopes),
            })
        })();
        result.map_err(|e| self.err(e))
    }

    /// Gives freed pages back to the file system, moves the write-ahead log into the database
    /// and truncates it, and lets go of the page cache's memory. Failures only leave the file
    /// larger: they are logged.
    pub fn compact(&self) {
        // The pragma frees pages as it is stepped: it is run to its end.
        let vacuum = (|| -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })();
        if let Err(e) = vacuum {
            tracing::warn!("database '{}': incremental vacuum failed: {e}", self.path.display());
        }
        self.checkpoint();
        if let Err(e) = self.conn.execute_batch("PRAGMA shrink_memory") {
            tracing::debug!("database '{}': shrink_memory failed: {e}", self.path.display());
        }
    }

    /// Lifetime impression counts folded from pruned rows: (offer, campaign, count).
    pub fn impression_totals(&self) -> Result<Vec<(OfferId, CampaignId, u32)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT offer, campaign, count FROM impression_totals ORDER BY offer, campaign")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (offer, campaign, count) = row.map_err(|e| self.err(e))?;
            out.push((
                OfferId::try_new(offer).map_err(|e| self.err(e))?,
                CampaignId::try_new(campaign).map_err(|e| self.err(e))?,
                u32::try_from(count).unwrap_or(u32::MAX),
            ));
        }
        Ok(out)
    }

    /// Posterior counts folded from pruned learning rows: (offer, accepts, rejections).
    pub fn learning_totals(&self) -> Result<Vec<(OfferId, u32, u32)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT offer, accepts, rejections FROM learning_totals ORDER BY offer")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (offer, accepts, rejections) = row.map_err(|e| self.err(e))?;
            let count = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
            out.push((OfferId::try_new(offer).map_err(|e| self.err(e))?, count(accepts), count(rejections)));
        }
        Ok(out)
    }
}
