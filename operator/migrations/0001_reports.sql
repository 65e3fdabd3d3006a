-- The fleet's reports as received (DESIGN §12): one row per report, noised counts as sent.
-- Reports carry no device id, and none is stored.
CREATE TABLE reports (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at       INTEGER NOT NULL,
    fleet             TEXT    NOT NULL,
    campaign          TEXT    NOT NULL,
    arm               TEXT    NOT NULL CHECK (arm IN ('treatment', 'holdout')),
    day               INTEGER NOT NULL CHECK (day >= 0),
    catalogue_version INTEGER NOT NULL CHECK (catalogue_version >= 0),
    epsilon           REAL    NOT NULL CHECK (epsilon > 0),
    impressions       INTEGER NOT NULL,
    accepts           INTEGER NOT NULL,
    dismissals        INTEGER NOT NULL,
    conversions       INTEGER NOT NULL
);

CREATE INDEX reports_campaign_day ON reports (campaign, day);
