//! Never lose a decision or a workspace: concurrent runs and decisions,
//! splits that keep a record's orders and events with it, `init` and
//! `demo --fresh` that never overwrite or delete someone's work, a database
//! path that is not a database, a closed pipe. Regression tests of issue 12,
//! each named after the bug.

mod common;
use common::*;

use c360::pipeline::identity::steward;
use c360::pipeline::progress::{NoProgress, Progress};
use c360::store;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn id_of(conn: &Connection, key: &str) -> String {
    conn.query_row(
        "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn id_map(conn: &Connection) -> Vec<String> {
    strings(
        conn,
        "SELECT record_key || '=' || customer360_id FROM customer360_id_map ORDER BY 1",
    )
}

/// A progress sink that calls `hook` at the start of every phase.
struct Hook<F: Fn(&str) + Send + Sync>(F);

impl<F: Fn(&str) + Send + Sync> Progress for Hook<F> {
    fn start(&self, phase: &str, _total: u64) {
        (self.0)(phase)
    }
    fn update(&self, _done: u64) {}
    fn message(&self, _msg: &str) {}
    fn finish(&self) {}
}

/// Two CRM records of one customer (the customer with most CRM records).
fn two_records_of_one_customer(conn: &Connection) -> (String, String) {
    let keys = strings(
        conn,
        "SELECT record_key FROM customer360_id_map WHERE system = 'crm' AND customer360_id =
           (SELECT customer360_id FROM customer360_id_map WHERE system = 'crm'
            GROUP BY customer360_id ORDER BY count(*) DESC, customer360_id LIMIT 1)
         ORDER BY record_key LIMIT 2",
    );
    assert_eq!(
        keys.len(),
        2,
        "the demo has a customer with two CRM records"
    );
    (keys[0].clone(), keys[1].clone())
}

/// Issue 12, data loss 1: a decision committed while resolve ran was
/// reported in force, but resolve wrote its results from the decisions,
/// previous ids and id sequence it had read before: the id it minted for
/// the decision was minted again, and the pair's decision vanished from the
/// queue. Now the step reads them inside its write transaction; a decision
/// made meanwhile waits for the commit and then applies on top.
#[test]
fn decision_committed_during_resolve_is_not_dropped() {
    let (_dir, ws, mut conn) = demo();
    let (a, b) = two_records_of_one_customer(&conn);
    let db = ws.db_path();
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    let decision = std::sync::Mutex::new(None);
    let hook = Hook(|phase: &str| {
        if phase != "resolve: clear previous results" {
            return;
        }
        let (db, a, b, done) = (db.clone(), a.clone(), b.clone(), done_tx.clone());
        *decision.lock().unwrap() = Some(std::thread::spawn(move || {
            let mut conn = store::open(&db).unwrap();
            let out = steward::decide_pair(&mut conn, &a, &b, false, "tester", "not one person");
            let _ = done.send(());
            out
        }));
        // Give the decision time to commit (before the fix it did, at once).
        let _ = done_rx.recv_timeout(Duration::from_millis(1500));
    });
    c360::pipeline::run_step_with(&mut conn, &ws, "resolve", &hook, c360::pipeline::Mode::Full)
        .unwrap();
    let outcome = decision
        .lock()
        .unwrap()
        .take()
        .expect("the hook ran")
        .join()
        .unwrap()
        .expect("the decision is committed");
    // The rejection holds: the two records are two customers ...
    assert_ne!(id_of(&conn, &a), id_of(&conn, &b), "{}", outcome.message);
    // ... no id is ever minted twice ...
    let next: i64 = int(
        &conn,
        "SELECT next FROM id_sequence WHERE name = 'customer360_id'",
    );
    let max_minted: i64 = int(
        &conn,
        "SELECT max(CAST(substr(customer360_id, 6) AS INTEGER)) FROM customer360_id_map",
    );
    assert!(
        next > max_minted,
        "id sequence {next} would mint C360-{max_minted:08} again"
    );
    // ... and a later run agrees with what the steward sees now.
    let seen = id_map(&conn);
    c360::pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert_eq!(seen, id_map(&conn), "a re-run keeps the decision's result");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_c360"))
}

/// A workspace with the sample data and no database yet.
fn fresh_workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    c360::workspace::init(&ws).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data");
    std::fs::create_dir_all(ws.join("data")).unwrap();
    for f in c360::demo::SAMPLE_FILES {
        std::fs::copy(sample.join(f), ws.join("data").join(f)).unwrap();
    }
    (dir, ws)
}

/// Issue 12, item 8: two `run --all` at once printed raw SQLite errors
/// ("migration 0003_identity: table identifiers already exists", "UNIQUE
/// constraint failed: load_batches"). Now the second waits, says for whom,
/// and both succeed with every source loaded once.
#[test]
fn two_runs_at_once_wait_for_each_other() {
    let (_dir, ws) = fresh_workspace();
    let spawn = || {
        bin()
            .args(["run", "--all", "--workspace"])
            .arg(&ws)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let stderr: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    for (o, err) in outs.iter().zip(&stderr) {
        assert!(o.status.success(), "{err}");
        assert!(!err.contains("UNIQUE constraint"), "{err}");
        assert!(!err.contains("already exists"), "{err}");
        assert!(!err.contains("database is locked"), "{err}");
    }
    assert!(
        stderr
            .iter()
            .any(|e| e.contains("waiting for `c360 run --all --workspace")),
        "one run says which command it waits for: {stderr:?}"
    );
    let conn = store::open(&ws.join("c360.db")).unwrap();
    assert_eq!(
        int(&conn, "SELECT count(*) FROM load_batches"),
        3,
        "each source loaded once"
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM pipeline_runs WHERE status <> 'ok'"
        ),
        0
    );
}

/// Issue 12, item 8: `review reject` during resolve's write phase failed in
/// 0.08 s with "database is locked" (a deferred transaction cannot wait to
/// upgrade). Now it waits for the writer, saying for whom, then commits.
#[test]
fn decision_waits_for_a_writer_and_says_for_whom() {
    let (_dir, ws, mut conn) = demo();
    let (a, b) = two_records_of_one_customer(&conn);
    let db = ws.db_path();
    // This test plays a pipeline run in its write phase: it holds the run
    // lock (naming itself) and SQLite's write lock.
    let run = store::lock::lock_run(&db, "run resolve", &NoProgress).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("DELETE FROM refused_unions", []).unwrap();
    let child = bin()
        .args(["review", "reject", &a, &b, "--workspace"])
        .arg(ws.root.as_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    tx.commit().unwrap();
    drop(run);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("waiting for `") && stderr.contains("run resolve"),
        "{stderr}"
    );
    assert_ne!(id_of(&conn, &a), id_of(&conn, &b), "the rejection applied");
}

/// Issue 12, "also": splitting a CRM record off a customer left its own
/// order and web events under the old id with no name (3 customers where 2
/// were announced). Records linked to the customer only through the
/// split-off record go with it, and the message names every customer.
#[test]
fn split_takes_the_records_own_orders_and_events_with_it() {
    let (_dir, ws, mut conn) = demo();
    // A customer with two CRM records, one of which has orders or events
    // carrying its customer_id.
    let (a, b) = two_records_of_one_customer(&conn);
    let customer = id_of(&conn, &a);
    let all = strings(
        &conn,
        &format!(
            "SELECT record_key FROM customer360_id_map WHERE customer360_id = '{customer}' ORDER BY 1"
        ),
    );
    let outcome =
        steward::split(&mut conn, std::slice::from_ref(&a), "tester", "two people").unwrap();
    let after: std::collections::BTreeSet<String> = all.iter().map(|k| id_of(&conn, k)).collect();
    assert_eq!(
        after.len(),
        outcome.customers.len(),
        "the message names every resulting customer: {}",
        outcome.message
    );
    assert_eq!(after.len(), 2, "{}", outcome.message);
    assert_ne!(id_of(&conn, &a), id_of(&conn, &b));
    // Every order or event that carries only a's customer id moved with it.
    let a_id = a.rsplit(':').next().unwrap().to_string();
    let own: Vec<String> = strings(
        &conn,
        &format!(
            "SELECT 'transactions:' || source || ':' || order_id || ':' || transaction_type
             FROM clean_transactions WHERE customer_id = '{a_id}'
             UNION ALL SELECT 'web:' || source || ':' || event_id FROM clean_web_events
             WHERE user_id = '{a_id}'"
        ),
    );
    for k in own.iter().filter(|k| all.contains(k)) {
        assert_eq!(id_of(&conn, k), id_of(&conn, &a), "{k} follows {a}");
    }
    // The split holds on a re-run, with the same customers.
    let seen = id_map(&conn);
    c360::pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert_eq!(seen, id_map(&conn));
    // No lineage row is written twice for one change.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM (SELECT old_id, new_id, reason FROM customer360_id_lineage
             GROUP BY 1, 2, 3 HAVING count(*) > 1)"
        ),
        0
    );
}

/// Issue 12, item 15: `c360 init` overwrote existing rule files.
#[test]
fn init_never_overwrites_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(rules.join("identity.toml"), "# my edits\n").unwrap();
    let out = bin().arg("init").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("identity.toml already exists; refusing to overwrite it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(rules.join("identity.toml")).unwrap(),
        "# my edits\n"
    );
    assert!(
        !dir.path().join("c360.toml").exists(),
        "nothing was written"
    );
}

/// Issue 12, item 13: `demo --fresh` deleted any folder holding a
/// `c360.toml`, steward decisions included.
#[test]
fn demo_fresh_deletes_only_a_folder_the_demo_built() {
    let (_dir, ws) = fresh_workspace();
    std::fs::write(ws.join("decisions-i-care-about.txt"), "x").unwrap();
    let out = bin()
        .args(["demo", "--headless", "--fresh", "--workspace"])
        .arg(&ws)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("was not built by `c360 demo`"), "{err}");
    assert!(ws.join("decisions-i-care-about.txt").exists());
    assert!(ws.join("c360.toml").exists());
}

/// Issue 12, item 10: `database = "data/crm.csv"` said "file is not a
/// database" without naming the file.
#[test]
fn a_database_path_that_is_not_a_database_is_named() {
    let (_dir, ws) = fresh_workspace();
    let err = store::open(&ws.join("data").join("crm.csv"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("crm.csv is not a c360 database (it is not an SQLite file; check `database` in c360.toml)"),
        "{err}"
    );
    let err = store::open(&ws.join("data")).unwrap_err().to_string();
    assert!(
        err.contains("data is a folder, not a c360 database"),
        "{err}"
    );
}

/// Issue 12, item 5: `c360 rejects | head -1` exited 101 (a panic on the
/// broken pipe). Now it ends quietly, as other Unix tools do.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    // 4,000 rejects: far more output than a pipe buffers.
    let (_dir, ws) = fresh_workspace();
    let mut crm = String::from(
        "customer_id,first_name,last_name,email,phone,birth_date,street,city,postcode,country,\
         lifecycle_status,created_at,updated_at,loyalty_tier,marketing_opt_in\n",
    );
    for i in 0..4000 {
        crm.push_str(&format!(",Name{i},Last,n{i}@example.com,,,,,,,,,,,\n"));
    }
    std::fs::write(ws.join("data").join("crm.csv"), crm).unwrap();
    let load = bin()
        .args(["load", "--source", "crm", "--workspace"])
        .arg(&ws)
        .output()
        .unwrap();
    assert!(load.status.success(), "{load:?}");
    for args in [&["rejects", "--limit", "5000"][..], &["status"][..]] {
        let mut child = bin()
            .args(args)
            .arg("--workspace")
            .arg(&ws)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
        drop(child.stdout.take()); // as `head` does after its line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?}",
            out.status
        );
    }
}

fn duplicated_lineage(conn: &Connection) -> i64 {
    int(
        conn,
        "SELECT count(*) FROM (SELECT old_id, new_id, reason FROM customer360_id_lineage
         GROUP BY 1, 2, 3 HAVING count(*) > 1)",
    )
}

/// Issue 12, "also": a duplicate lineage row on the first resolve after a
/// decision. Approve, reject and undo, each followed by a resolve run: every
/// id change is recorded once.
#[test]
fn the_first_resolve_after_a_decision_writes_no_lineage_again() {
    let (_dir, ws, mut conn) = demo();
    assert_eq!(duplicated_lineage(&conn), 0);
    let pending = steward::queue(
        &conn,
        steward::QueueFilter::Pending,
        steward::QueueOrder::Score,
        None,
        0,
        2,
    )
    .unwrap();
    assert_eq!(pending.len(), 2, "the demo has pairs to review");
    let lineage_rows = |conn: &Connection| int(conn, "SELECT count(*) FROM customer360_id_lineage");
    for (i, p) in pending.iter().enumerate() {
        let approve = i == 0;
        steward::decide_pair(&mut conn, &p.left_key, &p.right_key, approve, "t", "").unwrap();
        let after_decision = lineage_rows(&conn);
        c360::pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
        assert_eq!(
            lineage_rows(&conn),
            after_decision,
            "resolve after the decision changed no id, so it records no lineage"
        );
        assert_eq!(duplicated_lineage(&conn), 0);
    }
    steward::undo(&mut conn, None, "t", "").unwrap();
    let after_undo = lineage_rows(&conn);
    c360::pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert_eq!(lineage_rows(&conn), after_undo);
}

/// Found driving the workbench: `database disk image is malformed` after a
/// steward decision and an analyse job while another process read the
/// workspace. Opening a second connection read the database header with a
/// file handle of its own; closing it dropped every POSIX lock the process
/// held on the database, so the other process, closing, took itself for the
/// last user, check-pointed and deleted the WAL under the workbench. Now the
/// header is checked through SQLite.
#[test]
fn another_process_closing_the_workspace_while_the_workbench_writes_loses_nothing() {
    let (_dir, ws, conn) = demo();
    let db = ws.db_path();
    // Another process reading the workspace: the sqlite3 shell when there is
    // one (it was the one in the report), else c360 itself.
    let other = || {
        let sqlite3 = Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT count(*) FROM customer360_profiles")
            .output();
        if sqlite3.is_err() {
            let out = Command::new(env!("CARGO_BIN_EXE_c360"))
                .args(["status", "--workspace"])
                .arg(&ws.root)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    let insert = |c: &Connection, i: i64| {
        c.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES ('t', 'probe', 'probe', ?1)",
            [i],
        )
        .unwrap();
    };
    // The workbench's connection; jobs open (and close) their own beside it,
    // as the decision and the analyse job did, while another process reads.
    other();
    for round in 0..3 {
        let job = store::open(&db).unwrap();
        for i in 0..20 {
            insert(&job, round * 100 + i);
        }
        drop(job);
        other();
        insert(&conn, round * 100 + 50);
    }
    // Every write is there for a fresh reader, and the file is sound.
    let fresh = Connection::open(&db).unwrap();
    assert_eq!(
        int(
            &fresh,
            "SELECT count(*) FROM audit_log WHERE actor = 'probe'"
        ),
        63
    );
    let check: String = fresh
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
