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
    // The sample data is passed explicitly (copied into the workspace as
    // `demo` would), not through `C360_SAMPLE_DATA`: setting an environment
    // variable while other test threads run is undefined behaviour.
    let ws_dir = dir.path().join("demo");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data");
    c360::workspace::init(&ws_dir).unwrap();
    std::fs::create_dir_all(ws_dir.join("data")).unwrap();
    for f in c360::demo::SAMPLE_FILES {
        std::fs::copy(sample.join(f), ws_dir.join("data").join(f)).unwrap();
    }
    let demo = c360::demo::prepare(&ws_dir, false, &c360::pipeline::progress::NoProgress).unwrap();
    let conn = c360::store::open(&demo.workspace.db_path()).unwrap();
    (dir, demo.workspace, conn)
}

/// What the workbench draws at `w` x `h`, as text (one line per row).
pub fn render(app: &c360::tui::app::App, w: u16, h: u16) -> String {
    use ratatui::{Terminal, backend::TestBackend};
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| c360::tui::ui::draw(f, app)).unwrap();
    let buf = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

/// A review-band pair whose records are two customers now.
pub fn review_pair(conn: &Connection) -> (String, String) {
    conn.query_row(
        "SELECT c.left_key, c.right_key FROM match_candidates c
         JOIN customer360_id_map l ON l.record_key = c.left_key
         JOIN customer360_id_map r ON r.record_key = c.right_key
         WHERE c.band = 'review' AND l.customer360_id <> r.customer360_id
         ORDER BY c.candidate_id LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// The customer360_id of a record.
pub fn id_of(conn: &Connection, key: &str) -> String {
    conn.query_row(
        "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap()
}

/// A workspace of one CRM file (`crm.csv` holding `crm`, dates day first,
/// UTC) run through every step.
pub fn crm_workspace(crm: &str) -> (tempfile::TempDir, c360::workspace::Workspace, Connection) {
    const CONFIG: &str = r#"
[settings]
timezone = "UTC"
date_order = "dmy"

[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"
"#;
    let dir = tempfile::tempdir().unwrap();
    c360::workspace::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("c360.toml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("crm.csv"), crm).unwrap();
    let ws = c360::workspace::Workspace::open(dir.path()).unwrap();
    let mut conn = c360::store::open(&ws.db_path()).unwrap();
    c360::pipeline::run_all(&mut conn, &ws, &c360::pipeline::progress::NoProgress).unwrap();
    (dir, ws, conn)
}
