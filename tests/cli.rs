//! End-to-end: the real `c360` binary, as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn c360() -> Command {
    let mut cmd = Command::cargo_bin("c360").unwrap();
    cmd.env_remove("C360_SAMPLE_DATA");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn help_lists_every_command() {
    let out = stdout_of(c360().arg("--help"));
    for cmd in [
        "demo", "init", "load", "run", "status", "rejects", "generate", "bench",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
}

#[test]
fn init_load_status_rejects_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("acme");
    let out = stdout_of(c360().arg("init").arg(&ws));
    assert!(out.contains("Created workspace"), "{out}");
    assert!(ws.join("c360.toml").is_file());
    assert!(ws.join("rules/c360.template.toml").is_file());
    // A second init refuses to overwrite.
    c360()
        .arg("init")
        .arg(&ws)
        .assert()
        .failure()
        .stderr(predicate::str::contains("already exists"));

    stdout_of(
        c360()
            .args(["generate", "--customers", "150", "--seed", "3", "--out"])
            .arg(ws.join("data")),
    );
    let load = stdout_of(c360().arg("load").arg("--workspace").arg(&ws));
    for source in ["crm", "web", "transactions"] {
        assert!(load.contains(source), "{load}");
    }
    // Reconcile the printed table with the database.
    let conn = rusqlite::Connection::open(ws.join("c360.db")).unwrap();
    let (read, staged, rejected): (i64, i64, i64) = conn
        .query_row(
            "SELECT sum(rows_read), sum(rows_staged), sum(rows_rejected) FROM load_batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(read, staged + rejected);
    assert!(rejected > 0, "generated data has invalid rows");
    let rejects_table: i64 = conn
        .query_row("SELECT count(*) FROM rejects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rejects_table, rejected);

    // Loading again adds nothing.
    let again = stdout_of(c360().arg("load").arg("--workspace").arg(&ws));
    assert_eq!(again.matches("already loaded").count(), 3, "{again}");

    let status = stdout_of(c360().arg("status").arg("--workspace").arg(&ws));
    assert!(status.contains("stg_web_events"), "{status}");
    // Every step is built; the status lists each with its last run: the
    // load ran (extract and stage), the later steps did not yet.
    let step_row = |step: &str| -> String {
        status
            .lines()
            .find(|l| l.starts_with(&format!("  {step:<12} ")))
            .unwrap_or_else(|| panic!("no row for step {step}:\n{status}"))
            .to_string()
    };
    for step in ["extract", "stage"] {
        assert!(
            step_row(step).starts_with(&format!("  {step:<12} ok at ")),
            "{status}"
        );
    }
    for step in ["standardise", "resolve", "unify", "analyse"] {
        assert_eq!(step_row(step), format!("  {step:<12} not run"), "{status}");
    }

    let rejects = stdout_of(
        c360()
            .args(["rejects", "--limit", "3", "--workspace"])
            .arg(&ws),
    );
    assert!(
        rejects.starts_with(&format!("{rejected} rejected rows")),
        "{rejects}"
    );
    assert!(rejects.contains("raw: "), "{rejects}");
}

#[test]
fn unknown_steps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    stdout_of(c360().arg("init").arg(dir.path()));
    c360()
        .args(["run", "--step", "bogus", "--workspace"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown step"));
    // A step whose input is missing says what to run first.
    c360()
        .args(["run", "--step", "analyse", "--workspace"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("run the unify step first"));
}

#[test]
fn config_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c360.toml"),
        "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"x.csv\"\nformat = \"csv\"\n[sources.mapping]\nadress = \"street\"\n",
    )
    .unwrap();
    c360()
        .arg("load")
        .arg("--workspace")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("c360.toml:7:")
                .and(predicate::str::contains("mapping.adress")),
        );
}

#[test]
fn not_a_workspace_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    c360()
        .arg("status")
        .arg("--workspace")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("c360 init"));
}

#[test]
fn demo_builds_then_reuses_its_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let first = stdout_of(
        c360()
            .current_dir(repo)
            .args(["demo", "--headless", "--workspace"])
            .arg(&ws),
    );
    assert!(first.contains("built from sample_data/"), "{first}");
    assert!(ws.join("data/truth.csv").is_file());
    let conn = rusqlite::Connection::open(ws.join("c360.db")).unwrap();
    let crm: i64 = conn
        .query_row("SELECT count(*) FROM stg_crm_customers", [], |r| r.get(0))
        .unwrap();
    assert!(crm > 2000, "sample CRM rows staged: {crm}");
    drop(conn);

    let second = stdout_of(
        c360()
            .current_dir(dir.path())
            .args(["demo", "--headless", "--workspace"])
            .arg(&ws),
    );
    assert!(second.contains("reused"), "{second}");

    // A workspace from an older c360 without a newer rule file gets the
    // default added, and its edited rule files are left alone.
    std::fs::remove_file(ws.join("rules/identity.toml")).unwrap();
    let people = ws.join("rules/people.toml");
    std::fs::write(&people, "# edited by a steward\n").unwrap();
    stdout_of(
        c360()
            .current_dir(repo)
            .args(["demo", "--headless", "--workspace"])
            .arg(&ws),
    );
    assert!(ws.join("rules/identity.toml").is_file());
    assert_eq!(
        std::fs::read_to_string(&people).unwrap(),
        "# edited by a steward\n"
    );
    assert_eq!(second.matches("already loaded").count(), 3, "{second}");

    let fresh = stdout_of(
        c360()
            .current_dir(repo)
            .args(["demo", "--headless", "--fresh", "--workspace"])
            .arg(&ws),
    );
    assert!(fresh.contains("built from sample_data/"), "{fresh}");

    // --fresh never deletes a folder that is not a workspace.
    let stranger = dir.path().join("photos");
    std::fs::create_dir(&stranger).unwrap();
    std::fs::write(stranger.join("cat.jpg"), "meow").unwrap();
    c360()
        .current_dir(repo)
        .args(["demo", "--headless", "--fresh", "--workspace"])
        .arg(&stranger)
        .assert()
        .failure()
        .stderr(predicate::str::contains("refusing to delete"));
    assert!(stranger.join("cat.jpg").is_file());
}

/// The demo workspace built by the real binary: (temp dir, workspace).
fn headless_demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    stdout_of(
        c360()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["demo", "--headless", "--workspace"])
            .arg(&ws),
    );
    (dir, ws)
}

#[test]
fn review_commands_decide_undo_and_eval_scores() {
    let (_dir, ws) = headless_demo();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // --workspace works after the subcommand too.
    let list = stdout_of(
        c360()
            .args(["review", "list", "--limit", "3", "--workspace"])
            .arg(&ws),
    );
    // The counts, the header, then one pair per line.
    let first = list
        .lines()
        .skip(2)
        .find_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no candidate id in\n{list}"));
    let shown = stdout_of(
        c360()
            .args(["review", "--workspace"])
            .arg(&ws)
            .args(["show", &first.to_string()]),
    );
    assert!(shown.contains("first_name"), "{shown}");

    let conn = rusqlite::Connection::open(ws.join("c360.db")).unwrap();
    let (left, right): (String, String) = conn
        .query_row(
            "SELECT left_key, right_key FROM match_candidates WHERE candidate_id = ?1",
            [first],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let customer = |key: &str| -> String {
        conn.query_row(
            "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
    };
    let together_before = customer(&left) == customer(&right);
    let approved = stdout_of(
        c360()
            .args([
                "review",
                "approve",
                &first.to_string(),
                "--reason",
                "same phone, married name",
            ])
            .arg("--workspace")
            .arg(&ws),
    );
    assert!(approved.contains("approved"), "{approved}");
    assert_eq!(customer(&left), customer(&right));
    // Honoured by a re-run of the whole pipeline.
    c360()
        .args(["run", "--all", "--workspace"])
        .arg(&ws)
        .assert()
        .code(predicate::in_iter([0, 2]));
    assert_eq!(customer(&left), customer(&right));
    let decisions = stdout_of(c360().args(["review", "decisions", "--workspace"]).arg(&ws));
    assert!(
        decisions.contains("approve") && decisions.contains("same phone, married name"),
        "{decisions}"
    );
    // Undo: as before the approval.
    stdout_of(c360().args(["review", "undo", "--workspace"]).arg(&ws));
    assert_eq!(customer(&left) == customer(&right), together_before);

    let eval = stdout_of(
        c360()
            .args(["eval", "--truth"])
            .arg(repo.join("sample_data/truth.csv"))
            .arg("--workspace")
            .arg(&ws),
    );
    let figure = |name: &str| -> f64 {
        eval.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{eval}"))
    };
    assert!(figure("precision") > 0.995, "{eval}");
    assert!(figure("recall") > 0.985, "{eval}");
}

#[test]
fn export_writes_parquet_and_csv_from_the_cli() {
    let (dir, ws) = headless_demo();
    let out = dir.path().join("profiles.parquet");
    let said = stdout_of(
        c360()
            .args(["export", "--table", "customer360_profiles", "--out"])
            .arg(&out)
            .arg("--workspace")
            .arg(&ws),
    );
    assert!(
        said.contains("rows") && said.contains("profiles.parquet"),
        "{said}"
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"PAR1", "a Parquet file");
    let csv_out = dir.path().join("events.csv");
    stdout_of(
        c360()
            .args([
                "export",
                "--table",
                "customer360_events",
                "--format",
                "csv",
                "--out",
            ])
            .arg(&csv_out)
            .arg("--workspace")
            .arg(&ws),
    );
    let text = std::fs::read_to_string(&csv_out).unwrap();
    assert!(
        text.starts_with("customer360_id,event_time,event_name"),
        "{}",
        &text[..80]
    );
    c360()
        .args(["export", "--table", "nope", "--out"])
        .arg(dir.path().join("x.csv"))
        .arg("--workspace")
        .arg(&ws)
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot export"));
}

/// stderr of a failing command.
fn stderr_of_failure(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().get_output().stderr.clone();
    String::from_utf8(out).unwrap()
}

/// Nothing a terminal would act on or hide: no control character but the
/// line breaks, no bidi or zero-width character.
fn assert_printable(text: &str) {
    let bad: Vec<String> = text
        .chars()
        .filter(|&c| c != '\n' && c360::safe_text::is_unsafe(c))
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(bad.is_empty(), "printed raw: {bad:?}\n{text}");
}

#[test]
fn error_messages_escape_terminal_sequences_from_the_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c360.toml"),
        "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"crm.csv\"\nformat = \"csv\"\n",
    )
    .unwrap();
    // A header that sets the terminal's title, then reverses the text.
    std::fs::write(
        dir.path().join("crm.csv"),
        "first_name,\u{1b}]0;pwned\u{7}\u{202e}x\nAnna,1\n",
    )
    .unwrap();
    let err = stderr_of_failure(c360().arg("load").arg("--workspace").arg(dir.path()));
    assert!(err.contains("required column"), "{err}");
    assert!(err.contains("\\u{1b}]0;pwned\\u{7}\\u{202e}x"), "{err}");
    assert_printable(&err);
}

#[test]
fn explain_rejects_and_review_print_data_escaped() {
    let (_dir, ws) = headless_demo();
    let conn = rusqlite::Connection::open(ws.join("c360.db")).unwrap();

    // explain: a record key with a newline and a right-to-left override
    // stays on its line, escaped; explain's own lines stay lines.
    let (id, key): (String, String) = conn
        .query_row(
            "SELECT customer360_id, record_key FROM customer360_id_map ORDER BY customer360_id, record_key LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute(
        "UPDATE customer360_id_map SET record_key = record_key || char(10) || 'C360-99999999: 1 records' || char(8238)
         WHERE record_key = ?1",
        [&key],
    )
    .unwrap();
    let explained = stdout_of(c360().args(["explain", "--workspace"]).arg(&ws).arg(&id));
    assert!(
        explained
            .lines()
            .any(|l| l == format!("  {key}\\nC360-99999999: 1 records\\u{{202e}}")),
        "{explained}"
    );
    assert!(
        !explained.lines().any(|l| l.starts_with("C360-99999999")),
        "{explained}"
    );
    assert!(explained.starts_with(&format!("{id}: ")), "{explained}");
    assert_printable(&explained);

    // rejects: the original row, the source and the reason.
    conn.execute(
        "UPDATE rejects SET raw = 'Eve' || char(8238) || 'gpj.exe' || char(8203),
                detail = 'bad' || char(27) || '[2J'
         WHERE reject_id = (SELECT min(reject_id) FROM rejects)",
        [],
    )
    .unwrap();
    let rejects = stdout_of(
        c360()
            .args(["rejects", "--limit", "1", "--workspace"])
            .arg(&ws),
    );
    assert!(
        rejects.contains("\n  raw: Eve\\u{202e}gpj.exe\\u{200b}\n"),
        "{rejects}"
    );
    assert!(rejects.contains("\n  bad\\u{1b}[2J\n"), "{rejects}");
    assert_printable(&rejects);

    // review show: both records' values.
    let cid: i64 = conn
        .query_row("SELECT min(candidate_id) FROM match_candidates", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute(
        r#"UPDATE match_candidates SET comparisons = json_set(comparisons, '$[0].members[0].right', 'Ann' || char(8238) || 'a' || char(8294))
           WHERE candidate_id = ?1"#,
        [cid],
    )
    .unwrap();
    let shown = stdout_of(
        c360()
            .args(["review", "show", &cid.to_string(), "--workspace"])
            .arg(&ws),
    );
    assert!(shown.contains(" Ann\\u{202e}a\\u{2066}\n"), "{shown}");
    assert_printable(&shown);
}

#[test]
fn review_undo_after_a_bulk_undoes_the_bulk() {
    let (_dir, ws) = headless_demo();
    let conn = rusqlite::Connection::open(ws.join("c360.db")).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    // The three most probable pending pairs.
    let min: f64 = conn
        .query_row(
            "SELECT probability FROM match_candidates
             WHERE (band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NULL
             ORDER BY probability DESC LIMIT 1 OFFSET 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let pending = format!(
        "SELECT count(*) FROM match_candidates
         WHERE (band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NULL
           AND probability >= {min}"
    );
    let n = count(&pending);
    assert!(n >= 3);
    let said = stdout_of(
        c360()
            .args([
                "review",
                "bulk",
                "approve",
                "--min",
                &min.to_string(),
                "--max",
                "1",
            ])
            .args(["--reason", "clearly the same", "--workspace"])
            .arg(&ws),
    );
    assert!(said.contains(&format!("approved {n} pair(s)")), "{said}");
    assert_eq!(count(&pending), 0);
    assert_eq!(
        count("SELECT count(DISTINCT bulk_id) FROM steward_decisions WHERE undone_at IS NULL"),
        1
    );
    let decisions = stdout_of(c360().args(["review", "decisions", "--workspace"]).arg(&ws));
    assert_eq!(
        decisions
            .lines()
            .filter(|l| l.ends_with("(bulk 1)"))
            .count() as i64,
        n,
        "{decisions}"
    );
    let undone = stdout_of(c360().args(["review", "undo", "--workspace"]).arg(&ws));
    assert!(
        undone.contains(&format!("undid bulk 1: {n} decision(s)")),
        "{undone}"
    );
    assert_eq!(
        count("SELECT count(*) FROM steward_decisions WHERE undone_at IS NULL"),
        0
    );
    assert_eq!(
        count(&pending),
        n,
        "every pair of the bulk is pending again"
    );
}
