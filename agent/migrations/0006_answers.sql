-- What people answered to shown offers. Dismissals, "not for me" and conversions rule offers
-- and categories out for a while, whatever the consent for learning; an erasure deletes them.
CREATE TABLE answers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id INTEGER NOT NULL,
    offer       TEXT    NOT NULL,
    category    TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('accepted', 'dismissed', 'not_for_me', 'converted')),
    at          INTEGER NOT NULL
);
CREATE INDEX answers_at ON answers (at);

-- Learning data may now also hold conversions.
CREATE TABLE feedback_new (
    decision_id INTEGER NOT NULL REFERENCES impressions (decision_id),
    offer       TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('accepted', 'dismissed', 'not_for_me', 'converted')),
    at          INTEGER NOT NULL,
    PRIMARY KEY (decision_id, kind)
);
INSERT INTO feedback_new SELECT decision_id, offer, kind, at FROM feedback;
DROP TABLE feedback;
ALTER TABLE feedback_new RENAME TO feedback;
