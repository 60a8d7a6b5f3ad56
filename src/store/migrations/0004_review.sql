-- 0004: fuzzy match candidates and steward decisions (issue 5).

-- Record pairs found by the fuzzy blocking rules and scored (left_key <
-- right_key). Rebuilt by every resolve run; auto-rejected pairs are counted
-- in the run report, not stored.
CREATE TABLE match_candidates (
    candidate_id INTEGER PRIMARY KEY,
    left_key     TEXT NOT NULL,
    right_key    TEXT NOT NULL,
    -- Sum of the per-field Fellegi-Sunter weights (log2 m/u, bits).
    weight       REAL NOT NULL,
    -- log2 of the posterior odds (weight + prior); 0 = a coin flip.
    match_weight REAL NOT NULL,
    probability  REAL NOT NULL,
    -- auto_merge | review
    band         TEXT NOT NULL,
    -- Names of the blocking rules that produced the pair, comma-separated.
    blocking     TEXT NOT NULL,
    -- JSON array: [{"comparison","level","weight","left","right","tf"}].
    comparisons  TEXT NOT NULL,
    -- Comma-separated flags: weak_bridge, refused (a cannot-link held).
    flags        TEXT NOT NULL DEFAULT '',
    -- The steward's latest decision on this pair: approve | reject | NULL.
    decision     TEXT,
    UNIQUE (left_key, right_key)
);
CREATE INDEX match_candidates_queue ON match_candidates(band, decision, match_weight);
CREATE INDEX match_candidates_by_right ON match_candidates(right_key);

-- Steward decisions. approve = must-link, reject = cannot-link (pair_left,
-- pair_right); split = the records of side 'a' are kept apart from those of
-- side 'b' (decision_members). Never deleted: undo sets undone_at.
CREATE TABLE steward_decisions (
    decision_id INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN ('approve', 'reject', 'split')),
    pair_left   TEXT,
    pair_right  TEXT,
    reason      TEXT NOT NULL DEFAULT '',
    undone_at   TEXT,
    undone_by   TEXT,
    undo_reason TEXT
);
CREATE INDEX steward_decisions_by_pair ON steward_decisions(pair_left, pair_right);

CREATE TABLE decision_members (
    decision_id INTEGER NOT NULL REFERENCES steward_decisions(decision_id),
    side        TEXT NOT NULL CHECK (side IN ('a', 'b')),
    record_key  TEXT NOT NULL,
    PRIMARY KEY (decision_id, side, record_key)
) WITHOUT ROWID;
CREATE INDEX decision_members_by_record ON decision_members(record_key);

-- Unions the clustering refused because a steward kept the records apart.
CREATE TABLE refused_unions (
    left_key    TEXT NOT NULL,
    right_key   TEXT NOT NULL,
    via         TEXT NOT NULL,
    decision_id INTEGER NOT NULL,
    at          TEXT NOT NULL
);

-- The fitted Fellegi-Sunter model of the last run: m, u and weight per
-- comparison level; the row '(prior)' holds lambda in m and the prior weight.
CREATE TABLE match_model (
    comparison TEXT NOT NULL,
    level      INTEGER NOT NULL,
    label      TEXT NOT NULL,
    m          REAL NOT NULL,
    u          REAL NOT NULL,
    weight     REAL NOT NULL,
    PRIMARY KEY (comparison, level)
);

-- An anonymous record on a shared device is attributed to the login nearest
-- in time: via_record is that login's record key.
ALTER TABLE identity_links ADD COLUMN via_record TEXT;
