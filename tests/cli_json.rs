//! Scripting: every command's `--json` document, read back by a JSON parser
//! and checked against the store; `C360_WORKSPACE`, `c360 check` and the
//! shell completions, on the real binary.

use assert_cmd::Command;
use rusqlite::Connection;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn c360() -> Command {
    let mut cmd = Command::cargo_bin("c360").unwrap();
    cmd.env_remove("C360_SAMPLE_DATA")
        .env_remove("C360_WORKSPACE");
    cmd
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}

/// The command's stdout as one JSON document (nothing else on stdout).
fn json_of(cmd: &mut Command) -> Value {
    let out = stdout_of(cmd);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{out}"))
}

fn demo() -> (tempfile::TempDir, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo");
    stdout_of(
        c360()
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["demo", "--headless", "--workspace"])
            .arg(&ws),
    );
    let conn = Connection::open(ws.join("c360.db")).unwrap();
    (dir, ws, conn)
}

fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `c360 ARGS --json --workspace WS`.
fn json_in(ws: &Path, args: &[&str]) -> Value {
    json_of(c360().args(args).arg("--json").arg("--workspace").arg(ws))
}

#[test]
fn status_rejects_and_explain_as_json_match_the_store() {
    let (_dir, ws, conn) = demo();
    let status = json_in(&ws, &["status"]);
    let rows = &status["rows"];
    assert_eq!(
        rows["read"].as_i64().unwrap(),
        rows["staged"].as_i64().unwrap() + rows["rejected"].as_i64().unwrap()
    );
    assert_eq!(status["sources"].as_array().unwrap().len(), 3, "{status:#}");
    assert!(
        status["sources"][0]["last_load"]["batch_id"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(
        status["tables"]["customer360_profiles"].as_i64().unwrap(),
        int(&conn, "SELECT count(*) FROM customer360_profiles")
    );
    let resolve = status["pipeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "resolve")
        .unwrap();
    assert_eq!(resolve["last_run"]["status"], "ok", "{resolve:#}");

    // rejects: a hostile raw row comes back as the same string, escaped.
    conn.execute(
        "UPDATE rejects SET raw = 'Eve' || char(8238) || 'gpj.exe' || char(27) || '[2J'
         WHERE reject_id = (SELECT min(reject_id) FROM rejects)",
        [],
    )
    .unwrap();
    let out = stdout_of(
        c360()
            .args(["rejects", "--json", "--limit", "2", "--workspace"])
            .arg(&ws),
    );
    assert!(out.contains("Eve\\u202egpj.exe\\u001b[2J"), "{out}");
    assert!(!out.contains('\u{202e}') && !out.contains('\u{1b}'));
    let rejects: Value = serde_json::from_str(&out).unwrap();
    let total = int(&conn, "SELECT count(*) FROM rejects");
    assert_eq!(rejects["total"].as_i64().unwrap(), total);
    let per_reason: i64 = rejects["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["rows"].as_i64().unwrap())
        .sum();
    assert_eq!(per_reason, total);
    let page = rejects["rows"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0]["raw"], "Eve\u{202e}gpj.exe\u{1b}[2J");
    assert_eq!(rejects["next_after"], page[1]["reject_id"]);

    // explain: the customer's records, as the id map holds them.
    let (id, records): (String, i64) = conn
        .query_row(
            "SELECT customer360_id, count(*) n FROM customer360_id_map
             GROUP BY customer360_id ORDER BY n DESC, customer360_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let explained = json_in(&ws, &["explain", &id]);
    assert_eq!(explained["customer360_id"], id.as_str());
    assert_eq!(
        explained["records"].as_array().unwrap().len() as i64,
        records
    );
    let linked = explained["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "linked" && i["records"].as_i64().unwrap() > 1)
        .count();
    assert!(linked > 0, "{explained:#}");
}

#[test]
fn review_segments_and_eval_as_json() {
    let (_dir, ws, conn) = demo();
    let list = json_in(&ws, &["review", "list", "--limit", "3"]);
    let remaining = int(
        &conn,
        "SELECT count(*) FROM match_candidates
         WHERE (band = 'review' OR flags LIKE '%weak_bridge%') AND decision IS NULL",
    );
    assert_eq!(list["counts"]["remaining"].as_i64().unwrap(), remaining);
    let rows = list["rows"].as_array().unwrap();
    assert_eq!(rows.len() as i64, remaining.min(3));
    let first = rows[0]["candidate_id"].as_i64().unwrap();

    let shown = json_in(&ws, &["review", "show", &first.to_string()]);
    assert_eq!(shown["row"]["candidate_id"].as_i64().unwrap(), first);
    assert_eq!(shown["row"]["left_key"], rows[0]["left_key"]);
    assert!(!shown["comparisons"].as_array().unwrap().is_empty());

    let approved = json_in(
        &ws,
        &[
            "review",
            "approve",
            &first.to_string(),
            "--reason",
            "same person",
        ],
    );
    let decision = approved["decision_id"].as_i64().unwrap();
    assert!(decision > 0, "{approved:#}");
    let customers = approved["customers"].as_array().unwrap();
    assert!(customers.iter().all(|c| c == &customers[0]), "{approved:#}");
    let log = json_in(&ws, &["review", "decisions"]);
    assert_eq!(
        log["decisions"][0]["decision_id"].as_i64().unwrap(),
        decision
    );
    assert_eq!(log["decisions"][0]["action"], "approve");
    assert_eq!(log["decisions"][0]["reason"], "same person");

    let filter = "orders >= 2";
    let count = json_in(&ws, &["segment", "count", filter]);
    assert_eq!(count["filter"], filter);
    let n = count["profiles"].as_i64().unwrap();
    assert_eq!(
        n,
        int(
            &conn,
            "SELECT count(*) FROM customer360_profiles WHERE orders >= 2"
        )
    );
    stdout_of(
        c360()
            .args(["segment", "save", "repeat", filter, "--workspace"])
            .arg(&ws),
    );
    let listed = json_in(&ws, &["segment", "list"]);
    assert_eq!(listed["segments"][0]["name"], "repeat");
    assert_eq!(listed["segments"][0]["profiles"].as_i64().unwrap(), n);

    let truth = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/truth.csv");
    let eval = json_in(&ws, &["eval", "--truth", truth.to_str().unwrap()]);
    assert!(eval["records"].as_i64().unwrap() > 20_000, "{eval:#}");
    assert!(eval["precision"].as_f64().unwrap() > 0.99, "{eval:#}");
    let (p, r, f1) = (
        eval["precision"].as_f64().unwrap(),
        eval["recall"].as_f64().unwrap(),
        eval["f1"].as_f64().unwrap(),
    );
    assert!((f1 - 2.0 * p * r / (p + r)).abs() < 1e-9);
}

#[test]
fn the_workspace_comes_from_c360_workspace_and_json_elsewhere_is_refused() {
    let (dir, ws, _conn) = demo();
    let status = json_of(
        c360()
            .args(["status", "--json"])
            .env("C360_WORKSPACE", &ws)
            .current_dir(dir.path()),
    );
    assert_eq!(status["workspace"], ws.display().to_string());
    // --workspace wins over the variable.
    let other = dir.path().join("nowhere");
    let err = c360()
        .args(["status", "--workspace"])
        .arg(&other)
        .env("C360_WORKSPACE", &ws)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("nowhere"));

    let err = c360()
        .args(["report", "--json", "--workspace"])
        .arg(&ws)
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(err.contains("--json is not available"), "{err}");
}

#[test]
fn check_validates_config_and_rules_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    c360().arg("init").arg(&ws).assert().success();
    let ok = json_of(c360().args(["check", "--json", "--workspace"]).arg(&ws));
    assert_eq!(ok["ok"], true, "{ok:#}");
    assert_eq!(ok["files"].as_array().unwrap().len(), 5);
    // The template's data files are not there yet: a warning, not an error.
    assert!(
        ok["files"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{ok:#}"
    );

    let identity = ws.join("rules/identity.toml");
    let text = std::fs::read_to_string(&identity).unwrap();
    std::fs::write(&identity, format!("{text}\n[[deterministic]]\nkind = 7\n")).unwrap();
    // `status` does not read the rules; `check` does, and fails.
    c360()
        .args(["status", "--workspace"])
        .arg(&ws)
        .assert()
        .success();
    let out = c360()
        .args(["check", "--json", "--workspace"])
        .arg(&ws)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let bad: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(bad["ok"], false);
    let broken: Vec<&Value> = bad["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["error"].is_null())
        .collect();
    assert_eq!(broken.len(), 1, "{bad:#}");
    let error = broken[0]["error"].as_str().unwrap();
    assert!(error.contains("identity.toml"), "{error}");
    let out = c360()
        .args(["check", "--workspace"])
        .arg(&ws)
        .env("C360_WORKSPACE", "/nowhere")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("identity.toml:"), "{text}");
    assert!(
        text.contains("ERROR") && text.contains("no step was run"),
        "{text}"
    );
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    let bash = stdout_of(c360().args(["completions", "bash"]));
    assert!(bash.contains("_c360()"), "{bash}");
    for cmd in ["warehouse", "completions", "check", "schema"] {
        assert!(bash.contains(cmd), "bash lacks {cmd}");
    }
    let zsh = stdout_of(c360().args(["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef c360"), "{zsh}");
    let fish = stdout_of(c360().args(["completions", "fish"]));
    assert!(fish.contains("complete -c c360"), "{fish}");
    assert!(fish.contains("-l json"), "{fish}");
}

#[test]
fn bench_json_gives_the_report_tables_as_rows() {
    let dir = tempfile::tempdir().unwrap();
    let v = json_of(c360().args([
        "bench",
        "resolve",
        "--json",
        "--customers",
        "300",
        "--dir",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(v["bench"], "resolve");
    let runs = v["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(runs[0]["run"], "first run");
    assert_eq!(runs[1]["run"], "re-run");
    assert!(runs[0]["records"].as_i64().unwrap() > 300, "{v:#}");
    assert_eq!(runs[0]["customers"], runs[1]["customers"]);
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("quality")),
        "{v:#}"
    );
}

#[test]
fn schema_as_json_and_markdown_from_the_binary() {
    let v = json_of(c360().args(["schema", "--json"]));
    let tables = v["tables"].as_array().unwrap_or_else(|| panic!("{v:#}"));
    let profiles = tables
        .iter()
        .find(|t| t["name"] == "customer360_profiles")
        .unwrap_or_else(|| panic!("{v:#}"));
    let columns = profiles["columns"].as_array().unwrap();
    let anonymous = columns.iter().find(|c| c["name"] == "anonymous").unwrap();
    assert_eq!(anonymous["type"], "boolean", "{anonymous:#}");
    let md = stdout_of(c360().args(["schema", "--format", "md"]));
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema.md"))
            .unwrap();
    assert_eq!(
        md, committed,
        "docs/schema.md is not what `c360 schema` prints"
    );
}
