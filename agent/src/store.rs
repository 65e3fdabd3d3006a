//! The agent's SQLite storage (DESIGN §9): WAL mode, migrations from `agent/migrations`,
//! consent writes with `synchronous=FULL`, everything else `NORMAL`.

use std::path::{Path, PathBuf};

use ledtrad_protocol::consent::{ConsentSource, ConsentState};
use ledtrad_protocol::decision::DecisionId;
use ledtrad_protocol::feedback::FeedbackKind;
use ledtrad_protocol::{CampaignId, OfferId, PersonId, Purpose, UnixTime};
use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};
use serde::Serialize;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    Migrations::new(vec![
        M::up(include_str!("../migrations/0001_initial.sql")),
        M::up(include_str!("../migrations/0002_household.sql")),
        M::up(include_str!("../migrations/0003_erasures.sql")),
        M::up(include_str!("../migrations/0004_outbox.sql")),
        M::up(include_str!("../migrations/0005_prompt_answers.sql")),
        M::up(include_str!("../migrations/0006_answers.sql")),
        M::up(include_str!("../migrations/0007_models.sql")),
    ])
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
        let mut conn = Connection::open(path).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sqlite)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sqlite)?;
        // Deleted personal data is overwritten, not left in free pages.
        conn.pragma_update(None, "secure_delete", "ON").map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite)?;
        migrations().to_latest(&mut conn).map_err(|e| err(format!("migration failed: {e}")))?;
        Ok(Self { conn, path: path.into() })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::new(&self.path, e.to_string())
    }

    /// Runs `change` as a consent-bearing write: in one transaction with `synchronous=FULL`,
    /// working out the device's effective consent before and after with `effective` (which
    /// knows whether the device is personal or shared, and who is present) and purging what
    /// was stored for any purpose the device loses. Returns the household and the effective
    /// state, read inside the transaction: once this returns `Ok`, the change is on disk and
    /// the state is the one to enforce; on `Err`, nothing was written.
    fn consent_write(
        &mut self,
        effective: &dyn Fn(&Household) -> ConsentState,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(Household, ConsentState), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| self.err(e))?;
        let result = (|| -> rusqlite::Result<(Household, ConsentState)> {
            let tx = self.conn.transaction()?;
            let before = effective(&read_household(&tx)?);
            change(&tx)?;
            let household = read_household(&tx)?;
            let after = effective(&household);
            purge_lost(&tx, before, after)?;
            tx.commit()?;
            Ok((household, after))
        })();
        if let Err(e) = self.conn.pragma_update(None, "synchronous", "NORMAL") {
            // Only slower writes follow from this; the change itself stands.
            tracing::warn!("database '{}': could not return to synchronous=NORMAL: {e}", self.path.display());
        }
        result.map_err(|e| self.err(e))
    }

    /// Appends a consent change to the ledger (see [`Store::consent_write`] for what happens
    /// with it in the same transaction).
    pub fn append_consent(
        &mut self,
        row: &LedgerRow,
        effective: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, ConsentState), StoreError> {
        self.consent_write(effective, |tx| {
            tx.execute(
                "INSERT INTO consent_ledger (person, purpose, granted, at, source, text_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.person.as_str(),
                    row.purpose.as_str(),
                    row.granted,
                    to_sql_time(row.at),
                    enum_text(&row.source),
                    row.text_version
                ],
            )?;
            Ok(())
        })
    }

    /// Adds a person to the household, or changes whether they are a child. Making someone a
    /// child revokes every purpose a child may not grant; what the device loses by the change
    /// (a new member who has not agreed, a child) is purged in the same transaction.
    pub fn put_person(
        &mut self,
        person: &PersonId,
        child: bool,
        at: UnixTime,
        effective: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, ConsentState), StoreError> {
        self.consent_write(effective, |tx| {
            tx.execute(
                "INSERT INTO people (id, child, added_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO UPDATE SET child = excluded.child",
                params![person.as_str(), child, to_sql_time(at)],
            )?;
            if child {
                revoke_all(tx, person, at, "api", "child-profile", |p| !p.child_may_grant())?;
            }
            Ok(())
        })
    }

    /// Erases what the device holds about `person`: revokes every purpose they granted (ledger
    /// rows with text version `erasure`), records the erasure, and, when the device's own data
    /// is about them (`device_data`), deletes the stored impressions, answers and queued
    /// messages — all in one transaction — then checkpoints the log.
    pub fn erase(
        &mut self,
        person: &PersonId,
        device_data: bool,
        at: UnixTime,
        source: ConsentSource,
        effective: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, ConsentState), StoreError> {
        let source = enum_text(&source);
        let result = self.consent_write(effective, |tx| {
            revoke_all(tx, person, at, &source, "erasure", |_| true)?;
            tx.execute(
                "INSERT INTO erasures (person, at, source) VALUES (?1, ?2, ?3)",
                params![person.as_str(), to_sql_time(at), source],
            )?;
            if device_data {
                for table in ["feedback", "answers", "prompt_answers", "impressions", "outbox"] {
                    tx.execute(&format!("DELETE FROM {table}"), [])?;
                }
            }
            Ok(())
        })?;
        self.checkpoint();
        Ok(result)
    }

    /// Moves the write-ahead log into the database and truncates it, so deleted rows do not
    /// linger in the log (with `secure_delete`, their pages are zeroed in the file).
    pub fn checkpoint(&self) {
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!("database '{}': checkpoint after deleting personal data failed: {e}", self.path.display());
        }
    }

    /// The erasures `person` asked for, oldest first: (when, where from).
    pub fn erasures(&self, person: &PersonId) -> Result<Vec<(UnixTime, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, source FROM erasures WHERE person = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([person.as_str()], |r| Ok((from_sql_time(r.get(0)?), r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
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

    /// Removes every queued message for `purpose`, returning how many.
    pub fn purge_outbox(&self, purpose: Purpose) -> Result<usize, StoreError> {
        self.conn.execute("DELETE FROM outbox WHERE purpose = ?1", [purpose.as_str()]).map_err(|e| self.err(e))
    }

    /// The household: every person and the consent their latest ledger rows give.
    pub fn household(&self) -> Result<Household, StoreError> {
        read_household(&self.conn).map_err(|e| self.err(e))
    }

    /// Deletes the learning data derived for `personalise` (stored feedback), returning how
    /// many rows went.
    pub fn purge_personalise(&self) -> Result<usize, StoreError> {
        self.conn.execute("DELETE FROM feedback", []).map_err(|e| self.err(e))
    }

    /// The whole ledger, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT person, purpose, granted, at, source, text_version FROM consent_ledger ORDER BY id")
            .map_err(|e| self.err(e))?;
        type Raw = (String, String, bool, i64, String, String);
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Raw> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (person, purpose, granted, at, source, text_version) = row.map_err(|e| self.err(e))?;
            out.push(LedgerRow {
                person: PersonId::try_new(person).map_err(|e| self.err(e))?,
                purpose: purpose.parse::<Purpose>().map_err(|e| self.err(e))?,
                granted,
                at: from_sql_time(at),
                source: serde_json::from_value(serde_json::Value::String(source)).map_err(|e| self.err(e))?,
                text_version,
            });
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
                &format!("DELETE FROM {table} WHERE version NOT IN (SELECT version FROM {table} ORDER BY version DESC LIMIT 3)"),
                [],
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

    /// The highest decision id stored, so numbering continues after a restart.
    pub fn last_decision_id(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(decision_id), 0) FROM impressions", [], |r| r.get::<_, i64>(0))
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

/// Appends a revocation, inside the caller's transaction, for every purpose `person` has
/// granted that `which` selects.
fn revoke_all(
    conn: &Connection,
    person: &PersonId,
    at: UnixTime,
    source: &str,
    text_version: &str,
    which: impl Fn(Purpose) -> bool,
) -> rusqlite::Result<()> {
    let granted = read_household(conn)?.get(person).map_or(ConsentState::NONE, |m| m.consent);
    for purpose in Purpose::ALL.into_iter().filter(|p| which(*p) && granted.allows(*p)) {
        conn.execute(
            "INSERT INTO consent_ledger (person, purpose, granted, at, source, text_version) VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            params![person.as_str(), purpose.as_str(), to_sql_time(at), source, text_version],
        )?;
    }
    Ok(())
}

/// Deletes, inside the caller's transaction, what was stored for the purposes the device
/// loses between `before` and `after`: learning feedback with `personalise`, queued messages
/// of every purpose lost.
fn purge_lost(conn: &Connection, before: ConsentState, after: ConsentState) -> rusqlite::Result<()> {
    if before.allows(Purpose::Personalise) && !after.allows(Purpose::Personalise) {
        conn.execute("DELETE FROM feedback", [])?;
    }
    for lost in Purpose::ALL.into_iter().filter(|p| before.allows(*p) && !after.allows(*p)) {
        conn.execute("DELETE FROM outbox WHERE purpose = ?1", [lost.as_str()])?;
    }
    Ok(())
}

/// The household from the people table and the ledger: for each person and purpose, the
/// latest row.
fn read_household(conn: &Connection) -> rusqlite::Result<Household> {
    let mut household = Household::new();
    let mut stmt = conn.prepare("SELECT id, child FROM people ORDER BY id")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))? {
        let (id, child) = row?;
        // Ids were checked when the person was added.
        if let Ok(id) = PersonId::try_new(id) {
            household.insert(id, Member { child, consent: ConsentState::NONE });
        }
    }
    let mut stmt = conn.prepare(
        "SELECT person, purpose, granted FROM consent_ledger \
         WHERE id IN (SELECT MAX(id) FROM consent_ledger GROUP BY person, purpose)",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)))? {
        let (person, purpose, granted) = row?;
        // The table's CHECK constraint admits only the known purposes.
        if let (Ok(person), Ok(purpose)) = (PersonId::try_new(person), purpose.parse::<Purpose>()) {
            if let Some(member) = household.get_mut(&person) {
                member.consent = member.consent.with(purpose, granted);
            }
        }
    }
    Ok(household)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn build_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("agent.db")).unwrap();
        (dir, store)
    }

    fn consent_row(person: &str, purpose: Purpose, granted: bool, at: u64) -> LedgerRow {
        LedgerRow {
            person: PersonId::try_new(person).unwrap(),
            purpose,
            granted,
            at: UnixTime(at),
            source: ConsentSource::DeviceUi,
            text_version: "v1".into(),
        }
    }

    /// A shared device's rule, for the tests: the strictest consent of everyone.
    fn strictest(h: &Household) -> ConsentState {
        if h.is_empty() {
            return ConsentState::NONE;
        }
        h.values().fold(ConsentState::all(), |s, m| s.and(m.consent))
    }

    fn build_household_store(people: &[&str]) -> (tempfile::TempDir, Store) {
        let (dir, mut store) = build_store();
        for p in people {
            store.put_person(&PersonId::try_new(*p).unwrap(), false, UnixTime(0), &strictest).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn consent_state_is_derived_from_the_append_only_ledger() {
        let (_dir, mut store) = build_household_store(&["anna"]);
        let anna = PersonId::try_new("anna").unwrap();
        assert_eq!(store.household().unwrap()[&anna].consent, ConsentState::NONE);
        store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
        store.append_consent(&consent_row("anna", Purpose::Measure, true, 2), &strictest).unwrap();
        let (household, state) =
            store.append_consent(&consent_row("anna", Purpose::Personalise, false, 3), &strictest).unwrap();
        assert!(!state.allows(Purpose::Personalise));
        assert!(state.allows(Purpose::Measure));
        assert_eq!(household[&anna].consent, state);
        assert_eq!(store.ledger().unwrap().len(), 3);
        let update = store.conn.execute("UPDATE consent_ledger SET granted = 1", []);
        assert!(update.unwrap_err().to_string().contains("append-only"));
    }

    #[test]
    fn consent_is_kept_per_person() {
        let (_dir, mut store) = build_household_store(&["anna", "bo"]);
        store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
        let (household, state) =
            store.append_consent(&consent_row("bo", Purpose::Measure, true, 2), &strictest).unwrap();
        assert!(household[&PersonId::try_new("anna").unwrap()].consent.allows(Purpose::Personalise));
        assert!(!household[&PersonId::try_new("bo").unwrap()].consent.allows(Purpose::Personalise));
        assert_eq!(state, ConsentState::NONE, "nothing is granted by both");
    }

    #[test]
    fn making_someone_a_child_revokes_what_children_cannot_grant() {
        let (_dir, mut store) = build_household_store(&["kim"]);
        for p in Purpose::ALL {
            store.append_consent(&consent_row("kim", p, true, 1), &strictest).unwrap();
        }
        let kim = PersonId::try_new("kim").unwrap();
        let (household, _) = store.put_person(&kim, true, UnixTime(5), &strictest).unwrap();
        assert!(household[&kim].child);
        assert_eq!(household[&kim].consent, ConsentState::NONE.with(Purpose::Measure, true));
        let ledger = store.ledger().unwrap();
        assert_eq!(ledger.iter().filter(|r| r.text_version == "child-profile" && !r.granted).count(), 3);
    }

    #[test]
    fn losing_personalise_deletes_learning_data_in_the_same_transaction() {
        let (_dir, mut store) = build_household_store(&["anna"]);
        store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
        let offer = OfferId::try_new("milk").unwrap();
        let campaign = CampaignId::try_new("dairy").unwrap();
        store
            .record_impression(&ImpressionRow {
                decision: DecisionId(4),
                offer: offer.clone(),
                campaign,
                at: UnixTime(2),
            })
            .unwrap();
        store.record_feedback_event(DecisionId(4), &offer, None, FeedbackKind::Accepted, UnixTime(3), true).unwrap();
        assert_eq!(store.feedback().unwrap().len(), 1);
        store.append_consent(&consent_row("anna", Purpose::Personalise, false, 4), &strictest).unwrap();
        assert!(store.feedback().unwrap().is_empty());
        assert_eq!(store.last_decision_id().unwrap(), 4);
        assert_eq!(store.impressions_since(UnixTime(0)).unwrap().len(), 1);
    }

    #[test]
    fn erasing_revokes_records_and_deletes_device_data_at_once() {
        let (_dir, mut store) = build_household_store(&["anna"]);
        let anna = PersonId::try_new("anna").unwrap();
        store.append_consent(&consent_row("anna", Purpose::Personalise, true, 1), &strictest).unwrap();
        store.append_consent(&consent_row("anna", Purpose::Measure, true, 1), &strictest).unwrap();
        let offer = OfferId::try_new("milk").unwrap();
        let campaign = CampaignId::try_new("dairy").unwrap();
        store
            .record_impression(&ImpressionRow {
                decision: DecisionId(1),
                offer: offer.clone(),
                campaign,
                at: UnixTime(2),
            })
            .unwrap();
        store.record_feedback_event(DecisionId(1), &offer, None, FeedbackKind::Accepted, UnixTime(3), true).unwrap();
        let (household, state) = store.erase(&anna, true, UnixTime(9), ConsentSource::DeviceUi, &strictest).unwrap();
        assert_eq!((household[&anna].consent, state), (ConsentState::NONE, ConsentState::NONE));
        assert!(store.feedback_rows().unwrap().is_empty());
        assert!(store.impressions_since(UnixTime(0)).unwrap().is_empty());
        assert_eq!(store.erasures(&anna).unwrap(), vec![(UnixTime(9), "device_ui".to_string())]);
        assert_eq!(store.ledger().unwrap().iter().filter(|r| r.text_version == "erasure").count(), 2);
        // The records themselves cannot be rewritten or removed.
        assert!(store.conn.execute("DELETE FROM erasures", []).unwrap_err().to_string().contains("append-only"));
        assert!(store.conn.execute("DELETE FROM consent_ledger", []).unwrap_err().to_string().contains("append-only"));
    }

    #[test]
    fn losing_a_purpose_deletes_its_queued_messages_in_the_same_transaction() {
        let (_dir, mut store) = build_household_store(&["anna"]);
        store.append_consent(&consent_row("anna", Purpose::Measure, true, 1), &strictest).unwrap();
        store.append_consent(&consent_row("anna", Purpose::Request, true, 1), &strictest).unwrap();
        store.enqueue(Purpose::Measure, "ledtrad/v1/fleet/home/reports", b"{}", UnixTime(2)).unwrap();
        store.enqueue(Purpose::Request, "ledtrad/v1/offers/request", b"{}", UnixTime(2)).unwrap();
        store.append_consent(&consent_row("anna", Purpose::Measure, false, 3), &strictest).unwrap();
        let left = store.outbox().unwrap();
        assert_eq!(left.iter().map(|r| r.purpose).collect::<Vec<_>>(), vec![Purpose::Request]);
        store.outbox_remove(left[0].id).unwrap();
        assert!(store.outbox().unwrap().is_empty());
    }

    #[test]
    fn catalogues_keep_the_newest() {
        let (_dir, store) = build_store();
        for v in 1..=5 {
            store.save_catalogue(v, "home", &[v as u8], UnixTime(v)).unwrap();
        }
        assert_eq!(store.latest_catalogue().unwrap(), Some((5, vec![5])));
        let count: i64 = store.conn.query_row("SELECT COUNT(*) FROM catalogues", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 3);
    }
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
