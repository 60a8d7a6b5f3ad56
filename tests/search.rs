//! Customer search as people type, on a small workspace: phones in any
//! format, names with accents and case folded, parts of e-mails.

mod common;

use c360::read::customers;
use c360::store;
use c360::workspace::Workspace;
use rusqlite::Connection;

const CRM: &str = "\
customer_id,first_name,last_name,email,phone,birth_date,city,country
C1,Björn,Böhm,Bjorn.Bohm@gmail.com,(206) 795-1850,1980-03-04,Seattle,US
C2,Anna,Lee,anna.lee@gmail.com,020 7946 0958,1981-01-02,London,GB
C3,Kim,Brown,kim@brown.org,0151 12345678,1982-02-03,Berlin,DE
C4,Jon,Green,jon@green.org,555-0100,1983-03-04,,
C5,Sam,Gold,sam.gold@GMAIL.com,,1984-04-05,Leeds,GB
C6,Bjarne,Holm,bjarne@holm.dk,,1985-05-06,Aarhus,DK
";

fn workspace() -> (tempfile::TempDir, Connection) {
    let (dir, _ws, conn) = common::crm_workspace(CRM);
    (dir, conn)
}

fn customer_of(conn: &Connection, crm_id: &str) -> String {
    conn.query_row(
        "SELECT customer360_id FROM customer360_id_map WHERE record_key = ?1",
        [format!("crm:crm:{crm_id}")],
        |r| r.get(0),
    )
    .unwrap()
}

fn found(conn: &Connection, q: &str) -> Vec<String> {
    customers::search(conn, q, 50)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[test]
fn phones_in_any_format_names_folded_and_parts_of_emails() {
    let (_dir, conn) = workspace();
    let id = |c: &str| customer_of(&conn, c);
    // Phones: compared on digits, with or without the country code.
    for q in [
        "(206) 795-1850",
        "+1 206 795 1850",
        "2067951850",
        "12067951850",
        "206.795.1850",
        "+12067951850",
    ] {
        assert_eq!(found(&conn, q), vec![id("C1")], "{q}");
    }
    for q in [
        "0151 12345678",
        "+49 151 12345678",
        "15112345678",
        "004915112345678",
    ] {
        assert_eq!(found(&conn, q), vec![id("C3")], "{q}");
    }
    for q in ["020 7946 0958", "+44 20 7946 0958", "2079460958"] {
        assert_eq!(found(&conn, q), vec![id("C2")], "{q}");
    }
    // A phone kept as written (no country to read it in): its digits.
    for q in ["555-0100", "5550100", "555 01"] {
        assert_eq!(found(&conn, q), vec![id("C4")], "{q}");
    }
    // As people type: the start of a number.
    assert_eq!(found(&conn, "(206) 79"), vec![id("C1")]);

    // Names: accents and case folded, first or last name first, prefixes.
    for q in [
        "bjorn bohm",
        "BJÖRN BÖHM",
        "Björn",
        "bohm",
        "Böhm, Björn",
        "bjö",
    ] {
        assert_eq!(found(&conn, q), vec![id("C1")], "{q}");
    }
    let bj = found(&conn, "bj");
    assert_eq!(bj.len(), 2, "Björn and Bjarne: {bj:?}");
    assert!(bj.contains(&id("C1")) && bj.contains(&id("C6")));

    // E-mails: any part, any case.
    let mut gmail = found(&conn, "gmail");
    gmail.sort();
    let mut want = vec![id("C1"), id("C2"), id("C5")];
    want.sort();
    assert_eq!(gmail, want);
    let mut at_gmail = found(&conn, "@GMAIL.com");
    at_gmail.sort();
    assert_eq!(at_gmail, want);
    assert_eq!(found(&conn, "green.org"), vec![id("C4")]);
    assert_eq!(found(&conn, "lee@"), vec![id("C2")]);
    assert_eq!(found(&conn, "kim@brown.org"), vec![id("C3")]);
    // Wildcards are text; nothing matches nonsense.
    assert!(found(&conn, "%%%").is_empty());
    assert!(found(&conn, "zzzz-nobody").is_empty());
    assert!(found(&conn, "  ").is_empty());
    // The limit holds.
    assert_eq!(customers::search(&conn, "gmail", 2).unwrap().len(), 2);
}

/// Search latency on a big workspace: `C360_SEARCH_WS=DIR cargo test
/// --release --test search -- --ignored --nocapture`.
#[test]
#[ignore]
fn search_latency_on_a_big_workspace() {
    let Ok(dir) = std::env::var("C360_SEARCH_WS") else {
        return;
    };
    let ws = Workspace::open(std::path::Path::new(&dir)).unwrap();
    let conn = store::open(&ws.db_path()).unwrap();
    let profiles: i64 = conn
        .query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
            r.get(0)
        })
        .unwrap();
    let (phone, name, email): (String, String, String) = conn
        .query_row(
            "SELECT phone, name, email FROM customer360_profiles
             WHERE phone LIKE '+1%' AND name IS NOT NULL AND email IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let national = format!("({}) {}-{}", &phone[2..5], &phone[5..8], &phone[8..]);
    let local = email.split('@').next().unwrap().to_string();
    for q in [
        phone.as_str(),
        &phone[2..],
        national.as_str(),
        name.as_str(),
        &name.to_lowercase()[..3],
        "gmail",
        local.as_str(),
        "zzqx",
        "C360-0000",
    ] {
        let mut ms = Vec::new();
        let mut n = 0;
        for _ in 0..20 {
            let t = std::time::Instant::now();
            n = customers::search(&conn, q, 50).unwrap().len();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "{profiles} profiles: {q:?}: {n} found, median {:.2} ms, worst {:.2} ms",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    }
}
