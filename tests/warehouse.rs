//! `c360 warehouse sql|pull`, verified by running the DuckDB scripts (DuckDB
//! from PyPI in a virtualenv) and comparing with the workspace's own run,
//! and by parsing the Spark, BigQuery and Snowflake scripts with sqlglot.
//!
//! The virtualenv: `C360_PYTHON`, else the repository's `.venv` (which
//! `.ci/run` creates; created here from PyPI when missing).

mod common;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python with duckdb and sqlglot.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("C360_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = repo().join(".venv");
        let py = venv.join("bin").join("python");
        let ready = |py: &Path| {
            std::process::Command::new(py)
                .args(["-c", "import duckdb, sqlglot"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ready(&py) {
            let made = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3 is needed for the warehouse tests");
            assert!(made.success(), "python3 -m venv {} failed", venv.display());
            let pip = std::process::Command::new(venv.join("bin").join("pip"))
                .args(["install", "-q", "duckdb", "sqlglot"])
                .status()
                .expect("pip");
            assert!(
                pip.success(),
                "pip install duckdb sqlglot failed (PyPI reachable?)"
            );
        }
        assert!(
            ready(&py),
            "{} cannot import duckdb and sqlglot",
            py.display()
        );
        py
    })
}

/// Run a helper script of tests/warehouse; its stdout.
fn script(name: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg(repo().join("tests").join("warehouse").join(name))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn c360(args: &[&str]) -> String {
    let out = Command::cargo_bin("c360")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "c360 {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn compile(ws: &Path, dialect: &str, out: &Path) {
    let said = c360(&[
        "warehouse",
        "sql",
        "--workspace",
        ws.to_str().unwrap(),
        "--dialect",
        dialect,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(said.contains(&format!("for {dialect}")), "{said}");
}

/// Compile for DuckDB, run everything in one database, compare.
fn run_and_compare(ws: &Path, dir: &Path) -> Value {
    compile(ws, "duckdb", dir);
    let db = dir.join("c360.duckdb");
    let log = script(
        "run_duckdb.py",
        &[dir.to_str().unwrap(), db.to_str().unwrap()],
    );
    assert!(log.contains("51_unify_profiles.sql"), "{log}");
    let out = script(
        "compare.py",
        &[
            ws.join("c360.db").to_str().unwrap(),
            db.to_str().unwrap(),
            "--details",
            "3",
        ],
    );
    serde_json::from_str(&out).unwrap()
}

/// The agreement the issue asks for, with the figures in the message.
fn assert_agrees(cmp: &Value) {
    let f1 = |k: &str| cmp[k]["f1"].as_f64().unwrap();
    assert!(f1("pairwise_all") >= 0.995, "{cmp:#}");
    assert!(f1("pairwise_crm_transactions") >= 0.995, "{cmp:#}");
    // Same rejects: (source, row, reason) sets equal.
    assert_eq!(
        cmp["rejects"]["local"], cmp["rejects"]["warehouse"],
        "{cmp:#}"
    );
    assert_eq!(
        cmp["rejects"]["only_local"].as_array().unwrap().len(),
        0,
        "{cmp:#}"
    );
    assert_eq!(
        cmp["rejects"]["only_warehouse"].as_array().unwrap().len(),
        0,
        "{cmp:#}"
    );
    let (l, w) = (
        cmp["profiles"]["local"].as_f64().unwrap(),
        cmp["profiles"]["warehouse"].as_f64().unwrap(),
    );
    assert!((l - w).abs() <= 0.005 * l, "{cmp:#}");
    assert_eq!(
        cmp["records"]["local"], cmp["records"]["warehouse"],
        "{cmp:#}"
    );
}

#[test]
fn every_dialect_compiles_and_parses_in_its_own_dialect() {
    let (dir, ws, _conn) = common::demo();
    for dialect in ["duckdb", "spark", "bigquery", "snowflake"] {
        let out = dir.path().join(format!("wh-{dialect}"));
        compile(&ws.root, dialect, &out);
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(
            readme.contains("## How to run") && readme.contains("raw_crm"),
            "{readme}"
        );
        for seed in [
            "match_model",
            "steward_decisions",
            "country_aliases",
            "nicknames",
            "blocked_values",
        ] {
            assert!(
                out.join("seeds").join(format!("{seed}.csv")).is_file(),
                "{dialect}: no seed {seed}"
            );
        }
        // The trained model travels: one row per level plus the prior.
        let model = std::fs::read_to_string(out.join("seeds/match_model.csv")).unwrap();
        assert!(
            model.lines().count() > 10 && model.contains("(prior)"),
            "{model}"
        );
        let parsed: Value =
            serde_json::from_str(&script("parse.py", &[out.to_str().unwrap(), dialect])).unwrap();
        let files = parsed["files"].as_object().unwrap();
        for f in [
            "10_stage_crm.sql",
            "30_identity_links.sql",
            "31_identity_fuzzy.sql",
            "33_identity_ids.sql",
            "51_unify_profiles.sql",
        ] {
            assert!(
                files[f].as_u64().unwrap() > 0,
                "{dialect}: {f} has no statements"
            );
        }
        if dialect == "duckdb" {
            assert!(out.join("load_local.sql").is_file());
        } else {
            assert!(out.join("00_seeds.sql").is_file());
        }
    }
    // Fallbacks are said where they apply.
    let spark = std::fs::read_to_string(dir.path().join("wh-spark/README.md")).unwrap();
    assert!(spark.contains("Jaro-Winkler: not built in"), "{spark}");
    let duck = std::fs::read_to_string(dir.path().join("wh-duckdb/README.md")).unwrap();
    assert!(!duck.contains("Jaro-Winkler: not built in"));
}

/// The demo, with two steward decisions: the warehouse honours them, and a
/// pull brings its results back without losing them.
#[test]
fn duckdb_run_of_the_demo_agrees_and_the_steward_loop_closes() {
    let (dir, ws, conn) = common::demo();
    let w = ws.root.to_str().unwrap();
    // Approve a review pair (two customers now) and reject an auto-merged
    // pair that fuzzy matching alone joined.
    let (l, r) = common::review_pair(&conn);
    c360(&["review", "--workspace", w, "approve", &l, &r]);
    let (rl, rr): (String, String) = conn
        .query_row(
            "SELECT c.left_key, c.right_key FROM match_candidates c
             WHERE c.band = 'auto_merge' AND c.decision IS NULL
               AND c.left_key LIKE 'crm:%' AND c.right_key LIKE 'crm:%'
               AND NOT EXISTS (SELECT 1 FROM match_candidates o WHERE o.candidate_id <> c.candidate_id
                 AND (o.left_key IN (c.left_key, c.right_key) OR o.right_key IN (c.left_key, c.right_key)))
             ORDER BY c.candidate_id LIMIT 1",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )
        .unwrap();
    c360(&["review", "--workspace", w, "reject", &rl, &rr]);
    assert_eq!(common::id_of(&conn, &l), common::id_of(&conn, &r));
    assert_ne!(common::id_of(&conn, &rl), common::id_of(&conn, &rr));

    let wh = dir.path().join("wh");
    let cmp = run_and_compare(&ws.root, &wh);
    assert_agrees(&cmp);
    // The demo agrees exactly: every pair, every reject, every profile.
    assert_eq!(cmp["pairwise_all"]["f1"].as_f64(), Some(1.0), "{cmp:#}");
    let decisions = std::fs::read_to_string(wh.join("seeds/steward_decisions.csv")).unwrap();
    assert!(
        decisions.contains("approve") && decisions.contains("reject"),
        "{decisions}"
    );

    // The warehouse's id map honours both decisions.
    let ids = std::fs::read_to_string(wh.join("results/customer360_id_map.csv")).unwrap();
    let id = |key: &str| {
        ids.lines()
            .find(|line| line.starts_with(&format!("{key},")))
            .and_then(|line| line.rsplit(',').next())
            .unwrap_or_else(|| panic!("{key} not in the warehouse id map"))
            .to_string()
    };
    assert_eq!(
        id(&l),
        id(&r),
        "the approval is a must-link in the warehouse"
    );
    assert_ne!(
        id(&rl),
        id(&rr),
        "the rejection is a cannot-link in the warehouse"
    );

    // Pull: the warehouse's results replace the workspace's, decisions stay.
    let before: i64 = common::int(
        &conn,
        "SELECT count(*) FROM steward_decisions WHERE undone_at IS NULL",
    );
    let said = c360(&[
        "warehouse",
        "--workspace",
        w,
        "pull",
        "--from",
        wh.join("results").to_str().unwrap(),
    ]);
    assert!(said.starts_with("pulled 26234 records of "), "{said}");
    assert_eq!(
        common::int(&conn, "SELECT count(*) FROM customer360_id_map"),
        26234
    );
    assert_eq!(
        common::int(
            &conn,
            "SELECT count(*) FROM steward_decisions WHERE undone_at IS NULL"
        ),
        before
    );
    let review: i64 = common::int(
        &conn,
        "SELECT count(*) FROM match_candidates WHERE band = 'review'",
    );
    assert!(said.contains(&format!("({review} to review")), "{said}");
    assert_eq!(
        common::strings(
            &conn,
            &format!(
                "SELECT decision FROM match_candidates WHERE left_key = '{}' AND right_key = '{}'",
                rl, rr
            )
        ),
        vec!["reject".to_string()]
    );
    assert_eq!(
        common::int(
            &conn,
            "SELECT count(*) FROM audit_log WHERE action = 'warehouse pull'"
        ),
        1
    );
    // A sample keeps fewer review pairs, and says so.
    let said = c360(&[
        "warehouse",
        "--workspace",
        w,
        "pull",
        "--from",
        wh.to_str().unwrap(),
        "--sample",
        "2",
    ]);
    assert_eq!(
        common::int(
            &conn,
            "SELECT count(*) FROM match_candidates WHERE band = 'review'"
        ),
        2
    );
    assert!(said.contains("left out of the sample"), "{said}");
}

/// A generated 20k-customer world: the same agreement at a size where the
/// guards, shared devices and fuzzy bands all occur.
#[test]
fn duckdb_run_of_a_20k_world_agrees_with_the_local_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    c360(&["init", ws.to_str().unwrap()]);
    c360(&[
        "generate",
        "--customers",
        "20000",
        "--out",
        ws.join("data").to_str().unwrap(),
    ]);
    c360(&["run", "--workspace", ws.to_str().unwrap(), "--all"]);
    let cmp = run_and_compare(&ws, &dir.path().join("wh"));
    assert_agrees(&cmp);
    assert!(
        cmp["records"]["local"].as_u64().unwrap() > 250_000,
        "{cmp:#}"
    );
}

#[test]
fn a_broken_source_mapping_is_a_clear_error_naming_the_source() {
    let (dir, ws, _conn) = common::demo();
    let cfg = ws.root.join("c360.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("address = \"street\"", "address = \"no_such_column\""),
    )
    .unwrap();
    let out = Command::cargo_bin("c360")
        .unwrap()
        .args([
            "warehouse",
            "sql",
            "--workspace",
            ws.root.to_str().unwrap(),
            "--dialect",
            "duckdb",
            "--out",
        ])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no_such_column") && err.contains("\"crm\""),
        "{err}"
    );
}

/// Union-find components: each node's smallest component member.
fn components_by_union_find(edges: &[(i64, i64)]) -> std::collections::BTreeMap<i64, i64> {
    use std::collections::BTreeMap;
    fn find(p: &mut BTreeMap<i64, i64>, x: i64) -> i64 {
        let up = *p.entry(x).or_insert(x);
        if up == x {
            return x;
        }
        let root = find(p, up);
        p.insert(x, root);
        root
    }
    let mut parent = BTreeMap::new();
    for &(a, b) in edges.iter().filter(|(a, b)| a != b) {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        parent.insert(hi, lo);
    }
    let nodes: Vec<i64> = parent.keys().copied().collect();
    nodes
        .into_iter()
        .map(|n| (n, find(&mut parent, n)))
        .collect()
}

/// The label propagation SQL on DuckDB, for graphs of the shapes an
/// identity graph has: long chains (a path settles in log rounds), stars
/// whose smallest node is a leaf, single edges, duplicate and reversed
/// edges, self-loops, and random sparse graphs. Each node must get the
/// smallest node of its component, as union-find gives it.
#[test]
fn label_propagation_sql_finds_the_components_union_find_does() {
    use rand::{RngExt, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let mut edges: Vec<(i64, i64)> = Vec::new();
    // A chain of 300 in shuffled numbering.
    let mut chain: Vec<i64> = (1000..1300).collect();
    for i in (1..chain.len()).rev() {
        chain.swap(i, rng.random_range(0..=i));
    }
    edges.extend(chain.windows(2).map(|w| (w[0], w[1])));
    // Stars whose centre is large and whose smallest member is a leaf,
    // joined in pairs through a member.
    for s in 0..40i64 {
        let centre = 5000 + s * 10;
        edges.extend((1..8).map(|m| (centre, centre + m)));
        edges.push((centre + 9 - 5000 + 100, centre)); // the smallest: a leaf
        if s % 2 == 1 {
            edges.push((centre - 10 + 3, centre + 3));
        }
    }
    // Single edges, duplicates, reversed duplicates, self-loops.
    edges.extend([(20, 21), (31, 30), (40, 41), (41, 40), (40, 41), (50, 50)]);
    // Random sparse graphs.
    for _ in 0..600 {
        let (a, b) = (
            rng.random_range(10_000..10_800),
            rng.random_range(10_000..10_800),
        );
        edges.push((a, b));
    }
    let csv: String = std::iter::once("a,b\n".to_string())
        .chain(edges.iter().map(|(a, b)| format!("{a},{b}\n")))
        .collect();
    let edges_csv = dir.path().join("edges.csv");
    std::fs::write(&edges_csv, csv).unwrap();
    let out_csv = dir.path().join("out.csv");
    // The components SQL over the edges in DuckDB, then `tail`.
    let run = |rounds: usize, tail: &str| {
        let sql = format!(
            "CREATE TABLE g AS SELECT * FROM read_csv('{}', header = true, columns = {{'a': 'BIGINT', 'b': 'BIGINT'}});\n{}{tail}",
            edges_csv.display(),
            c360::warehouse::graph::components(
                c360::warehouse::Dialect::DuckDb,
                "SELECT a, b FROM g",
                "cc",
                rounds
            ),
        );
        let sql_file = dir.path().join("cc.sql");
        std::fs::write(&sql_file, sql).unwrap();
        std::process::Command::new(python())
            .args([
                "-c",
                "import duckdb, sys; duckdb.connect().execute(open(sys.argv[1]).read())",
            ])
            .arg(&sql_file)
            .output()
            .unwrap()
    };
    let ran = run(
        12,
        &format!(
            "COPY (SELECT node, label FROM cc ORDER BY node) TO '{}' (HEADER);\n",
            out_csv.display()
        ),
    );
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let got: std::collections::BTreeMap<i64, i64> = std::fs::read_to_string(&out_csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let (n, c) = l.split_once(',').unwrap();
            (n.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    let want = components_by_union_find(&edges);
    assert_eq!(got.len(), want.len(), "every node on an edge, once");
    let wrong: Vec<_> = want
        .iter()
        .filter(|(n, c)| got.get(n) != Some(c))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "nodes with the wrong component (node, want): {wrong:?}"
    );
    assert!(
        chain.iter().all(|n| got[n] == 1000),
        "the chain settles on its smallest node"
    );
    assert_eq!(got[&5003], 109, "a star takes its smallest leaf");
    assert!(!got.contains_key(&50), "a self-loop alone is no edge");

    // Too few rounds for the chain: the script stops and says what to do.
    let ran = run(2, "");
    assert!(!ran.status.success());
    assert!(
        String::from_utf8_lossy(&ran.stderr).contains("compile with a larger --rounds"),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
}
