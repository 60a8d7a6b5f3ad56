//! The workbench as a steward and an analyst use it quickly: keys fed to
//! the app, outcomes asserted on the database and on what is drawn
//! (`TestBackend`).

mod common;
use common::render;

use c360::tui::app::{App, InputKind, Mode, Tab};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::Duration;

fn key(app: &mut App, code: KeyCode) {
    app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn ctrl(app: &mut App, c: char) {
    app.handle_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
}

fn keys(app: &mut App, s: &str) {
    for c in s.chars() {
        key(app, KeyCode::Char(c));
    }
}

fn review_app(height: u16) -> (tempfile::TempDir, App, rusqlite::Connection) {
    let (dir, ws, conn) = common::demo();
    let mut app = App::new(ws, height).unwrap();
    app.resize(120, height);
    key(&mut app, KeyCode::Char('4'));
    assert_eq!(app.tab, Tab::Review);
    (dir, app, conn)
}

/// (action, left, right) of the decisions in force, oldest first.
fn decisions(conn: &rusqlite::Connection) -> Vec<(String, String, String)> {
    let mut stmt = conn
        .prepare(
            "SELECT action, pair_left, pair_right FROM steward_decisions
             WHERE undone_at IS NULL ORDER BY decision_id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn pair_at(app: &App, i: usize) -> (String, String) {
    let r = &app.review.list.rows[i];
    (r.left_key.clone(), r.right_key.clone())
}

#[test]
fn keys_pressed_while_a_decision_is_saved_are_applied_in_order() {
    let (_d, mut app, conn) = review_app(30);
    let (p0, p2) = (pair_at(&app, 0), pair_at(&app, 2));
    // a, then s and a while the first approval is still being saved.
    keys(&mut app, "asa");
    assert!(app.job.is_some());
    assert_eq!(app.queued.len(), 2, "s and a wait for the first decision");
    assert!(render(&app, 120, 30).contains("2 keys waiting"));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    assert!(app.queued.is_empty());
    let got = decisions(&conn);
    assert_eq!(got.len(), 2, "{got:?}");
    // The first pair, then (after the skip) the pair two below it.
    assert_eq!((got[0].1.clone(), got[0].2.clone()), p0);
    assert_eq!((got[1].1.clone(), got[1].2.clone()), p2);
    assert!(got.iter().all(|d| d.0 == "approve"));

    // Fifteen quick undos: both decisions undone, the rest say so.
    for _ in 0..15 {
        key(&mut app, KeyCode::Char('u'));
    }
    assert!(app.wait_for_job(Duration::from_secs(120)));
    assert!(decisions(&conn).is_empty(), "every decision undone");
    let undone = common::int(
        &conn,
        "SELECT count(*) FROM steward_decisions WHERE undone_at IS NOT NULL",
    );
    assert_eq!(undone, 2);
    let (_, last) = app.last_job.clone().unwrap();
    assert!(last.unwrap_err().contains("no decision to undo"));
}

#[test]
fn a_decision_during_a_run_is_refused_with_a_message() {
    let (_d, mut app, conn) = review_app(30);
    key(&mut app, KeyCode::Char('R'));
    assert!(app.job.is_some(), "R runs the steps that are out of date");
    key(&mut app, KeyCode::Char('a'));
    let shown = render(&app, 120, 30);
    assert!(
        shown.contains("decisions wait until it ends"),
        "the refusal is on screen while the job runs:\n{shown}"
    );
    assert!(app.wait_for_job(Duration::from_secs(120)));
    assert!(decisions(&conn).is_empty());
}

#[test]
fn no_key_acts_behind_the_too_small_notice_and_ctrl_letters_are_not_letters() {
    let (_d, mut app, conn) = review_app(30);
    app.resize(40, 10);
    keys(&mut app, "sa");
    assert!(app.job.is_none());
    assert!(render(&app, 40, 10).contains("Terminal too small"));
    app.resize(120, 30);
    // Ctrl-R and Ctrl-A decide nothing; Ctrl-U undoes nothing.
    ctrl(&mut app, 'r');
    ctrl(&mut app, 'a');
    ctrl(&mut app, 'u');
    assert!(app.job.is_none());
    assert!(decisions(&conn).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn the_palette_edits_completes_remembers_and_ignores_case() {
    let (_d, mut app, _conn) = review_app(30);
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "cstomers");
    for _ in 0..7 {
        key(&mut app, KeyCode::Left);
    }
    key(&mut app, KeyCode::Char('u'));
    let Mode::Input { edit, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(edit.text(), "customers");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tab, Tab::Customers);
    // Ctrl-U clears the line, Tab completes, upper case is fine.
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "junk");
    ctrl(&mut app, 'u');
    keys(&mut app, "REV");
    key(&mut app, KeyCode::Tab);
    let Mode::Input { edit, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!(edit.text(), "review ");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.tab, Tab::Review);
    // Up brings back the earlier commands.
    key(&mut app, KeyCode::Char(':'));
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    let Mode::Input { kind, edit } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert_eq!((*kind, edit.text()), (InputKind::Palette, "customers"));
    key(&mut app, KeyCode::Esc);
    // A reason that is not there is said, not accepted.
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, "rejects nonsense");
    key(&mut app, KeyCode::Enter);
    let flash = app.flash.clone().unwrap();
    assert!(flash.contains("no reject reason \"nonsense\""), "{flash}");
    assert_eq!(app.rejects.filter.reason, None);
}

#[test]
fn help_starts_with_this_screen_and_ends_where_it_ends() {
    let (_d, mut app, _conn) = review_app(30);
    key(&mut app, KeyCode::Char('?'));
    let top = render(&app, 120, 30);
    let review = top
        .find("Review (this screen)")
        .expect("the screen's own keys");
    let everywhere = top.find("Everywhere").expect("global keys");
    assert!(review < everywhere, "{top}");
    key(&mut app, KeyCode::Char('G'));
    let Mode::Help { scroll } = app.mode else {
        panic!("{:?}", app.mode)
    };
    let end = render(&app, 120, 30);
    assert!(
        end.contains("quit (also q)"),
        "the last command shows:\n{end}"
    );
    // Down at the end stays at the end.
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(app.mode, Mode::Help { scroll });
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.mode, Mode::Help { scroll: 0 });
}

#[test]
fn a_bulk_decision_shows_its_pairs_before_the_yes() {
    let (_d, mut app, conn) = review_app(30);
    key(&mut app, KeyCode::Char('B'));
    keys(&mut app, "0-1 r");
    key(&mut app, KeyCode::Enter);
    assert!(app.poll_review(Some(Duration::from_secs(30))));
    let Mode::Confirm { body, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    let n = body.len();
    assert_eq!(n as u64, app.review.counts.remaining);
    let first = body[0].clone();
    let shown = render(&app, 120, 30);
    assert!(shown.contains(&first[..20]), "{shown}");
    // In a short terminal the list scrolls.
    app.resize(70, 15);
    let shown = render(&app, 70, 15);
    assert!(shown.contains(&format!("of {n} (j/k scroll)")), "{shown}");
    assert!(shown.contains(" 1–"), "{shown}");
    key(&mut app, KeyCode::Char('j'));
    let shown = render(&app, 70, 15);
    assert!(shown.contains(" 2–"), "{shown}");
    key(&mut app, KeyCode::Char('n'));
    assert!(decisions(&conn).is_empty());
}

#[test]
fn from_a_pair_to_its_customer_and_back() {
    let (_d, mut app, _conn) = review_app(40);
    let want = app.review.candidate().unwrap().left_customer.clone();
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.tab, Tab::Customers);
    assert_eq!(app.customers.selected().unwrap().id, want);
    assert!(render(&app, 150, 40).contains(&want));
    key(&mut app, KeyCode::Char('b'));
    assert_eq!(app.tab, Tab::Review);
}

#[test]
fn numbers_are_drawn_whole_with_separators_and_currency() {
    let (_d, mut app, conn) = review_app(40);
    key(&mut app, KeyCode::Char('5'));
    let top: f64 = conn
        .query_row(
            "SELECT max(revenue) FROM customer360_profiles WHERE anonymous = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let text = c360::tui::format::money(top, "EUR");
    for (w, h) in [(120, 40), (80, 24)] {
        app.resize(w, h);
        let shown = render(&app, w, h);
        assert!(shown.contains(&text), "{text} at {w}×{h}:\n{shown}");
    }
    // The Pipeline screen's counts at 80×24 are whole.
    key(&mut app, KeyCode::Char('1'));
    let read = common::int(
        &conn,
        "SELECT rows_read FROM load_batches WHERE source = 'web' ORDER BY batch_id DESC LIMIT 1",
    ) as u64;
    let shown = render(&app, 80, 24);
    let full = c360::tui::format::count(read);
    let compact = c360::tui::format::compact(read as f64);
    assert!(
        shown.contains(&full) || shown.contains(&compact),
        "{full} or {compact}, never a cut figure:\n{shown}"
    );
}

#[test]
fn a_restaged_input_makes_the_later_steps_out_of_date() {
    let (_d, mut app, conn) = review_app(30);
    key(&mut app, KeyCode::Char('1'));
    let shown = render(&app, 120, 30);
    assert!(!shown.contains("out of date: R runs them"), "{shown}");
    // Changed rules: standardise and every step after it lag.
    let rules = app.ws.rules_dir().join("countries.toml");
    let mut text = std::fs::read_to_string(&rules).unwrap();
    text.push_str("\n# a comment changes the rule file\n");
    std::fs::write(&rules, text).unwrap();
    key(&mut app, KeyCode::Char('F'));
    let shown = render(&app, 120, 30);
    assert!(shown.contains("4 out of date: R runs them"), "{shown}");
    let states: Vec<String> = app.pipeline.steps.iter().map(|s| s.status(None)).collect();
    assert!(
        states.iter().filter(|s| *s == "out of date").count() >= 3,
        "{states:?}"
    );
    let _ = conn;
}

#[test]
fn a_second_workbench_notices_changes() {
    let (_d, mut a, conn) = review_app(30);
    let mut b = App::new(a.ws.clone(), 30).unwrap();
    key(&mut b, KeyCode::Char('4'));
    let before = b.review.counts.decisions;
    key(&mut a, KeyCode::Char('a'));
    assert!(a.wait_for_job(Duration::from_secs(60)));
    assert_eq!(decisions(&conn).len(), 1);
    std::thread::sleep(Duration::from_millis(950));
    assert!(b.poll_changes(), "the change counter moved");
    assert_eq!(b.review.counts.decisions, before + 1);
}

#[test]
fn rules_filter_to_flagged_examples_and_search_as_you_type() {
    let (_d, ws, _conn) = common::demo();
    let mut app = App::new(ws, 30).unwrap();
    key(&mut app, KeyCode::Char('3'));
    // Find the phone rule by typing.
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "crm.phone");
    assert_eq!(app.rules.rule().unwrap().rule, "crm.phone");
    key(&mut app, KeyCode::Enter);
    let all = app.rules.items.len();
    key(&mut app, KeyCode::Char('f'));
    let flagged = app.rules.items.len();
    assert!(flagged <= all);
    assert!(
        app.rules.items.iter().all(|i| app.rules.examples[*i].5),
        "only flagged examples"
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.rules.query.is_none() && !app.rules.flagged_only);
}

#[test]
fn the_timeline_shows_a_web_purchase_with_an_order_once() {
    let (_d, ws, conn) = common::demo();
    // Customers with a web purchase whose order also has a transactions row.
    let ids = common::strings(
        &conn,
        "SELECT DISTINCT w.customer360_id FROM customer360_events w
         JOIN customer360_events t ON t.customer360_id = w.customer360_id
              AND t.system = 'transactions' AND t.order_id = w.order_id
         WHERE w.system = 'web' AND w.event_name = 'purchase' LIMIT 5",
    );
    assert!(!ids.is_empty(), "the demo has such customers");
    for id in &ids {
        let all = c360::read::customers::timeline(
            &conn,
            id,
            c360::read::customers::TimelineFilter::All,
            None,
            1000,
        )
        .unwrap();
        assert!(
            !all.iter()
                .any(|e| e.system == "web" && e.name == "purchase" && e.detail.contains("order ")),
            "{id}: {all:?}"
        );
        assert!(
            all.iter()
                .any(|e| e.system == "transactions" && e.name == "purchase")
        );
        // The web timeline still shows the web purchase.
        let web = c360::read::customers::timeline(
            &conn,
            id,
            c360::read::customers::TimelineFilter::Web,
            None,
            1000,
        )
        .unwrap();
        assert!(web.iter().any(|e| e.name == "purchase"));
    }
    let _ = ws;
}

#[test]
fn a_profile_without_activity_reads_cleanly() {
    let (_d, _ws, conn) = common::demo();
    let id: String = conn
        .query_row(
            "SELECT customer360_id FROM customer360_profiles WHERE last_activity_at IS NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let text = c360::read::customers::view_text(&conn, &id).unwrap();
    assert!(text.contains("no activity yet"), "{text}");
    assert!(!text.contains("( days ago"), "{text}");
    assert!(!text.contains("(recency , frequency"), "{text}");
    assert!(!text.contains("{\""), "no raw JSON: {text}");
}

#[test]
fn a_segment_filters_the_charts_lists_its_members_and_never_overwrites_silently() {
    let (d, ws, conn) = common::demo();
    let mut app = App::new(ws, 42).unwrap();
    app.resize(150, 42);
    key(&mut app, KeyCode::Char('6'));
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "country = \"DE\"");
    key(&mut app, KeyCode::Enter);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.analytics.mix.is_none() && std::time::Instant::now() < deadline {
        app.poll_workers();
        std::thread::sleep(Duration::from_millis(10));
    }
    let mix = app.analytics.mix.clone().expect("the segment's mix");
    let active = common::int(
        &conn,
        "SELECT count(*) FROM customer360_profiles WHERE anonymous = 0 AND lower(country) = 'de' AND lifecycle_status = 'active'",
    );
    assert_eq!(
        mix.lifecycle.iter().find(|x| x.0 == "active").map(|x| x.1),
        Some(active)
    );
    let shown = render(&app, 150, 42);
    assert!(shown.contains("Lifecycle now · segment"), "{shown}");
    assert!(shown.contains("Churn risk of the segment"), "{shown}");
    // M lists the members on the Customers screen.
    key(&mut app, KeyCode::Char('M'));
    assert_eq!(app.tab, Tab::Customers, "{:?} {:?}", app.mode, app.flash);
    assert!(!app.customers.rows.is_empty());
    for r in &app.customers.rows {
        let c: String = conn
            .query_row(
                "SELECT coalesce(country, '') FROM customer360_profiles WHERE customer360_id = ?1",
                [&r.id],
                |x| x.get(0),
            )
            .unwrap();
        assert_eq!(c.to_lowercase(), "de", "{} is not in the segment", r.id);
    }
    key(&mut app, KeyCode::Char('b'));
    assert_eq!(app.tab, Tab::Analytics);
    // Saving twice under one name asks before replacing.
    key(&mut app, KeyCode::Char('S'));
    keys(&mut app, "germans");
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('S'));
    keys(&mut app, "germans");
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.mode, Mode::Confirm { .. }), "{:?}", app.mode);
    key(&mut app, KeyCode::Char('y'));
    let saved = c360::read::segments::load(&app.ws.rules_dir()).unwrap();
    assert_eq!(saved.iter().filter(|s| s.name == "germans").count(), 1);
    // An export over an existing file asks too.
    let out = d.path().join("de.parquet");
    std::fs::write(&out, b"keep me").unwrap();
    key(&mut app, KeyCode::Char(':'));
    keys(&mut app, &format!("segment export {}", out.display()));
    key(&mut app, KeyCode::Enter);
    assert!(matches!(app.mode, Mode::Confirm { .. }), "{:?}", app.mode);
    key(&mut app, KeyCode::Char('n'));
    assert!(app.job.is_none());
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

#[test]
fn the_audit_screen_lists_decisions_undos_and_runs_and_filters_them() {
    let (_d, mut app, _conn) = review_app(30);
    key(&mut app, KeyCode::Char('N'));
    keys(&mut app, "two different people");
    key(&mut app, KeyCode::Enter);
    if matches!(app.mode, Mode::Confirm { .. }) {
        // The pair is one customer: the split is confirmed.
        key(&mut app, KeyCode::Char('y'));
    }
    assert!(app.wait_for_job(Duration::from_secs(60)));
    // The Review screen says who decided, when and why.
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Char('f'));
    let shown = render(&app, 120, 30);
    assert!(shown.contains("rejected by steward on"), "{shown}");
    assert!(shown.contains("why: two different people"), "{shown}");
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('u'));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    key(&mut app, KeyCode::Char('7'));
    assert_eq!(app.tab, Tab::Audit);
    let kinds: Vec<String> = app.audit.list.rows.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("undo"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "reject"));
    assert!(
        kinds.iter().any(|k| k == "run"),
        "pipeline runs are in the trail"
    );
    let shown = render(&app, 160, 48);
    assert!(shown.contains("two different people"), "{shown}");
    // Text as you type narrows it; f picks a kind.
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "different people");
    assert!(app.audit.list.total >= 1);
    assert!(
        app.audit
            .list
            .rows
            .iter()
            .all(|r| r.reason.contains("different people")
                || r.subject.contains("different people")
                || r.change.contains("different people"))
    );
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('f'));
    assert!(app.audit.list.rows.iter().all(|r| r.kind == "approve"));
    key(&mut app, KeyCode::Char('f'));
    assert!(app.audit.list.rows.iter().all(|r| r.kind == "reject"));
    assert_eq!(app.audit.list.total, 1);
    key(&mut app, KeyCode::Enter);
    let Mode::Detail { body, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    assert!(body.contains("why:     two different people"), "{body}");
}

#[test]
fn review_finds_pairs_as_you_type_and_a_customer_jumps_to_its_pending_pairs() {
    let (_d, mut app, conn) = review_app(30);
    let (left, _) = pair_at(&app, 0);
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, &left);
    assert!(
        app.review.pinned.is_some(),
        "{:?} {:?}",
        app.flash,
        app.mode
    );
    assert!(app.review.list.total >= 1);
    assert!(
        app.review
            .pinned
            .as_ref()
            .unwrap()
            .rows
            .iter()
            .all(|r| r.left_key.contains(&left)
                || r.right_key.contains(&left)
                || r.left_name.contains(&left))
    );
    key(&mut app, KeyCode::Enter);
    assert!(render(&app, 120, 30).contains("matching"));
    key(&mut app, KeyCode::Esc);
    assert!(app.review.pinned.is_none());
    // From the customer of the first pair's left record to its pending pairs.
    let customer = app.review.candidate().unwrap().left_customer.clone();
    key(&mut app, KeyCode::Char('c'));
    assert_eq!(app.tab, Tab::Customers);
    key(&mut app, KeyCode::Char('p'));
    assert_eq!(app.tab, Tab::Review);
    let want = c360::pipeline::identity::steward::pending_pairs_of(&conn, &customer).unwrap();
    assert!(!want.is_empty());
    assert_eq!(app.review.list.total, want.len() as u64);
    assert!(render(&app, 120, 30).contains(&format!("pending of {customer}")));
}

#[test]
fn a_split_shows_which_records_go_where() {
    let (_d, mut app, conn) = review_app(30);
    // A pending pair that is one customer already.
    while app
        .review
        .candidate()
        .is_some_and(|d| d.left_customer != d.right_customer)
    {
        key(&mut app, KeyCode::Char('j'));
    }
    let d = app
        .review
        .candidate()
        .cloned()
        .expect("a pair that is one customer");
    key(&mut app, KeyCode::Char('r'));
    let Mode::Confirm { body, .. } = &app.mode else {
        panic!("{:?}", app.mode)
    };
    let preview =
        c360::pipeline::identity::steward::reject_preview(&conn, &d.row.left_key, &d.row.right_key)
            .unwrap();
    assert!(
        body.iter().any(|l| l.contains(&preview.left_id_after)),
        "{body:?}"
    );
    for r in preview.left_side.iter().chain(&preview.right_side) {
        assert!(
            body.iter().any(|l| l.contains(&r.key)),
            "{} missing: {body:?}",
            r.key
        );
    }
    key(&mut app, KeyCode::Char('y'));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    let customer_of = |k: &str| -> String {
        conn.query_row(
            "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
            [k],
            |r| r.get(0),
        )
        .unwrap()
    };
    if !preview.still_together {
        assert_ne!(customer_of(&d.row.left_key), customer_of(&d.row.right_key));
        assert_eq!(customer_of(&d.row.right_key), preview.right_id_after);
    }
}

/// Times of day change from run to run: masked for snapshots.
fn masked(shown: &str) -> String {
    let chars: Vec<char> = shown.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let pat = "dddd-dd-dd dd:dd";
    while i < chars.len() {
        let fits = i + pat.len() <= chars.len()
            && pat.chars().enumerate().all(|(k, p)| match p {
                'd' => chars[i + k].is_ascii_digit(),
                c => chars[i + k] == c,
            });
        if fits {
            out.push_str("YYYY-MM-DD hh:mm");
            i += pat.len();
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    // A run's seconds ("…, 0.4 s") vary too.
    out.split(", ")
        .map(|part| match part.split_once(" s") {
            Some((n, rest)) if n.parse::<f64>().is_ok() => format!("x.x s{rest}"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn new_screens_at_80x24_and_160x48() {
    let (_d, mut app, _conn) = review_app(24);
    key(&mut app, KeyCode::Char('a'));
    assert!(app.wait_for_job(Duration::from_secs(60)));
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        app.resize(w, h);
        for (k, name) in [
            ('7', "audit"),
            ('4', "review"),
            ('6', "analytics"),
            ('5', "customers"),
            ('3', "rules"),
        ] {
            key(&mut app, KeyCode::Char(k));
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), masked(&render(&app, w, h)));
        }
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!(format!("help_{w}x{h}"), masked(&render(&app, w, h)));
        key(&mut app, KeyCode::Esc);
    }
}

#[test]
fn the_customer_list_shows_its_total_and_g_goes_to_the_true_last_row() {
    let (_d, ws, conn) = common::demo();
    let mut app = App::new(ws, 30).unwrap();
    app.resize(120, 30);
    key(&mut app, KeyCode::Char('5'));
    let want = common::int(
        &conn,
        "SELECT count(*) FROM customer360_profiles WHERE anonymous = 0",
    ) as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.customers.total.is_none() && std::time::Instant::now() < deadline {
        app.poll_workers();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(app.customers.total, Some(want));
    let shown = render(&app, 120, 30);
    let total = c360::tui::format::count(want);
    assert!(shown.contains(&format!("200 of {total} read")), "{shown}");
    key(&mut app, KeyCode::Char('G'));
    assert!(app.customers.exhausted);
    assert_eq!(app.customers.rows.len() as u64, want);
    assert_eq!(app.customers.sel as u64, want - 1);
    let last: String = conn
        .query_row(
            "SELECT customer360_id FROM customer360_profiles WHERE anonymous = 0
             ORDER BY revenue IS NULL, revenue DESC, customer360_id DESC LIMIT 1 OFFSET ?1",
            [want as i64 - 1],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(app.customers.selected().unwrap().id, last);
    assert!(render(&app, 120, 30).contains(&format!("Customers · by revenue · {total}")));
}
