//! Standardise (step 3) end to end on the bundled sample data, plus property
//! tests: standardising clean data changes nothing.

mod common;
use common::*;

use c360::pipeline::progress::NoProgress;
use c360::pipeline::standardise::people::{self, EmailRules};
use c360::pipeline::standardise::rules::Rules;
use c360::pipeline::{self, standardise};
use proptest::prelude::*;
use rusqlite::Connection;
use std::path::Path;

#[test]
fn sample_data_is_standardised_and_every_outcome_recorded() {
    let (_dir, ws, conn) = demo();
    let rules = Rules::load(&ws.rules_dir()).unwrap();

    // Every country is an ISO code or flagged (and listed as unmapped).
    let countries = strings(
        &conn,
        "SELECT country FROM clean_crm_customers WHERE country IS NOT NULL AND country_valid = 1",
    );
    assert!(countries.len() > 2000);
    for c in &countries {
        assert!(rules.countries.is_code(c), "{c} is not an ISO code");
    }
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE country_valid = 0 AND instr(flags, 'unknown_country') = 0"
        ),
        0
    );
    let unknown = int(
        &conn,
        "SELECT count(*) FROM clean_crm_customers WHERE country_valid = 0",
    );
    let listed = int(
        &conn,
        "SELECT coalesce(sum(count),0) FROM rule_unmapped WHERE rule = 'crm.country'",
    );
    assert_eq!(unknown, listed);
    // "Deutschland", "USA", "u.s." ... were mapped, with examples.
    let examples = standardise::examples(&conn, "crm.country").unwrap();
    assert!(
        examples
            .iter()
            .any(|e| e.3.as_deref() != e.4.as_deref() && !e.5),
        "no before/after example"
    );

    // Every timestamp is UTC.
    for t in strings(&conn, "SELECT event_time FROM clean_web_events")
        .iter()
        .chain(&strings(&conn, "SELECT order_time FROM clean_transactions"))
    {
        assert!(
            t.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(t).is_ok(),
            "{t}"
        );
    }

    // Every event name is canonical or listed as unmapped.
    let canonical = &rules.canonical_events;
    for name in strings(
        &conn,
        "SELECT DISTINCT event_name FROM clean_web_events WHERE event_mapped = 1",
    ) {
        assert!(canonical.contains(&name), "{name} is not canonical");
    }
    let unmapped = strings(
        &conn,
        "SELECT DISTINCT event_name FROM clean_web_events WHERE event_mapped = 0",
    );
    let listed = strings(
        &conn,
        "SELECT value FROM rule_unmapped WHERE rule = 'web.event_name'",
    );
    for name in &unmapped {
        assert!(listed.contains(name), "{name} not listed");
    }
    // The generator spells page views many ways; all became page_view.
    assert!(
        int(
            &conn,
            "SELECT count(DISTINCT event_name_raw) FROM clean_web_events WHERE event_name = 'page_view'"
        ) >= 3
    );

    // Exact duplicate events collapsed, and the collapse recorded.
    let stg = int(&conn, "SELECT count(*) FROM stg_web_events");
    let clean = int(&conn, "SELECT count(*) FROM clean_web_events");
    assert!(clean < stg, "the sample has duplicated events");
    let dedup = standardise::summary(&conn).unwrap()["web.dedup"];
    assert_eq!(dedup.0 as i64, stg - clean);

    // People fields.
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE email LIKE '%+%@gmail.com'"
        ),
        0,
        "gmail +tags dropped"
    );
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE phone_valid = 1 AND phone LIKE '+%'"
        ) > 1000
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE phone_valid = 1 AND phone NOT GLOB '+[1-9]*'"
        ),
        0
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_crm_customers WHERE lifecycle_status NOT IN ('lead','prospect','active','lapsed','churned') AND instr(flags,'unknown_lifecycle') = 0"
        ),
        0
    );

    // Refunds are negative revenue.
    assert!(
        int(
            &conn,
            "SELECT count(*) FROM clean_transactions WHERE transaction_type = 'refund'"
        ) > 0
    );
    assert_eq!(
        int(
            &conn,
            "SELECT count(*) FROM clean_transactions WHERE transaction_type = 'refund' AND revenue > 0"
        ),
        0
    );

    // Every rule has a row; counts reconcile with the tables.
    let rows = standardise::rule_rows(&conn).unwrap();
    assert_eq!(rows.len(), standardise::RULES.len());
    let crm_dedup = rows.iter().find(|r| r.rule == "crm.dedup").unwrap();
    assert_eq!(
        crm_dedup.seen as i64,
        int(&conn, "SELECT count(*) FROM stg_crm_customers")
    );
}

#[test]
fn rerunning_changes_nothing() {
    let (_dir, ws, mut conn) = demo();
    let snapshot = |conn: &Connection| -> Vec<String> {
        [
            "clean_crm_customers",
            "clean_web_events",
            "clean_transactions",
            "rule_outcomes",
        ]
        .iter()
        .flat_map(|t| {
            let cols = if *t == "rule_outcomes" {
                "rule, rows_seen, rows_changed, rows_flagged"
            } else {
                "*"
            };
            let mut stmt = conn
                .prepare(&format!("SELECT {cols} FROM {t} ORDER BY 1, 2, 3"))
                .unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                let mut s = String::new();
                for i in 0..n {
                    s.push_str(&format!("{:?}|", r.get::<_, rusqlite::types::Value>(i)?));
                }
                Ok(s)
            })
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
        })
        .collect()
    };
    let before = snapshot(&conn);
    pipeline::run_step(&mut conn, &ws, "standardise", &NoProgress).unwrap();
    assert_eq!(before, snapshot(&conn));
}

#[test]
fn a_bad_rule_file_names_file_line_and_field() {
    let (_dir, ws, mut conn) = demo();
    let clean_before = int(&conn, "SELECT count(*) FROM clean_web_events");
    let events = ws.rules_dir().join("events.toml");
    let text = std::fs::read_to_string(&events).unwrap();
    let broken = text.replace("\"^begin_?checkout\"", "\"^begin_?checkout(\"");
    assert_ne!(broken, text);
    std::fs::write(&events, broken).unwrap();
    let err = pipeline::run_step(&mut conn, &ws, "standardise", &NoProgress).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("events.toml:") && msg.contains("events.begin_checkout.patterns"),
        "{msg}"
    );
    let line: usize = msg
        .split("events.toml:")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let bad_line = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .nth(line - 1)
        .unwrap()
        .to_string();
    assert!(
        bad_line.contains("^begin_?checkout("),
        "line {line} is {bad_line:?}"
    );
    // The failed run is recorded and the clean tables are untouched.
    assert_eq!(
        strings(
            &conn,
            "SELECT status FROM pipeline_runs WHERE step = 'standardise' ORDER BY run_id DESC LIMIT 1"
        ),
        vec!["failed"]
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM clean_web_events"),
        clean_before
    );
}

fn email_rules() -> &'static EmailRules {
    static RULES: std::sync::OnceLock<EmailRules> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        Rules::load(&dir).unwrap().email
    })
}

/// The repository's rule set, read once.
fn repo_rules() -> &'static c360::pipeline::standardise::rules::Rules {
    static RULES: std::sync::OnceLock<c360::pipeline::standardise::rules::Rules> =
        std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        c360::pipeline::standardise::rules::Rules::load(&dir).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn email_is_idempotent(local in "[A-Za-z0-9._+-]{1,20}", domain in "(gmail|Example|googlemail|corp)\\.(com|de|CO\\.UK)") {
        let rules = email_rules();
        let once = people::email(&format!(" {local}@{domain} "), rules);
        let twice = people::email(&once.value, rules);
        prop_assert_eq!(&once.value, &twice.value);
        prop_assert!(!once.valid || twice.valid);
    }

    #[test]
    fn names_places_and_codes_are_idempotent(s in "[ a-zA-ZäöüÉß'-]{0,30}") {
        for f in [people::name, people::city, people::postcode, people::currency] {
            let once = f(&s);
            prop_assert_eq!(&f(&once.value).value, &once.value);
        }
        let lifecycle = &repo_rules().lifecycle;
        let once = people::lifecycle(&s, lifecycle);
        prop_assert_eq!(&people::lifecycle(&once.value, lifecycle).value, &once.value);
    }

    #[test]
    fn phones_are_idempotent(digits in "[0-9]{6,12}", country in "(US|DE|GB|FR|NL)", plus in any::<bool>()) {
        let raw = if plus { format!("+{digits}") } else { digits };
        let once = people::phone(&raw, Some(&country));
        if once.valid {
            prop_assert_eq!(people::phone(&once.value, Some(&country)).value, once.value.clone());
            prop_assert_eq!(people::phone(&once.value, None).value, once.value);
        }
    }
}

#[test]
fn country_codes_map_to_themselves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = Rules::load(&dir).unwrap();
    for c in keshvar::CountryIterator::new() {
        let code = c.alpha2().to_string();
        assert_eq!(rules.countries.code(&code), Some(code.as_str()));
        assert_eq!(
            rules.countries.code(c.iso_short_name()),
            Some(code.as_str()),
            "{}",
            c.iso_short_name()
        );
    }
}
