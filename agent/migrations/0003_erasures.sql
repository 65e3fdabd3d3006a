-- Erasures a person asked for: an append-only record kept beside the consent ledger.
CREATE TABLE erasures (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    person TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    source TEXT    NOT NULL
);

CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
BEGIN
    SELECT RAISE(ABORT, 'the erasure record is append-only');
END;

CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
BEGIN
    SELECT RAISE(ABORT, 'the erasure record is append-only');
END;

CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
