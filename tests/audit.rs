//! The Audit trail on a small workspace: decisions, an undo and step runs,
//! newest first, filtered by kind and text.

mod common;

use c360::pipeline::identity::steward;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self, Mode};
use c360::read::audit::{self, AuditFilter};

const CRM: &str = "\
customer_id,first_name,last_name,email,phone,birth_date,city,country
C1,Anna,Lee,anna.lee@example.com,,1980-03-04,Leeds,GB
C2,Anna,Lee,anna.lee@example.com,,,,GB
C3,Jon,Green,jon@green.org,,1990-05-05,York,GB
C4,Kim,Brown,kim@brown.org,,1991-06-06,Hull,GB
";

fn filter(kinds: &[&str], text: Option<&str>) -> AuditFilter {
    AuditFilter {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        text: text.map(str::to_string),
    }
}

#[test]
fn decisions_undos_and_runs_newest_first() {
    let (_dir, ws, mut conn) = common::crm_workspace(CRM);
    let runs = audit::count(&conn, &filter(&["run"], None)).unwrap();
    assert!(runs >= 3, "load, standardise, resolve, ...: {runs}");

    let (c1, c2, c3, c4) = ("crm:crm:C1", "crm:crm:C2", "crm:crm:C3", "crm:crm:C4");
    let approved = steward::decide_pair(&mut conn, c3, c4, true, "ann", "Married name").unwrap();
    let rejected = steward::decide_pair(&mut conn, c1, c2, false, "bob", "twins").unwrap();
    steward::undo(&mut conn, Some(approved.decision_id), "ann", "wrong pair").unwrap();
    pipeline::run_step_with(&mut conn, &ws, "resolve", &NoProgress, Mode::Full).unwrap();

    let all = audit::list(&conn, &AuditFilter::default(), 0, 100).unwrap();
    assert_eq!(
        all.len() as u64,
        audit::count(&conn, &AuditFilter::default()).unwrap()
    );
    // The steward's entries newest first; the resolve run just made among
    // the newest (timestamps are to the second: an entry of the same
    // second may come either side).
    let steward_kinds = filter(&["approve", "reject", "split", "undo", "bulk"], None);
    let decided = audit::list(&conn, &steward_kinds, 0, 10).unwrap();
    let kinds: Vec<&str> = decided.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["undo", "reject", "approve"]);
    let (undo, reject, approve) = (&decided[0], &decided[1], &decided[2]);
    let run = all
        .iter()
        .take(4)
        .find(|r| r.kind == "run")
        .expect("the last run among the four newest");
    assert_eq!(
        (run.actor.as_str(), run.subject.as_str()),
        ("pipeline", "resolve")
    );
    assert!(run.change.starts_with("ok: 4 rows in"), "{run:?}");
    assert_eq!(undo.actor, "ann");
    assert_eq!(undo.reason, "wrong pair");
    assert_eq!(undo.decision_id, Some(approved.decision_id));
    assert_eq!(undo.subject, format!("decision {}", approved.decision_id));
    assert_eq!(reject.subject, format!("{c1} / {c2}"));
    assert_eq!(reject.reason, "twins");
    assert_eq!(reject.decision_id, Some(rejected.decision_id));
    assert!(reject.change.contains("split into"), "{reject:?}");
    assert_eq!(approve.change, approved.message);
    assert!(approve.change.contains(" are now "), "{approve:?}");
    // Newest first throughout.
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at));
    // Ids are unique.
    let ids: std::collections::BTreeSet<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());

    // Filters.
    let decisions = filter(&["approve", "reject"], None);
    assert_eq!(audit::count(&conn, &decisions).unwrap(), 2);
    let mine = audit::list(&conn, &filter(&[], Some("ANN")), 0, 10).unwrap();
    assert_eq!(
        mine.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        ["undo", "approve"]
    );
    let c2_rows = audit::list(&conn, &filter(&[], Some("crm:crm:c2")), 0, 10).unwrap();
    assert_eq!(c2_rows.len(), 1);
    assert_eq!(c2_rows[0].decision_id, Some(rejected.decision_id));
    assert_eq!(
        audit::count(&conn, &filter(&["run"], Some("resolve"))).unwrap(),
        2
    );
    assert_eq!(
        audit::count(&conn, &filter(&["undo"], Some("twins"))).unwrap(),
        0
    );
    // Paging walks the same order.
    let page = audit::list(&conn, &AuditFilter::default(), 2, 3).unwrap();
    assert_eq!(page, all[2..5].to_vec());
}
