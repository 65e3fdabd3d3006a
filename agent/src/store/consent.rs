//! The consent ledger and the household in the database: consent-bearing writes in one
//! `synchronous=FULL` transaction each, which also carry out what the device loses with the
//! change ([`Purge`]), and the reads of the ledger.

use super::*;

impl Store {
    /// Runs `change` as a consent-bearing write: in one transaction with `synchronous=FULL`,
    /// working out the device's effective consent before the change with `before` and after it
    /// with `after` (which know whether the device is personal or shared, and who is present),
    /// and carrying out the stored part of the [`Purge`] between the two. Returns the household
    /// and the purge, read inside the transaction: once this returns `Ok`, the change is on
    /// disk and `purge.after()` is the state to enforce; on `Err`, nothing was written.
    pub(super) fn consent_write(
        &mut self,
        before: &dyn Fn(&Household) -> ConsentState,
        after: &dyn Fn(&Household) -> ConsentState,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(Household, Purge), StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| self.err(e))?;
        let result = (|| -> rusqlite::Result<(Household, Purge)> {
            let tx = self.conn.transaction()?;
            let was = before(&read_household(&tx)?);
            change(&tx)?;
            let household = read_household(&tx)?;
            let purge = Purge::between(was, after(&household));
            purge_stored(&tx, &purge)?;
            tx.commit()?;
            Ok((household, purge))
        })();
        if let Err(e) = self.conn.pragma_update(None, "synchronous", "NORMAL") {
            // Only slower writes follow from this; the change itself stands.
            tracing::warn!("database '{}': could not return to synchronous=NORMAL: {e}", self.path.display());
        }
        result.map_err(|e| self.err(e))
    }

    /// Changes who the device works for without a ledger row (who is present at a shared
    /// device): the consent in force goes from what `before` makes of the household to what
    /// `after` makes of it, and what that loses is purged in one transaction.
    pub fn change_presence(
        &mut self,
        before: &dyn Fn(&Household) -> ConsentState,
        after: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, Purge), StoreError> {
        self.consent_write(before, after, |_| Ok(()))
    }

    /// Appends a consent change to the ledger (see [`Store::consent_write`] for what happens
    /// with it in the same transaction).
    pub fn append_consent(
        &mut self,
        row: &LedgerRow,
        effective: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, Purge), StoreError> {
        self.consent_write(effective, effective, |tx| {
            let at = ledger_time(tx, &row.person, row.purpose, row.at)?;
            tx.execute(
                "INSERT INTO consent_ledger (person, purpose, granted, at, source, text_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    row.person.as_str(),
                    row.purpose.as_str(),
                    row.granted,
                    to_sql_time(at),
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
    ) -> Result<(Household, Purge), StoreError> {
        self.consent_write(effective, effective, |tx| {
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
    ) -> Result<(Household, Purge), StoreError> {
        let source = enum_text(&source);
        let result = self.consent_write(effective, effective, |tx| {
            revoke_all(tx, person, at, &source, "erasure", |_| true)?;
            tx.execute(
                "INSERT INTO erasures (person, at, source) VALUES (?1, ?2, ?3)",
                params![person.as_str(), to_sql_time(at), source],
            )?;
            if device_data {
                for table in [
                    "feedback",
                    "learning_totals",
                    "answers",
                    "prompt_answers",
                    "impressions",
                    "impression_totals",
                    "outbox",
                ] {
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

    /// The household: every person and the consent their latest ledger rows give.
    pub fn household(&self) -> Result<Household, StoreError> {
        read_household(&self.conn).map_err(|e| self.err(e))
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
        let at = ledger_time(conn, person, purpose, at)?;
        conn.execute(
            "INSERT INTO consent_ledger (person, purpose, granted, at, source, text_version) VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            params![person.as_str(), purpose.as_str(), to_sql_time(at), source, text_version],
        )?;
    }
    Ok(())
}

/// Deletes, inside the caller's transaction, what was stored for the purposes `purge` loses:
/// learning feedback (and the posterior counts folded from it) with `personalise`, queued
/// messages of every purpose lost.
fn purge_stored(conn: &Connection, purge: &Purge) -> rusqlite::Result<()> {
    if purge.learning() {
        conn.execute("DELETE FROM feedback", [])?;
        conn.execute("DELETE FROM learning_totals", [])?;
    }
    for lost in purge.lost() {
        conn.execute("DELETE FROM outbox WHERE purpose = ?1", [lost.as_str()])?;
    }
    Ok(())
}

/// The time a row for `person` and `purpose` made here now is entered with: after every row
/// the ledger holds for them (made here or heard from the home's other devices), so that a
/// change made after another comes after it in the ledger's order on every device, even where
/// clocks disagree. Rows made on two devices that had not heard of each other can share a
/// second; then a revocation wins.
pub(super) fn ledger_time(
    conn: &Connection,
    person: &PersonId,
    purpose: Purpose,
    now: UnixTime,
) -> rusqlite::Result<UnixTime> {
    let latest: Option<i64> = conn.query_row(
        "SELECT MAX(at) FROM consent_ledger WHERE person = ?1 AND purpose = ?2",
        params![person.as_str(), purpose.as_str()],
        |r| r.get(0),
    )?;
    Ok(latest.map_or(now, |at| now.max(from_sql_time(at).plus_secs(1))))
}

/// The household from the people table and the ledger: for each person and purpose, the
/// latest row in the ledger's order, which is the same on every device of a home: by time, a
/// revocation after a grant of the same second, then the database the row was made in
/// ([`Store::ledger_origin`]), then its number there.
pub(super) fn read_household(conn: &Connection) -> rusqlite::Result<Household> {
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
        "SELECT person, purpose, granted FROM ( \
             SELECT person, purpose, granted, ROW_NUMBER() OVER ( \
                 PARTITION BY person, purpose \
                 ORDER BY at DESC, granted ASC, COALESCE(device, (SELECT origin FROM ledger_origin)) DESC, \
                          COALESCE(seq, id) DESC \
             ) AS newest FROM consent_ledger \
         ) WHERE newest = 1",
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
