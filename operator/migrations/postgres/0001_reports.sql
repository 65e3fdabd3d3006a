-- The fleet's reports as received (DESIGN §12), on PostgreSQL for collectors that share one
-- database: the same columns as the SQLite store. Reports carry no device id, and none is
-- stored; each report's own random id is unique, so a report two collectors (or one, twice)
-- receive is stored once. Reports from agents that predate ids have none.
CREATE TABLE reports (
    id                BIGSERIAL PRIMARY KEY,
    received_at       BIGINT           NOT NULL,
    fleet             TEXT             NOT NULL,
    campaign          TEXT             NOT NULL,
    arm               TEXT             NOT NULL CHECK (arm IN ('treatment', 'holdout')),
    day               INTEGER          NOT NULL CHECK (day >= 0),
    catalogue_version BIGINT           NOT NULL CHECK (catalogue_version >= 0),
    epsilon           DOUBLE PRECISION NOT NULL CHECK (epsilon > 0),
    impressions       INTEGER          NOT NULL,
    accepts           INTEGER          NOT NULL,
    dismissals        INTEGER          NOT NULL,
    conversions       INTEGER          NOT NULL,
    report_id         TEXT             UNIQUE
);

CREATE INDEX reports_campaign_day ON reports (campaign, day);
