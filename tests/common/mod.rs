//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rusqlite::Connection;

/// The first column of every row of `sql`, as text.
pub fn strings(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The single integer `sql` returns.
pub fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The demo workspace (sample data, through every available step) in a
/// temp dir.
pub fn demo() -> (tempfile::TempDir, c360::workspace::Workspace, Connection) {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY of the env var: every test process wants the same value.
    unsafe {
        std::env::set_var(
            "C360_SAMPLE_DATA",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data"),
        )
    };
    let demo = c360::demo::prepare(
        &dir.path().join("demo"),
        false,
        &c360::pipeline::progress::NoProgress,
    )
    .unwrap();
    let conn = c360::store::open(&demo.workspace.db_path()).unwrap();
    (dir, demo.workspace, conn)
}
