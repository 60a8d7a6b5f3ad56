//! Identity resolution on small hand-made sources, through the real steps
//! (load, standardise, resolve): each deterministic rule, shared devices,
//! steward decisions honoured across re-runs, undo, stable ids and lineage.

mod common;
use common::*;

use c360::pipeline::identity::steward;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self};
use c360::store;
use c360::workspace::Workspace;
use rusqlite::Connection;

const CONFIG: &str = r#"
[settings]
timezone = "UTC"
date_order = "dmy"

[[sources]]
name = "crm"
system = "crm"
location = "crm.csv"
format = "csv"
[sources.mapping]
address = "street"

[[sources]]
name = "web"
system = "web"
location = "events.ndjson"
format = "segment"

[[sources]]
name = "shop"
system = "transactions"
location = "orders.csv"
format = "csv"
"#;

const CRM: &str = "\
customer_id,first_name,last_name,email,phone,birth_date,street,city,postcode,country
C1,Anna,Lee, Anna.Lee@Example.com ,,1980-03-04,1 High St,Leeds,LS1 1AA,GB
C2,Anna,Lee,anna.lee@example.com,,,,,,GB
C3,Bob,Stone,test@test.com,,1970-01-01,,,,GB
C4,Carl,Moss,TEST@test.com,,1971-02-02,,,,GB
C5,Dan,One,info@shop.com,,,,,,GB
C6,Eve,Two,info@shop.com,,,,,,GB
C7,Fay,Three,info@shop.com,,,,,,GB
C8,Gus,Four,info@shop.com,,,,,,GB
C9,Hal,Five,info@shop.com,,,,,,GB
C10,Ida,Six,info@shop.com,,,,,,GB
C11,Jon,Green,jon@green.org,,1990-05-05,,,,GB
C12,Kim,Brown,kim@brown.org,,1991-06-06,,,,GB
";

fn event(id: &str, user: Option<&str>, cookie: &str, device: &str, ts: &str) -> String {
    let user = user.map_or(String::new(), |u| format!(r#""userId":"{u}","#));
    format!(
        r#"{{"messageId":"{id}","type":"track","event":"Product Viewed",{user}"anonymousId":"{cookie}","timestamp":"{ts}","context":{{"device":{{"id":"{device}"}}}}}}"#
    ) + "\n"
}

fn events() -> String {
    [
        // Anonymous first, then the same cookie logs in as C11.
        event("e1", None, "ck-a", "dev-a", "2024-05-01T10:00:00Z"),
        event("e2", Some("C11"), "ck-a", "dev-a", "2024-05-01T10:05:00Z"),
        // A tablet shared by C11 and C12 (different cookies per person).
        event("e3", Some("C11"), "ck-b", "dev-tab", "2024-05-02T09:00:00Z"),
        event("e4", Some("C12"), "ck-c", "dev-tab", "2024-05-02T20:00:00Z"),
        event("e5", None, "ck-d", "dev-tab", "2024-05-02T09:20:00Z"),
        event("e6", None, "ck-e", "dev-tab", "2024-05-02T19:30:00Z"),
    ]
    .concat()
}

const ORDERS: &str = "\
order_id,customer_id,email,order_time,revenue
O1,C2,,2024-05-03T12:00:00Z,10.5
O2,,ANNA.LEE@example.com,2024-05-04T12:00:00Z,20
";

fn workspace(crm: &str) -> (tempfile::TempDir, Workspace, Connection) {
    let dir = tempfile::tempdir().unwrap();
    c360::workspace::init(dir.path()).unwrap();
    std::fs::write(dir.path().join("c360.toml"), CONFIG).unwrap();
    std::fs::write(dir.path().join("crm.csv"), crm).unwrap();
    std::fs::write(dir.path().join("events.ndjson"), events()).unwrap();
    std::fs::write(dir.path().join("orders.csv"), ORDERS).unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    let mut conn = store::open(&ws.db_path()).unwrap();
    pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    (dir, ws, conn)
}

fn id_of(conn: &Connection, key: &str) -> String {
    conn.query_row(
        "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn crm(id: &str) -> String {
    format!("crm:crm:{id}")
}

fn web(id: &str) -> String {
    format!("web:web:{id}")
}

#[test]
fn deterministic_rules() {
    let (_dir, _ws, conn) = workspace(CRM);
    // Same e-mail despite case and spaces -> one customer.
    assert_eq!(id_of(&conn, &crm("C1")), id_of(&conn, &crm("C2")));
    // customer_id across systems (order O1 of C2) and e-mail on a guest order.
    assert_eq!(
        id_of(&conn, "transactions:shop:O1:purchase"),
        id_of(&conn, &crm("C1"))
    );
    assert_eq!(
        id_of(&conn, "transactions:shop:O2:purchase"),
        id_of(&conn, &crm("C1"))
    );
    // Junk e-mail links nobody.
    assert_ne!(id_of(&conn, &crm("C3")), id_of(&conn, &crm("C4")));
    assert_eq!(
        strings(
            &conn,
            "SELECT status FROM identifiers WHERE kind = 'email' AND value = 'test@test.com'"
        ),
        ["blocked"]
    );
    // An e-mail on six customers is over its limit (5): nobody merges.
    let shared: std::collections::HashSet<String> = ["C5", "C6", "C7", "C8", "C9", "C10"]
        .iter()
        .map(|c| id_of(&conn, &crm(c)))
        .collect();
    assert_eq!(shared.len(), 6);
    assert_eq!(
        strings(
            &conn,
            "SELECT status || ':' || customers FROM identifiers WHERE value = 'info@shop.com'"
        ),
        ["over_limit:6"]
    );
    // Anonymous event, then login on the same cookie: the event is the user's.
    assert_eq!(id_of(&conn, &web("e1")), id_of(&conn, &crm("C11")));
    // The shared tablet merges nobody; its anonymous events go to the
    // nearest login in time, and the device is flagged.
    assert_ne!(id_of(&conn, &crm("C11")), id_of(&conn, &crm("C12")));
    assert_eq!(id_of(&conn, &web("e5")), id_of(&conn, &crm("C11")));
    assert_eq!(id_of(&conn, &web("e6")), id_of(&conn, &crm("C12")));
    assert_eq!(
        strings(
            &conn,
            "SELECT status FROM identifiers WHERE kind = 'device_id' AND value = 'dev-tab'"
        ),
        ["shared"]
    );
    assert_eq!(
        strings(
            &conn,
            "SELECT via_record FROM identity_links WHERE record_key = 'web:web:e6' AND via_record IS NOT NULL"
        ),
        [web("e4")]
    );
}

#[test]
fn a_couple_sharing_an_email_goes_to_review_instead_of_merging() {
    let crm = format!(
        "{CRM}\
C20,Sam,Lee,lees@example.com,,1980-01-15,5 Elm Rd,York,YO1 7AB,GB
C21,Kim,Lee,lees@example.com,,1982-07-30,5 Elm Rd,York,YO1 7AB,GB
C22,Tom,Hart,tom.hart@example.com,,1975-03-03,,,,GB
C23,Tom,Hart,tom.hart@example.com,,,,,,GB
"
    );
    let (_dir, _ws, conn) = workspace(&crm);
    // Different first names and birth dates: two people, not linked.
    assert_ne!(id_of(&conn, &crm_key("C20")), id_of(&conn, &crm_key("C21")));
    assert_eq!(
        strings(
            &conn,
            "SELECT status || ':' || customers FROM identifiers WHERE value = 'lees@example.com'"
        ),
        ["conflict:2"]
    );
    // ... and their pair waits for a steward, flagged.
    assert_eq!(
        strings(
            &conn,
            "SELECT band || ' ' || flags FROM match_candidates
             WHERE left_key = 'crm:crm:C20' AND right_key = 'crm:crm:C21'"
        ),
        ["review shared_identifier_differ"]
    );
    // One birth date missing: nothing says two people; the e-mail links.
    assert_eq!(id_of(&conn, &crm_key("C22")), id_of(&conn, &crm_key("C23")));
}

fn crm_key(id: &str) -> String {
    crm(id)
}

#[test]
fn steward_decisions_survive_reruns_and_new_data_and_can_be_undone() {
    let (dir, ws, mut conn) = workspace(CRM);
    let (c1, c11, c12) = (crm("C1"), crm("C11"), crm("C12"));
    let old_11 = id_of(&conn, &c11);
    let old_12 = id_of(&conn, &c12);
    // Approve C11 + C12 (must-link): merged at once, the older id survives.
    let o = steward::decide_pair(&mut conn, &c11, &c12, true, "tester", "same person").unwrap();
    assert_eq!(id_of(&conn, &c11), id_of(&conn, &c12));
    let survivor = std::cmp::min(old_11.clone(), old_12.clone());
    assert_eq!(id_of(&conn, &c11), survivor);
    assert!(o.lineage.iter().any(|l| l.2 == "merge"), "{o:?}");
    // Reject C1 + C2 (cannot-link) although they share an e-mail: split at once.
    let before_c1 = id_of(&conn, &c1);
    steward::decide_pair(
        &mut conn,
        &c1,
        &crm("C2"),
        false,
        "tester",
        "different people",
    )
    .unwrap();
    assert_ne!(id_of(&conn, &c1), id_of(&conn, &crm("C2")));
    assert!(
        [id_of(&conn, &c1), id_of(&conn, &crm("C2"))].contains(&before_c1),
        "one part keeps the id"
    );
    let lineage = int(
        &conn,
        "SELECT count(*) FROM customer360_id_lineage WHERE reason = 'split'",
    );
    assert!(lineage >= 1);
    // Both decisions are in the audit log.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM audit_log WHERE actor = 'tester' AND action IN ('approve', 'reject')"
        ),
        2
    );

    // Re-run the whole pipeline: decisions hold, ids do not move.
    let snapshot = strings(
        &conn,
        "SELECT record_key || '=' || customer360_id FROM customer360_id_map ORDER BY 1",
    );
    // (--full: a real resolve run, not "up to date".)
    pipeline::run_step_with(&mut conn, &ws, "resolve", &NoProgress, pipeline::Mode::Full).unwrap();
    assert_eq!(
        snapshot,
        strings(
            &conn,
            "SELECT record_key || '=' || customer360_id FROM customer360_id_map ORDER BY 1"
        ),
        "re-running changes no id"
    );
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM refused_unions WHERE via = 'shared identifier'"
        ) >= 1,
        "the shared e-mail's union was refused and logged"
    );

    // New data arrives: another CRM record with C1's e-mail. Still apart.
    let more = format!("{CRM}C13,Anna,Lee,anna.lee@example.com,,,,,,GB\n");
    std::fs::write(dir.path().join("crm.csv"), more).unwrap();
    pipeline::run_all(&mut conn, &ws, &NoProgress).unwrap();
    assert_ne!(id_of(&conn, &c1), id_of(&conn, &crm("C2")));
    assert_eq!(id_of(&conn, &c11), id_of(&conn, &c12));
    assert_eq!(id_of(&conn, &c11), survivor, "ids survive new data");

    // Undo the rejection (latest decision): C1 and C2 are one again.
    let undone = steward::undo(&mut conn, None, "tester", "my mistake").unwrap();
    assert_eq!(id_of(&conn, &c1), id_of(&conn, &crm("C2")));
    assert!(undone.message.contains("reject"), "{}", undone.message);
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM steward_decisions WHERE undone_at IS NOT NULL"
        ),
        1
    );
    // And a re-run agrees.
    pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert_eq!(id_of(&conn, &c1), id_of(&conn, &crm("C2")));
    // Undoing twice is refused.
    let again = steward::undo(&mut conn, Some(undone.decision_id), "tester", "");
    assert!(again.unwrap_err().to_string().contains("already undone"));
}

#[test]
fn split_mints_a_new_id_and_holds() {
    let (_dir, ws, mut conn) = workspace(CRM);
    let c1 = crm("C1");
    let id = id_of(&conn, &c1);
    let members = strings(
        &conn,
        &format!(
            "SELECT record_key FROM customer360_id_map WHERE customer360_id = '{id}' ORDER BY 1"
        ),
    );
    assert!(members.len() >= 4, "{members:?}");
    let part = vec!["transactions:shop:O2:purchase".to_string()];
    let o = steward::split(&mut conn, &part, "tester", "guest order is someone else").unwrap();
    let new_id = id_of(&conn, &part[0]);
    assert_ne!(new_id, id);
    assert_eq!(id_of(&conn, &c1), id, "the bigger part keeps the id");
    assert_eq!(
        o.lineage,
        vec![(id.clone(), new_id.clone(), "split".to_string())]
    );
    pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert_eq!(id_of(&conn, &part[0]), new_id, "the split holds on re-run");
    assert_eq!(id_of(&conn, &c1), id);
}
