-- Messages for a consent purpose waiting to be handed to the broker. A revocation deletes the
-- rows of its purpose in the same transaction as its ledger row.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('personalise', 'request', 'measure', 'improve')),
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
