//! Resolve identity as SQL: the records of the clean tables, identifier
//! links with their guards, fuzzy matching scored with the locally trained
//! model, the stewards' decisions, clustering to a fixed point and stable
//! ids, as [`crate::pipeline::identity::resolve`] does.
//!
//! How it differs from the local step (also in the generated README):
//! - identifier kinds are applied one after another as locally (the anchor
//!   first), but the values of one kind are judged together against the
//!   customers the kinds before it made; locally a value also sees the
//!   links of the values of its own kind sorted before it;
//! - a keep-apart decision (reject, split) holds where a link or a fuzzy
//!   merge would join its two sides directly (one identifier value, one
//!   pair); a chain through third records is not cut, and the clusters that
//!   end up holding both sides are listed in `identity_violations`;
//! - weak bridges are not flagged (`flags` holds shared_identifier_differ
//!   and refused only).

use super::{Dialect, Script, graph};
use crate::pipeline::identity::deterministic::IdentityRules;
use crate::pipeline::identity::fuzzy::{Comparison, FieldRef, FuzzyRules, Method, Transform};
use crate::pipeline::schema::System;
use anyhow::{Result, bail};

/// How far label propagation runs before its fixed point is checked.
pub const DEFAULT_ROUNDS: usize = 16;

/// The clean table of a system, its id column and its key's tail.
fn table_of(system: System) -> (&'static str, &'static str) {
    match system {
        System::Crm => ("clean_crm_customers", "customer_id"),
        System::Web => ("clean_web_events", "event_id"),
        System::Transactions => ("clean_transactions", "order_id"),
    }
}

/// The core fields any identifier kind reads, in first-seen order.
fn identifier_fields(rules: &IdentityRules) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in &rules.kinds {
        for (_, f) in &k.fields {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
    }
    out
}

/// The SQL of fuzzy field `fr` in a system's clean table (NULL if absent).
fn fuzzy_field(d: Dialect, system: System, fr: &FieldRef) -> String {
    match fr {
        FieldRef::Core(name) if system.field(name).is_some() => {
            format!("CAST({name} AS {})", d.text())
        }
        FieldRef::Core(_) => format!("CAST(NULL AS {})", d.text()),
        FieldRef::Extra(key) => {
            let simple = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let path = if simple {
                format!("$.{key}")
            } else {
                format!("$.\"{}\"", key.replace('"', ""))
            };
            d.json_text("extra", &path)
        }
    }
}

/// `id_records`: every record of the clean tables, numbered by system,
/// source, batch and row without a sort of them all (`rec` = the record's
/// system and source, batch and row number packed into one integer), with
/// its identifier fields (`f_<field>`), its time
/// (web events, ms) and its raw fuzzy fields (`z<i>`).
fn records_sql(d: Dialect, rules: &IdentityRules) -> String {
    let fields = identifier_fields(rules);
    let anchor: Vec<(System, String)> = rules
        .kinds
        .iter()
        .filter(|k| k.kind == rules.anchor)
        .flat_map(|k| k.fields.clone())
        .collect();
    let fuzzy = rules.fuzzy.as_ref();
    let text = d.text();
    let parts: Vec<String> = System::ALL
        .iter()
        .enumerate()
        .map(|(si, &system)| {
            let (table, id) = table_of(system);
            let key = match system {
                System::Transactions => d.concat(&[
                    "'transactions:'",
                    "source",
                    "':'",
                    id,
                    "':'",
                    "transaction_type",
                ]),
                _ => d.concat(&[&format!("'{}:'", system.as_str()), "source", "':'", id]),
            };
            let ms = if system == System::Web {
                format!("CAST({} AS {})", d.iso_to_ms("event_time"), d.int())
            } else {
                format!("CAST(NULL AS {})", d.int())
            };
            let has_anchor: Vec<String> = anchor
                .iter()
                .filter(|(s, _)| *s == system)
                .map(|(_, f)| format!("NULLIF(trim({f}), '') IS NOT NULL"))
                .collect();
            let has_anchor = if has_anchor.is_empty() {
                "0".to_string()
            } else {
                format!("CASE WHEN {} THEN 1 ELSE 0 END", has_anchor.join(" OR "))
            };
            let mut cols = vec![
                format!("{si} AS sys_order"),
                format!("{key} AS record_key"),
                format!("'{}' AS system", system.as_str()),
                "source".to_string(),
                format!("{id} AS record_id"),
                "batch_id".to_string(),
                "row_num".to_string(),
                format!("{ms} AS ms"),
                format!("{has_anchor} AS has_anchor"),
            ];
            for f in &fields {
                let carried = rules
                    .kinds
                    .iter()
                    .any(|k| k.fields.iter().any(|(s, ff)| *s == system && ff == f));
                cols.push(if carried {
                    format!("CAST({f} AS {text}) AS f_{f}")
                } else {
                    format!("CAST(NULL AS {text}) AS f_{f}")
                });
            }
            if let Some(fz) = fuzzy {
                let on = fz.systems.contains(&system);
                for (i, fr) in fz.fields.iter().enumerate() {
                    cols.push(if on {
                        format!("{} AS z{i}", fuzzy_field(d, system, fr))
                    } else {
                        format!("CAST(NULL AS {text}) AS z{i}")
                    });
                }
            }
            format!("SELECT {} FROM {table}", cols.join(", "))
        })
        .collect();
    d.create_as(
        "id_records",
        &format!(
            "WITH u AS (\n{}\n), sx AS (\n  SELECT source, row_number() OVER (ORDER BY source) - 1 AS ix FROM (SELECT DISTINCT source FROM u) s\n)\nSELECT CAST((u.sys_order * 64 + sx.ix) * 1099511627776 + u.batch_id * 4294967296 + u.row_num AS {}) AS rec, u.*\nFROM u JOIN sx ON sx.source = u.source",
            parts.join("\nUNION ALL\n"),
            d.int()
        ),
    )
}

/// Whether `x` matches a blocked pattern: one alternation of them all, so
/// the engine compiles it once (the patterns are also in
/// `seed_blocked_values`, for reading).
fn blocked(d: Dialect, rules: &IdentityRules, x: &str) -> String {
    if rules.blocked.is_empty() {
        return "FALSE".into();
    }
    let alternation: Vec<String> = rules
        .blocked
        .iter()
        .map(|r| format!("(?:{})", r.as_str()))
        .collect();
    d.re_match(x, &alternation.join("|"))
}

/// `id_values(kind, value, rec, system, ms)` and the groups worth judging.
fn values_sql(d: Dialect, rules: &IdentityRules) -> String {
    let mut parts = Vec::new();
    for (k, kind) in rules.kinds.iter().enumerate() {
        for (system, f) in &kind.fields {
            parts.push(format!(
                "SELECT {k} AS kind, trim(f_{f}) AS value, rec, system, ms FROM id_records WHERE system = '{}' AND NULLIF(trim(f_{f}), '') IS NOT NULL",
                system.as_str()
            ));
        }
    }
    if parts.is_empty() {
        parts.push(format!(
            "SELECT 0 AS kind, CAST(NULL AS {}) AS value, rec, system, ms FROM id_records WHERE 1 = 0",
            d.text()
        ));
    }
    let mut sql = d.create_as("id_values", &parts.join("\nUNION ALL\n"));
    sql.push_str(&d.create_as(
        "id_groups",
        "SELECT kind, value, count(*) AS n FROM id_values GROUP BY kind, value HAVING count(*) >= 2",
    ));
    sql.push_str(&d.create_as(
        "id_blocked",
        &format!(
            "SELECT g.kind, g.value FROM id_groups g WHERE {}",
            blocked(d, rules, "lower(g.value)")
        ),
    ));
    sql.push_str(&d.create_as(
        "id_live",
        "SELECT v.kind, v.value, v.rec, v.system, v.ms FROM id_values v\nJOIN id_groups g ON g.kind = v.kind AND g.value = v.value\nLEFT JOIN id_blocked b ON b.kind = v.kind AND b.value = v.value\nWHERE b.value IS NULL",
    ));
    sql
}

/// A normalised fuzzy value (`fold`, `lower`, `digits`, `date`).
fn normalise(d: Dialect, norm: &str, x: &str) -> String {
    match norm {
        "lower" => format!("NULLIF(lower(trim({x})), '')"),
        "digits" => format!("NULLIF({}, '')", d.re_replace(x, "[^0-9]", "")),
        "date" => format!(
            "CASE WHEN {} THEN substr(trim({x}), 1, 10) END",
            d.re_match(&format!("trim({x})"), r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
        ),
        _ => format!(
            "NULLIF(trim({}), '')",
            d.re_replace(
                &format!("lower({})", d.strip_accents(x)),
                r"[^\p{L}\p{N}]+",
                " "
            )
        ),
    }
}

/// `fz`: the records fuzzy matching reads, their fields normalised and
/// blocked values removed; `id_nick` the pairs of names of one nickname
/// group; `fz_tf<i>` term frequencies.
fn fuzzy_records_sql(d: Dialect, rules: &IdentityRules, f: &FuzzyRules) -> String {
    let systems: Vec<String> = f
        .systems
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    let norms: Vec<String> = (0..f.fields.len())
        .map(|i| format!("{} AS n{i}", normalise(d, f.norm_name(i), &format!("z{i}"))))
        .collect();
    // Orders take part only when they name the buyer.
    let names: Vec<String> = f
        .fields
        .iter()
        .enumerate()
        .filter(|(_, fr)| matches!(fr, FieldRef::Core(n) if ["first_name", "last_name", "full_name"].contains(&n.as_str())))
        .map(|(i, _)| format!("NULLIF(trim(z{i}), '') IS NOT NULL"))
        .collect();
    let named = if names.is_empty() {
        "FALSE".to_string()
    } else {
        names.join(" OR ")
    };
    let mut sql = d.create_as(
        "fz_raw",
        &format!(
            "SELECT rec, system, {} FROM id_records WHERE system IN ({}) AND (system <> 'transactions' OR {named})",
            norms.join(", "),
            systems.join(", ")
        ),
    );
    let all: Vec<String> = (0..f.fields.len())
        .map(|i| format!("SELECT n{i} AS v FROM fz_raw WHERE n{i} IS NOT NULL"))
        .collect();
    sql.push_str(&d.create_as(
        "fz_junk",
        &format!(
            "SELECT DISTINCT x.v FROM ({}) x WHERE {}",
            all.join(" UNION ALL "),
            blocked(d, rules, "lower(trim(x.v))")
        ),
    ));
    let cols: Vec<String> = (0..f.fields.len())
        .map(|i| format!("CASE WHEN j{i}.v IS NULL THEN r.n{i} END AS n{i}"))
        .collect();
    let joins: Vec<String> = (0..f.fields.len())
        .map(|i| format!("LEFT JOIN fz_junk j{i} ON j{i}.v = r.n{i}"))
        .collect();
    sql.push_str(&d.create_as(
        "fz",
        &format!(
            "SELECT r.rec, r.system, {} FROM fz_raw r {}",
            cols.join(", "),
            joins.join(" ")
        ),
    ));
    sql.push_str(&d.create_as(
        "id_nick",
        "SELECT DISTINCT a.name AS a, b.name AS b FROM seed_nicknames a JOIN seed_nicknames b ON a.name_group = b.name_group WHERE a.name <> b.name",
    ));
    for (ci, c) in f.comparisons.iter().enumerate() {
        if c.tf && c.group.is_none() {
            sql.push_str(&d.create_as(
                &format!("fz_tf{ci}"),
                &format!(
                    "SELECT n{fi} AS v, CAST(count(*) AS {dbl}) / (SELECT count(*) FROM fz WHERE n{fi} IS NOT NULL) AS freq FROM fz WHERE n{fi} IS NOT NULL GROUP BY n{fi}",
                    fi = c.field,
                    dbl = d.double()
                ),
            ));
        }
    }
    sql
}

/// Characters that differ position by position in the first `len`
/// (values of equal length).
fn mismatches(a: &str, b: &str, len: usize) -> String {
    let parts: Vec<String> = (1..=len)
        .map(|i| format!("CASE WHEN substr({a}, {i}, 1) <> substr({b}, {i}, 1) THEN 1 ELSE 0 END"))
        .collect();
    format!("({})", parts.join(" + "))
}

/// Band a similarity `sim` by thresholds, from level `first`.
fn bands(sim: &str, ts: &[f64], first: usize) -> String {
    let arms: Vec<String> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("WHEN {sim} >= {t:?} THEN {}", first + i))
        .collect();
    format!("CASE {} ELSE {} END", arms.join(" "), first + ts.len())
}

/// The level of comparison `c` for values `a`, `b` (normalised; NULL when
/// either is NULL). `nick`: whether the two are one nickname group.
fn level_sql(d: Dialect, c: &Comparison, a: &str, b: &str, nick: &str) -> String {
    let (ca, cb) = (
        format!("substr({a}, 1, 256)"),
        format!("substr({b}, 1, 256)"),
    );
    let different = match &c.method {
        Method::Exact => "1".to_string(),
        Method::Name(ts) => format!(
            "CASE WHEN (length({ca}) = 1 AND substr({cb}, 1, 1) = {ca}) OR (length({cb}) = 1 AND substr({ca}, 1, 1) = {cb}) OR {nick} THEN 1 ELSE {} END",
            bands(&d.jaro_winkler(&ca, &cb), ts, 2)
        ),
        Method::JaroWinkler(ts) => bands(&d.jaro_winkler(&ca, &cb), ts, 1),
        Method::Levenshtein(ks) => {
            let lev = d.levenshtein(&ca, &cb);
            let arms: Vec<String> = ks
                .iter()
                .enumerate()
                .map(|(i, k)| format!("WHEN {lev} <= {k} THEN {}", 1 + i))
                .collect();
            format!("CASE {} ELSE {} END", arms.join(" "), 1 + ks.len())
        }
        Method::Date => format!(
            "CASE WHEN substr({a}, 1, 4) = substr({b}, 1, 4) AND substr({a}, 6, 2) = substr({b}, 9, 2) AND substr({a}, 9, 2) = substr({b}, 6, 2) THEN 1 \
WHEN (substr({a}, 6, 5) = substr({b}, 6, 5) AND abs(CAST(substr({a}, 1, 4) AS {int}) - CAST(substr({b}, 1, 4) AS {int})) = 1) OR {m} = 1 THEN 2 ELSE 3 END",
            int = d.int(),
            m = mismatches(a, b, 10)
        ),
        Method::Phone => format!(
            "CASE WHEN abs(length({a}) - length({b})) > 2 OR LEAST(length({a}), length({b})) < 6 THEN 2 \
WHEN length({a}) = length({b}) THEN CASE WHEN {m} <= 2 THEN 1 ELSE 2 END \
WHEN {lev} <= 2 THEN 1 ELSE 2 END",
            m = mismatches(&ca, &cb, 20),
            lev = d.levenshtein(&ca, &cb)
        ),
        Method::Email => {
            let local = |x: &str| {
                let at = d.strpos(x, "'@'");
                format!("CASE WHEN {at} > 0 THEN substr({x}, 1, {at} - 1) ELSE {x} END")
            };
            format!("CASE WHEN {} = {} THEN 1 ELSE 2 END", local(a), local(b))
        }
    };
    format!(
        "CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL WHEN {a} = {b} THEN 0 ELSE {different} END"
    )
}

/// Whether records `l`, `r` (aliases of `fz` rows, `nick<ci>` joined)
/// differ in every named comparison: each at its last level.
fn all_differ(d: Dialect, f: &FuzzyRules, names: &[String], l: &str, r: &str) -> String {
    let comps: Vec<(usize, &Comparison)> = names
        .iter()
        .filter_map(|n| f.comparisons.iter().enumerate().find(|(_, c)| &c.name == n))
        .collect();
    if comps.is_empty() || comps.len() != names.len() {
        return "FALSE".into();
    }
    let parts: Vec<String> = comps
        .iter()
        .map(|(ci, c)| {
            let lvl = level_sql(
                d,
                c,
                &format!("{l}.n{}", c.field),
                &format!("{r}.n{}", c.field),
                &format!("(nk{ci}.a IS NOT NULL)"),
            );
            format!("COALESCE({lvl}, -1) = {}", c.method.levels() - 1)
        })
        .collect();
    format!("({})", parts.join(" AND "))
}

/// The nickname joins `all_differ` and the scoring read.
fn nick_joins(f: &FuzzyRules, l: &str, r: &str, only: Option<&[String]>) -> String {
    f.comparisons
        .iter()
        .enumerate()
        .filter(|(_, c)| only.is_none_or(|o| o.contains(&c.name)))
        .map(|(ci, c)| {
            format!(
                "LEFT JOIN id_nick nk{ci} ON nk{ci}.a = {l}.n{f} AND nk{ci}.b = {r}.n{f}",
                f = c.field
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The SQL of one identifier kind: judge its values against the customers
/// so far (`id_lab`), link, and record shared-device attributions and
/// conflict pairs.
fn kind_sql(d: Dialect, rules: &IdentityRules, k: usize, rounds: usize) -> String {
    let kind = &rules.kinds[k];
    let is_anchor = kind.kind == rules.anchor;
    let mut sql = format!("-- identifier kind {k}: {}\n", kind.kind);
    sql.push_str(&d.create_as(
        &format!("id_g{k}"),
        &format!(
            "SELECT v.value, v.rec, v.system, v.ms, l.label, l.anchored FROM id_live v JOIN id_lab l ON l.rec = v.rec WHERE v.kind = {k}"
        ),
    ));
    let per_system: Vec<String> = kind
        .max_per_system
        .iter()
        .map(|(s, max)| {
            format!(
                "count(DISTINCT CASE WHEN anchored = 1 AND system = '{}' THEN label END) > {max}",
                s.as_str()
            )
        })
        .collect();
    let over_system = if per_system.is_empty() {
        "FALSE".to_string()
    } else {
        per_system.join(" OR ")
    };
    let over_kind = match kind.max_customers {
        Some(max) if !is_anchor => {
            format!("count(DISTINCT CASE WHEN anchored = 1 THEN label END) > {max}")
        }
        _ => "FALSE".to_string(),
    };
    let over_status = if kind.nearest_login {
        "shared"
    } else {
        "over_limit"
    };
    sql.push_str(&d.create_as(
        &format!("id_st{k}"),
        &format!(
            "SELECT value, count(*) AS records, count(DISTINCT CASE WHEN anchored = 1 THEN label END) AS customers,
  CASE WHEN {over_system} THEN 'over_limit' WHEN {over_kind} THEN '{over_status}' ELSE 'linked' END AS status
FROM id_g{k} GROUP BY value"
        ),
    ));
    // Two CRM records of different customers so far that differ in every
    // review_if_differ comparison: the value links nobody.
    let conflict = match (&rules.fuzzy, kind.review_if_differ.is_empty()) {
        (Some(f), false) if f.systems.contains(&System::Crm) => Some(f),
        _ => None,
    };
    if let Some(f) = conflict {
        let differ = all_differ(d, f, &kind.review_if_differ, "fl", "fr");
        sql.push_str(&d.create_as(
            &format!("id_cf{k}"),
            &format!(
                "WITH c AS (
  SELECT g.value, g.rec, g.label, row_number() OVER (PARTITION BY g.value ORDER BY g.rec) AS nth
  FROM id_g{k} g JOIN id_st{k} s ON s.value = g.value WHERE s.status = 'linked' AND g.system = 'crm'
)
SELECT a.value, a.rec AS a, b.rec AS b
FROM c a JOIN c b ON a.value = b.value AND a.rec < b.rec AND a.label <> b.label
JOIN fz fl ON fl.rec = a.rec JOIN fz fr ON fr.rec = b.rec
{}
WHERE a.nth <= 16 AND b.nth <= 16 AND {differ}",
                nick_joins(f, "fl", "fr", Some(&kind.review_if_differ))
            ),
        ));
        sql.push_str(&d.create_as(
            &format!("id_st{k}_c"),
            &format!(
                "SELECT s.value, s.records, s.customers, CASE WHEN s.status = 'linked' AND c.value IS NOT NULL THEN 'conflict' ELSE s.status END AS status
FROM id_st{k} s LEFT JOIN (SELECT DISTINCT value FROM id_cf{k}) c ON c.value = s.value"
            ),
        ));
        sql.push_str(&format!("DROP TABLE IF EXISTS id_st{k};\n"));
        sql.push_str(&d.create_as(&format!("id_st{k}"), &format!("SELECT * FROM id_st{k}_c")));
        sql.push_str(&format!("DROP TABLE IF EXISTS id_st{k}_c;\n"));
        sql.push_str(&format!(
            "INSERT INTO id_conflicts SELECT {k} AS kind, value, a, b FROM id_cf{k};\n"
        ));
    }
    // A keep-apart decision whose two sides a value would join: it links nobody.
    sql.push_str(&d.create_as(
        &format!("id_rf{k}"),
        &format!(
            "SELECT DISTINCT g.value FROM id_g{k} g JOIN id_sides sa ON sa.label = g.label JOIN id_g{k} h ON h.value = g.value JOIN id_sides sb ON sb.label = h.label
WHERE sa.decision_id = sb.decision_id AND sa.side = 'a' AND sb.side = 'b'"
        ),
    ));
    sql.push_str(&format!(
        "INSERT INTO id_status SELECT {k} AS kind, s.value, s.records, s.customers, CASE WHEN s.status = 'linked' AND r.value IS NOT NULL THEN 'refused' ELSE s.status END AS status FROM id_st{k} s LEFT JOIN id_rf{k} r ON r.value = s.value;\n"
    ));
    if kind.nearest_login {
        sql.push_str(&format!(
            "INSERT INTO id_attr
SELECT rec, login, dist, {k} AS kind, value FROM (
  SELECT a.rec, a.value, l.rec AS login, abs(a.ms - l.ms) AS dist,
    row_number() OVER (PARTITION BY a.value, a.rec ORDER BY abs(a.ms - l.ms), CASE WHEN l.ms < a.ms THEN 0 ELSE 1 END, CASE WHEN l.ms < a.ms THEN -l.rec ELSE l.rec END) AS nth
  FROM id_g{k} a JOIN id_g{k} l ON l.value = a.value
  JOIN id_status s ON s.kind = {k} AND s.value = a.value AND s.status = 'shared'
  WHERE a.anchored = 0 AND l.anchored = 1 AND a.ms IS NOT NULL AND l.ms IS NOT NULL
) x WHERE nth = 1;\n"
        ));
    }
    // Linked values join their customers so far: label pairs.
    let edges = format!(
        "SELECT DISTINCT m.a, g.label AS b FROM id_g{k} g JOIN (SELECT x.value, min(x.label) AS a FROM id_g{k} x JOIN id_status s ON s.kind = {k} AND s.value = x.value WHERE s.status = 'linked' GROUP BY x.value) m ON m.value = g.value"
    );
    sql.push_str(&graph::components(d, &edges, &format!("id_c{k}"), rounds));
    sql.push_str(&d.create_as(
        "id_lab_next",
        &format!(
            "WITH n AS (
  SELECT l.rec, COALESCE(c.label, l.label) AS label, l.has_anchor FROM id_lab l LEFT JOIN id_c{k} c ON c.node = l.label
), a AS (
  SELECT label, max(has_anchor) AS anchored FROM n GROUP BY label
)
SELECT n.rec, n.label, n.has_anchor, a.anchored FROM n JOIN a ON a.label = n.label"
        ),
    ));
    sql.push_str("DROP TABLE IF EXISTS id_lab;\n");
    sql.push_str(&d.create_as("id_lab", "SELECT * FROM id_lab_next"));
    sql.push_str("DROP TABLE IF EXISTS id_lab_next;\n");
    sql.push_str(&sides_sql(d));
    for t in ["g", "st", "cf", "rf", "c"] {
        sql.push_str(&format!("DROP TABLE IF EXISTS id_{t}{k};\n"));
    }
    sql
}

/// `id_sides(label, decision_id, side)`: which customer so far holds a
/// side of a keep-apart decision.
fn sides_sql(d: Dialect) -> String {
    d.create_as(
        "id_sides",
        "SELECT DISTINCT l.label, m.decision_id, m.side FROM id_decision_members m JOIN id_lab l ON l.rec = m.rec",
    )
}

/// The deterministic links: every kind in priority order.
fn links_script(d: Dialect, rules: &IdentityRules, rounds: usize) -> Script {
    let int = d.int();
    let text = d.text();
    let mut sql = records_sql(d, rules);
    sql.push_str(&values_sql(d, rules));
    sql.push_str(&d.create_as(
        "id_decision_members",
        "SELECT s.decision_id, s.side, r.rec FROM seed_steward_decisions s JOIN id_records r ON r.record_key = s.record_key WHERE s.action <> 'approve' AND s.side IN ('a', 'b')",
    ));
    if let Some(f) = &rules.fuzzy {
        sql.push_str(&fuzzy_records_sql(d, rules, f));
    }
    sql.push_str(&d.create_as(
        "id_lab",
        "SELECT rec, rec AS label, has_anchor, has_anchor AS anchored FROM id_records",
    ));
    sql.push_str(&sides_sql(d));
    sql.push_str(&d.create_as(
        "id_status",
        &format!("SELECT CAST(0 AS {int}) AS kind, CAST(NULL AS {text}) AS value, CAST(0 AS {int}) AS records, CAST(0 AS {int}) AS customers, CAST(NULL AS {text}) AS status FROM id_records WHERE 1 = 0"),
    ));
    sql.push_str(&d.create_as(
        "id_attr",
        &format!("SELECT CAST(0 AS {int}) AS rec, CAST(0 AS {int}) AS login, CAST(0 AS {int}) AS dist, CAST(0 AS {int}) AS kind, CAST(NULL AS {text}) AS value FROM id_records WHERE 1 = 0"),
    ));
    sql.push_str(&d.create_as(
        "id_conflicts",
        &format!("SELECT CAST(0 AS {int}) AS kind, CAST(NULL AS {text}) AS value, CAST(0 AS {int}) AS a, CAST(0 AS {int}) AS b FROM id_records WHERE 1 = 0"),
    ));
    let anchor = rules.kinds.iter().position(|k| k.kind == rules.anchor);
    let order = anchor
        .into_iter()
        .chain((0..rules.kinds.len()).filter(|&k| Some(k) != anchor));
    for k in order {
        sql.push_str(&kind_sql(d, rules, k, rounds));
    }
    sql.push_str("DROP TABLE IF EXISTS id_values;\nDROP TABLE IF EXISTS id_live;\nDROP TABLE IF EXISTS fz_raw;\n");
    Script::new(
        "30_identity_links.sql",
        "identity",
        "id_records (every clean record, numbered), identifier values, their guards (blocked, limits, shared devices, conflicts) and links → id_lab",
        sql,
    )
}

/// A unit's level: a comparison's, or a group's `agree * (n + 1) + differ`.
fn unit_level(f: &FuzzyRules, members: &[usize]) -> String {
    if members.len() == 1 && f.comparisons[members[0]].group.is_none() {
        return format!("m{}", members[0]);
    }
    let n = members.len() + 1;
    let agree: Vec<String> = members
        .iter()
        .map(|&m| {
            let last = f.comparisons[m].method.levels() - 1;
            format!("CASE WHEN m{m} < {last} THEN 1 ELSE 0 END")
        })
        .collect();
    let differ: Vec<String> = members
        .iter()
        .map(|&m| {
            let last = f.comparisons[m].method.levels() - 1;
            format!("CASE WHEN m{m} = {last} THEN 1 ELSE 0 END")
        })
        .collect();
    let (a, b) = (agree.join(" + "), differ.join(" + "));
    format!("CASE WHEN ({a}) + ({b}) = 0 THEN NULL ELSE ({a}) * {n} + ({b}) END")
}

/// Blocking: every rule's pairs (a < b), rules joined by name.
fn blocking_sql(d: Dialect, f: &FuzzyRules) -> String {
    let mut sql = String::new();
    let mut unions = Vec::new();
    for (ri, rule) in f.blocking.iter().enumerate() {
        let parts: Vec<String> = rule
            .keys
            .iter()
            .map(|&(fi, t)| {
                let v = format!("n{fi}");
                match t {
                    Transform::Whole => v,
                    Transform::Initial => format!("substr({v}, 1, 1)"),
                    Transform::First3 => format!("substr({v}, 1, 3)"),
                    Transform::Year => format!("substr({v}, 1, 4)"),
                    Transform::Last7 => format!("substr({v}, GREATEST(length({v}) - 6, 1))"),
                }
            })
            .collect();
        let present: Vec<String> = rule
            .keys
            .iter()
            .map(|(fi, _)| format!("n{fi} IS NOT NULL"))
            .collect();
        let key = parts.join(" || '\u{1f}' || ");
        sql.push_str(&d.create_as(
            &format!("fz_b{ri}"),
            &format!(
                "SELECT rec, k, count(*) OVER (PARTITION BY k) AS size FROM (SELECT rec, {key} AS k FROM fz WHERE {}) x",
                present.join(" AND ")
            ),
        ));
        unions.push(format!(
            "SELECT a.rec AS a, b.rec AS b, {ri} AS rule, {} AS rule_name FROM fz_b{ri} a JOIN fz_b{ri} b ON a.k = b.k AND a.rec < b.rec WHERE a.size <= {max}",
            d.lit(&rule.name),
            max = f.max_block_size
        ));
    }
    unions.push("SELECT a, b, 99 AS rule, '' AS rule_name FROM id_conflicts".into());
    sql.push_str(&d.create_as(
        "fz_pairs",
        &format!(
            "SELECT a, b, COALESCE(NULLIF({}, ''), '') AS blocking FROM (\n{}\n) p GROUP BY a, b",
            d.string_agg(
                "CASE WHEN rule_name = '' THEN NULL ELSE rule_name END",
                ", ",
                "rule"
            ),
            unions.join("\nUNION ALL\n")
        ),
    ));
    sql
}

/// Scoring: levels, weights (with term frequencies), probability.
fn scoring_sql(d: Dialect, f: &FuzzyRules) -> String {
    let units = f.units();
    let mut cols: Vec<String> = (0..f.fields.len())
        .map(|i| format!("l.n{i} AS l{i}, r.n{i} AS r{i}"))
        .collect();
    for (ci, c) in f.comparisons.iter().enumerate() {
        cols.push(format!(
            "{} AS m{ci}",
            level_sql(
                d,
                c,
                &format!("l.n{}", c.field),
                &format!("r.n{}", c.field),
                &format!("(nk{ci}.a IS NOT NULL)")
            )
        ));
    }
    let mut sql = d.create_as(
        "fz_levels",
        &format!(
            "SELECT p.a, p.b, p.blocking, {}\nFROM fz_pairs p JOIN fz l ON l.rec = p.a JOIN fz r ON r.rec = p.b\n{}",
            cols.join(",\n  "),
            nick_joins(f, "l", "r", None)
        ),
    );
    let levels: Vec<String> = units
        .iter()
        .enumerate()
        .map(|(ui, u)| format!("{} AS u{ui}", unit_level(f, &u.members)))
        .collect();
    sql.push_str(&d.create_as(
        "fz_units",
        &format!("SELECT v.*, {} FROM fz_levels v", levels.join(", ")),
    ));
    let mut joins = Vec::new();
    let mut weights = Vec::new();
    for (ui, unit) in units.iter().enumerate() {
        let base = format!("COALESCE(w{ui}.weight, 0)");
        joins.push(format!(
            "LEFT JOIN seed_match_model w{ui} ON w{ui}.comparison = {} AND w{ui}.level = x.u{ui}",
            d.lit(&unit.name)
        ));
        let c = &f.comparisons[unit.members[0]];
        if unit.group.is_some() || !c.tf {
            weights.push(format!("{base} AS w{ui}, 0 AS tf{ui}"));
            continue;
        }
        // Term frequencies: an exact match weighs log2(m / frequency); a
        // near match never more than an exact match on either value.
        let (ci, fi) = (unit.members[0], c.field);
        joins.push(format!(
            "LEFT JOIN seed_match_model e{ui} ON e{ui}.comparison = {} AND e{ui}.level = 0",
            d.lit(&unit.name)
        ));
        joins.push(format!("LEFT JOIN fz_tf{ci} ta{ui} ON ta{ui}.v = x.l{fi}"));
        joins.push(format!("LEFT JOIN fz_tf{ci} tb{ui} ON tb{ui}.v = x.r{fi}"));
        let tf_w = |t: &str| {
            format!("(ln(GREATEST(e{ui}.m, 1e-6) / GREATEST({t}{ui}.freq, 1e-6)) / ln(2))")
        };
        let (wa, wb) = (tf_w("ta"), tf_w("tb"));
        let near = format!("(x.u{ui} IS NOT NULL AND x.u{ui} > 0 AND {base} > LEAST({wa}, {wb}))");
        weights.push(format!(
            "CASE WHEN x.u{ui} IS NULL THEN 0 WHEN x.u{ui} = 0 THEN {wa} WHEN {near} THEN LEAST({wa}, {wb}) ELSE {base} END AS w{ui}, \
CASE WHEN x.u{ui} = 0 OR {near} THEN 1 ELSE 0 END AS tf{ui}"
        ));
    }
    sql.push_str(&d.create_as(
        "fz_weights",
        &format!(
            "SELECT x.*, {}\nFROM fz_units x\n{}",
            weights.join(",\n  "),
            joins.join("\n")
        ),
    ));
    let wsum: Vec<String> = (0..units.len()).map(|ui| format!("x.w{ui}")).collect();
    sql.push_str(&d.create_as(
        "fz_scored",
        &format!(
            "SELECT s.*, s.weight + p.weight AS match_weight, 1.0 / (1.0 + power(2.0, -(s.weight + p.weight))) AS probability
FROM (SELECT x.*, {} AS weight FROM fz_weights x) s
CROSS JOIN (SELECT weight FROM seed_match_model WHERE comparison = '(prior)') p",
            wsum.join(" + ")
        ),
    ));
    sql.push_str(&d.create_as(
        "fz_kept",
        &format!(
            "SELECT s.*, CASE WHEN c.a IS NOT NULL THEN 1 ELSE 0 END AS conflict FROM fz_scored s
LEFT JOIN (SELECT DISTINCT a, b FROM id_conflicts) c ON c.a = s.a AND c.b = s.b
WHERE s.probability >= {review:?} OR c.a IS NOT NULL",
            review = f.review
        ),
    ));
    for t in ["fz_levels", "fz_units", "fz_weights", "fz_scored"] {
        sql.push_str(&format!("DROP TABLE IF EXISTS {t};\n"));
    }
    for ri in 0..f.blocking.len() {
        sql.push_str(&format!("DROP TABLE IF EXISTS fz_b{ri};\n"));
    }
    sql
}

/// The fuzzy script: blocking, comparison levels, scores.
fn fuzzy_script(d: Dialect, f: &FuzzyRules) -> Result<Script> {
    let mut sql = blocking_sql(d, f);
    sql.push_str(&d.fail_if(
        "(SELECT count(*) FROM seed_match_model WHERE comparison = '(prior)') = 0",
        "identity: seeds/match_model.csv is empty; run `c360 run --step resolve` in the workspace once (it trains the model), or compile with --model-from a workspace that ran on a sample of the data",
    ));
    sql.push_str(";\n");
    sql.push_str(&scoring_sql(d, f));
    Ok(Script::new(
        "31_identity_fuzzy.sql",
        "identity",
        "fuzzy matching: blocking (fz_pairs), comparison levels, Fellegi–Sunter weights from seed_match_model with term frequencies, probabilities (fz_kept: the review band and up)",
        sql,
    ))
}

/// Clustering: must-links, shared-device attributions, fuzzy auto-merges
/// not across a keep-apart decision, to a fixed point.
fn cluster_script(d: Dialect, rules: &IdentityRules, rounds: usize) -> Script {
    let auto = rules.fuzzy.as_ref().map_or(1.0, |f| f.auto_merge);
    let fuzzy_edges = if rules.fuzzy.is_some() {
        format!(
            "SELECT la.label AS a, lb.label AS b, 'fuzzy' AS via FROM fz_kept k JOIN id_lab la ON la.rec = k.a JOIN id_lab lb ON lb.rec = k.b WHERE k.probability >= {auto:?} AND k.conflict = 0"
        )
    } else {
        "SELECT a, b, 'fuzzy' AS via FROM id_conflicts WHERE 1 = 0".into()
    };
    let mut sql = d.create_as(
        "id_must",
        "SELECT la.label AS a, lb.label AS b FROM seed_steward_decisions s
JOIN id_records ra ON ra.record_key = s.left_key JOIN id_records rb ON rb.record_key = s.right_key
JOIN id_lab la ON la.rec = ra.rec JOIN id_lab lb ON lb.rec = rb.rec
WHERE s.action = 'approve'",
    );
    sql.push_str(&graph::components(
        d,
        "SELECT a, b FROM id_must",
        "id_m",
        rounds,
    ));
    sql.push_str(&d.create_as(
        "id_lab2",
        "WITH n AS (
  SELECT l.rec, l.label, COALESCE(m.label, l.label) AS label2, l.has_anchor FROM id_lab l LEFT JOIN id_m m ON m.node = l.label
), a AS (
  SELECT label2, max(has_anchor) AS anchored2 FROM n GROUP BY label2
)
SELECT n.rec, n.label, n.label2, a.anchored2 FROM n JOIN a ON a.label2 = n.label2",
    ));
    // Per anonymous customer, the nearest login of its records.
    sql.push_str(&d.create_as(
        "id_attributed",
        "SELECT rec, login FROM (
  SELECT t.rec, t.login, row_number() OVER (PARTITION BY l.label2 ORDER BY t.dist, t.kind, t.value, t.rec) AS nth
  FROM id_attr t JOIN id_lab2 l ON l.rec = t.rec WHERE l.anchored2 = 0
) x WHERE nth = 1",
    ));
    sql.push_str(&d.create_as(
        "id_fuzzy_edges",
        &format!(
            "SELECT e.a, e.b FROM ({fuzzy_edges}) e
LEFT JOIN (
  SELECT DISTINCT sa.label AS a, sb.label AS b FROM id_sides sa JOIN id_sides sb ON sa.decision_id = sb.decision_id AND sa.side = 'a' AND sb.side = 'b'
) x ON (x.a = e.a AND x.b = e.b) OR (x.a = e.b AND x.b = e.a)
WHERE x.a IS NULL"
        ),
    ));
    sql.push_str(&graph::components(
        d,
        "SELECT a, b FROM id_must UNION ALL SELECT la.label AS a, lb.label AS b FROM id_attributed t JOIN id_lab la ON la.rec = t.rec JOIN id_lab lb ON lb.rec = t.login UNION ALL SELECT a, b FROM id_fuzzy_edges",
        "id_f",
        rounds,
    ));
    sql.push_str(&d.create_as(
        "id_clusters",
        "SELECT r.rec, r.record_key, r.system, r.source, r.record_id, COALESCE(f.label, l.label) AS cluster, l.label AS base
FROM id_records r JOIN id_lab l ON l.rec = r.rec LEFT JOIN id_f f ON f.node = l.label",
    ));
    sql.push_str(&d.create_as(
        "identity_violations",
        "SELECT m.decision_id, c.cluster, count(DISTINCT m.side) AS sides FROM id_decision_members m JOIN id_clusters c ON c.rec = m.rec GROUP BY m.decision_id, c.cluster HAVING count(DISTINCT m.side) > 1",
    ));
    Script::new(
        "32_identity_clusters.sql",
        "identity",
        "clusters: links, steward approvals (must-links), shared devices to the nearest login, fuzzy auto-merges, never directly across a keep-apart decision → id_clusters, identity_violations",
        sql,
    )
}

/// Stable ids and the outputs: `customer360_id_map`, `match_candidates`.
fn ids_script(d: Dialect, rules: &IdentityRules) -> Script {
    let int = d.int();
    let seq = format!(
        "CAST(CASE WHEN {} THEN substr(customer360_id, 6) END AS {int})",
        d.re_match("customer360_id", "^C360-[0-9]+$")
    );
    let mut sql = d.create_as(
        "id_held",
        &format!(
            "SELECT c.cluster, p.customer360_id, {seq} AS seq, count(*) AS records FROM id_clusters c JOIN seed_previous_id_map p ON p.record_key = c.record_key GROUP BY c.cluster, p.customer360_id"
        ),
    );
    sql.push_str(&d.create_as(
        "id_cluster_keys",
        "SELECT cluster, min(record_key) AS min_key FROM id_clusters GROUP BY cluster",
    ));
    // The owner of an old id: the cluster with most of its records (ties:
    // the smallest record key); a cluster owning several keeps the oldest.
    sql.push_str(&d.create_as(
        "id_owned",
        "SELECT cluster, customer360_id FROM (
  SELECT o.cluster, o.customer360_id, row_number() OVER (PARTITION BY o.cluster ORDER BY o.seq IS NULL, o.seq, o.customer360_id) AS nth
  FROM (
    SELECT h.cluster, h.customer360_id, h.seq, row_number() OVER (PARTITION BY h.customer360_id ORDER BY h.records DESC, k.min_key) AS owner
    FROM id_held h JOIN id_cluster_keys k ON k.cluster = h.cluster
  ) o WHERE o.owner = 1
) x WHERE nth = 1",
    ));
    sql.push_str(&d.create_as(
        "id_assigned",
        &format!(
            "SELECT k.cluster, COALESCE(o.customer360_id, 'C360-' || lpad(CAST(n.next_seq + row_number() OVER (PARTITION BY o.customer360_id IS NULL ORDER BY k.min_key) - 1 AS {text}), 8, '0')) AS customer360_id
FROM id_cluster_keys k LEFT JOIN id_owned o ON o.cluster = k.cluster
CROSS JOIN (SELECT COALESCE(max({seq}), 0) + 1 AS next_seq FROM seed_previous_id_map) n",
            text = d.text()
        ),
    ));
    sql.push_str(&d.create_as(
        "customer360_id_map",
        "SELECT c.record_key, c.system, c.source, c.record_id, a.customer360_id FROM id_clusters c JOIN id_assigned a ON a.cluster = c.cluster",
    ));
    if let Some(f) = &rules.fuzzy {
        sql.push_str(&candidates_sql(d, f));
    } else {
        sql.push_str(&d.create_as(
            "match_candidates",
            &format!(
                "SELECT CAST(0 AS {int}) AS candidate_id, CAST(NULL AS {t}) AS left_key, CAST(NULL AS {t}) AS right_key, CAST(0 AS {dbl}) AS weight, CAST(0 AS {dbl}) AS match_weight, CAST(0 AS {dbl}) AS probability, CAST(NULL AS {t}) AS band, CAST(NULL AS {t}) AS blocking, CAST(NULL AS {t}) AS comparisons, CAST(NULL AS {t}) AS flags, CAST(NULL AS {t}) AS decision FROM id_records WHERE 1 = 0",
                t = d.text(),
                dbl = d.double()
            ),
        ));
    }
    sql.push_str(&d.create_as(
        "identity_summary",
        "SELECT 'records' AS what, count(*) AS n FROM id_clusters
UNION ALL SELECT 'customers', count(DISTINCT customer360_id) FROM customer360_id_map
UNION ALL SELECT concat('identifier values ', status), count(*) FROM id_status GROUP BY status
UNION ALL SELECT 'blocked identifier values', count(*) FROM id_blocked
UNION ALL SELECT 'attributed to the nearest login', count(*) FROM id_attributed
UNION ALL SELECT 'keep-apart violations', count(*) FROM identity_violations",
    ));
    Script::new(
        "33_identity_ids.sql",
        "identity",
        "stable customer360_ids carried over from seed_previous_id_map → customer360_id_map, match_candidates, identity_summary",
        sql,
    )
}

/// A member comparison's level label.
fn member_label(d: Dialect, c: &Comparison, lvl: &str) -> String {
    let labels = c.method.labels();
    let arms: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| format!("WHEN {i} THEN {}", d.lit(l)))
        .collect();
    format!("CASE {lvl} {} ELSE 'no value' END", arms.join(" "))
}

/// `match_candidates`: the kept pairs the links did not already join, with
/// their explanation as the local table writes it.
fn candidates_sql(d: Dialect, f: &FuzzyRules) -> String {
    let units = f.units();
    let js = |v: &str| format!("COALESCE({}, 'null')", d.json_string(v));
    let lit = |s: &str| d.lit(s);
    let mut unit_json = Vec::new();
    for (ui, unit) in units.iter().enumerate() {
        let members: Vec<String> = unit
            .members
            .iter()
            .map(|&m| {
                let c = &f.comparisons[m];
                let label = member_label(d, c, &format!("k.m{m}"));
                format!(
                    "{} || {} || {} || {} || {} || {} || {} || {} || '}}'",
                    lit("{\"left\":"),
                    js(&format!("k.l{}", c.field)),
                    lit(",\"level\":"),
                    js(&label),
                    lit(",\"name\":"),
                    js(&d.lit(&c.name)),
                    lit(",\"right\":"),
                    js(&format!("k.r{}", c.field)),
                )
            })
            .collect();
        let level = if unit.group.is_none() {
            member_label(d, &f.comparisons[unit.members[0]], &format!("k.u{ui}"))
        } else {
            let n = unit.members.len() + 1;
            let t = d.text();
            format!(
                "CASE WHEN k.u{ui} IS NULL THEN 'no value' WHEN MOD(k.u{ui}, {n}) = 0 THEN CAST(CAST(k.u{ui} / {n} AS {int}) AS {t}) || ' agree' WHEN k.u{ui} < {n} THEN CAST(k.u{ui} AS {t}) || ' differ' ELSE CAST(CAST(floor(k.u{ui} / {n}) AS {int}) AS {t}) || ' agree, ' || CAST(MOD(k.u{ui}, {n}) AS {t}) || ' differ' END",
                int = d.int()
            )
        };
        unit_json.push(format!(
            "{} || {} || {} || {} || {} || {} || {} || CASE WHEN k.tf{ui} = 1 THEN 'true' ELSE 'false' END || {} || CAST(round(k.w{ui}, 2) AS {}) || '}}'",
            lit("{\"level\":"),
            js(&level),
            lit(",\"members\":["),
            members.join(" || ',' || "),
            lit("],\"name\":"),
            js(&d.lit(&unit.name)),
            lit(",\"tf\":"),
            lit(",\"weight\":"),
            d.text()
        ));
    }
    let comparisons = format!("'[' || {} || ']'", unit_json.join(" || ',' || "));
    let auto = f.auto_merge;
    d.create_as(
        "match_candidates",
        &format!(
            "SELECT CAST(row_number() OVER (ORDER BY k.weight DESC, ra.record_key, rb.record_key) AS {int}) AS candidate_id,
  CASE WHEN ra.record_key < rb.record_key THEN ra.record_key ELSE rb.record_key END AS left_key,
  CASE WHEN ra.record_key < rb.record_key THEN rb.record_key ELSE ra.record_key END AS right_key,
  k.weight, k.match_weight, k.probability,
  CASE WHEN k.probability >= {auto:?} AND k.conflict = 0 THEN 'auto_merge' ELSE 'review' END AS band,
  k.blocking, {comparisons} AS comparisons,
  CASE WHEN k.conflict = 1 THEN 'shared_identifier_differ' ELSE '' END AS flags,
  dd.action AS decision
FROM fz_kept k
JOIN id_records ra ON ra.rec = k.a JOIN id_records rb ON rb.rec = k.b
JOIN id_lab2 la ON la.rec = k.a JOIN id_lab2 lb ON lb.rec = k.b
LEFT JOIN (
  SELECT left_key, right_key, {last} AS action FROM seed_steward_decisions WHERE left_key <> '' GROUP BY left_key, right_key
) dd ON (dd.left_key = ra.record_key AND dd.right_key = rb.record_key) OR (dd.left_key = rb.record_key AND dd.right_key = ra.record_key)
WHERE la.label2 <> lb.label2 OR dd.action IS NOT NULL",
            int = d.int(),
            last = d.arg_max("action", "decision_id"),
        ),
    )
}

/// The identity scripts (30–33).
pub fn scripts(d: Dialect, rules: &IdentityRules, rounds: usize) -> Result<Vec<Script>> {
    if rounds < 2 {
        bail!("--rounds must be at least 2");
    }
    let mut out = vec![links_script(d, rules, rounds)];
    if let Some(f) = &rules.fuzzy {
        out.push(fuzzy_script(d, f)?);
    }
    out.push(cluster_script(d, rules, rounds));
    out.push(ids_script(d, rules));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> IdentityRules {
        let text = include_str!("../../rules/identity.toml");
        IdentityRules::parse(text, "rules/identity.toml").unwrap()
    }

    #[test]
    fn every_dialect_gets_the_four_identity_scripts_in_run_order() {
        let rules = rules();
        for d in Dialect::ALL {
            let s = scripts(d, &rules, DEFAULT_ROUNDS).unwrap();
            let files: Vec<&str> = s.iter().map(|x| x.file.as_str()).collect();
            assert_eq!(
                files,
                [
                    "30_identity_links.sql",
                    "31_identity_fuzzy.sql",
                    "32_identity_clusters.sql",
                    "33_identity_ids.sql"
                ]
            );
            // The anchor kind is judged first, then the others in file order.
            let links = &s[0].sql;
            let first = links.find("-- identifier kind 0: customer_id").unwrap();
            let email = links.find("-- identifier kind 1: email").unwrap();
            assert!(first < email);
            assert!(
                s[3].sql.contains("customer360_id_map") && s[3].sql.contains("match_candidates")
            );
        }
        assert!(scripts(Dialect::DuckDb, &rules, 1).is_err());
    }

    #[test]
    fn blocked_patterns_are_matched_as_one_alternation() {
        let rules = rules();
        let sql = blocked(Dialect::DuckDb, &rules, "v");
        assert!(sql.starts_with("regexp_matches(v, '(?:^$)|(?:"), "{sql}");
        assert_eq!(sql.matches("(?:").count(), rules.blocked.len());
        let none = IdentityRules::parse("anchor = \"customer_id\"\n[[identifiers]]\nkind = \"customer_id\"\nfields = [\"crm.customer_id\"]\n", "t").unwrap();
        assert_eq!(blocked(Dialect::Spark, &none, "v"), "FALSE");
    }

    #[test]
    fn limits_and_shared_devices_follow_the_kind() {
        let rules = rules();
        let phone = rules.kinds.iter().position(|k| k.kind == "phone").unwrap();
        let sql = kind_sql(Dialect::DuckDb, &rules, phone, 4);
        // max_customers = 3 and max_per_system = { crm = 1 }.
        assert!(sql.contains("THEN label END) > 3"), "{sql}");
        assert!(sql.contains("system = 'crm' THEN label END) > 1"), "{sql}");
        assert!(!sql.contains("INSERT INTO id_attr"));
        let device = rules
            .kinds
            .iter()
            .position(|k| k.kind == "device_id")
            .unwrap();
        let sql = kind_sql(Dialect::DuckDb, &rules, device, 4);
        assert!(
            sql.contains("THEN 'shared'") && sql.contains("INSERT INTO id_attr"),
            "{sql}"
        );
        // The anchor has no customer limit.
        let sql = kind_sql(Dialect::DuckDb, &rules, 0, 4);
        assert!(sql.contains("WHEN FALSE THEN 'over_limit'"), "{sql}");
    }

    #[test]
    fn a_group_scores_agreeing_and_differing_members_together() {
        let rules = rules();
        let f = rules.fuzzy.as_ref().unwrap();
        let household = f
            .units()
            .into_iter()
            .find(|u| u.name == "household")
            .unwrap();
        let sql = unit_level(f, &household.members);
        // Five members: level = agree * 6 + differ.
        assert!(sql.contains("* 6 +"), "{sql}");
        // Each member is tested twice (agrees, differs), in the NULL test and in the level.
        assert_eq!(
            sql.matches("CASE WHEN m").count(),
            4 * household.members.len()
        );
    }

    #[test]
    fn levels_are_null_without_a_value_and_zero_when_equal() {
        let rules = rules();
        let f = rules.fuzzy.as_ref().unwrap();
        let email = f.comparisons.iter().find(|c| c.name == "email").unwrap();
        let sql = level_sql(Dialect::DuckDb, email, "a", "b", "FALSE");
        assert!(
            sql.starts_with("CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN a = b THEN 0"),
            "{sql}"
        );
        let date = f
            .comparisons
            .iter()
            .find(|c| c.name == "birth_date")
            .unwrap();
        let sql = level_sql(Dialect::BigQuery, date, "a", "b", "FALSE");
        assert!(
            sql.contains("THEN 1") && sql.contains("THEN 2 ELSE 3 END"),
            "{sql}"
        );
    }
}
