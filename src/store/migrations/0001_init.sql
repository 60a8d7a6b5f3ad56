-- 0001: sources, load batches, rejects, staging tables, pipeline runs.
-- raw_<source> tables are created by the loader, one per source.
-- Raw and staging rows are keyed by their rowid = batch_id << 32 | row_num
-- (one b-tree per table, no extra index; see stage::row_key).

CREATE TABLE sources (
    name        TEXT PRIMARY KEY,
    system      TEXT NOT NULL,
    location    TEXT NOT NULL,
    format      TEXT NOT NULL,
    raw_table   TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE load_batches (
    batch_id      INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    system        TEXT NOT NULL,
    location      TEXT NOT NULL,
    format        TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    rows_read     INTEGER NOT NULL,
    rows_staged   INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    seconds       REAL NOT NULL,
    status        TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    CHECK (rows_read = rows_staged + rows_rejected)
);
CREATE UNIQUE INDEX load_batches_content ON load_batches(source, content_hash);

CREATE TABLE rejects (
    reject_id  INTEGER PRIMARY KEY,
    batch_id   INTEGER NOT NULL REFERENCES load_batches(batch_id),
    source     TEXT NOT NULL,
    row_num    INTEGER NOT NULL,
    field      TEXT,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    raw        BLOB
);
CREATE INDEX rejects_by_source_reason ON rejects(source, reason, reject_id);
CREATE INDEX rejects_by_reason ON rejects(reason, reject_id);

CREATE TABLE stg_crm_customers (
    source           TEXT NOT NULL,
    batch_id         INTEGER NOT NULL,
    row_num          INTEGER NOT NULL,
    customer_id      TEXT NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    full_name        TEXT,
    email            TEXT,
    phone            TEXT,
    birth_date       TEXT,
    address          TEXT,
    city             TEXT,
    postcode         TEXT,
    region           TEXT,
    country          TEXT,
    lifecycle_status TEXT,
    created_at       TEXT,
    created_at_raw   TEXT,
    updated_at       TEXT,
    updated_at_raw   TEXT,
    extra            TEXT
);

CREATE TABLE stg_web_events (
    source         TEXT NOT NULL,
    batch_id       INTEGER NOT NULL,
    row_num        INTEGER NOT NULL,
    event_id       TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    event_time     TEXT NOT NULL,
    event_time_raw TEXT NOT NULL,
    event_type     TEXT,
    user_id        TEXT,
    cookie_id      TEXT,
    device_id      TEXT,
    session_id     TEXT,
    page_url       TEXT,
    order_id       TEXT,
    properties     TEXT,
    extra          TEXT
);

CREATE TABLE stg_transactions (
    source           TEXT NOT NULL,
    batch_id         INTEGER NOT NULL,
    row_num          INTEGER NOT NULL,
    order_id         TEXT NOT NULL,
    customer_id      TEXT,
    email            TEXT,
    order_time       TEXT NOT NULL,
    order_time_raw   TEXT NOT NULL,
    product_id       TEXT,
    product_name     TEXT,
    category         TEXT,
    quantity         INTEGER,
    unit_price       REAL,
    currency         TEXT,
    revenue          REAL NOT NULL,
    transaction_type TEXT,
    extra            TEXT
);

CREATE TABLE pipeline_runs (
    run_id      INTEGER PRIMARY KEY,
    step        TEXT NOT NULL,
    status      TEXT NOT NULL,
    rows_in     INTEGER NOT NULL DEFAULT 0,
    rows_out    INTEGER NOT NULL DEFAULT 0,
    seconds     REAL NOT NULL DEFAULT 0,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    message     TEXT
);
CREATE INDEX pipeline_runs_by_step ON pipeline_runs(step, run_id);
