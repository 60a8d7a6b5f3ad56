//! The resolve step on the bundled sample data: ids, eval, explain.

mod common;
use c360::pipeline::progress::NoProgress;
use c360::pipeline::{self, identity::resolve};
use common::*;
use std::path::Path;

#[test]
fn every_clean_record_gets_one_id_and_ids_survive_a_rerun() {
    let (_dir, ws, mut conn) = demo();
    let clean = int(
        &conn,
        "SELECT (SELECT count(*) FROM clean_crm_customers) + (SELECT count(*) FROM clean_web_events) + (SELECT count(*) FROM clean_transactions)",
    );
    assert_eq!(int(&conn, "SELECT count(*) FROM customer360_id_map"), clean);
    let before = strings(
        &conn,
        "SELECT record_key || '=' || customer360_id FROM customer360_id_map ORDER BY 1",
    );
    let lineage_before = int(&conn, "SELECT count(*) FROM customer360_id_lineage");
    // Nothing changed, so the incremental run has nothing to do ...
    let r = pipeline::run_step(&mut conn, &ws, "resolve", &NoProgress).unwrap();
    assert!(r.message.starts_with("up to date"), "{}", r.message);
    // ... and a full one, which redoes the work, moves no id either.
    pipeline::run_step_with(&mut conn, &ws, "resolve", &NoProgress, pipeline::Mode::Full).unwrap();
    let after = strings(
        &conn,
        "SELECT record_key || '=' || customer360_id FROM customer360_id_map ORDER BY 1",
    );
    assert_eq!(before, after, "re-running on the same data changes no id");
    assert_eq!(
        int(&conn, "SELECT count(*) FROM customer360_id_lineage"),
        lineage_before
    );
    // Junk e-mails are blocked, and one resolve run is in the audit log per run.
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM identifiers WHERE status = 'blocked'"
        ) > 0
    );
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM audit_log WHERE action = 'resolve'"
        ) >= 2
    );
    // A logged-in web event and the CRM record of that user are one customer.
    assert_eq!(
        int(&conn, "SELECT count(*) FROM clean_web_events w
                    JOIN customer360_id_map mw ON mw.record_key = 'web:' || w.source || ':' || w.event_id
                    JOIN customer360_id_map mc ON mc.system = 'crm' AND mc.record_id = w.user_id
                    WHERE w.user_id IS NOT NULL AND mw.customer360_id <> mc.customer360_id"),
        0
    );
}

#[test]
fn eval_against_the_sample_truth() {
    let (_dir, _ws, conn) = demo();
    let truth = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_data/truth.csv");
    let s = resolve::eval_truth(&conn, &truth).unwrap();
    assert!(s.records > 26_000, "{s:?}");
    // Deterministic rules alone measured 0.998 / 0.976; with fuzzy matching
    // on the CRM records 0.998 / 0.990.
    assert!(s.precision > 0.995, "{s:?}");
    assert!(s.recall > 0.985, "{s:?}");
    assert!(s.predicted_clusters < 2_200, "{s:?}");
}

#[test]
fn explain_lists_records_and_the_identifiers_that_join_them() {
    let (_dir, _ws, conn) = demo();
    // A customer with two CRM records joined by a shared e-mail.
    let id = strings(
        &conn,
        "SELECT m.customer360_id FROM customer360_id_map m
         JOIN identity_links l ON l.record_key = m.record_key
         JOIN identifiers i ON i.identifier_id = l.identifier_id
         WHERE m.system = 'crm' AND i.kind = 'email' AND i.status = 'linked'
         GROUP BY m.customer360_id, i.identifier_id HAVING count(*) >= 2 LIMIT 1",
    )
    .remove(0);
    let text = c360::read::explain::explain(&conn, &id).unwrap();
    assert!(text.starts_with(&id), "{text}");
    assert!(text.contains("Why they are one customer"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("email") && l.contains("links")),
        "{text}"
    );
    // A record key explains its customer too; an unknown id is a clear error.
    let key = strings(
        &conn,
        &format!("SELECT record_key FROM customer360_id_map WHERE customer360_id = '{id}' LIMIT 1"),
    )
    .remove(0);
    assert!(
        c360::read::explain::explain(&conn, &key)
            .unwrap()
            .starts_with(&id)
    );
    let err = c360::read::explain::explain(&conn, "nobody")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("neither a customer360_id nor a record key"),
        "{err}"
    );
}

#[test]
fn explain_shows_the_fuzzy_scores_and_the_steward_decisions() {
    let (_dir, _ws, mut conn) = demo();
    // An auto-merged pair that made one customer of two.
    let (cid, left, right) = {
        let row = strings(
            &conn,
            "SELECT candidate_id || ' ' || left_key || ' ' || right_key FROM match_candidates
             WHERE band = 'auto_merge' AND flags = '' ORDER BY probability LIMIT 1",
        )
        .remove(0);
        let mut parts = row.split(' ').map(str::to_string);
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let text = c360::read::explain::explain(&conn, &left).unwrap();
    assert!(
        text.contains("Fuzzy matches between these records"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains(&format!("#{cid} ")))
        .unwrap_or_else(|| panic!("candidate {cid} not in\n{text}"));
    assert!(
        line.contains(&right) && line.contains("auto-merged"),
        "{line}"
    );
    assert!(line.contains("blocking:"), "{line}");
    assert!(text.contains("prior -"), "the weights follow: {text}");

    // A steward rejects it: the two are apart, and both explanations say why.
    c360::pipeline::identity::steward::decide_pair(
        &mut conn,
        &left,
        &right,
        false,
        "ann",
        "different people",
    )
    .unwrap();
    let text = c360::read::explain::explain(&conn, &left).unwrap();
    assert!(text.contains("Steward decisions:"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("ann reject") && l.contains("different people")),
        "{text}"
    );
    assert!(
        text.contains("Pairs with other customers, not merged:"),
        "{text}"
    );
    assert!(text.contains("rejected by a steward"), "{text}");
}
