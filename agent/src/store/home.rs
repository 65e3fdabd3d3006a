//! The home channel in the database: the home's key while the device belongs to a home, the
//! ledger rows as the home's devices share them, and what the device heard from the others,
//! taken in consent-bearing writes like its own changes ([`Store::consent_write`]).

use ledtrad_protocol::DeviceId;

use super::consent::read_household;
use super::*;
use crate::home::sync::HomeLedgerRow;
use crate::home::{HomeKey, KEY_BYTES};

impl Store {
    /// This database's name for its own ledger rows and messages on a home channel (made once
    /// with the database, see migration 0009).
    pub fn ledger_origin(&self) -> Result<DeviceId, StoreError> {
        let origin: String = self
            .conn
            .query_row("SELECT origin FROM ledger_origin WHERE only = 1", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        DeviceId::try_new(origin).map_err(|e| self.err(e))
    }

    /// The home this device belongs to, if any: its key.
    pub fn home(&self) -> Result<Option<HomeKey>, StoreError> {
        let bytes = self
            .conn
            .query_row("SELECT key FROM home WHERE only = 1", [], |r| r.get::<_, Vec<u8>>(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(bytes) = bytes.map(zeroize::Zeroizing::new) else { return Ok(None) };
        let mut key = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
        if bytes.len() != KEY_BYTES {
            return Err(self.err("the home key is not 32 bytes"));
        }
        key.copy_from_slice(&bytes);
        Ok(Some(HomeKey::from_bytes(*key)))
    }

    /// Keeps `key` as the home's.
    pub fn join_home(&mut self, key: &HomeKey, at: UnixTime) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO home (only, key, joined_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (only) DO UPDATE SET key = excluded.key, joined_at = excluded.joined_at, others_heard = 0",
                params![key.bytes().as_slice(), to_sql_time(at)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets the home's key (its page zeroed, the log checkpointed). What was heard from the
    /// home stays in the ledger, which is never changed.
    pub fn leave_home(&mut self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM home", []).map_err(|e| self.err(e))?;
        self.checkpoint();
        Ok(())
    }

    /// The ledger rows this device holds, as the home's devices name them (its own by `own`,
    /// its [`Store::ledger_origin`], and their ids), from `after` (an id of this database) on;
    /// and the last id read.
    pub fn home_rows(&self, own: &DeviceId, after: i64) -> Result<(Vec<HomeLedgerRow>, i64), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, COALESCE(device, ?1), COALESCE(seq, id), person, purpose, granted, at, source, text_version \
                 FROM consent_ledger WHERE id > ?2 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (i64, String, i64, String, String, bool, i64, String, String);
        let raw = stmt
            .query_map(params![own.as_str(), after], |r| -> rusqlite::Result<Raw> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
            })
            .map_err(|e| self.err(e))?;
        let (mut rows, mut last) = (Vec::new(), after);
        for row in raw {
            let (id, device, seq, person, purpose, granted, at, source, text_version) = row.map_err(|e| self.err(e))?;
            last = id;
            rows.push(HomeLedgerRow {
                at: from_sql_time(at),
                device: DeviceId::try_new(device).map_err(|e| self.err(e))?,
                seq: u64::try_from(seq).unwrap_or(0),
                person: PersonId::try_new(person).map_err(|e| self.err(e))?,
                purpose: purpose.parse::<Purpose>().map_err(|e| self.err(e))?,
                granted,
                source: serde_json::from_value(serde_json::Value::String(source)).map_err(|e| self.err(e))?,
                text_version,
            });
        }
        Ok((rows, last))
    }

    /// Takes what another device of the home said: the people it knows (added here when
    /// unknown; a child profile there is one here) and its ledger rows (each kept once, however
    /// often heard; rows this device made itself are skipped). Like a change made here, it is
    /// one consent-bearing write; returns the household and the purge, and how many rows and
    /// people were new.
    pub fn take_heard(
        &mut self,
        own: &DeviceId,
        people: &[(PersonId, bool)],
        rows: &[HomeLedgerRow],
        at: UnixTime,
        effective: &dyn Fn(&Household) -> ConsentState,
    ) -> Result<(Household, Purge, usize), StoreError> {
        let fresh = self.fresh(own, people, rows)?;
        if fresh == 0 {
            // Heard before (a replay, an answer to another device's hello): no write at all.
            let household = self.household()?;
            let state = effective(&household);
            return Ok((household, Purge::between(state, state), 0));
        }
        let mut new = 0;
        let (household, purge) = self.consent_write(effective, effective, |tx| {
            let known = read_household(tx)?;
            for (person, child) in people {
                if known.get(person).is_none_or(|m| *child && !m.child) {
                    tx.execute(
                        "INSERT INTO people (id, child, added_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (id) DO UPDATE SET child = MAX(child, excluded.child)",
                        params![person.as_str(), child, to_sql_time(at)],
                    )?;
                    new += 1;
                }
            }
            for row in rows.iter().filter(|r| &r.device != own) {
                new += tx.execute(
                    "INSERT OR IGNORE INTO consent_ledger (person, purpose, granted, at, source, text_version, device, seq) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        row.person.as_str(),
                        row.purpose.as_str(),
                        row.granted,
                        to_sql_time(row.at),
                        enum_text(&row.source),
                        row.text_version,
                        row.device.as_str(),
                        i64::try_from(row.seq).unwrap_or(i64::MAX)
                    ],
                )?;
            }
            Ok(())
        })?;
        Ok((household, purge, new))
    }

    /// How many of the people and rows heard are new here.
    fn fresh(&self, own: &DeviceId, people: &[(PersonId, bool)], rows: &[HomeLedgerRow]) -> Result<usize, StoreError> {
        let known = self.household()?;
        let mut fresh = people.iter().filter(|(p, child)| known.get(p).is_none_or(|m| *child && !m.child)).count();
        let mut held = self
            .conn
            .prepare_cached("SELECT 1 FROM consent_ledger WHERE device = ?1 AND seq = ?2")
            .map_err(|e| self.err(e))?;
        for row in rows.iter().filter(|r| &r.device != own) {
            let seq = i64::try_from(row.seq).unwrap_or(i64::MAX);
            if !held.exists(params![row.device.as_str(), seq]).map_err(|e| self.err(e))? {
                fresh += 1;
            }
        }
        Ok(fresh)
    }

    /// Whether another device of the home has been heard since this device joined it.
    pub fn others_heard(&self) -> Result<bool, StoreError> {
        self.conn
            .query_row("SELECT EXISTS (SELECT 1 FROM home WHERE others_heard = 1)", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Notes that another device of the home was heard.
    pub fn note_others_heard(&mut self) -> Result<(), StoreError> {
        self.conn.execute("UPDATE home SET others_heard = 1 WHERE others_heard = 0", []).map_err(|e| self.err(e))?;
        Ok(())
    }
}
