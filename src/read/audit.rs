//! The Audit trail: who did what, when and why, newest first. Steward
//! decisions, bulks, splits and undos come from `audit_log`; every step run
//! from `pipeline_runs`. One query over both, filtered and paged in SQLite.

use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// The kinds of entry, in the order a filter menu lists them.
pub const KINDS: [&str; 6] = ["approve", "reject", "split", "undo", "bulk", "run"];

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Unique over the trail: `log:<audit_id>` or `run:<run_id>`.
    pub id: String,
    /// When (UTC, RFC 3339: `2024-05-01T10:00:00Z`).
    pub at: String,
    /// Who: the steward, or `pipeline` for a step run.
    pub actor: String,
    /// approve, reject, split, undo, bulk or run.
    pub kind: String,
    /// What: the pair's record keys, the records split off and their
    /// customer, the decision or bulk undone, the step run.
    pub subject: String,
    /// Why: the steward's reason; a run's message.
    pub reason: String,
    /// What changed: customers merged or split ("C360-… and C360-… are now
    /// C360-…"); a run's status, rows in and out and seconds.
    pub change: String,
    /// The decision the entry records (single decisions and their undos).
    pub decision_id: Option<i64>,
    /// The bulk the entry records (a bulk and its undo).
    pub bulk_id: Option<i64>,
}

/// Which entries the trail shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only these kinds (see [`KINDS`]); empty: every kind.
    pub kinds: Vec<String>,
    /// Only entries whose actor, subject, reason or change contain this
    /// text (case-insensitive for ASCII letters, as SQLite's LIKE).
    pub text: Option<String>,
}

/// Both sources as one table: (id, at, actor, kind, subject, reason,
/// change, decision_id, bulk_id, src, n); src and n order entries of the
/// same second (newest first within a source).
const TRAIL: &str = "
    SELECT 'log:' || audit_id AS id, at, actor, action AS kind,
           coalesce(subject, detail) AS subject, coalesce(reason, '') AS reason,
           coalesce(change, '') AS change, decision_id, bulk_id, 0 AS src, audit_id AS n
    FROM audit_log WHERE action IN ('approve', 'reject', 'split', 'undo', 'bulk')
    UNION ALL
    SELECT 'run:' || run_id, coalesce(finished_at, started_at), 'pipeline', 'run', step,
           coalesce(message, ''),
           status || ': ' || rows_in || ' rows in, ' || rows_out || ' out, '
             || printf('%.1f', seconds) || ' s',
           NULL, NULL, 1, run_id
    FROM pipeline_runs";

/// The WHERE clause of a filter and its parameters.
fn conditions(filter: &AuditFilter) -> (String, Vec<Value>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if !filter.kinds.is_empty() {
        let marks: Vec<String> = filter
            .kinds
            .iter()
            .map(|k| {
                args.push(Value::Text(k.clone()));
                format!("?{}", args.len())
            })
            .collect();
        conds.push(format!("kind IN ({})", marks.join(", ")));
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
        let escaped = text
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(Value::Text(format!("%{escaped}%")));
        let n = args.len();
        conds.push(format!(
            "(actor LIKE ?{n} ESCAPE '\\' OR subject LIKE ?{n} ESCAPE '\\'
              OR reason LIKE ?{n} ESCAPE '\\' OR change LIKE ?{n} ESCAPE '\\')"
        ));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (sql, args)
}

/// A page of the trail, newest first: `limit` entries after the first
/// `offset`.
pub fn list(
    conn: &Connection,
    filter: &AuditFilter,
    offset: u64,
    limit: u64,
) -> Result<Vec<AuditRow>> {
    let (where_sql, mut args) = conditions(filter);
    args.push(Value::Integer(limit.min(i64::MAX as u64) as i64));
    args.push(Value::Integer(offset.min(i64::MAX as u64) as i64));
    let sql = format!(
        "SELECT id, at, actor, kind, subject, reason, change, decision_id, bulk_id
         FROM ({TRAIL}) {where_sql} ORDER BY at DESC, src, n DESC LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok(AuditRow {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            kind: r.get(3)?,
            subject: r.get(4)?,
            reason: r.get(5)?,
            change: r.get(6)?,
            decision_id: r.get(7)?,
            bulk_id: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How many entries match a filter.
pub fn count(conn: &Connection, filter: &AuditFilter) -> Result<u64> {
    let (where_sql, args) = conditions(filter);
    let n: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM ({TRAIL}) {where_sql}"))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(kinds: &[&str], text: Option<&str>) -> AuditFilter {
        AuditFilter {
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            text: text.map(str::to_string),
        }
    }

    #[test]
    fn both_sources_newest_first_filtered_by_kind_and_text() {
        let conn = crate::store::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO audit_log (at, actor, action, detail, subject, reason, change, decision_id)
               VALUES ('2024-05-01T10:00:00Z', 'ann', 'approve', 'd', 'crm:a / crm:b', 'Same phone',
                       'C360-1 and C360-2 are now C360-1', 1);
             INSERT INTO audit_log (at, actor, action, detail)
               VALUES ('2024-05-01T11:00:00Z', 'pipeline', 'resolve', 'not in the trail');
             INSERT INTO audit_log (at, actor, action, detail)
               VALUES ('2024-05-01T09:00:00Z', 'bob', 'reject', 'decision 0: an old entry');
             INSERT INTO pipeline_runs (step, status, rows_in, rows_out, seconds, started_at, finished_at, message)
               VALUES ('resolve', 'ok', 10, 4, 1.5, '2024-05-01T10:30:00Z', '2024-05-01T10:30:02Z', 'fine');",
        )
        .unwrap();
        let all = list(&conn, &AuditFilter::default(), 0, 10).unwrap();
        let kinds: Vec<&str> = all.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["run", "approve", "reject"]);
        assert_eq!(all[0].subject, "resolve");
        assert_eq!(all[0].change, "ok: 10 rows in, 4 out, 1.5 s");
        assert_eq!(all[0].id, "run:1");
        assert_eq!(all[1].decision_id, Some(1));
        assert_eq!(
            all[2].subject, "decision 0: an old entry",
            "older rows: detail"
        );
        assert_eq!(count(&conn, &AuditFilter::default()).unwrap(), 3);
        // Paging.
        assert_eq!(
            list(&conn, &AuditFilter::default(), 1, 1).unwrap()[0].kind,
            "approve"
        );
        // Kinds, and text in any column, any case.
        let f = filter(&["approve", "reject"], None);
        assert_eq!(count(&conn, &f).unwrap(), 2);
        for text in ["same PHONE", "crm:B", "ANN", "c360-2"] {
            let rows = list(&conn, &filter(&[], Some(text)), 0, 10).unwrap();
            assert_eq!(rows.len(), 1, "{text}");
            assert_eq!(rows[0].kind, "approve", "{text}");
        }
        // LIKE's wildcards are plain text.
        assert_eq!(count(&conn, &filter(&[], Some("%"))).unwrap(), 0);
        assert_eq!(count(&conn, &filter(&["run"], Some("fine"))).unwrap(), 1);
    }
}
