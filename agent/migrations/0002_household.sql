-- Household consent: a home holds several people, each with their own consent.

CREATE TABLE people (
    id       TEXT    PRIMARY KEY,
    child    INTEGER NOT NULL CHECK (child IN (0, 1)),
    added_at INTEGER NOT NULL
);

-- Rows written before households existed belong to the device's owner, named 'owner' by
-- default (the agent adds that person on start).
ALTER TABLE consent_ledger ADD COLUMN person TEXT NOT NULL DEFAULT 'owner';
