//! The workbench, driven as state + keys and drawn on ratatui's TestBackend.

use c360::pipeline::stage;
use c360::store;
use c360::tui::app::{App, Mode, Tab};
use c360::tui::keymap::Action;
use c360::tui::ui;
use c360::workspace::Workspace;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;

const CONFIG: &str = r#"
[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"
[sources.mapping]
country = "land"
"#;

/// A CRM file with `good` valid rows and `bad` rows missing their id; the
/// first bad row carries an escape sequence.
fn crm_csv(good: usize, bad: usize) -> String {
    let mut s = String::from("customer_id,first_name,created_at,land\n");
    let lands = ["Deutschland", "USA", "u.s.", "Atlantis"];
    for i in 0..good {
        s.push_str(&format!(
            "C{i},NAME{i},2024-01-01,{}\n",
            lands[i % lands.len()]
        ));
    }
    for i in 0..bad {
        let name = if i == 0 {
            "Evil\u{1b}[2J".to_string()
        } else {
            format!("Nobody{i}")
        };
        s.push_str(&format!(",{name},2024-01-01,DE\n"));
    }
    s
}

fn workspace(good: usize, bad: usize) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("acme");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("c360.toml"), CONFIG).unwrap();
    std::fs::write(root.join("crm.csv"), crm_csv(good, bad)).unwrap();
    std::fs::create_dir(root.join("rules")).unwrap();
    for (name, body) in c360::workspace::DEFAULT_RULES {
        std::fs::write(root.join("rules").join(name), body).unwrap();
    }
    let ws = Workspace::open(&root).unwrap();
    (dir, ws)
}

fn loaded(good: usize, bad: usize) -> (tempfile::TempDir, Workspace) {
    let (dir, ws) = workspace(good, bad);
    let mut conn = store::open(&ws.db_path()).unwrap();
    stage::load_all(&mut conn, &ws, &c360::pipeline::progress::NoProgress).unwrap();
    (dir, ws)
}

fn key(app: &mut App, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn render(app: &App, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| ui::draw(f, app)).unwrap();
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

#[test]
fn keys_become_actions_by_mode() {
    let (_d, ws) = loaded(3, 2);
    let mut app = App::new(ws, 30).unwrap();
    let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
    assert_eq!(
        app.key_to_action(&k(KeyCode::Char('r'))),
        Some(Action::RunStep)
    );
    assert_eq!(
        app.key_to_action(&k(KeyCode::Char('2'))),
        Some(Action::Tab(1))
    );
    key(&mut app, KeyCode::Char('2'));
    assert_eq!(app.tab, Tab::Rejects);
    assert_eq!(app.key_to_action(&k(KeyCode::Char('r'))), None);
    key(&mut app, KeyCode::Char('/'));
    // In a text field, letters are text, not commands.
    assert_eq!(
        app.key_to_action(&k(KeyCode::Char('q'))),
        Some(Action::Char('q'))
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Rules);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.tab, Tab::Pipeline);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.tab, Tab::Rules);
}

#[test]
fn pipeline_screen_runs_the_load_on_a_worker_and_shows_counts() {
    let (_d, ws) = workspace(40, 3);
    let mut app = App::new(ws, 30).unwrap();
    let before = render(&app, 120, 30);
    assert!(before.contains("not loaded"), "{before}");
    assert!(before.contains("not available"), "{before}");
    key(&mut app, KeyCode::Char('R'));
    assert!(app.job.is_some(), "R starts a job");
    // The UI keeps answering while the job runs.
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('1'));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    let after = render(&app, 120, 30);
    assert!(after.contains("43") && after.contains("40"), "{after}");
    assert!(after.contains("done"), "{after}");
    let (label, result) = app.last_job.clone().unwrap();
    assert_eq!(label, "run all");
    assert!(result.unwrap().contains("43 read, 40 staged, 3 rejected"));

    // Steps that do not exist are refused, not faked.
    for _ in 0..4 {
        key(&mut app, KeyCode::Char('j'));
    }
    key(&mut app, KeyCode::Char('r'));
    assert!(app.job.is_none());
    assert!(app.flash.as_deref().unwrap().contains("not available"));
}

#[test]
fn a_cancelled_job_rolls_back() {
    let (_d, ws) = workspace(300_000, 1);
    let db = ws.db_path();
    let mut app = App::new(ws, 30).unwrap();
    key(&mut app, KeyCode::Char('R'));
    key(&mut app, KeyCode::Char('x'));
    assert!(matches!(app.mode, Mode::Confirm { .. }));
    let shown = render(&app, 100, 30);
    assert!(shown.contains("Cancel the running job?"), "{shown}");
    key(&mut app, KeyCode::Char('y'));
    assert!(app.wait_for_job(Duration::from_secs(120)));
    let (_, result) = app.last_job.clone().unwrap();
    assert!(result.unwrap_err().contains("cancelled"));
    let conn = store::open(&db).unwrap();
    assert_eq!(store::count(&conn, "stg_crm_customers").unwrap(), 0);
    assert_eq!(store::count(&conn, "load_batches").unwrap(), 0);
}

#[test]
fn rejects_screen_pages_filters_and_opens_rows() {
    let (_d, ws) = loaded(5, 120);
    let mut app = App::new(ws, 20).unwrap();
    key(&mut app, KeyCode::Char('2'));
    let n = app.viewport;
    assert_eq!(app.rejects.page.rows.len(), n);
    assert_eq!(app.rejects.total, 120);
    assert_eq!(app.rejects.page.rows[0].reject_id, 1);

    // j past the bottom scrolls the window by one row (keyset paging).
    for _ in 0..n {
        key(&mut app, KeyCode::Char('j'));
    }
    assert_eq!(app.rejects.page.rows[0].reject_id, 2);
    assert_eq!(
        app.rejects.page.rows[app.rejects.page.selected].reject_id as usize,
        n + 1
    );
    key(&mut app, KeyCode::End);
    assert_eq!(app.rejects.page.rows.last().unwrap().reject_id, 120);
    assert_eq!(
        app.rejects.page.rows[app.rejects.page.selected].reject_id,
        120
    );
    key(&mut app, KeyCode::PageUp);
    assert_eq!(
        app.rejects.page.rows.last().unwrap().reject_id,
        120 - n as i64
    );
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.rejects.page.rows[0].reject_id, 1);

    // Enter shows the whole original row; control characters are escaped.
    key(&mut app, KeyCode::Enter);
    let Mode::Detail { body, .. } = &app.mode else {
        panic!("Enter opens a detail popup")
    };
    assert!(body.contains("reason:  missing_value"), "{body}");
    let shown = render(&app, 100, 20);
    assert!(shown.contains("Evil\\e[2J"), "{shown}");
    assert!(!shown.contains('\u{1b}'));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.mode, Mode::Normal);

    // Search narrows the rows; Esc clears it.
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "Nobody11");
    key(&mut app, KeyCode::Enter);
    // The search runs on a worker; the UI answers keys meanwhile.
    assert!(app.rejects.search.is_some());
    assert!(app.poll_search(Some(Duration::from_secs(30))));
    // Nobody11 and Nobody110..Nobody119.
    assert_eq!(app.rejects.total, 11);
    assert!(render(&app, 100, 20).contains("search: Nobody11"));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.rejects.total, 120);

    // Reason filter cycles through the reasons present.
    key(&mut app, KeyCode::Char('e'));
    assert_eq!(app.rejects.filter.reason.as_deref(), Some("missing_value"));
    key(&mut app, KeyCode::Char('e'));
    assert_eq!(app.rejects.filter.reason, None);
}

#[test]
fn rejects_screen_snapshot() {
    let (_d, ws) = loaded(2, 4);
    let mut app = App::new(ws, 16).unwrap();
    key(&mut app, KeyCode::Char('2'));
    insta::assert_snapshot!("rejects_100x16", render(&app, 100, 16));
    insta::assert_snapshot!("rejects_140x16", render(&app, 140, 16));
}

#[test]
fn help_is_generated_from_the_key_map() {
    let (_d, ws) = loaded(1, 1);
    let mut app = App::new(ws, 40).unwrap();
    key(&mut app, KeyCode::Char('?'));
    let shown = render(&app, 100, 60);
    for b in c360::tui::keymap::BINDINGS
        .iter()
        .filter(|b| !b.label.is_empty())
    {
        assert!(shown.contains(b.help), "help lacks {:?}", b.help);
    }
    key(&mut app, KeyCode::Esc);
    assert!(!render(&app, 100, 60).contains("Customer360 Workbench — keys"));
}

#[test]
fn command_palette() {
    let (_d, ws) = loaded(1, 3);
    let mut app = App::new(ws, 30).unwrap();
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "rejects missing_value");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tab, Tab::Rejects);
    assert_eq!(app.rejects.total, 3);
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "run unify");
    key(&mut app, KeyCode::Enter);
    assert!(app.flash.as_deref().unwrap().contains("not available"));
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "quit");
    key(&mut app, KeyCode::Enter);
    assert!(app.quit);
}

#[test]
fn rules_screen_shows_counts_examples_and_unmapped_values() {
    let (_d, ws) = workspace(8, 1);
    let mut app = App::new(ws, 30).unwrap();
    key(&mut app, KeyCode::Char('3'));
    assert!(render(&app, 120, 30).contains("Standardise has not run yet"));
    key(&mut app, KeyCode::Char('1'));
    key(&mut app, KeyCode::Char('R'));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    assert!(
        app.last_job.as_ref().unwrap().1.is_ok(),
        "{:?}",
        app.last_job
    );
    key(&mut app, KeyCode::Char('3'));
    let rule = |app: &App| app.rules.rules[app.rules.sel].rule.clone();
    while rule(&app) != "crm.country" {
        key(&mut app, KeyCode::Char('j'));
    }
    let r = &app.rules.rules[app.rules.sel];
    // 8 rows: 2 each of Deutschland, USA, u.s. (changed to a code) and
    // Atlantis (kept as written, flagged).
    assert_eq!((r.seen, r.changed, r.flagged), (8, 6, 2));
    let shown = render(&app, 140, 30);
    assert!(
        shown.contains("Deutschland") && shown.contains("DE"),
        "{shown}"
    );
    key(&mut app, KeyCode::Char('u'));
    assert_eq!(app.rules.unmapped, vec![("Atlantis".to_string(), 2)]);
    assert!(render(&app, 140, 30).contains("Atlantis"));
    key(&mut app, KeyCode::Char('u'));
    key(&mut app, KeyCode::Char('l'));
    key(&mut app, KeyCode::Enter);
    let Mode::Detail { body, .. } = &app.mode else {
        panic!("Enter opens the example")
    };
    assert!(
        body.contains("before:") && body.contains("after:"),
        "{body}"
    );
    key(&mut app, KeyCode::Esc);
    insta::assert_snapshot!("rules_crm_country_120x24", render(&app, 120, 24));
}

#[test]
fn tiny_terminal_says_too_small() {
    let (_d, ws) = loaded(1, 1);
    let app = App::new(ws, 10).unwrap();
    let shown = render(&app, 40, 10);
    assert!(shown.contains("too small"), "{shown}");
}
