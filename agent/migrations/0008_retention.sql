-- Bounded storage: what pruning keeps of the rows it deletes, so rules that look back for
-- good still hold exactly.

-- Impressions pruned past the longest cap window, counted per offer and campaign: all-time
-- caps (per offer, per campaign, per device) add these to the impressions still stored.
CREATE TABLE impression_totals (
    offer    TEXT    NOT NULL,
    campaign TEXT    NOT NULL,
    count    INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (offer, campaign)
);

-- Learning rows pruned, folded into each offer's posterior counts (held under `personalise`
-- like the rows they replace, and purged with them).
CREATE TABLE learning_totals (
    offer      TEXT    PRIMARY KEY,
    accepts    INTEGER NOT NULL CHECK (accepts >= 0),
    rejections INTEGER NOT NULL CHECK (rejections >= 0)
);

-- Counters that outlive the rows they were read from: the highest decision id ever stored,
-- so numbering continues after its impression is pruned.
CREATE TABLE storage_meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE INDEX feedback_at ON feedback (at);
CREATE INDEX prompt_answers_at ON prompt_answers (at);

-- The answers pruning keeps whatever their age: each offer's latest conversion (a conversion
-- excludes its offer for good).
CREATE VIEW lasting_answers AS SELECT MAX(id) AS id FROM answers WHERE kind = 'converted' GROUP BY offer;
