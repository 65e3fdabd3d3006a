//! The home channel in the database: the home's key while the device belongs to a home, the
//! ledger rows as the home's devices share them, and what the device heard from the others,
//! taken in consent-bearing writes like its own changes ([`Store::consent_write`]).

use ledtrad_protocol::DeviceId;

use super::consent::read_household;
use super::*;
use crate::home::sync::HomeLedgerRow;
use crate::home::{HomeKey, KEY_BYTES};

impl Store {
    /// The home this device belongs to, if any: its key and this device's id on the channel.
    pub fn home(&self) -> Result<Option<(HomeKey, DeviceId)>, StoreError> {
        let row = self
            .conn
            .query_row("SELECT key, device FROM home WHERE only = 1", [], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((bytes, device)) = row else { return Ok(None) };
        let bytes = zeroize::Zeroizing::new(bytes);
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| self.err("the home key is not 32 bytes"))?;
        let device = DeviceId::try_new(device).map_err(|e| self.err(e))?;
        Ok(Some((HomeKey::from_bytes(key), device)))
    }

    /// Keeps `key` as the home's, with `device` naming this device's rows on the channel; a
    /// device belongs to one home at a time, so this replaces the home it was in.
    pub fn join_home(&mut self, key: &HomeKey, device: &DeviceId, at: UnixTime) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO home (only, key, device, joined_at) VALUES (1, ?1, ?2, ?3) \
                 ON CONFLICT (only) DO UPDATE SET key = excluded.key, device = excluded.device, joined_at = excluded.joined_at",
                params![key.bytes().as_slice(), device.as_str(), to_sql_time(at)],
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

    /// The ledger rows this device holds, as the home's devices name them (its own named by
    /// `device` and their ids), and the household's people with whether each is a child;
    /// rows from `after` (an id of this database) on only.
    pub fn home_rows(&self, device: &DeviceId, after: i64) -> Result<(Vec<HomeLedgerRow>, i64), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, COALESCE(device, ?1), COALESCE(seq, id), person, purpose, granted, at, source, text_version \
                 FROM consent_ledger WHERE id > ?2 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (i64, String, i64, String, String, bool, i64, String, String);
        let raw = stmt
            .query_map(params![device.as_str(), after], |r| -> rusqlite::Result<Raw> {
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
}
