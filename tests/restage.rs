//! `c360 load --restage`: the rows already landed are staged again from
//! their raw text with the current mapping, format and time zone; row keys,
//! counts and steward decisions survive, and the rest of the pipeline
//! follows.

mod common;

use c360::pipeline::identity::steward;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self, load::stage};
use c360::workspace::Workspace;
use common::{demo, id_of, int, review_pair, strings};
use rusqlite::Connection;

/// Every row of a table (all columns), as text, in rowid order.
fn rows(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid"))
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        let mut line = String::new();
        for i in 0..n {
            let v: rusqlite::types::Value = r.get(i)?;
            line.push_str(&format!("{v:?}|"));
        }
        Ok(line)
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn staged_and_rejected(conn: &Connection) -> Vec<Vec<String>> {
    [
        "stg_crm_customers",
        "stg_web_events",
        "stg_transactions",
    ]
    .iter()
    .map(|t| rows(conn, t))
    .chain(std::iter::once(strings(
        conn,
        "SELECT batch_id || '|' || source || '|' || row_num || '|' || coalesce(field, '') || '|' || reason || '|' || detail
         FROM rejects ORDER BY batch_id, row_num",
    )))
    .collect()
}

/// A workspace with one CRM source, `crm.csv` (not written yet).
fn crm_csv_workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c360.toml"),
        "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"crm.csv\"\nformat = \"csv\"\n",
    )
    .unwrap();
    dir
}

fn edit_config(ws: &Workspace, from: &str, to: &str) -> Workspace {
    let path = ws.root.join("c360.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "c360.toml has no {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    Workspace::open(&ws.root).unwrap()
}

#[test]
fn restaging_with_the_same_settings_gives_back_every_staged_row_and_reject() {
    let (_dir, ws, mut conn) = demo();
    let before = staged_and_rejected(&conn);
    let reports = stage::restage_all(&mut conn, &ws, None, &NoProgress).unwrap();
    // CSV (crm), Segment NDJSON (web) and Parquet (transactions).
    assert_eq!(reports.len(), 3);
    for r in &reports {
        assert_eq!(r.rows_staged, r.staged_before, "{}", r.source);
        assert_eq!(r.rows_rejected, r.rejected_before, "{}", r.source);
        assert!(r.rows_read > 0, "{}", r.source);
    }
    let after = staged_and_rejected(&conn);
    for (table, (a, b)) in ["crm", "web", "transactions", "rejects"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        assert_eq!(a.len(), b.len(), "{table}: row count");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "{table}: a restaged row differs");
        }
    }
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM load_batches WHERE rows_read <> rows_staged + rows_rejected OR restaged_at IS NULL"
        ),
        0
    );
}

#[test]
fn a_corrected_mapping_is_restaged_and_decisions_survive_it() {
    let (_dir, ws, mut conn) = demo();
    // A steward merges a review pair.
    let (left, right) = review_pair(&conn);
    steward::decide_pair(&mut conn, &left, &right, true, "ann", "same person").unwrap();
    let addresses = int(
        &conn,
        "SELECT count(*) FROM stg_crm_customers WHERE address IS NOT NULL",
    );
    assert!(addresses > 100, "{addresses}");
    let crm_rows = int(&conn, "SELECT count(*) FROM stg_crm_customers");

    // The address mapping is lost from c360.toml: a load adds nothing but
    // says the batches were staged otherwise, and what to run.
    let ws2 = edit_config(&ws, "address = \"street\"", "");
    let load =
        stage::load_source(&mut conn, &ws2, ws2.source("crm").unwrap(), &NoProgress).unwrap();
    assert!(load.already_loaded);
    let hint = load.restage_hint.expect("a restage hint");
    assert!(hint.contains("c360 load --restage --source crm"), "{hint}");
    let step = pipeline::run_step(&mut conn, &ws2, "stage", &NoProgress).unwrap();
    assert!(
        step.message
            .contains("mapping changed since staged: crm (c360 load --restage)"),
        "{}",
        step.message
    );

    let r = stage::restage_all(&mut conn, &ws2, Some("crm"), &NoProgress).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].rows_read, r[0].rows_staged + r[0].rows_rejected);
    assert_eq!(
        int(&conn, "SELECT count(*) FROM stg_crm_customers"),
        crm_rows
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM stg_crm_customers WHERE address IS NOT NULL"
        ),
        0
    );
    // The street column is now an unmapped one, kept in `extra`.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM stg_crm_customers WHERE json_extract(extra, '$.street') IS NOT NULL"
        ),
        addresses
    );
    // A load now has nothing to say.
    let load =
        stage::load_source(&mut conn, &ws2, ws2.source("crm").unwrap(), &NoProgress).unwrap();
    assert_eq!(load.restage_hint, None);

    // The rest of the pipeline follows; the decision still holds.
    pipeline::run_all(&mut conn, &ws2, &NoProgress).unwrap();
    assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM steward_decisions WHERE action = 'approve' AND undone_at IS NULL"
        ),
        1
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE address IS NOT NULL"
        ),
        0
    );

    // The mapping put back and restaged: addresses return, decision kept.
    let ws3 = edit_config(
        &ws2,
        "[sources.mapping]",
        "[sources.mapping]\naddress = \"street\"",
    );
    stage::restage_all(&mut conn, &ws3, Some("crm"), &NoProgress).unwrap();
    pipeline::run_all(&mut conn, &ws3, &NoProgress).unwrap();
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM stg_crm_customers WHERE address IS NOT NULL"
        ),
        addresses
    );
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE address IS NOT NULL"
        ) > 0
    );
    assert_eq!(id_of(&conn, &left), id_of(&conn, &right));
}

#[test]
fn fixed_csv_quote_date_order_and_time_zone_restage_rejects_and_values() {
    let dir = crm_csv_workspace();
    let root = dir.path();
    std::fs::write(
        root.join("crm.csv"),
        "customer_id,full_name,created_at\nA1,Ann,13/04/2024\nA2,Bob,01/02/2024 10:00\nA3,'Smith, Jo',01/02/2024\n",
    )
    .unwrap();
    let ws = Workspace::open(root).unwrap();
    let mut conn = c360::store::open(&ws.db_path()).unwrap();
    let load = stage::load_source(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap();
    // The file quotes with ': with the default " the third row has 4 fields.
    assert_eq!((load.rows_staged, load.rows_rejected), (2, 1));
    assert_eq!(strings(&conn, "SELECT reason FROM rejects"), ["ragged_row"]);
    let values = |conn: &Connection| {
        strings(
            conn,
            "SELECT customer_id || ' ' || full_name || ' ' || created_at FROM stg_crm_customers ORDER BY rowid",
        )
    };
    assert_eq!(
        values(&conn),
        [
            "A1 Ann 2024-04-13T00:00:00.000Z",
            "A2 Bob 2024-01-02T10:00:00.000Z"
        ]
    );

    let ws = edit_config(
        &ws,
        "format = \"csv\"\n",
        "format = \"csv\"\ndate_order = \"dmy\"\ntimezone = \"Europe/Paris\"\n[sources.csv]\nquote = \"'\"\n",
    );
    let r = stage::restage(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap();
    assert_eq!((r.staged_before, r.rejected_before), (2, 1));
    assert_eq!((r.rows_staged, r.rows_rejected), (3, 0));
    assert_eq!(int(&conn, "SELECT count(*) FROM rejects"), 0);
    assert_eq!(
        values(&conn),
        [
            "A1 Ann 2024-04-12T22:00:00.000Z",
            "A2 Bob 2024-02-01T09:00:00.000Z",
            "A3 Smith, Jo 2024-01-31T23:00:00.000Z"
        ]
    );
    // Row keys are kept: the rows are batch 1's rows 1, 2 and 3.
    assert_eq!(
        strings(
            &conn,
            "SELECT batch_id || ':' || row_num || ':' || (rowid = (batch_id << 32 | row_num)) FROM stg_crm_customers ORDER BY rowid"
        ),
        ["1:1:1", "1:2:1", "1:3:1"]
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT rows_read || '=' || rows_staged || '+' || rows_rejected FROM load_batches"
        ),
        ["3=3+0"]
    );
}

#[test]
fn a_batch_loaded_before_headers_were_kept_is_restaged_only_while_its_file_is_unchanged() {
    let dir = crm_csv_workspace();
    let root = dir.path();
    std::fs::write(root.join("crm.csv"), "customer_id,mail\nA1,a@x.com\n").unwrap();
    let ws = Workspace::open(root).unwrap();
    let mut conn = c360::store::open(&ws.db_path()).unwrap();
    stage::load_source(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap();
    let email = |conn: &Connection| {
        strings(
            conn,
            "SELECT customer_id || ' ' || coalesce(email, '-') FROM stg_crm_customers",
        )
    };
    assert_eq!(email(&conn), ["A1 -"], "`mail` is not mapped yet");
    // As a workspace made by an older c360 would be: no header kept.
    conn.execute("UPDATE load_batches SET header = NULL", [])
        .unwrap();
    let ws = edit_config(
        &ws,
        "format = \"csv\"\n",
        "format = \"csv\"\n[sources.mapping]\nemail = \"mail\"\n",
    );
    // The file is unchanged: its header is read from it again.
    let r = stage::restage(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap();
    assert_eq!((r.rows_staged, r.rows_rejected), (1, 0), "{r:?}");
    assert_eq!(email(&conn), ["A1 a@x.com"]);
    // The header is kept now, so the rows come from the workspace alone.
    std::fs::write(root.join("crm.csv"), "something else\n").unwrap();
    let r = stage::restage(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap();
    assert_eq!((r.rows_staged, r.rows_rejected), (1, 0));
    assert_eq!(email(&conn), ["A1 a@x.com"]);

    // No header kept and the file changed: a clear error, nothing changes.
    conn.execute("UPDATE load_batches SET header = NULL", [])
        .unwrap();
    let ws = edit_config(&ws, "email = \"mail\"", "");
    let e = stage::restage(&mut conn, &ws, ws.source("crm").unwrap(), &NoProgress).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("batch 1") && msg.contains("no longer holds"),
        "{msg}"
    );
    assert_eq!(email(&conn), ["A1 a@x.com"]);
}
