//! Incremental runs and live decisions: a re-run with nothing new does no
//! work, a steward decision reaches events and profiles in its own
//! transaction, and both agree exactly with a `--full` rebuild.

mod common;

use c360::pipeline::identity::steward;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self, Mode};
use common::{demo, id_of, int, review_pair, strings};
use rusqlite::Connection;

/// Every profile (all columns but updated_at) and every event (without its
/// sequence number), as text, in a fixed order.
fn snapshot(conn: &Connection) -> (Vec<String>, Vec<String>) {
    let mut stmt = conn
        .prepare("SELECT * FROM customer360_profiles ORDER BY customer360_id")
        .unwrap();
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let profiles = stmt
        .query_map([], |r| {
            let mut line = String::new();
            for (i, n) in names.iter().enumerate() {
                if n == "updated_at" {
                    continue;
                }
                let v: rusqlite::types::Value = r.get(i)?;
                line.push_str(&format!("{n}={v:?}|"));
            }
            Ok(line)
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let events = strings(
        conn,
        "SELECT customer360_id || '|' || record_key || '|' || event_time || '|' || event_name
         FROM customer360_events ORDER BY record_key, event_time, event_name, customer360_id",
    );
    (profiles, events)
}

/// Rebuild unify from scratch and check that nothing differs from `live`.
fn assert_full_rebuild_agrees(conn: &mut Connection, ws: &c360::workspace::Workspace, what: &str) {
    let live = snapshot(conn);
    let r = pipeline::run_step_with(conn, ws, "unify", &NoProgress, Mode::Full).unwrap();
    assert!(!r.message.starts_with("up to date"), "{}", r.message);
    let full = snapshot(conn);
    assert_eq!(live.0.len(), full.0.len(), "{what}: profile count");
    for (a, b) in live.0.iter().zip(&full.0) {
        assert_eq!(a, b, "{what}: a live profile differs from the full rebuild");
    }
    assert_eq!(
        live.1, full.1,
        "{what}: events differ from the full rebuild"
    );
}

#[test]
fn a_rerun_with_nothing_changed_does_no_work() {
    let (_dir, ws, mut conn) = demo();
    let before = snapshot(&conn);
    let runs = int(&conn, "SELECT count(*) FROM pipeline_runs");
    let reports = pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    for r in &reports {
        if r.step == "stage" {
            assert!(r.loads.iter().all(|l| l.already_loaded), "{:?}", r.loads);
        } else {
            assert!(
                r.message.starts_with("up to date (nothing changed since "),
                "{}: {}",
                r.step,
                r.message
            );
            // The last real run's counts are carried over.
            assert!(r.rows_out > 0, "{}: {r:?}", r.step);
        }
    }
    assert_eq!(snapshot(&conn), before);
    // Every run is still in the log.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM pipeline_runs"),
        runs + reports.len() as i64
    );

    // --full redoes every step and gives the same results.
    let reports = pipeline::run_all_with(&mut conn, &ws, &NoProgress, Mode::Full).unwrap();
    for r in reports.iter().filter(|r| r.step != "stage") {
        assert!(
            !r.message.starts_with("up to date"),
            "{}: {}",
            r.step,
            r.message
        );
    }
    assert_eq!(snapshot(&conn), before);
}

#[test]
fn a_changed_rule_file_reruns_the_steps_that_read_it() {
    let (_dir, ws, mut conn) = demo();
    let path = ws.rules_dir().join("survivorship.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n# edited\n")).unwrap();
    let reports = pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    let fresh: Vec<&str> = reports
        .iter()
        .filter(|r| r.step != "stage" && !r.message.starts_with("up to date"))
        .map(|r| r.step)
        .collect();
    // Unify reads the file; analyse reads unify's profiles (rewritten, so
    // their version moved); standardise and resolve do not read it.
    assert_eq!(fresh, ["unify", "analyse"]);
}

#[test]
fn an_approval_reaches_events_and_profiles_at_once() {
    let (_dir, ws, mut conn) = demo();
    let (left, right) = review_pair(&conn);
    let (a, b) = (id_of(&conn, &left), id_of(&conn, &right));
    let profiles = int(&conn, "SELECT count(*) FROM customer360_profiles");
    let out = steward::decide_pair(&mut conn, &left, &right, true, "ann", "same person").unwrap();
    let survivor = id_of(&conn, &left);
    assert_eq!(survivor, id_of(&conn, &right));
    assert_eq!(out.customers, [survivor.clone(), survivor.clone()]);
    let gone = if survivor == a { &b } else { &a };
    // No unify run: the merged-away profile is gone, its events moved.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM customer360_profiles"),
        profiles - 1
    );
    let q = |sql: &str| int(&conn, &sql.replace("ID", gone));
    assert_eq!(
        q("SELECT count(*) FROM customer360_profiles WHERE customer360_id = 'ID'"),
        0
    );
    assert_eq!(
        q("SELECT count(*) FROM customer360_events WHERE customer360_id = 'ID'"),
        0
    );
    let crm: i64 = int(
        &conn,
        &format!(
            "SELECT crm_records FROM customer360_profiles WHERE customer360_id = '{survivor}'"
        ),
    );
    assert!(crm >= 2, "{crm}");
    // Unify has nothing left to do; analyse must catch up.
    let r = pipeline::run_step(&mut conn, &ws, "unify", &NoProgress).unwrap();
    assert!(r.message.starts_with("up to date"), "{}", r.message);
    let r = pipeline::run_step(&mut conn, &ws, "analyse", &NoProgress).unwrap();
    assert!(!r.message.starts_with("up to date"), "{}", r.message);
    assert_full_rebuild_agrees(&mut conn, &ws, "approve");
}

#[test]
fn rejections_splits_and_undos_are_live_and_agree_with_a_full_rebuild() {
    let (_dir, ws, mut conn) = demo();
    // Reject an auto-merged pair: one customer becomes two.
    let (left, right): (String, String) = conn
        .query_row(
            "SELECT c.left_key, c.right_key FROM match_candidates c
             JOIN customer360_id_map l ON l.record_key = c.left_key
             JOIN customer360_id_map r ON r.record_key = c.right_key
             WHERE c.band = 'auto_merge' AND l.customer360_id = r.customer360_id
             ORDER BY c.candidate_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let profiles = int(&conn, "SELECT count(*) FROM customer360_profiles");
    let rejected = steward::decide_pair(&mut conn, &left, &right, false, "ann", "twins").unwrap();
    assert_ne!(
        id_of(&conn, &left),
        id_of(&conn, &right),
        "{}",
        rejected.message
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM customer360_profiles"),
        profiles + 1
    );
    assert_full_rebuild_agrees(&mut conn, &ws, "reject");

    // Undo it: one customer again, one profile fewer.
    steward::undo(&mut conn, Some(rejected.decision_id), "ann", "my mistake").unwrap();
    assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
    assert_eq!(
        int(&conn, "SELECT count(*) FROM customer360_profiles"),
        profiles
    );
    assert_full_rebuild_agrees(&mut conn, &ws, "undo");

    // Split a CRM record off a customer with several records.
    let key: String = conn
        .query_row(
            "SELECT record_key FROM customer360_id_map WHERE system = 'crm' AND customer360_id IN
               (SELECT customer360_id FROM customer360_id_map WHERE system = 'crm'
                GROUP BY customer360_id HAVING count(*) >= 2 ORDER BY customer360_id LIMIT 1)
             ORDER BY record_key LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let before = id_of(&conn, &key);
    steward::split(&mut conn, std::slice::from_ref(&key), "ann", "not the same").unwrap();
    let after = id_of(&conn, &key);
    assert_ne!(before, after);
    assert_eq!(
        int(
            &conn,
            &format!(
                "SELECT crm_records FROM customer360_profiles WHERE customer360_id = '{after}'"
            )
        ),
        1
    );
    assert_full_rebuild_agrees(&mut conn, &ws, "split");
}

#[test]
fn several_approvals_in_a_row_each_agree_with_a_full_rebuild() {
    // A merge moves RFM ranks of other buyers too (one buyer fewer): every
    // shifted score must be rewritten, whichever pair is merged.
    let (_dir, ws, mut conn) = demo();
    for n in 0..3 {
        let (left, right): (String, String) = conn
            .query_row(
                "SELECT c.left_key, c.right_key FROM match_candidates c
                 JOIN customer360_id_map l ON l.record_key = c.left_key
                 JOIN customer360_id_map r ON r.record_key = c.right_key
                 WHERE c.band = 'review' AND l.customer360_id <> r.customer360_id
                 ORDER BY c.candidate_id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        steward::decide_pair(&mut conn, &left, &right, true, "ann", "same").unwrap();
        assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
        assert_full_rebuild_agrees(&mut conn, &ws, &format!("approval {n}"));
    }
}

/// Every clean row and rule outcome, as text, in a fixed order.
fn clean_snapshot(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM clean_crm_customers ORDER BY source, customer_id",
        "SELECT * FROM clean_web_events ORDER BY source, event_id",
        "SELECT * FROM clean_transactions ORDER BY source, order_id, transaction_type",
        "SELECT rule, rows_seen, rows_changed, rows_flagged FROM rule_outcomes ORDER BY rule",
        "SELECT * FROM rule_unmapped ORDER BY rule, value",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|v| v.join("|"))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

/// Every identifier and link by value (identifier ids are internal), and
/// every record's customer.
fn identity_snapshot(conn: &Connection) -> Vec<String> {
    let mut out = strings(
        conn,
        "SELECT kind || '|' || value || '|' || records || '|' || status || '|' || coalesce(customers, '')
         FROM identifiers ORDER BY 1",
    );
    out.extend(strings(
        conn,
        "SELECT l.record_key || '|' || i.kind || '|' || i.value || '|' || l.rule || '|' || coalesce(l.via_record, '')
         FROM identity_links l JOIN identifiers i ON i.identifier_id = l.identifier_id ORDER BY 1",
    ));
    out.extend(strings(
        conn,
        "SELECT record_key || '|' || customer360_id FROM customer360_id_map ORDER BY 1",
    ));
    out
}

#[test]
fn new_batches_are_standardised_alone_and_agree_with_a_full_run() {
    let (_dir, ws, mut conn) = demo();
    let data = ws.root.join("data");
    // A changed CRM export: five records updated (a later lifecycle), three new.
    // (The sample holds deliberately broken bytes: read it lossily.)
    let crm = String::from_utf8_lossy(&std::fs::read(data.join("crm.csv")).unwrap()).to_string();
    let mut lines: Vec<String> = crm.lines().map(str::to_string).collect();
    for line in lines.iter_mut().skip(1).take(5) {
        *line = line.replacen(",active,", ",churned,", 1);
    }
    let extra: Vec<String> = lines[6..9]
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (_, rest) = l.split_once(',').unwrap();
            format!("CNEW{i},{rest}")
        })
        .collect();
    lines.extend(extra);
    std::fs::write(data.join("crm.csv"), lines.join("\n") + "\n").unwrap();
    // A new web source: 20 new events, each sent twice (duplicates).
    let web = std::fs::read_to_string(data.join("web_events.ndjson")).unwrap();
    let new: Vec<String> = web
        .lines()
        .skip(100)
        .take(20)
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let id = v["messageId"].as_str().unwrap().to_string();
            l.replace(&id, &format!("m-new-{i:03}"))
        })
        .collect();
    let more: Vec<String> = new.iter().chain(&new).cloned().collect();
    std::fs::write(data.join("web_more.ndjson"), more.join("\n") + "\n").unwrap();
    let config = std::fs::read_to_string(ws.root.join("c360.toml")).unwrap();
    std::fs::write(
        ws.root.join("c360.toml"),
        format!(
            "{config}\n[[sources]]\nname = \"web_more\"\nsystem = \"web\"\nlocation = \"data/web_more.ndjson\"\nformat = \"segment\"\n"
        ),
    )
    .unwrap();
    let ws = c360::workspace::Workspace::open(&ws.root).unwrap();
    let clean_web = int(&conn, "SELECT count(*) FROM clean_web_events");
    let last_batch = int(&conn, "SELECT max(batch_id) FROM load_batches");

    let reports = pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    let std = reports.iter().find(|r| r.step == "standardise").unwrap();
    assert!(
        std.message.starts_with("new batches only: "),
        "{}",
        std.message
    );
    // Only the new batches were read: the CRM export again, 40 web events.
    let new_rows = int(
        &conn,
        &format!("SELECT sum(rows_staged) FROM load_batches WHERE batch_id > {last_batch}"),
    );
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM load_batches WHERE batch_id > {last_batch}")
        ),
        2
    );
    assert_eq!(std.rows_in, new_rows as u64, "{}", std.message);
    assert_eq!(
        int(&conn, "SELECT count(*) FROM clean_web_events"),
        clean_web + 20
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE customer_id LIKE 'CNEW%'"
        ),
        3
    );
    // Unify added only the new rows' events and rebuilt only the customers
    // they touched.
    let unify = reports.iter().find(|r| r.step == "unify").unwrap();
    assert!(
        unify
            .message
            .starts_with("new data only: 20 events added, "),
        "{}",
        unify.message
    );
    let incremental = clean_snapshot(&conn);
    let profiles = snapshot(&conn);
    let identity = identity_snapshot(&conn);

    // --full from the staged rows gives the same clean rows, outcomes and
    // (after resolve and unify) the same profiles and events.
    pipeline::run_all_with(&mut conn, &ws, &NoProgress, Mode::Full).unwrap();
    assert_eq!(clean_snapshot(&conn), incremental);
    // Resolve wrote only the difference; --full writes from scratch.
    assert_eq!(identity_snapshot(&conn), identity);
    let full = snapshot(&conn);
    assert_eq!(profiles.0.len(), full.0.len());
    for (a, b) in profiles.0.iter().zip(&full.0) {
        assert_eq!(a, b);
    }
    assert_eq!(profiles.1, full.1);
}

#[test]
fn a_decision_commits_even_when_its_live_refresh_fails() {
    let (_dir, ws, mut conn) = demo();
    // Rules that no longer parse: the refresh fails, the decision holds.
    conn.execute("UPDATE unify_rules SET survivorship = 'fields = [' ", [])
        .unwrap();
    let (left, right) = review_pair(&conn);
    steward::decide_pair(&mut conn, &left, &right, true, "ann", "same").unwrap();
    assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM audit_log WHERE action = 'refresh' AND detail LIKE 'profiles not refreshed%'"
        ),
        1
    );
    // Unify knows it has work to do, and then agrees with the id map.
    let r = pipeline::run_step(&mut conn, &ws, "unify", &NoProgress).unwrap();
    assert!(!r.message.starts_with("up to date"), "{}", r.message);
    assert!(r.message.contains(" 1 removed"), "{}", r.message);
    assert_eq!(
        int(
            &conn,
            "SELECT count(DISTINCT customer360_id) FROM customer360_id_map"
        ),
        int(&conn, "SELECT count(*) FROM customer360_profiles")
    );
}

/// Records every overall share a step run reports, with the phase it came in.
#[derive(Default)]
struct Overall(std::sync::Mutex<(String, Vec<(String, f64)>)>);

impl c360::pipeline::progress::Progress for Overall {
    fn start(&self, phase: &str, _total: u64) {
        self.0.lock().unwrap().0 = phase.to_string();
    }
    fn update(&self, _done: u64) {}
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
    fn overall(&self, share: f64, _left: Option<std::time::Duration>) {
        let mut s = self.0.lock().unwrap();
        let phase = s.0.clone();
        s.1.push((phase, share));
    }
}

#[test]
fn a_step_run_records_its_phases_and_the_next_run_reports_its_overall_share() {
    let (_dir, ws, mut conn) = demo();
    // The demo's run recorded resolve's phases, wall and CPU seconds.
    let json: String = conn
        .query_row(
            "SELECT phases FROM pipeline_runs WHERE step = 'resolve' AND status = 'ok'
             ORDER BY run_id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let phases: Vec<pipeline::progress::PhaseTime> = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "resolve: read crm",
        "resolve: deterministic links",
        "resolve: cluster",
        "resolve: write the id map",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    assert!(
        phases
            .iter()
            .all(|p| p.seconds >= 0.0 && p.cpu_seconds >= 0.0)
    );

    let sink = Overall::default();
    let r = pipeline::run_step_with(&mut conn, &ws, "resolve", &sink, Mode::Full).unwrap();
    assert_eq!(
        r.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        names,
        "the same phases, in the same order"
    );
    let shares = sink.0.lock().unwrap().1.clone();
    assert_eq!(shares[0], ("resolve: read crm".to_string(), 0.0));
    assert!(
        shares.windows(2).all(|w| w[0].1 <= w[1].1),
        "the share only grows: {shares:?}"
    );
    let last = shares.last().unwrap();
    assert_eq!(last.0, "resolve: write lineage and candidates");
    assert!(last.1 > 0.5 && last.1 < 1.0, "{shares:?}");
}
