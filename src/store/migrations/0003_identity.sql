-- 0003: identity resolution (deterministic part).

-- Every identifier value seen, and what it did: linked, blocked, over_limit.
CREATE TABLE identifiers (
    identifier_id INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    records       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    customers     INTEGER,
    UNIQUE (kind, value)
);

-- Record <-> identifier, and the rule (identifier kind) that read it.
CREATE TABLE identity_links (
    record_key    TEXT NOT NULL,
    identifier_id INTEGER NOT NULL,
    rule          TEXT NOT NULL
);
CREATE INDEX identity_links_by_record ON identity_links(record_key);
CREATE INDEX identity_links_by_identifier ON identity_links(identifier_id);

-- Every record's customer360_id (record_key = system:source:record id).
CREATE TABLE customer360_id_map (
    record_key     TEXT PRIMARY KEY,
    system         TEXT NOT NULL,
    source         TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    customer360_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX id_map_by_customer ON customer360_id_map(customer360_id);

-- Old id -> new id on every merge and split.
CREATE TABLE customer360_id_lineage (
    lineage_id INTEGER PRIMARY KEY,
    old_id     TEXT NOT NULL,
    new_id     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX lineage_by_old ON customer360_id_lineage(old_id);

-- Append-only log of identity changes and (later) steward decisions.
CREATE TABLE audit_log (
    audit_id INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    detail   TEXT NOT NULL
);

CREATE TABLE id_sequence (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
