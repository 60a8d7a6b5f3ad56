-- 0008: incremental runs. Every step that writes a table family bumps its
-- version; a step remembers the fingerprint of what it last read (its input
-- versions and rule files) and skips when nothing changed.

-- staged | clean | identity | profiles | analytics
CREATE TABLE data_versions (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE step_state (
    step        TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    at          TEXT NOT NULL
) WITHOUT ROWID;

-- The unify rules (survivorship.toml, profiles.toml) the current profiles
-- were built with: a steward decision refreshes the affected profiles with
-- them at once.
CREATE TABLE unify_rules (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    survivorship TEXT NOT NULL,
    profiles     TEXT NOT NULL
);

-- What standardise last did: the rules it used and the last batch it
-- covered. With the same rules, a run only standardises newer batches.
CREATE TABLE standardise_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    rules_fingerprint TEXT NOT NULL,
    through_batch     INTEGER NOT NULL
);
