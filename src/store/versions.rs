//! Data versions and step fingerprints: what makes runs incremental.
//!
//! Each family of tables has a version that its writers bump inside the
//! transaction that writes it (`staged` by load, `clean` by standardise,
//! `identity` by resolve and every steward decision, `profiles` by unify,
//! `analytics` by analyse). A step's fingerprint is a hash of the versions it
//! reads and of its rule files; when it equals the one recorded by the
//! step's last successful run, the step has nothing to do.

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

/// The families of tables that have a version.
pub const STAGED: &str = "staged";
pub const CLEAN: &str = "clean";
pub const IDENTITY: &str = "identity";
pub const PROFILES: &str = "profiles";
pub const ANALYTICS: &str = "analytics";
/// Bumped by a full standardise run, which rewrites the clean tables (what
/// unify made events of is then no longer a prefix of them).
pub const CLEAN_REBUILT: &str = "clean_rebuilt";

/// Bump a version (inside the writer's transaction); returns the new one.
pub fn bump(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn.query_row(
        "INSERT INTO data_versions (name, version) VALUES (?1, 1)
         ON CONFLICT(name) DO UPDATE SET version = version + 1
         RETURNING version",
        [name],
        |r| r.get(0),
    )?)
}

/// A version (0 before its first write).
pub fn version(conn: &Connection, name: &str) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT version FROM data_versions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// The fingerprint recorded by a step's last successful run.
pub fn last_fingerprint(conn: &Connection, step: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT fingerprint FROM step_state WHERE step = ?1",
            [step],
            |r| r.get(0),
        )
        .optional()?)
}

/// Record a step's fingerprint after a successful run.
pub fn record(conn: &Connection, step: &str, fingerprint: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO step_state (step, fingerprint, at) VALUES (?1, ?2, ?3)
         ON CONFLICT(step) DO UPDATE SET fingerprint = excluded.fingerprint, at = excluded.at",
        params![step, fingerprint, crate::pipeline::timeparse::now_utc()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_zero_and_bump_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open(&dir.path().join("c360.db")).unwrap();
        assert_eq!(version(&conn, CLEAN).unwrap(), 0);
        assert_eq!(bump(&conn, CLEAN).unwrap(), 1);
        assert_eq!(bump(&conn, CLEAN).unwrap(), 2);
        assert_eq!(version(&conn, CLEAN).unwrap(), 2);
        assert_eq!(version(&conn, IDENTITY).unwrap(), 0);
        assert_eq!(last_fingerprint(&conn, "unify").unwrap(), None);
        record(&conn, "unify", "abc").unwrap();
        record(&conn, "unify", "def").unwrap();
        assert_eq!(
            last_fingerprint(&conn, "unify").unwrap().as_deref(),
            Some("def")
        );
    }
}
