//! `c360 warehouse pull`: a warehouse run's `customer360_id_map`, its match
//! candidates and its profiles brought into the workspace, in one
//! transaction under the run lock, so stewards review the warehouse's pairs
//! in the workbench. Steward decisions and the audit log are kept (the next
//! `warehouse sql` carries the decisions back); a pair a steward already
//! decided keeps its decision and its candidate id.

use crate::pipeline::progress::NoProgress;
use crate::store::{self, versions};
use crate::workspace::Workspace;
use anyhow::{Context, Result, bail};
use rusqlite::{Connection, params_from_iter, types::Value};
use std::path::{Path, PathBuf};

/// What a pull brought in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pulled {
    pub id_map: u64,
    pub customers: u64,
    pub candidates: u64,
    pub review: u64,
    pub profiles: u64,
    /// Review-band pairs left out by `--sample`.
    pub not_sampled: u64,
}

impl Pulled {
    pub fn summary(&self) -> String {
        format!(
            "pulled {} records of {} customers, {} match candidates ({} to review{}), {} profiles",
            self.id_map,
            self.customers,
            self.candidates,
            self.review,
            if self.not_sampled > 0 {
                format!(", {} more left out of the sample", self.not_sampled)
            } else {
                String::new()
            },
            self.profiles
        )
    }
}

/// The CSV of table `name` in `from` (a folder, or a folder's `results/`).
fn file_of(from: &Path, name: &str) -> Option<PathBuf> {
    [
        from.join(format!("{name}.csv")),
        from.join("results").join(format!("{name}.csv")),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// A table's columns: (name, not null).
fn columns(conn: &Connection, table: &str) -> Result<Vec<(String, bool)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let cols = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)? != 0))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

/// Rows of a CSV as (header, records), every header checked against the
/// table: a column the table lacks is an error naming file and column.
fn read_csv(
    path: &Path,
    table_cols: &[(String, bool)],
) -> Result<(Vec<String>, Vec<csv::StringRecord>)> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(str::to_string).collect();
    for h in &header {
        if !table_cols.iter().any(|(c, _)| c == h) {
            bail!(
                "{}: column {h:?} is not a column of the workspace's table",
                path.display()
            );
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        rows.push(
            rec.with_context(|| format!("{}: record {} cannot be read", path.display(), i + 1))?,
        );
    }
    Ok((header, rows))
}

/// Insert CSV rows into `table` (an empty field is NULL where the column
/// allows it).
fn insert(
    conn: &Connection,
    table: &str,
    header: &[String],
    rows: &[csv::StringRecord],
    cols: &[(String, bool)],
) -> Result<u64> {
    let nullable: Vec<bool> = header
        .iter()
        .map(|h| cols.iter().any(|(c, nn)| c == h && !nn))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        header.join(", "),
        (1..=header.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut stmt = conn.prepare(&sql)?;
    for row in rows {
        let values = row.iter().zip(&nullable).map(|(v, &n)| {
            if v.is_empty() && n {
                Value::Null
            } else {
                Value::Text(v.to_string())
            }
        });
        stmt.execute(params_from_iter(values))?;
    }
    Ok(rows.len() as u64)
}

/// A deterministic pseudo-random rank of a pair (for `--sample`).
fn rank(left: &str, right: &str) -> [u8; 8] {
    let h = blake3::hash(format!("{left}\u{1f}{right}").as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.as_bytes()[..8]);
    out
}

/// Pull the results in `from` into the workspace.
pub fn pull(ws: &Workspace, from: &Path, sample: Option<usize>) -> Result<Pulled> {
    let id_path = file_of(from, "customer360_id_map").with_context(|| {
        format!(
            "{}: no customer360_id_map.csv (nor results/customer360_id_map.csv)",
            from.display()
        )
    })?;
    let db = ws.db_path();
    let _lock = store::lock::lock_run(&db, "warehouse pull", &NoProgress)?;
    let mut conn = store::open(&db)?;
    let tx = conn.transaction()?;
    let mut out = Pulled::default();
    let cols = columns(&tx, "customer360_id_map")?;
    let (header, rows) = read_csv(&id_path, &cols)?;
    tx.execute("DELETE FROM customer360_id_map", [])?;
    out.id_map = insert(&tx, "customer360_id_map", &header, &rows, &cols)?;
    out.customers = tx.query_row(
        "SELECT count(DISTINCT customer360_id) FROM customer360_id_map",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    if let Some(path) = file_of(from, "match_candidates") {
        pull_candidates(&tx, &path, sample, &mut out)?;
    }
    if let Some(path) = file_of(from, "customer360_profiles") {
        let cols = columns(&tx, "customer360_profiles")?;
        let (header, rows) = read_csv(&path, &cols)?;
        tx.execute("DELETE FROM customer360_profiles", [])?;
        out.profiles = insert(&tx, "customer360_profiles", &header, &rows, &cols)?;
        versions::bump(&tx, versions::PROFILES)?;
    }
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'c360', 'warehouse pull', ?2)",
        rusqlite::params![
            crate::pipeline::timeparse::now_utc(),
            format!("{} (from {})", out.summary(), from.display())
        ],
    )?;
    versions::bump(&tx, versions::IDENTITY)?;
    tx.commit()?;
    Ok(out)
}

/// Replace the candidates: a pair seen before keeps its id, a decided pair
/// its decision; with a sample, review-band pairs beyond it are left out.
fn pull_candidates(
    tx: &Connection,
    path: &Path,
    sample: Option<usize>,
    out: &mut Pulled,
) -> Result<()> {
    let cols = columns(tx, "match_candidates")?;
    let (header, mut rows) = read_csv(path, &cols)?;
    let at = |name: &str| header.iter().position(|h| h == name);
    let (Some(li), Some(ri), Some(bi)) = (at("left_key"), at("right_key"), at("band")) else {
        bail!(
            "{}: needs left_key, right_key and band columns",
            path.display()
        );
    };
    if let Some(n) = sample {
        let mut review: Vec<usize> = (0..rows.len())
            .filter(|&i| &rows[i][bi] == "review")
            .collect();
        review.sort_by_key(|&i| rank(&rows[i][li], &rows[i][ri]));
        let dropped: std::collections::HashSet<usize> = review.iter().skip(n).copied().collect();
        out.not_sampled = dropped.len() as u64;
        rows = rows
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, r)| r)
            .collect();
    }
    // The warehouse numbers its pairs afresh: a pair seen before keeps its
    // id, a new one gets the next of the workspace's sequence.
    let mut previous: std::collections::HashMap<(String, String), i64> =
        std::collections::HashMap::new();
    {
        let mut stmt =
            tx.prepare("SELECT left_key, right_key, candidate_id FROM match_candidates")?;
        for row in stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))? {
            let (k, v) = row?;
            previous.insert(k, v);
        }
    }
    let seq: i64 = tx
        .query_row(
            "SELECT next FROM id_sequence WHERE name = 'candidate_id'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(1);
    let mut next = seq.max(previous.values().max().map_or(1, |m| m + 1));
    tx.execute("DELETE FROM match_candidates", [])?;
    let wanted: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != "candidate_id" && header[i] != "decision")
        .collect();
    let mut names = vec!["candidate_id".to_string()];
    names.extend(wanted.iter().map(|&i| header[i].clone()));
    let rows: Vec<csv::StringRecord> = rows
        .iter()
        .map(|r| {
            let id = match previous.get(&(r[li].to_string(), r[ri].to_string())) {
                Some(&id) => id,
                None => {
                    next += 1;
                    next - 1
                }
            };
            let id = id.to_string();
            std::iter::once(id.as_str())
                .chain(wanted.iter().map(|&i| r.get(i).unwrap_or("")))
                .collect()
        })
        .collect();
    out.candidates = insert(tx, "match_candidates", &names, &rows, &cols)?;
    out.review = rows
        .iter()
        .filter(|r| &r[1 + wanted.iter().position(|&i| i == bi).unwrap_or(0)] == "review")
        .count() as u64;
    // Decisions in force on a pair.
    tx.execute_batch(
        "UPDATE match_candidates SET decision = (
            SELECT d.action FROM steward_decisions d
            WHERE d.pair_left = match_candidates.left_key AND d.pair_right = match_candidates.right_key AND d.undone_at IS NULL
              AND d.action IN ('approve', 'reject')
            ORDER BY d.decision_id DESC LIMIT 1);
",
    )?;
    tx.execute(
        "INSERT INTO id_sequence (name, next) VALUES ('candidate_id', ?1)
         ON CONFLICT(name) DO UPDATE SET next = max(next, excluded.next)",
        [next],
    )?;
    Ok(())
}
