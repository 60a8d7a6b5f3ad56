-- 0005: unify (pipeline step 5): one profile per customer, every event.

-- One row per customer360_id. Golden values come with the record they were
-- taken from (<field>_from, a record key) and the survivorship rule that
-- chose it (<field>_rule). Times are UTC ISO 8601 text.
CREATE TABLE customer360_profiles (
    customer360_id      TEXT PRIMARY KEY,
    -- 1: no CRM record, no user or customer id, no e-mail: a visitor only.
    anonymous           INTEGER NOT NULL,
    name                TEXT,
    name_from           TEXT,
    name_rule           TEXT,
    email               TEXT,
    email_from          TEXT,
    email_rule          TEXT,
    phone               TEXT,
    phone_from          TEXT,
    phone_rule          TEXT,
    country             TEXT,
    country_from        TEXT,
    country_rule        TEXT,
    city                TEXT,
    city_from           TEXT,
    city_rule           TEXT,
    lifecycle_status    TEXT,
    lifecycle_from      TEXT,
    lifecycle_rule      TEXT,
    -- JSON array of {"status","at","record"}, oldest first.
    lifecycle_history   TEXT NOT NULL DEFAULT '[]',
    first_seen          TEXT,
    last_seen           TEXT,
    -- CRM customer ids, comma-separated.
    crm_ids             TEXT NOT NULL DEFAULT '',
    crm_records         INTEGER NOT NULL DEFAULT 0,
    web_events          INTEGER NOT NULL DEFAULT 0,
    transactions        INTEGER NOT NULL DEFAULT 0,
    -- JSON object: identifier kind -> distinct values.
    identifiers         TEXT NOT NULL DEFAULT '{}',
    orders              INTEGER NOT NULL DEFAULT 0,
    refunds             INTEGER NOT NULL DEFAULT 0,
    -- Net revenue (refunds are negative); AOV = gross order revenue / orders.
    revenue             REAL NOT NULL DEFAULT 0,
    aov                 REAL,
    first_order_at      TEXT,
    last_order_at       TEXT,
    favourite_category  TEXT,
    sessions_30d        INTEGER NOT NULL DEFAULT 0,
    sessions_90d        INTEGER NOT NULL DEFAULT 0,
    page_views_30d      INTEGER NOT NULL DEFAULT 0,
    page_views_90d      INTEGER NOT NULL DEFAULT 0,
    key_events_30d      INTEGER NOT NULL DEFAULT 0,
    key_events_90d      INTEGER NOT NULL DEFAULT 0,
    last_activity_at    TEXT,
    days_since_last_activity INTEGER,
    -- RFM: 1 (low) .. 5 (high) quintiles among customers with orders.
    rfm_recency         INTEGER,
    rfm_frequency       INTEGER,
    rfm_monetary        INTEGER,
    rfm_segment         TEXT,
    -- 0..1, and the signals of rules/profiles.toml that fired ("; "-separated).
    churn_risk          REAL NOT NULL DEFAULT 0,
    churn_signals       TEXT NOT NULL DEFAULT '',
    -- The "now" the recency figures were computed against.
    as_of               TEXT NOT NULL,
    -- Search keys: folded "first last" and "last first".
    name_key            TEXT,
    name_key_rev        TEXT,
    -- Hash of the row's content: a re-run rewrites only changed profiles.
    row_hash            INTEGER NOT NULL,
    updated_at          TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX profiles_by_name ON customer360_profiles(name_key);
CREATE INDEX profiles_by_name_rev ON customer360_profiles(name_key_rev);
CREATE INDEX profiles_by_email ON customer360_profiles(email);
CREATE INDEX profiles_by_phone ON customer360_profiles(phone);
CREATE INDEX profiles_by_revenue ON customer360_profiles(revenue);
CREATE INDEX profiles_by_last_activity ON customer360_profiles(last_activity_at);
CREATE INDEX profiles_by_churn ON customer360_profiles(churn_risk);

-- Every behavioural event: web events, transactions (purchases and
-- refunds), CRM lifecycle changes, each with its customer.
CREATE TABLE customer360_events (
    event_seq      INTEGER PRIMARY KEY,
    customer360_id TEXT NOT NULL,
    -- UTC ISO 8601.
    event_time     TEXT NOT NULL,
    -- Canonical name: page_view, purchase, refund, lifecycle:active ...
    event_name     TEXT NOT NULL,
    system         TEXT NOT NULL,
    source         TEXT NOT NULL,
    record_id      TEXT NOT NULL,
    record_key     TEXT NOT NULL,
    session_id     TEXT,
    device_id      TEXT,
    cookie_id      TEXT,
    user_id        TEXT,
    order_id       TEXT,
    product_id     TEXT,
    category       TEXT,
    revenue        REAL,
    currency       TEXT,
    -- 1 when the web event carried no user_id.
    anonymous      INTEGER NOT NULL DEFAULT 0,
    properties     TEXT
);
CREATE INDEX events_by_customer ON customer360_events(customer360_id, event_time);

-- Lookups by any id (search): record ids and identifier values.
CREATE INDEX id_map_by_record_id ON customer360_id_map(record_id);
CREATE INDEX identifiers_by_value ON identifiers(value);
