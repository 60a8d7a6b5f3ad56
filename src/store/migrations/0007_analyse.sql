-- 0007: analyse (pipeline step 6): the tables the Analytics screen and the
-- report draw. Rebuilt by every run.

-- Customers per lifecycle status at the end of each month (from the CRM
-- lifecycle changes), and 'current' from the profiles.
CREATE TABLE analytics_lifecycle (
    month     TEXT NOT NULL,
    status    TEXT NOT NULL,
    customers INTEGER NOT NULL,
    PRIMARY KEY (month, status)
) WITHOUT ROWID;

-- Revenue, orders and active customers per day / week (ISO, Monday) / month.
CREATE TABLE analytics_activity (
    grain            TEXT NOT NULL,
    period           TEXT NOT NULL,
    revenue          REAL NOT NULL,
    orders           INTEGER NOT NULL,
    refunds          INTEGER NOT NULL,
    active_customers INTEGER NOT NULL,
    -- Customers whose first order falls in the period.
    new_customers    INTEGER NOT NULL,
    PRIMARY KEY (grain, period)
) WITHOUT ROWID;

-- Retention: customers by first-purchase month, and how many were active
-- (any event or order) k months later.
CREATE TABLE analytics_cohorts (
    cohort       TEXT NOT NULL,
    months_after INTEGER NOT NULL,
    customers    INTEGER NOT NULL,
    active       INTEGER NOT NULL,
    share        REAL NOT NULL,
    PRIMARY KEY (cohort, months_after)
) WITHOUT ROWID;

-- Churn: customers and their revenue by risk band, and by signal.
CREATE TABLE analytics_churn (
    kind      TEXT NOT NULL,   -- band | signal
    name      TEXT NOT NULL,
    customers INTEGER NOT NULL,
    revenue   REAL NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;

-- Funnel: distinct customers doing each step within a period before "now".
CREATE TABLE analytics_funnel (
    period    TEXT NOT NULL,
    step_no   INTEGER NOT NULL,
    step      TEXT NOT NULL,
    customers INTEGER NOT NULL,
    PRIMARY KEY (period, step_no)
) WITHOUT ROWID;
