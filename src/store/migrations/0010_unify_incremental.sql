-- 0010: unify runs incrementally. It remembers what it last covered: the
-- rebuild count of the clean tables (a full standardise rewrites them),
-- the last web event and transaction rows it made events of (these tables
-- only grow between full standardise runs), the last batch (CRM records
-- of newer batches replace their earlier version) and its event counts.
CREATE TABLE unify_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    clean_rebuilt      INTEGER NOT NULL,
    through_batch      INTEGER NOT NULL,
    web_rowid          INTEGER NOT NULL,
    transactions_rowid INTEGER NOT NULL,
    web                INTEGER NOT NULL,
    orders             INTEGER NOT NULL,
    lifecycle          INTEGER NOT NULL,
    lifecycle_untimed  INTEGER NOT NULL
);

-- Customers whose records changed id (their ids before and after) since
-- unify last ran: written by resolve and by a decision whose live refresh
-- failed; unify moves their events, rebuilds their profiles and clears it.
CREATE TABLE identity_changes (
    customer360_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Links keyed by (record, identifier): resolve writes only the difference
-- from the last run, found by reading them in this order.
CREATE TABLE identity_links_keyed (
    record_key    TEXT NOT NULL,
    identifier_id INTEGER NOT NULL,
    rule          TEXT NOT NULL,
    via_record    TEXT,
    PRIMARY KEY (record_key, identifier_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO identity_links_keyed (record_key, identifier_id, rule, via_record)
    SELECT record_key, identifier_id, rule, via_record FROM identity_links;
DROP TABLE identity_links;
ALTER TABLE identity_links_keyed RENAME TO identity_links;
CREATE INDEX identity_links_by_identifier ON identity_links(identifier_id);

-- A hash of each CRM record's content as unify last saw it: a re-export
-- repeats most records unchanged, and only changed ones are rebuilt.
CREATE TABLE unify_crm_seen (
    record_key TEXT PRIMARY KEY,
    content    INTEGER NOT NULL
) WITHOUT ROWID;

-- A CRM record's lifecycle event, found by its record (a changed record's
-- event is replaced).
CREATE INDEX events_crm_by_record ON customer360_events(record_key) WHERE system = 'crm';
