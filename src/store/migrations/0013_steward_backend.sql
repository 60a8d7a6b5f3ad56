-- 0013: the steward back end.

-- Bulk decisions (a score band approved or rejected at once) share a
-- bulk_id: undoing the latest decision undoes its whole bulk.
ALTER TABLE steward_decisions ADD COLUMN bulk_id INTEGER;
CREATE INDEX steward_decisions_by_bulk ON steward_decisions(bulk_id)
  WHERE bulk_id IS NOT NULL;

-- Audit entries in parts, for the Audit trail (older rows only have
-- detail): what the entry is about, why, and what changed; the decision
-- or bulk it records.
ALTER TABLE audit_log ADD COLUMN subject TEXT;
ALTER TABLE audit_log ADD COLUMN reason TEXT;
ALTER TABLE audit_log ADD COLUMN change TEXT;
ALTER TABLE audit_log ADD COLUMN decision_id INTEGER;
ALTER TABLE audit_log ADD COLUMN bulk_id INTEGER;

-- The customer360_id a rejection or split minted for the part holding
-- anchor_key, by the decision's scope (the pair rejected, the records split
-- off): doing the same decision again after an undo gives that part the
-- same id back while nobody else holds it.
CREATE TABLE minted_ids (
    scope          TEXT NOT NULL,
    anchor_key     TEXT NOT NULL,
    customer360_id TEXT NOT NULL,
    decision_id    INTEGER,
    at             TEXT NOT NULL,
    PRIMARY KEY (scope, anchor_key)
) WITHOUT ROWID;

-- Candidate ids are kept per pair across resolve runs; a new pair gets an
-- id never used before (the sequence only grows).
INSERT OR IGNORE INTO id_sequence (name, next)
  SELECT 'candidate_id', coalesce(max(candidate_id), 0) + 1 FROM match_candidates;

-- Customer search compares phones on their digits, whatever their format
-- (E.164, or as written when it could not be read): the same expression
-- as read::customers::PHONE_DIGITS and the unify step's index list.
CREATE INDEX IF NOT EXISTS profiles_by_phone_digits ON customer360_profiles(
  replace(replace(replace(replace(replace(replace(phone, '+', ''), ' ', ''), '-', ''), '(', ''), ')', ''), '.', ''));
