-- Signed scoring models the device applied (envelope bytes as pushed, so they are verified
-- again on start); the newest that still verifies is used.
CREATE TABLE models (
    version     INTEGER PRIMARY KEY,
    fleet       TEXT    NOT NULL,
    envelope    BLOB    NOT NULL,
    applied_at  INTEGER NOT NULL
);
