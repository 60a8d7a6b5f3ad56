-- 0002: standardised tables and the record of what every rule did.

CREATE TABLE clean_crm_customers (
    source           TEXT NOT NULL,
    batch_id         INTEGER NOT NULL,
    row_num          INTEGER NOT NULL,
    customer_id      TEXT NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    full_name        TEXT,
    email            TEXT,
    email_valid      INTEGER,
    phone            TEXT,
    phone_valid      INTEGER,
    birth_date       TEXT,
    address          TEXT,
    city             TEXT,
    postcode         TEXT,
    region           TEXT,
    country          TEXT,
    country_valid    INTEGER,
    lifecycle_status TEXT,
    created_at       TEXT,
    updated_at       TEXT,
    extra            TEXT,
    flags            TEXT,
    PRIMARY KEY (source, customer_id)
);
CREATE INDEX clean_crm_by_email ON clean_crm_customers(email);
CREATE INDEX clean_crm_by_phone ON clean_crm_customers(phone);

CREATE TABLE clean_web_events (
    source         TEXT NOT NULL,
    batch_id       INTEGER NOT NULL,
    row_num        INTEGER NOT NULL,
    event_id       TEXT NOT NULL,
    event_name     TEXT NOT NULL,
    event_name_raw TEXT NOT NULL,
    event_mapped   INTEGER NOT NULL,
    event_time     TEXT NOT NULL,
    event_type     TEXT,
    user_id        TEXT,
    cookie_id      TEXT,
    device_id      TEXT,
    session_id     TEXT,
    page_url       TEXT,
    order_id       TEXT,
    properties     TEXT,
    extra          TEXT,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE clean_transactions (
    source           TEXT NOT NULL,
    batch_id         INTEGER NOT NULL,
    row_num          INTEGER NOT NULL,
    order_id         TEXT NOT NULL,
    transaction_type TEXT NOT NULL,
    customer_id      TEXT,
    email            TEXT,
    email_valid      INTEGER,
    order_time       TEXT NOT NULL,
    product_id       TEXT,
    product_name     TEXT,
    category         TEXT,
    quantity         INTEGER,
    unit_price       REAL,
    currency         TEXT,
    revenue          REAL NOT NULL,
    extra            TEXT,
    flags            TEXT,
    PRIMARY KEY (source, order_id, transaction_type)
);

-- One row per rule: what it looked at, changed and flagged in the last run.
CREATE TABLE rule_outcomes (
    rule         TEXT PRIMARY KEY,
    ordinal      INTEGER NOT NULL,
    target       TEXT NOT NULL,
    description  TEXT NOT NULL,
    rows_seen    INTEGER NOT NULL,
    rows_changed INTEGER NOT NULL,
    rows_flagged INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Before/after examples per record (the first ones of each rule).
CREATE TABLE rule_examples (
    rule      TEXT NOT NULL,
    n         INTEGER NOT NULL,
    source    TEXT NOT NULL,
    record_id TEXT NOT NULL,
    field     TEXT NOT NULL,
    before    TEXT,
    after     TEXT,
    flagged   INTEGER NOT NULL,
    PRIMARY KEY (rule, n)
);

-- Values a rule could not map (unknown countries, unmapped event names).
CREATE TABLE rule_unmapped (
    rule  TEXT NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (rule, value)
);
