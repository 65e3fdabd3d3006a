-- The home channel (DESIGN §6): the home this device belongs to, and consent ledger rows heard
-- from the home's other devices.

-- This database's name for its own ledger rows on a home channel: random, made once, kept
-- when the device leaves a home or its device_id changes, new when the database is new (so a
-- device whose database was lost never reuses the names of rows it made before).
CREATE TABLE ledger_origin (
    only   INTEGER PRIMARY KEY CHECK (only = 1),
    origin TEXT    NOT NULL
);
INSERT INTO ledger_origin (only, origin) VALUES (1, 'db-' || lower(hex(randomblob(8))));

-- At most one row: the home's key (32 bytes, forgotten by deleting the row; `secure_delete`
-- zeroes its page), and whether another device of the home has been heard (then, after a
-- reconnection that kept no broker session, decisions wait for one of them to answer).
CREATE TABLE home (
    only          INTEGER PRIMARY KEY CHECK (only = 1),
    key           BLOB    NOT NULL CHECK (length(key) = 32),
    joined_at     INTEGER NOT NULL,
    others_heard  INTEGER NOT NULL DEFAULT 0 CHECK (others_heard IN (0, 1))
);

-- A row heard from another device keeps the name it has on every device: that database's
-- origin and the row's number there. Rows made here have neither (their number is their id).
ALTER TABLE consent_ledger ADD COLUMN device TEXT;
ALTER TABLE consent_ledger ADD COLUMN seq INTEGER;
CREATE UNIQUE INDEX consent_ledger_heard ON consent_ledger (device, seq) WHERE device IS NOT NULL;
