//! The seed tables: what the scripts look values up in, written as CSV from
//! the workspace's rules, its trained match model and its steward
//! decisions. Each is loaded as table `seed_<name>`.

use super::Dialect;
use crate::pipeline::identity::deterministic::IdentityRules;
use crate::pipeline::standardise::rules::Rules;
use anyhow::{Context, Result};
use rusqlite::Connection;
use std::path::Path;

/// A seed column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Text,
    Int,
    Double,
}

impl Ty {
    pub fn duckdb(self) -> &'static str {
        match self {
            Ty::Text => "VARCHAR",
            Ty::Int => "BIGINT",
            Ty::Double => "DOUBLE",
        }
    }

    pub fn sql(self, d: Dialect) -> &'static str {
        match self {
            Ty::Text => d.text(),
            Ty::Int => d.int(),
            Ty::Double => d.double(),
        }
    }
}

/// One seed table: name, columns, what it holds.
pub struct Seed {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Ty)],
    pub about: &'static str,
}

use Ty::*;

pub const SEEDS: &[Seed] = &[
    Seed {
        name: "country_aliases",
        columns: &[("alias", Text), ("code", Text)],
        about: "folded country name or code (ISO names in many languages, IOC and vehicle codes, rules/countries.toml aliases) → ISO 3166-1 alpha-2",
    },
    Seed {
        name: "country_nulls",
        columns: &[("value", Text)],
        about: "folded written values that mean \"no country\"",
    },
    Seed {
        name: "calling_codes",
        columns: &[("country", Text), ("code", Text), ("national_prefix", Text)],
        about: "country → international calling code and trunk prefix (libphonenumber's metadata), for the phone rule",
    },
    Seed {
        name: "email_domains",
        columns: &[
            ("domain", Text),
            ("ignore_dots", Int),
            ("drop_plus_tag", Int),
            ("canonical_domain", Text),
        ],
        about: "per-domain e-mail rules (rules/people.toml)",
    },
    Seed {
        name: "event_aliases",
        columns: &[("alias", Text), ("canonical", Text)],
        about: "folded event name → canonical name (rules/events.toml)",
    },
    Seed {
        name: "event_types",
        columns: &[("event_type", Text), ("canonical", Text)],
        about: "folded event type (page, screen, identify ...) → canonical name",
    },
    Seed {
        name: "lifecycle_map",
        columns: &[("value", Text), ("status", Text)],
        about: "folded CRM lifecycle value → status of the lifecycle model (rules/people.toml)",
    },
    Seed {
        name: "order_statuses",
        columns: &[("status", Text), ("kind", Text)],
        about: "folded order status → purchase, refund, refunded, partial or void (rules/orders.toml)",
    },
    Seed {
        name: "currency_rates",
        columns: &[("from_date", Text), ("currency", Text), ("rate", Double)],
        about: "units of the reporting currency per unit of a currency, from a date on ('' = always; rules/orders.toml)",
    },
    Seed {
        name: "blocked_values",
        columns: &[("pattern", Text)],
        about: "identifier values that link nobody (regular expressions, on the lowercase trimmed value)",
    },
    Seed {
        name: "nicknames",
        columns: &[("name", Text), ("name_group", Int)],
        about: "folded given name → nickname group (rules/identity.toml and nicknames.csv)",
    },
    Seed {
        name: "match_model",
        columns: &[
            ("comparison", Text),
            ("level", Int),
            ("label", Text),
            ("m", Double),
            ("u", Double),
            ("weight", Double),
        ],
        about: "the trained Fellegi–Sunter model: m, u and weight per comparison level; (prior) holds λ and the prior weight",
    },
    Seed {
        name: "steward_decisions",
        columns: &[
            ("decision_id", Int),
            ("action", Text),
            ("left_key", Text),
            ("right_key", Text),
            ("side", Text),
            ("record_key", Text),
        ],
        about: "the stewards' standing decisions: approve = must-link, reject = cannot-link, split members one row each",
    },
    Seed {
        name: "previous_id_map",
        columns: &[("record_key", Text), ("customer360_id", Text)],
        about: "the last run's customer360_id per record, so ids stay stable",
    },
];

/// What writing the seeds found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SeedCounts {
    pub rows: Vec<(&'static str, u64)>,
}

fn writer(dir: &Path, name: &str) -> Result<csv::Writer<std::fs::File>> {
    let path = dir.join(format!("{name}.csv"));
    csv::Writer::from_path(&path).with_context(|| format!("cannot write {}", path.display()))
}

/// Write every seed CSV into `dir`. `conn`: the workspace's database (the
/// model, the decisions and the id map; absent tables give empty seeds);
/// `model_from`: another workspace's database whose trained model to use
/// (trained on a sample of the data).
pub fn write(
    dir: &Path,
    rules: &Rules,
    identity: &IdentityRules,
    conn: Option<&Connection>,
    model_from: Option<&Connection>,
    previous_ids: bool,
) -> Result<SeedCounts> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut counts = SeedCounts::default();
    let mut put = |name: &'static str, header: &[&str], rows: Vec<Vec<String>>| -> Result<()> {
        let mut w = writer(dir, name)?;
        w.write_record(header)?;
        for r in &rows {
            w.write_record(r)?;
        }
        w.flush()?;
        counts.rows.push((name, rows.len() as u64));
        Ok(())
    };
    let pair = |v: Vec<(&str, &str)>| -> Vec<Vec<String>> {
        v.into_iter()
            .map(|(a, b)| vec![a.to_string(), b.to_string()])
            .collect()
    };
    put(
        "country_aliases",
        &["alias", "code"],
        pair(rules.countries.entries()),
    )?;
    put(
        "country_nulls",
        &["value"],
        rules
            .country_nulls
            .iter()
            .map(|v| vec![crate::pipeline::standardise::country::fold(v)])
            .collect(),
    )?;
    put(
        "calling_codes",
        &["country", "code", "national_prefix"],
        calling_codes(),
    )?;
    put(
        "email_domains",
        &["domain", "ignore_dots", "drop_plus_tag", "canonical_domain"],
        rules
            .email
            .domains
            .iter()
            .map(|(domain, r)| {
                vec![
                    domain.clone(),
                    u8::from(r.ignore_dots).to_string(),
                    u8::from(r.drop_plus_tag).to_string(),
                    r.canonical_domain.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    )?;
    let (types, aliases, _) = rules.events.entries();
    put("event_aliases", &["alias", "canonical"], pair(aliases))?;
    put("event_types", &["event_type", "canonical"], pair(types))?;
    put(
        "lifecycle_map",
        &["value", "status"],
        rules
            .lifecycle
            .entries()
            .into_iter()
            .map(|(a, b)| vec![a, b])
            .collect(),
    )?;
    let (statuses, rates, dated) = rules.orders.entries();
    put(
        "order_statuses",
        &["status", "kind"],
        statuses
            .into_iter()
            .map(|(s, k)| vec![s, k.to_string()])
            .collect(),
    )?;
    let mut rate_rows: Vec<Vec<String>> = rates
        .into_iter()
        .map(|(c, r)| vec![String::new(), c, format!("{r:?}")])
        .collect();
    rate_rows.extend(
        dated
            .into_iter()
            .map(|(d, c, r)| vec![d, c, format!("{r:?}")]),
    );
    if let Some(rep) = &rules.orders.reporting {
        rate_rows.push(vec![String::new(), rep.clone(), "1.0".into()]);
    }
    put(
        "currency_rates",
        &["from_date", "currency", "rate"],
        rate_rows,
    )?;
    put(
        "blocked_values",
        &["pattern"],
        identity
            .blocked
            .iter()
            .map(|r| vec![r.as_str().to_string()])
            .collect(),
    )?;
    let mut nick: Vec<Vec<String>> = identity
        .fuzzy
        .iter()
        .flat_map(|f| {
            f.nicknames
                .iter()
                .flat_map(|(n, gs)| gs.iter().map(move |g| vec![n.clone(), g.to_string()]))
        })
        .collect();
    nick.sort();
    put("nicknames", &["name", "name_group"], nick)?;
    let (model, decisions, ids) = match conn {
        Some(c) => (
            query_rows(model_from.unwrap_or(c), MODEL_SQL)?,
            query_rows(
                c,
                "SELECT d.decision_id, d.action, COALESCE(d.pair_left, ''), COALESCE(d.pair_right, ''), COALESCE(m.side, ''), COALESCE(m.record_key, '')
                 FROM steward_decisions d LEFT JOIN decision_members m ON m.decision_id = d.decision_id
                 WHERE d.undone_at IS NULL ORDER BY d.decision_id, m.side, m.record_key",
            )?,
            if previous_ids {
                query_rows(c, "SELECT record_key, customer360_id FROM customer360_id_map ORDER BY record_key")?
            } else {
                Vec::new()
            },
        ),
        None => (
            model_from.map(|m| query_rows(m, MODEL_SQL)).transpose()?.unwrap_or_default(),
            Vec::new(),
            Vec::new(),
        ),
    };
    put(
        "match_model",
        &["comparison", "level", "label", "m", "u", "weight"],
        model,
    )?;
    put(
        "steward_decisions",
        &[
            "decision_id",
            "action",
            "left_key",
            "right_key",
            "side",
            "record_key",
        ],
        decisions,
    )?;
    put("previous_id_map", &["record_key", "customer360_id"], ids)?;
    Ok(counts)
}

const MODEL_SQL: &str = "SELECT comparison, level, label, m, u, weight FROM match_model ORDER BY comparison = '(prior)' DESC, comparison, level";

/// Every row of a query as texts (a missing table: no rows).
fn query_rows(conn: &Connection, sql: &str) -> Result<Vec<Vec<String>>> {
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(e) if e.to_string().contains("no such table") => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let n = stmt.column_count();
    let rows = stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => format!("{v:?}"),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
            })
            .collect::<rusqlite::Result<Vec<String>>>()
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// (country, calling code, national prefix) from libphonenumber's metadata.
fn calling_codes() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for id in keshvar::CountryIterator::new().map(|c| c.alpha2().to_string()) {
        let Ok(region) = id.parse::<phonenumber::country::Id>() else {
            continue;
        };
        if let Some(meta) = phonenumber::metadata::DATABASE.by_id(region.as_ref()) {
            out.push(vec![
                id.clone(),
                meta.country_code().to_string(),
                meta.national_prefix().unwrap_or("").to_string(),
            ]);
        }
    }
    out.sort();
    out
}

/// `CREATE TABLE` statements for the seeds (engines that load CSV into an
/// existing table).
pub fn ddl(d: Dialect) -> String {
    let mut sql = String::from(
        "-- The seed tables: load seeds/<name>.csv (with its header row) into each.\n",
    );
    for s in SEEDS {
        let cols: Vec<String> = s
            .columns
            .iter()
            .map(|(c, t)| format!("  {c} {}", t.sql(d)))
            .collect();
        sql.push_str(&format!(
            "-- {}\nCREATE TABLE IF NOT EXISTS seed_{} (\n{}\n);\n",
            s.about,
            s.name,
            cols.join(",\n")
        ));
    }
    sql
}
