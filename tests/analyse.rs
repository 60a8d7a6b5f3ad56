//! The analyse step on a small fixture whose figures are computed by hand,
//! and on the demo.

mod common;
use c360::pipeline::analyse;
use c360::pipeline::progress::NoProgress;
use common::*;
use rusqlite::{Connection, params};

fn fixture() -> Connection {
    let conn = c360::store::open_in_memory().unwrap();
    let as_of = "2025-03-31T00:00:00.000Z";
    // id, anonymous, lifecycle, first order, churn risk, revenue, signals
    for (id, anon, life, first, risk, rev, sig) in [
        (
            "A",
            0,
            Some("lapsed"),
            Some("2025-01-10T00:00:00.000Z"),
            0.7,
            130.0,
            "inactive (80 > 60); no recent order (130 > 120)",
        ),
        (
            "B",
            0,
            Some("active"),
            Some("2025-01-15T00:00:00.000Z"),
            0.4,
            40.0,
            "inactive (75 > 60)",
        ),
        ("C", 0, None, None, 0.1, 0.0, ""),
        ("D", 1, None, None, 0.9, 0.0, "inactive (99 > 60)"),
    ] {
        conn.execute(
            "INSERT INTO customer360_profiles (customer360_id, anonymous, lifecycle_status, first_order_at,
                churn_risk, revenue, churn_signals, as_of, row_hash, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, 'x')",
            params![id, anon, life, first, risk, rev, sig, as_of],
        )
        .unwrap();
    }
    let mut seq = 0;
    for (id, time, name, system, revenue) in [
        (
            "A",
            "2025-01-10T10:00:00.000Z",
            "purchase",
            "transactions",
            Some(100.0),
        ),
        ("A", "2025-02-05T10:00:00.000Z", "page_view", "web", None),
        (
            "A",
            "2025-03-20T10:00:00.000Z",
            "purchase",
            "transactions",
            Some(50.0),
        ),
        (
            "A",
            "2025-03-25T10:00:00.000Z",
            "refund",
            "transactions",
            Some(-20.0),
        ),
        (
            "A",
            "2025-01-01T00:00:00.000Z",
            "lifecycle:active",
            "crm",
            None,
        ),
        (
            "A",
            "2025-03-01T00:00:00.000Z",
            "lifecycle:lapsed",
            "crm",
            None,
        ),
        ("B", "2025-01-15T09:00:00.000Z", "page_view", "web", None),
        ("B", "2025-01-15T09:01:00.000Z", "add_to_cart", "web", None),
        (
            "B",
            "2025-01-15T09:05:00.000Z",
            "purchase",
            "transactions",
            Some(40.0),
        ),
        (
            "B",
            "2025-01-05T00:00:00.000Z",
            "lifecycle:active",
            "crm",
            None,
        ),
        ("C", "2025-03-30T08:00:00.000Z", "page_view", "web", None),
        ("C", "2025-03-30T08:01:00.000Z", "add_to_cart", "web", None),
        ("C", "2025-03-30T08:02:00.000Z", "checkout", "web", None),
        ("D", "2025-03-29T08:00:00.000Z", "page_view", "web", None),
    ] {
        seq += 1;
        conn.execute(
            "INSERT INTO customer360_events (customer360_id, event_time, event_name, system, source,
                record_id, record_key, revenue)
             VALUES (?1, ?2, ?3, ?4, 's', ?5, ?5, ?6)",
            params![id, time, name, system, format!("r{seq}"), revenue],
        )
        .unwrap();
    }
    conn
}

fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    strings(conn, sql)
}

#[test]
fn figures_match_the_hand_computed_ones() {
    let mut conn = fixture();
    let r = analyse::run(&mut conn, &NoProgress).unwrap();
    assert_eq!(r.events, 14);
    assert_eq!((r.at_risk, r.revenue_at_risk), (1, 130.0));
    // Retention: the January cohort (A, B); A alone came back in Feb and March.
    assert_eq!(
        rows(
            &conn,
            "SELECT cohort || ' +' || months_after || ' ' || active || '/' || customers || ' ' || share FROM analytics_cohorts ORDER BY 1"
        ),
        [
            "2025-01 +0 2/2 1.0",
            "2025-01 +1 1/2 0.5",
            "2025-01 +2 1/2 0.5"
        ]
    );
    // Activity per month: revenue net of refunds, orders, refunds, active, new.
    assert_eq!(
        rows(&conn, "SELECT period || ' ' || revenue || ' ' || orders || ' ' || refunds || ' ' || active_customers || ' ' || new_customers
                     FROM analytics_activity WHERE grain = 'month' ORDER BY period"),
        ["2025-01 140.0 2 0 2 2", "2025-02 0.0 0 0 1 0", "2025-03 30.0 1 1 3 0"]
    );
    assert_eq!(
        int(
            &conn,
            "SELECT sum(orders) FROM analytics_activity WHERE grain = 'day'"
        ),
        3
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT period FROM analytics_activity WHERE grain = 'week' ORDER BY period LIMIT 1"
        ),
        ["2025-01-06"],
        "weeks start on Monday"
    );
    // Churn: anonymous visitors are not customers at risk.
    assert_eq!(
        rows(
            &conn,
            "SELECT name || ' ' || customers || ' ' || revenue FROM analytics_churn ORDER BY kind, name"
        ),
        [
            "high (≥ 0.6) 1 130.0",
            "low (< 0.3) 1 0.0",
            "medium (0.3–0.6) 1 40.0",
            "inactive 2 170.0",
            "no recent order 1 130.0"
        ]
    );
    // Lifecycle at each month end, and now.
    assert_eq!(
        rows(
            &conn,
            "SELECT month || ' ' || status || ' ' || customers FROM analytics_lifecycle ORDER BY month, status"
        ),
        [
            "2025-01 active 2",
            "2025-02 active 2",
            "2025-03 active 1",
            "2025-03 lapsed 1",
            "current (none) 1",
            "current active 1",
            "current lapsed 1"
        ]
    );
    // Funnel among page viewers; view_item never happens here: left out.
    // The events say "checkout", the name rule sets before GA4's gave
    // begin_checkout: the step still counts them.
    assert_eq!(
        rows(
            &conn,
            "SELECT period || ' ' || step || ' ' || customers FROM analytics_funnel WHERE period IN ('30d', 'all') ORDER BY period, step_no"
        ),
        [
            "30d page_view 2",
            "30d add_to_cart 1",
            "30d begin_checkout 1",
            "30d purchase 0",
            "all page_view 4",
            "all add_to_cart 2",
            "all begin_checkout 1",
            "all purchase 2"
        ]
    );
    // Re-running replaces, never adds.
    analyse::run(&mut conn, &NoProgress).unwrap();
    assert_eq!(int(&conn, "SELECT count(*) FROM analytics_cohorts"), 3);
}

#[test]
fn the_demo_analyses_and_refuses_before_unify() {
    let (_dir, _ws, conn) = demo();
    assert!(int(&conn, "SELECT count(*) FROM analytics_cohorts") > 10);
    assert_eq!(
        int(
            &conn,
            "SELECT sum(orders) FROM analytics_activity WHERE grain = 'month'"
        ),
        int(
            &conn,
            "SELECT count(*) FROM clean_transactions WHERE transaction_type = 'purchase'"
        )
    );
    let mut empty = c360::store::open_in_memory().unwrap();
    let err = analyse::run(&mut empty, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(err.contains("run the unify step first"), "{err}");
}

#[test]
fn the_report_is_one_self_contained_page() {
    let (_dir, _ws, conn) = demo();
    let html = c360::report::render(&conn, "demo").unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for part in [
        "Lifecycle mix",
        "Revenue per month",
        "Active customers per month",
        "Retention",
        "Churn risk",
        "Funnel",
    ] {
        assert!(html.contains(part), "no {part}");
    }
    assert!(html.matches("<svg").count() >= 4);
    // Balanced elements, and nothing fetched from the network.
    for tag in ["svg", "figure", "table", "tr", "figcaption"] {
        assert_eq!(
            html.matches(&format!("<{tag}")).count(),
            html.matches(&format!("</{tag}>")).count(),
            "<{tag}>"
        );
    }
    for banned in ["http://", "https://", "<script", "src="] {
        assert!(!html.contains(banned), "{banned}");
    }
    // The cohort sizes are those of the table.
    let size = int(
        &conn,
        "SELECT customers FROM analytics_cohorts WHERE months_after = 0 ORDER BY cohort LIMIT 1",
    );
    assert!(html.contains(&format!("</td><td>{size}</td>")));
}
