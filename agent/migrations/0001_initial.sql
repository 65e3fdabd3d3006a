-- ledtrad agent storage, version 1 (DESIGN §9).

-- Append-only consent ledger; the current state is derived from it, never stored apart.
CREATE TABLE consent_ledger (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('personalise', 'request', 'measure', 'improve')),
    granted      INTEGER NOT NULL CHECK (granted IN (0, 1)),
    at           INTEGER NOT NULL,
    source       TEXT    NOT NULL,
    text_version TEXT    NOT NULL
);

CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;

-- Verified catalogue envelopes, as received (re-verified on start).
CREATE TABLE catalogues (
    version     INTEGER PRIMARY KEY,
    fleet       TEXT    NOT NULL,
    envelope    BLOB    NOT NULL,
    applied_at  INTEGER NOT NULL
);

-- Offers shown, for caps across restarts.
CREATE TABLE impressions (
    decision_id INTEGER PRIMARY KEY,
    offer       TEXT    NOT NULL,
    campaign    TEXT    NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX impressions_at ON impressions (at);

-- Feedback on shown offers; used for learning only with `personalise`.
CREATE TABLE feedback (
    decision_id INTEGER PRIMARY KEY REFERENCES impressions (decision_id),
    offer       TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('accepted', 'dismissed', 'not_for_me')),
    at          INTEGER NOT NULL
);
