//! One schema, documented from one place: `docs/schema.md` is what the
//! data dictionary generates, and the dictionary matches the SQLite tables
//! a real workspace (the demo) has: every documented column exists with a
//! compatible type and holds values of its kind, and every column of an
//! exported table is documented.

mod common;
use common::*;

use c360::read::dictionary::{self, Kind, Origin};
use std::collections::HashMap;

const REGENERATE: &str = "cargo run --release -- schema --format md > docs/schema.md \
     (or UPDATE_SCHEMA=1 cargo test --test schema)";

#[test]
fn docs_schema_md_is_the_generated_dictionary() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema.md");
    let want = dictionary::markdown();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "docs/schema.md differs from src/read/dictionary.rs (first at line {}:\n  file: {:?}\n  want: {:?})\nregenerate it: {REGENERATE}",
            line + 1,
            have.lines().nth(line).unwrap_or("<end>"),
            want.lines().nth(line).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_json_dictionary_has_every_table_and_column() {
    let js = dictionary::json();
    let tables = js["tables"].as_array().unwrap();
    assert_eq!(tables.len(), dictionary::TABLES.len());
    let profiles = tables
        .iter()
        .find(|t| t["name"] == "customer360_profiles")
        .unwrap();
    let col = |name: &str| {
        profiles["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(col("first_seen")["parquet"], "Timestamp(ms, UTC)");
    assert_eq!(col("anonymous")["type"], "boolean");
    assert_eq!(col("crm_ids")["parquet"], "List(String)");
    assert_eq!(
        col("crm_ids")["csv_child_table"]["name"],
        "customer360_profiles__crm_ids"
    );
    assert_eq!(col("name_from")["provenance"], true);
    assert_eq!(col("row_hash")["exported"], false);
    for t in tables {
        for c in t["columns"].as_array().unwrap() {
            assert!(
                c["written_by"].as_str().is_some_and(|s| !s.is_empty()),
                "{c}"
            );
        }
    }
}

/// A condition true of every value a column of `kind` may hold.
fn holds(kind: Kind, col: &str) -> String {
    let v = col;
    match kind {
        Kind::Int => format!("typeof({v}) IN ('integer', 'null')"),
        Kind::Real => format!("typeof({v}) IN ('real', 'integer', 'null')"),
        Kind::Flag => format!("{v} IS NULL OR {v} IN (0, 1)"),
        Kind::Time => format!(
            "{v} IS NULL OR (typeof({v}) = 'text' AND {v} GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]*Z')"
        ),
        Kind::Json => format!("{v} IS NULL OR json_valid({v})"),
        Kind::Rfm => format!("{v} IS NULL OR {v} GLOB '[1-5][1-5][1-5]'"),
        Kind::Raw => format!("typeof({v}) IN ('text', 'blob', 'null')"),
        Kind::Text | Kind::Id | Kind::List { .. } => {
            format!("typeof({v}) IN ('text', 'null')")
        }
    }
}

#[test]
fn the_dictionary_matches_the_sqlite_tables_of_a_real_workspace() {
    let (_dir, _ws, conn) = demo();
    let mut problems = Vec::new();
    for t in dictionary::TABLES {
        if t.origin != Origin::Sqlite {
            // Made by the export: no table of that name may shadow it.
            assert_eq!(
                int(
                    &conn,
                    &format!(
                        "SELECT count(*) FROM sqlite_master WHERE name = '{}'",
                        t.name
                    )
                ),
                0,
                "{}",
                t.name
            );
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({})", t.name))
            .unwrap();
        let declared: HashMap<String, String> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if declared.is_empty() {
            problems.push(format!("{}: no such table in SQLite", t.name));
            continue;
        }
        for c in t.columns {
            match declared.get(c.name) {
                None => problems.push(format!(
                    "{}.{}: documented but not in SQLite",
                    t.name, c.name
                )),
                Some(decl) if !decl.eq_ignore_ascii_case(c.kind.sqlite()) => {
                    problems.push(format!(
                        "{}.{}: SQLite declares {decl}, the dictionary says {} ({})",
                        t.name,
                        c.name,
                        c.kind.name(),
                        c.kind.sqlite()
                    ))
                }
                Some(_) => {
                    let bad = int(
                        &conn,
                        &format!(
                            "SELECT count(*) FROM {} WHERE NOT ({})",
                            t.name,
                            holds(c.kind, c.name)
                        ),
                    );
                    if bad > 0 {
                        problems.push(format!(
                            "{}.{}: {bad} values are not of kind {}",
                            t.name,
                            c.name,
                            c.kind.name()
                        ));
                    }
                }
            }
        }
        for name in declared.keys() {
            if t.column(name).is_none() {
                problems.push(format!(
                    "{}.{name}: in SQLite but not documented in src/read/dictionary.rs",
                    t.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The demo has data in the tables whose kinds matter most.
    for table in [
        "customer360_profiles",
        "customer360_events",
        "match_candidates",
        "rejects",
        "analytics_activity",
    ] {
        assert!(
            int(&conn, &format!("SELECT count(*) FROM {table}")) > 0,
            "{table}"
        );
    }
}

#[test]
fn packed_lists_split_into_their_values() {
    // The CRM ids a profile packs are its CRM records' ids, so splitting on
    // the separator the dictionary names gives them back.
    let (_dir, _ws, conn) = demo();
    let t = dictionary::table("customer360_profiles").unwrap();
    let Kind::List { sep, .. } = t.column("crm_ids").unwrap().kind else {
        panic!("crm_ids is a list");
    };
    let mut stmt = conn
        .prepare(
            "SELECT p.crm_ids,
                    (SELECT group_concat(record_id, char(1)) FROM
                       (SELECT DISTINCT record_id FROM customer360_id_map m
                        WHERE m.customer360_id = p.customer360_id AND m.system = 'crm'
                        ORDER BY record_id))
             FROM customer360_profiles p",
        )
        .unwrap();
    let rows: Vec<(String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut several = 0;
    for (packed, ids) in rows {
        let split: Vec<&str> = packed.split(sep).filter(|s| !s.is_empty()).collect();
        let ids: Vec<String> = ids
            .map(|s| s.split('\u{1}').map(str::to_string).collect())
            .unwrap_or_default();
        assert_eq!(split, ids, "{packed}");
        several += usize::from(split.len() > 1);
    }
    assert!(several > 0, "some customers have several CRM records");
}
