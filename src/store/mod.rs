//! The SQLite store: open (WAL, busy timeout), numbered migrations embedded in
//! the binary, and the typed queries the CLI and (later) the TUI share.

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

pub mod lock;
pub mod versions;

/// Numbered migrations, applied in order; `PRAGMA user_version` records the
/// last one applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    (
        "0002_standardise",
        include_str!("migrations/0002_standardise.sql"),
    ),
    (
        "0003_identity",
        include_str!("migrations/0003_identity.sql"),
    ),
    ("0004_review", include_str!("migrations/0004_review.sql")),
    ("0005_unify", include_str!("migrations/0005_unify.sql")),
    (
        "0006_profiles_lifecycle",
        include_str!("migrations/0006_profiles_lifecycle.sql"),
    ),
    ("0007_analyse", include_str!("migrations/0007_analyse.sql")),
    (
        "0008_incremental",
        include_str!("migrations/0008_incremental.sql"),
    ),
    ("0009_restage", include_str!("migrations/0009_restage.sql")),
    (
        "0010_unify_incremental",
        include_str!("migrations/0010_unify_incremental.sql"),
    ),
    (
        "0011_phase_times",
        include_str!("migrations/0011_phase_times.sql"),
    ),
    (
        "0012_real_exports",
        include_str!("migrations/0012_real_exports.sql"),
    ),
    (
        "0013_steward_backend",
        include_str!("migrations/0013_steward_backend.sql"),
    ),
];

/// Open (creating if needed) the database at `path` and bring its schema up
/// to date. Every write transaction on the connection is `BEGIN IMMEDIATE`,
/// and waiting for another writer is announced (see [`lock`]).
pub fn open(path: &Path) -> Result<Connection> {
    check_is_database(path)?;
    let mut conn =
        Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_handler(Some(lock::busy_handler(path.to_path_buf())))?;
    check_header(&conn, path)?;
    lock::remember_db(path);
    configure_retrying(&mut conn).with_context(|| format!("cannot open {}", path.display()))?;
    migrate(&mut conn).with_context(|| format!("migrating {}", path.display()))?;
    Ok(conn)
}

/// An in-memory database with the full schema (tests).
pub fn open_in_memory() -> Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    configure(&mut conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Refuse, by name, a path that exists but is not an SQLite database (a
/// CSV given as `database`, a folder), instead of SQLite's bare "file is not
/// a database".
fn check_is_database(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // created on open
    };
    if meta.is_dir() {
        bail!(
            "{} is a folder, not a c360 database (check `database` in c360.toml)",
            path.display()
        );
    }
    if !meta.is_file() {
        bail!(
            "{} is not a regular file, so it cannot be a c360 database (check `database` in c360.toml)",
            path.display()
        );
    }
    Ok(())
}

/// The header check, through SQLite itself. Reading the file with a file
/// handle of our own would be wrong: closing any descriptor of a database
/// file drops every POSIX lock this process holds on it, so another of its
/// connections (the workbench's, while a job opens one) could be taken for
/// the last one and check-point and remove the WAL under it: corruption.
fn check_header(conn: &Connection, path: &Path) -> Result<()> {
    match conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            bail!(
                "{} is not a c360 database (it is not an SQLite file; check `database` in c360.toml)",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        Ok(_) => Ok(()),
    }
}

/// [`configure`], retried while SQLite says the database is busy. Two
/// processes creating one workspace at once can meet in a deadlock SQLite
/// resolves by failing one of them at once, without its busy handler (one
/// holds a read lock while asking for the write lock the other is about to
/// take to switch the new file to WAL); the pragmas are idempotent, so the
/// loser retries once the winner is through.
fn configure_retrying(conn: &mut Connection) -> Result<()> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        match configure(conn) {
            Err(e) if is_busy(&e) && started.elapsed() < lock::MAX_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether `err` is SQLite's "database is busy / locked".
pub fn is_busy(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(
            e.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    })
}

fn configure(conn: &mut Connection) -> Result<()> {
    // Writers take the write lock when they begin: a deferred transaction
    // that reads and then writes cannot wait for another writer (SQLite
    // returns "database is locked" at once), and its reads may be stale.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    // 16 KiB pages for a new database (ignored once it has tables): fewer,
    // fuller b-tree pages for wide staging rows.
    conn.pragma_update(None, "page_size", 16384)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Temporary data (sorts of big index builds, statement journals of big
    // INSERT ... SELECTs) goes to temp files: in memory, one statement that
    // rewrites 10M events held 2.3 GiB of journal.
    conn.pragma_update(None, "temp_store", "FILE")?;
    // 64 MiB page cache: big loads touch many index pages.
    conn.pragma_update(None, "cache_size", -65536)?;
    // Helper threads for big sorts (CREATE INDEX over millions of rows).
    conn.pragma_update(None, "threads", 2)?;
    Ok(())
}

/// Apply the migrations not applied yet, each in an immediate transaction
/// that re-reads the schema version first: two processes opening a new
/// workspace at once apply each migration once (the second waits, then sees
/// it done).
fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction()?;
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let current = current.max(0) as usize;
        if current > MIGRATIONS.len() {
            anyhow::bail!(
                "database schema version {current} is newer than this c360 ({}); upgrade c360",
                MIGRATIONS.len()
            );
        }
        let Some((name, sql)) = MIGRATIONS.get(current) else {
            return Ok(());
        };
        tx.execute_batch(sql)
            .with_context(|| format!("migration {name}"))?;
        tx.pragma_update(None, "user_version", (current + 1) as i64)?;
        tx.commit()?;
    }
}

/// Commit a steward decision durably: with `synchronous = FULL` for this
/// commit, so it survives a power loss as well as a crash (the pipeline's
/// bulk writes keep `NORMAL`: after a power cut they may roll back to the
/// previous run, which a re-run repeats).
pub fn with_full_sync<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    let result = f(conn);
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    result
}

/// Quote an identifier for SQL (table names come from validated source
/// names, but quoting keeps that a non-issue).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn count(conn: &Connection, table: &str) -> Result<u64> {
    if !table_exists(conn, table)? {
        return Ok(0);
    }
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}

/// Buffered multi-row `INSERT` through cached prepared statements: one
/// statement per `rows_per_stmt` rows, which is several times faster than
/// one `INSERT` per row. Call inside a transaction; call [`BulkInsert::finish`]
/// before committing.
pub struct BulkInsert<'c> {
    conn: &'c Connection,
    head: String,
    ncols: usize,
    rows_per_stmt: usize,
    buf: Vec<rusqlite::types::Value>,
}

impl<'c> BulkInsert<'c> {
    pub fn new(conn: &'c Connection, table: &str, columns: &[String]) -> Self {
        let ncols = columns.len();
        let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
        // SQLite allows 32,766 parameters per statement.
        let rows_per_stmt = (32_000 / ncols).clamp(1, 128);
        BulkInsert {
            conn,
            head: format!("INSERT INTO {} ({}) VALUES ", ident(table), cols.join(", ")),
            ncols,
            rows_per_stmt,
            buf: Vec::with_capacity(ncols * rows_per_stmt),
        }
    }

    fn sql(&self, rows: usize) -> String {
        let one = format!("({})", vec!["?"; self.ncols].join(","));
        format!("{}{}", self.head, vec![one; rows].join(","))
    }

    /// Add one row (exactly as many values as columns).
    pub fn push(&mut self, row: impl IntoIterator<Item = rusqlite::types::Value>) -> Result<()> {
        let before = self.buf.len();
        self.buf.extend(row);
        debug_assert_eq!(self.buf.len() - before, self.ncols);
        if self.buf.len() >= self.ncols * self.rows_per_stmt {
            let sql = self.sql(self.rows_per_stmt);
            self.conn
                .prepare_cached(&sql)?
                .execute(rusqlite::params_from_iter(self.buf.iter()))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Write the rows still buffered.
    pub fn finish(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let rows = self.buf.len() / self.ncols;
        let sql = self.sql(rows);
        self.conn
            .prepare(&sql)?
            .execute(rusqlite::params_from_iter(self.buf.iter()))?;
        self.buf.clear();
        Ok(())
    }
}

/// One row of `load_batches`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Batch {
    pub batch_id: i64,
    pub source: String,
    pub location: String,
    pub format: String,
    pub content_hash: String,
    pub rows_read: u64,
    pub rows_staged: u64,
    pub rows_rejected: u64,
    pub seconds: f64,
    pub status: String,
    pub finished_at: Option<String>,
}

/// Rows read, staged and rejected over every load batch.
pub fn load_totals(conn: &Connection) -> Result<(u64, u64, u64)> {
    let (r, s, j): (i64, i64, i64) = conn.query_row(
        "SELECT coalesce(sum(rows_read),0), coalesce(sum(rows_staged),0), coalesce(sum(rows_rejected),0) FROM load_batches",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok((r as u64, s as u64, j as u64))
}

/// The load state rejects were written at (latest batch, rejected rows):
/// the rejects' counts change only when it does.
pub fn rejects_version(conn: &Connection) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT coalesce(max(batch_id), 0), coalesce(sum(rows_rejected), 0) FROM load_batches",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// SQLite's count of committed changes by any connection to the file
/// (`PRAGMA data_version` moves when another connection commits): a
/// second workbench polls it to notice changes.
pub fn data_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

/// All load batches, newest first (optionally of one source).
pub fn batches(conn: &Connection, source: Option<&str>) -> Result<Vec<Batch>> {
    let mut stmt = conn.prepare(
        "SELECT batch_id, source, location, format, content_hash, rows_read, rows_staged,
                rows_rejected, seconds, status, finished_at
         FROM load_batches WHERE ?1 IS NULL OR source = ?1 ORDER BY batch_id DESC",
    )?;
    let rows = stmt.query_map(params![source], |r| {
        Ok(Batch {
            batch_id: r.get(0)?,
            source: r.get(1)?,
            location: r.get(2)?,
            format: r.get(3)?,
            content_hash: r.get(4)?,
            rows_read: r.get::<_, i64>(5)? as u64,
            rows_staged: r.get::<_, i64>(6)? as u64,
            rows_rejected: r.get::<_, i64>(7)? as u64,
            seconds: r.get(8)?,
            status: r.get(9)?,
            finished_at: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Counts of rejected rows per (source, reason), largest first.
pub fn reject_counts(
    conn: &Connection,
    source: Option<&str>,
) -> Result<Vec<(String, String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT source, reason, count(*) FROM rejects WHERE ?1 IS NULL OR source = ?1
         GROUP BY source, reason ORDER BY 3 DESC, 1, 2",
    )?;
    let rows = stmt.query_map(params![source], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One row of `rejects`, with the original row as text (invalid UTF-8 shown
/// with replacement characters; the stored bytes are untouched).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reject {
    pub reject_id: i64,
    pub batch_id: i64,
    pub source: String,
    pub row_num: u64,
    pub field: Option<String>,
    pub reason: String,
    pub detail: String,
    pub raw: String,
}

/// Which rejects a view shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectFilter {
    pub source: Option<String>,
    pub reason: Option<String>,
    /// Substring of the original row or the detail (case-insensitive).
    pub text: Option<String>,
}

/// Where a window of rows starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    First,
    Last,
    /// Rows with a key greater than this, ascending.
    After(i64),
    /// Rows with a key less than this (returned ascending).
    Before(i64),
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The WHERE clause and parameters of a filter. Only active conditions are
/// written, so SQLite can use `rejects_by_source_reason` / `rejects_by_reason`
/// (both end in `reject_id`) for keyset paging.
fn reject_conditions(filter: &RejectFilter) -> (Vec<String>, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds = Vec::new();
    let mut args = Vec::new();
    if let Some(source) = &filter.source {
        args.push(Value::Text(source.clone()));
        conds.push(format!("source = ?{}", args.len()));
    }
    if let Some(reason) = &filter.reason {
        args.push(Value::Text(reason.clone()));
        conds.push(format!("reason = ?{}", args.len()));
    }
    if let Some(text) = &filter.text {
        args.push(Value::Text(like_pattern(text)));
        let n = args.len();
        conds.push(format!(
            "(CAST(raw AS TEXT) LIKE ?{n} ESCAPE '\\' OR detail LIKE ?{n} ESCAPE '\\')"
        ));
    }
    (conds, args)
}

/// Up to `limit` rejects next to `anchor` (keyset paging on `reject_id`, an
/// index range scan: instant on millions of rows), in ascending order.
pub fn rejects_window(
    conn: &Connection,
    filter: &RejectFilter,
    anchor: Anchor,
    limit: usize,
) -> Result<Vec<Reject>> {
    let (mut conds, mut args) = reject_conditions(filter);
    let order = match anchor {
        Anchor::First | Anchor::After(_) => "ASC",
        Anchor::Last | Anchor::Before(_) => "DESC",
    };
    match anchor {
        Anchor::After(id) => {
            args.push(rusqlite::types::Value::Integer(id));
            conds.push(format!("reject_id > ?{}", args.len()));
        }
        Anchor::Before(id) => {
            args.push(rusqlite::types::Value::Integer(id));
            conds.push(format!("reject_id < ?{}", args.len()));
        }
        Anchor::First | Anchor::Last => {}
    }
    args.push(rusqlite::types::Value::Integer(limit as i64));
    let where_sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let sql = format!(
        "SELECT reject_id, batch_id, source, row_num, field, reason, detail, raw FROM rejects
         {where_sql} ORDER BY reject_id {order} LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), reject_from_row)?;
    let mut out: Vec<Reject> = rows.collect::<rusqlite::Result<_>>()?;
    if order == "DESC" {
        out.reverse();
    }
    Ok(out)
}

/// How many rejects match a filter.
pub fn rejects_count(conn: &Connection, filter: &RejectFilter) -> Result<u64> {
    let (conds, args) = reject_conditions(filter);
    let where_sql = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let n: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM rejects {where_sql}"))?
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(n as u64)
}

fn reject_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reject> {
    let raw = match r.get_ref(7)? {
        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
            String::from_utf8_lossy(t).into_owned()
        }
        _ => String::new(),
    };
    Ok(Reject {
        reject_id: r.get(0)?,
        batch_id: r.get(1)?,
        source: r.get(2)?,
        row_num: r.get::<_, i64>(3)? as u64,
        field: r.get(4)?,
        reason: r.get(5)?,
        detail: r.get(6)?,
        raw,
    })
}

/// A page of rejects after `after_id` (keyset paging on `reject_id`).
pub fn rejects_page(
    conn: &Connection,
    source: Option<&str>,
    reason: Option<&str>,
    after_id: i64,
    limit: usize,
) -> Result<Vec<Reject>> {
    let mut stmt = conn.prepare_cached(
        "SELECT reject_id, batch_id, source, row_num, field, reason, detail, raw FROM rejects
         WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR reason = ?2) AND reject_id > ?3
         ORDER BY reject_id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![source, reason, after_id, limit as i64],
        reject_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::schema::{System, staging_columns};

    #[test]
    fn staging_tables_match_the_schema_module() {
        let conn = open_in_memory().unwrap();
        for system in System::ALL {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info({})", system.staging_table()))
                .unwrap();
            let mut cols: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(1))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // Later migrations add columns at the end; inserts name them.
            let mut want = staging_columns(system);
            cols.sort();
            want.sort();
            assert_eq!(cols, want, "{}", system.staging_table());
        }
    }

    #[test]
    fn batches_must_reconcile() {
        let conn = open_in_memory().unwrap();
        let bad = conn.execute(
            "INSERT INTO load_batches (source, system, location, format, content_hash, bytes,
               rows_read, rows_staged, rows_rejected, seconds, status, started_at)
             VALUES ('s','crm','f','csv','h',0, 10, 5, 4, 0, 'loaded', 'now')",
            [],
        );
        assert!(
            bad.is_err(),
            "rows_read != staged + rejected must be refused"
        );
    }

    #[test]
    fn reopening_does_not_rerun_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c360.db");
        drop(open(&path).unwrap());
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
    }
}
