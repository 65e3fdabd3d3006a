-- The home channel (DESIGN §6): the home this device belongs to, and consent ledger rows heard
-- from the home's other devices.

-- At most one row: the home's key (32 bytes, forgotten by deleting the row; `secure_delete`
-- zeroes its page) and this device's id as its rows are named on the channel.
CREATE TABLE home (
    only      INTEGER PRIMARY KEY CHECK (only = 1),
    key       BLOB    NOT NULL CHECK (length(key) = 32),
    device    TEXT    NOT NULL,
    joined_at INTEGER NOT NULL
);

-- A row heard from another device keeps the name it has on every device: that device's id and
-- the row's number there. Rows made here have neither (their number is their id).
ALTER TABLE consent_ledger ADD COLUMN device TEXT;
ALTER TABLE consent_ledger ADD COLUMN seq INTEGER;
CREATE UNIQUE INDEX consent_ledger_heard ON consent_ledger (device, seq) WHERE device IS NOT NULL;
