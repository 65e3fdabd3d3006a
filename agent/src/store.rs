//! The agent's SQLite storage (DESIGN §9): WAL mode, migrations from `agent/migrations`,
//! consent writes with `synchronous=FULL`, everything else `NORMAL`; incremental auto-vacuum,
//! and every table but the consent ledger pruned to what the engine reads ([`retention`]).

use std::path::{Path, PathBuf};

use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::{CampaignId, OfferId, PersonId, Purpose, UnixTime};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;

use crate::purge::Purge;

mod consent;
mod home;
pub mod retention;

pub use retention::{Kept, Pruned};

/// A storage failure, naming the database file.
#[derive(Debug, thiserror::Error)]
#[error("database '{path}': {detail}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What failed.
    pub detail: String,
}

impl StoreError {
    /// The error for `path`, with what to do about a full or read-only storage (SQLite's own
    /// words for both are fixed).
    fn new(path: &Path, detail: String) -> Self {
        let what_to_do = if detail.contains("database or disk is full") {
            "; the device's storage is full: free some space, and the agent carries on by itself"
        } else if detail.contains("readonly database") || detail.contains("read-only") {
            "; the database cannot be written (a read-only file system, or the file's permissions): make it writable, and the agent carries on by itself"
        } else {
            ""
        };
        StoreError { path: path.into(), detail: format!("{detail}{what_to_do}") }
    }
}

/// One consent ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LedgerRow {
    /// Whose consent.
    pub person: PersonId,
    /// The purpose.
    pub purpose: Purpose,
    /// Granted or revoked.
    pub granted: bool,
    /// When.
    pub at: UnixTime,
    /// Where the change was made.
    pub source: ConsentSource,
    /// The version of the text the person saw.
    pub text_version: String,
}

/// A person of the household.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// A child profile, which can never grant `personalise`, `request` or `improve`.
    pub child: bool,
    /// The consent this person gave, from their latest ledger rows.
    pub consent: ConsentState,
}

/// Everyone in the household, by id.
pub type Household = std::collections::BTreeMap<PersonId, Member>;

/// A stored answer: the offer, its category if known, what was said, and when.
pub type StoredAnswer = (OfferId, Option<String>, FeedbackKind, UnixTime);

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Its number.
    pub id: i64,
    /// The purpose that allows it.
    pub purpose: Purpose,
    /// The topic it goes to.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// When it was queued.
    pub created_at: UnixTime,
}

/// A stored impression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImpressionRow {
    /// The decision that showed it.
    pub decision: DecisionId,
    /// The offer.
    pub offer: OfferId,
    /// Its campaign.
    pub campaign: CampaignId,
    /// When.
    pub at: UnixTime,
}

/// The agent's database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn migrations() -> Migrations<'static> {
    Migrations::new(migrations_up_to(usize::MAX))
}

/// The first `n` migrations.
fn migrations_up_to(n: usize) -> Vec<M<'static>> {
    let all = vec![
        M::up(include_str!("../migrations/0001_initial.sql")),
        M::up(include_str!("../migrations/0002_household.sql")),
        M::up(include_str!("../migrations/0003_erasures.sql")),
        M::up(include_str!("../migrations/0004_outbox.sql")),
        M::up(include_str!("../migrations/0005_prompt_answers.sql")),
        M::up(include_str!("../migrations/0006_answers.sql")),
        M::up(include_str!("../migrations/0007_models.sql")),
        M::up(include_str!("../migrations/0008_retention.sql")),
        M::up(include_str!("../migrations/0009_home.sql")),
    ];
    all.into_iter().take(n).collect()
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |detail: String| StoreError::new(path, detail);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its directory: {e}")))?;
        }
        let sqlite = |e: rusqlite::Error| {
            match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly) => err(format!(
                "{e}: it cannot be opened for writing (a read-only file system, or the permissions of the file or its directory); make it writable, then start the agent again"
            )),
            _ => err(e.to_string()),
        }
        };
        let mut conn = Self::connect(path).map_err(sqlite)?;
        let migrations = migrations();
        let before =
            migrations.current_version(&conn).map_err(|e| err(format!("cannot read its schema version: {e}")))?;
        migrations.to_latest(&mut conn).map_err(|e| err(format!("migration failed: {e}")))?;
        let after =
            migrations.current_version(&conn).map_err(|e| err(format!("cannot read its schema version: {e}")))?;
        // An in-memory database (tests) has no file to open again: it would come back empty.
        let on_file = conn.path().is_some_and(|p| !p.is_empty());
        if after != before && on_file {
            // Opened again once migrated: a migration that renames a table opens SQLite's
            // temporary database (to rewrite its triggers), which would stay open with its own
            // page cache for as long as the agent runs.
            drop(conn);
            conn = Self::connect(path).map_err(sqlite)?;
        }
        Ok(Self { conn, path: path.into() })
    }

    /// Opens the database at `path` with the agent's settings.
    fn connect(path: &Path) -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        // A small page cache (8 KiB; SQLite's default is 2 MiB): the agent reads little after
        // start, and the file system caches the rest outside the agent's memory. A size this
        // small keeps the cache flat from the first day, so the agent's memory stays the same
        // as the database grows to its budget (at 16 KiB it grew for months). Each page is its
        // own allocation (SQLITE_DEFAULT_PCACHE_INITSZ=0, see `.cargo/config.toml`), so
        // `release_memory` frees them all.
        conn.pragma_update(None, "cache_size", -8)?;
        // Before anything is written: a new database takes its page size and incremental
        // auto-vacuum at once.
        Self::size_new_pages(&conn)?;
        Self::ensure_incremental_vacuum(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        Self::limit_log(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted personal data is overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    /// Frees the page cache: what is read next is read again from the file, or from the file
    /// system's cache of it. The agent calls it whenever it has nothing more to do, so an
    /// idle agent holds no page of its database (about 10 KiB with 1 KiB pages); a process
    /// of many agents then holds the pages of the few at work.
    pub fn release_memory(&self) {
        if let Err(e) = self.conn.release_memory() {
            tracing::debug!("page cache not freed: {e}");
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(&self.path, e.to_string())
    }

    /// Records an answer and, when `learning` (with `personalise`), the learning row too, in
    /// one transaction: both are stored or neither is.
    pub fn record_feedback_event(
        &mut self,
        decision: DecisionId,
        offer: &OfferId,
        category: Option<&str>,
        kind: FeedbackKind,
        at: UnixTime,
        learning: bool,
    ) -> Result<(), StoreError> {
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT INTO answers (decision_id, offer, category, kind, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![to_sql_id(decision), offer.as_str(), category, enum_text(&kind), to_sql_time(at)],
            )?;
            if learning {
                tx.execute(
                    "INSERT INTO feedback (decision_id, offer, kind, at) VALUES (?1, ?2, ?3, ?4)",
                    params![to_sql_id(decision), offer.as_str(), enum_text(&kind), to_sql_time(at)],
                )?;
            }
            tx.commit()
        })();
        result.map_err(|e| self.err(e))
    }

    /// Stored answers since `since`, and conversions of any age (offer, category, kind, when),
    /// oldest first.
    pub fn answers_since(&self, since: UnixTime) -> Result<Vec<StoredAnswer>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT offer, category, kind, at FROM answers WHERE at >= ?1 OR kind = 'converted' ORDER BY id")
            .map_err(|e| self.err(e))?;
        type Raw = (String, Option<String>, String, i64);
        let rows = stmt
            .query_map([to_sql_time(since)], |r| -> rusqlite::Result<Raw> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (offer, category, kind, at) = row.map_err(|e| self.err(e))?;
            out.push((
                OfferId::try_new(offer).map_err(|e| self.err(e))?,
                category,
                serde_json::from_value(serde_json::Value::String(kind)).map_err(|e| self.err(e))?,
                from_sql_time(at),
            ));
        }
        Ok(out)
    }

    /// Every answer with its decision and time, for a person's export.
    pub fn feedback_rows(&self) -> Result<Vec<(DecisionId, OfferId, FeedbackKind, UnixTime)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT decision_id, offer, kind, at FROM answers ORDER BY id")
            .map_err(|e| self.err(e))?;
        type Raw = (i64, String, String, i64);
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Raw> { Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)) })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, offer, kind, at) = row.map_err(|e| self.err(e))?;
            out.push((
                DecisionId(u64::try_from(id).unwrap_or(0)),
                OfferId::try_new(offer).map_err(|e| self.err(e))?,
                serde_json::from_value(serde_json::Value::String(kind)).map_err(|e| self.err(e))?,
                from_sql_time(at),
            ));
        }
        Ok(out)
    }

    /// Queues a message for `purpose` (the egress gate checked the consent).
    pub fn enqueue(&self, purpose: Purpose, topic: &str, payload: &[u8], at: UnixTime) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "INSERT INTO outbox (purpose, topic, payload, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![purpose.as_str(), topic, payload, to_sql_time(at)],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every queued message, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, purpose, topic, payload, created_at FROM outbox ORDER BY id")
            .map_err(|e| self.err(e))?;
        type Raw = (i64, String, String, Vec<u8>, i64);
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Raw> { Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)) })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, purpose, topic, payload, at) = row.map_err(|e| self.err(e))?;
            let purpose = purpose.parse::<Purpose>().map_err(|e| self.err(e))?;
            out.push(OutboxRow { id, purpose, topic, payload, created_at: from_sql_time(at) });
        }
        Ok(out)
    }

    /// How many messages are queued.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        self.conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Removes a queued message.
    pub fn outbox_remove(&self, id: i64) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM outbox WHERE id = ?1", [id]).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records an answer to a consent prompt.
    pub fn record_prompt_answer(
        &self,
        prompt: &str,
        purpose: Purpose,
        yes: bool,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO prompt_answers (prompt, purpose, answer, at) VALUES (?1, ?2, ?3, ?4)",
                params![prompt, purpose.as_str(), if yes { "yes" } else { "no" }, to_sql_time(at)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The latest "no" per purpose.
    pub fn prompt_refusals(&self) -> Result<Vec<(Purpose, UnixTime)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT purpose, MAX(at) FROM prompt_answers WHERE answer = 'no' GROUP BY purpose")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (purpose, at) = row.map_err(|e| self.err(e))?;
            out.push((purpose.parse::<Purpose>().map_err(|e| self.err(e))?, from_sql_time(at)));
        }
        Ok(out)
    }

    /// Stores an applied catalogue envelope, keeping the last few versions.
    pub fn save_catalogue(&self, version: u64, fleet: &str, envelope: &[u8], at: UnixTime) -> Result<(), StoreError> {
        self.save_envelope(Signed::Catalogues, version, fleet, envelope, at)
    }

    /// The highest catalogue version ever stored, whether or not it still applies.
    pub fn highest_catalogue_version(&self) -> Result<Option<u64>, StoreError> {
        self.highest_version(Signed::Catalogues)
    }

    /// The newest stored catalogue envelope.
    pub fn latest_catalogue(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.latest_envelope(Signed::Catalogues)
    }

    /// Stores an applied model envelope, keeping the last few versions.
    pub fn save_model(&self, version: u64, fleet: &str, envelope: &[u8], at: UnixTime) -> Result<(), StoreError> {
        self.save_envelope(Signed::Models, version, fleet, envelope, at)
    }

    /// The highest model version ever stored, whether or not it still applies.
    pub fn highest_model_version(&self) -> Result<Option<u64>, StoreError> {
        self.highest_version(Signed::Models)
    }

    /// The newest stored model envelope.
    pub fn latest_model(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.latest_envelope(Signed::Models)
    }

    /// Whether this exact catalogue envelope was applied on this device before: an older
    /// version arriving again is then the broker redelivering it after a reconnect, not a
    /// rollback to refuse.
    pub fn applied_catalogue_before(&self, version: u64, envelope: &[u8]) -> Result<bool, StoreError> {
        self.holds_envelope(Signed::Catalogues, version, envelope)
    }

    /// Whether this exact model envelope was applied on this device before.
    pub fn applied_model_before(&self, version: u64, envelope: &[u8]) -> Result<bool, StoreError> {
        self.holds_envelope(Signed::Models, version, envelope)
    }

    fn holds_envelope(&self, table: Signed, version: u64, envelope: &[u8]) -> Result<bool, StoreError> {
        let Ok(version) = i64::try_from(version) else { return Ok(false) };
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row(&format!("SELECT envelope FROM {} WHERE version = ?1", table.table()), [version], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(stored.is_some_and(|stored| stored == envelope))
    }

    fn save_envelope(
        &self,
        table: Signed,
        version: u64,
        fleet: &str,
        envelope: &[u8],
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let version = i64::try_from(version).map_err(|e| self.err(e))?;
        let table = table.table();
        self.conn
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO {table} (version, fleet, envelope, applied_at) VALUES (?1, ?2, ?3, ?4)"
                ),
                params![version, fleet, envelope, to_sql_time(at)],
            )
            .map_err(|e| self.err(e))?;
        // Keep the last few versions only; the newest is what counts.
        self.conn
            .execute(
                &format!("DELETE FROM {table} WHERE version NOT IN (SELECT version FROM {table} ORDER BY version DESC LIMIT ?1)"),
                [retention::ENVELOPES_KEPT],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn highest_version(&self, table: Signed) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row(&format!("SELECT MAX(version) FROM {}", table.table()), [], |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.and_then(|v| u64::try_from(v).ok()))
            .map_err(|e| self.err(e))
    }

    fn latest_envelope(&self, table: Signed) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT version, envelope FROM {} ORDER BY version DESC LIMIT 1", table.table()),
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
            .map(|o| o.map(|(v, e)| (u64::try_from(v).unwrap_or(0), e)))
    }

    /// Records an impression.
    pub fn record_impression(&self, row: &ImpressionRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO impressions (decision_id, offer, campaign, at) VALUES (?1, ?2, ?3, ?4)",
                params![to_sql_id(row.decision), row.offer.as_str(), row.campaign.as_str(), to_sql_time(row.at)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Impressions since `since`, oldest first.
    pub fn impressions_since(&self, since: UnixTime) -> Result<Vec<ImpressionRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT decision_id, offer, campaign, at FROM impressions WHERE at >= ?1 ORDER BY decision_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([to_sql_time(since)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, offer, campaign, at) = row.map_err(|e| self.err(e))?;
            out.push(ImpressionRow {
                decision: DecisionId(u64::try_from(id).unwrap_or(0)),
                offer: OfferId::try_new(offer).map_err(|e| self.err(e))?,
                campaign: CampaignId::try_new(campaign).map_err(|e| self.err(e))?,
                at: from_sql_time(at),
            });
        }
        Ok(out)
    }

    /// The highest decision id stored, so numbering continues after a restart (pruned
    /// impressions leave theirs in `storage_meta`).
    pub fn last_decision_id(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT MAX(COALESCE((SELECT MAX(decision_id) FROM impressions), 0),
                            COALESCE((SELECT value FROM storage_meta WHERE key = 'last_decision_id'), 0))",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|v| u64::try_from(v).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// All stored feedback: (offer, kind).
    pub fn feedback(&self) -> Result<Vec<(OfferId, FeedbackKind)>, StoreError> {
        let mut stmt =
            self.conn.prepare("SELECT offer, kind FROM feedback ORDER BY decision_id").map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (offer, kind) = row.map_err(|e| self.err(e))?;
            let kind = serde_json::from_value(serde_json::Value::String(kind)).map_err(|e| self.err(e))?;
            out.push((OfferId::try_new(offer).map_err(|e| self.err(e))?, kind));
        }
        Ok(out)
    }
}

fn enum_text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn to_sql_time(t: UnixTime) -> i64 {
    i64::try_from(t.secs()).unwrap_or(i64::MAX)
}

fn from_sql_time(v: i64) -> UnixTime {
    UnixTime(u64::try_from(v).unwrap_or(0))
}

fn to_sql_id(id: DecisionId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// The tables of signed envelopes, which share their shape.
#[derive(Debug, Clone, Copy)]
enum Signed {
    Catalogues,
    Models,
}

impl Signed {
    fn table(self) -> &'static str {
        match self {
            Self::Catalogues => "catalogues",
            Self::Models => "models",
        }
    }
}

#[cfg(test)]
mod tests;
