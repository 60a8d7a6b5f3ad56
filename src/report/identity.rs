//! Identity: how records became customers (`customer360_id_map`), the
//! steward's queue (`match_candidates`, `steward_decisions`), the guardrails
//! that kept values from linking (`identifiers` by status,
//! `refused_unions`) and the fitted match model (`match_model`).

use super::chart::{self, Column, Columns, WeightPanel};
use super::format;
use super::html::{self, Table};
use super::{Section, one, rows};
use anyhow::Result;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// Cluster sizes (records per customer) as the histogram groups them.
const SIZES: [(i64, i64, &str); 8] = [
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 5, "3–5"),
    (6, 10, "6–10"),
    (11, 20, "11–20"),
    (21, 50, "21–50"),
    (51, 100, "51–100"),
    (101, i64::MAX, "over 100"),
];

#[derive(Default)]
pub struct Identity {
    pub records: i64,
    pub customers: i64,
    /// Records whose customer has at least one other record.
    pub merged_records: i64,
    /// (system, records, customers with a record of it).
    pub systems: Vec<(String, i64, i64)>,
    /// Customers per `SIZES` bucket.
    pub sizes: Vec<i64>,
    /// Customers by CRM records: 0, 1, 2, 3, 4 or more.
    pub crm: [i64; 5],
    /// Customers by the systems they were seen in ("crm + web", …).
    pub presence: BTreeMap<String, i64>,
    /// (kind, status, values, records, largest customers count).
    pub guards: Vec<(String, String, i64, i64, Option<i64>)>,
    /// (kind, value, records) of the blocked values carried most.
    pub blocked: Vec<(String, String, i64)>,
    pub refused_unions: i64,
    /// (band, decision, pairs, weak bridges).
    pub queue: Vec<(String, Option<String>, i64, i64)>,
    /// (action, in force, decisions, of them in bulk).
    pub decisions: Vec<(String, bool, i64, i64)>,
    /// (comparison, level, label, m, u, weight), in the model's order.
    pub model: Vec<(String, i64, String, f64, f64, f64)>,
}

impl Identity {
    /// CRM records, and the customers holding them.
    pub fn crm_records(&self) -> (i64, i64) {
        let records = self
            .systems
            .iter()
            .find(|s| s.0 == "crm")
            .map_or(0, |s| s.1);
        (records, self.crm[1..].iter().sum())
    }
}

fn bucket(n: i64) -> usize {
    SIZES
        .iter()
        .position(|(lo, hi, _)| (*lo..=*hi).contains(&n))
        .unwrap_or(0)
}

pub fn read(conn: &Connection) -> Result<Identity> {
    let mut id = Identity {
        sizes: vec![0; SIZES.len()],
        ..Default::default()
    };
    // Phase 1: one pass over the id map, grouped by customer.
    let groups: Vec<(i64, i64, bool, bool, i64)> = rows(
        conn,
        "SELECT n, crm, web, tx, count(*) FROM (
           SELECT count(*) AS n, sum(system = 'crm') AS crm, max(system = 'web') AS web,
                  max(system = 'transactions') AS tx
           FROM customer360_id_map GROUP BY customer360_id)
         GROUP BY n, crm, web, tx",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    for (n, crm, web, tx, customers) in groups {
        id.records += n * customers;
        id.customers += customers;
        if n > 1 {
            id.merged_records += n * customers;
        }
        id.sizes[bucket(n)] += customers;
        id.crm[crm.clamp(0, 4) as usize] += customers;
        let seen: Vec<&str> = [(crm > 0, "CRM"), (web, "web"), (tx, "orders")]
            .iter()
            .filter(|x| x.0)
            .map(|x| x.1)
            .collect();
        *id.presence.entry(seen.join(" + ")).or_default() += customers;
    }
    id.systems = rows(
        conn,
        "SELECT system, count(*), count(DISTINCT customer360_id) FROM customer360_id_map
         GROUP BY system ORDER BY CASE system WHEN 'crm' THEN 1 WHEN 'web' THEN 2 ELSE 3 END, system",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // Phase 2: guardrails and the queue.
    id.guards = rows(
        conn,
        "SELECT kind, status, count(*), sum(records), max(customers) FROM identifiers
         WHERE status <> 'linked' GROUP BY kind, status ORDER BY status, kind",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    id.blocked = rows(
        conn,
        "SELECT kind, value, records FROM identifiers WHERE status = 'blocked'
         ORDER BY records DESC, kind, value LIMIT 8",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    id.refused_unions = one(conn, "SELECT count(*) FROM refused_unions")?;
    id.queue = rows(
        conn,
        "SELECT band, decision, count(*), sum(instr(flags, 'weak_bridge') > 0) FROM match_candidates
         GROUP BY band, decision ORDER BY band, decision",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    id.decisions = rows(
        conn,
        "SELECT action, undone_at IS NULL, count(*), count(bulk_id) FROM steward_decisions
         GROUP BY action, undone_at IS NULL ORDER BY action",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // Phase 3: the model, in the order it was written (the rules' order).
    id.model = rows(
        conn,
        "SELECT comparison, level, label, m, u, weight FROM match_model ORDER BY rowid",
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    Ok(id)
}

/// What a guardrail status means.
fn guard_meaning(status: &str) -> &'static str {
    match status {
        "blocked" => "junk value (a blocked pattern of rules/identity.toml): links nobody",
        "over_limit" => "carried by more customers than its max_customers: links nobody",
        "shared" => "shared device or cookie: anonymous events go to the login nearest in time",
        "conflict" => {
            "records that differ on every review_if_differ field: links nobody, pairs to review"
        }
        _ => "",
    }
}

pub fn html(id: &Identity) -> Result<Section> {
    let mut body = String::new();
    // Phase 1: the merge rate.
    let (crm_records, crm_customers) = id.crm_records();
    body.push_str(&html::p(&format!(
        "{} records (CRM records, web events, orders) resolved to {} customers: {:.1} records per customer; \
         {} of the records share their customer with another record. {} CRM records are {} customers: {} \
         duplicates merged ({} of CRM records).",
        format::count(id.records),
        format::count(id.customers),
        if id.customers > 0 { id.records as f64 / id.customers as f64 } else { 0.0 },
        format::share(id.merged_records as f64, id.records as f64),
        format::count(crm_records),
        format::count(crm_customers),
        format::count(crm_records - crm_customers),
        format::share((crm_records - crm_customers) as f64, crm_records as f64)
    )));
    let count_axis = |v: f64| format::number(v);
    let count_value = |v: f64| format::count(v.round() as i64);
    let bars: Vec<Column> = SIZES
        .iter()
        .zip(&id.sizes)
        .map(|((_, _, label), n)| Column {
            label: label.to_string(),
            group: None,
            value: *n as f64,
            part: None,
            partial: false,
        })
        .collect();
    let svg = chart::columns(&Columns {
        bars,
        colour: chart::BLUE,
        part_colour: chart::BLUE,
        y_desc: "customers".into(),
        axis_label: &count_axis,
        value_label: &count_value,
        phase: 0,
        height: 300,
    })?;
    body.push_str(&html::figure(
        "Customers by cluster size (records per customer: CRM records, web events and orders)",
        &svg,
        "",
    ));
    let mut sys = Table::new(&["system", "records", "customers with one"]);
    for (system, records, customers) in &id.systems {
        sys.row(&[
            system.clone(),
            format::count(*records),
            format::count(*customers),
        ]);
    }
    let mut crm = Table::new(&["CRM records", "customers"]);
    for (k, n) in id.crm.iter().enumerate() {
        let label = match k {
            0 => "none (web or orders only)".to_string(),
            4 => "4 or more".to_string(),
            k => k.to_string(),
        };
        crm.row(&[label, format::count(*n)]);
    }
    let mut presence: Vec<(&String, &i64)> = id.presence.iter().collect();
    presence.sort_by(|a, b| b.1.cmp(a.1));
    let mut seen = Table::new(&["seen in", "customers", "share"]);
    for (k, n) in presence {
        seen.row(&[
            k.clone(),
            format::count(*n),
            format::share(*n as f64, id.customers as f64),
        ]);
    }
    body.push_str(&format!(
        "<div class=\"cols\"><div><h3>Records by system</h3>{}<h3>Customers by number of CRM records</h3>{}</div>\
         <div><h3>Customers by the systems they were seen in</h3>{}</div></div>",
        sys.finish(),
        crm.finish(),
        seen.finish()
    ));
    // Phase 2: the steward's queue and the guardrails.
    body.push_str(&queue_html(id));
    body.push_str(&guards_html(id));
    // Phase 3: the match model.
    body.push_str(&model_html(id)?);
    Ok(Section {
        id: "identity",
        title: "Identity".into(),
        html: body,
    })
}

fn queue_html(id: &Identity) -> String {
    let pairs = |band: &str, done: Option<bool>| -> i64 {
        id.queue
            .iter()
            .filter(|q| q.0 == band && done.is_none_or(|d| q.1.is_some() == d))
            .map(|q| q.2)
            .sum()
    };
    let decided = |decision: &str| -> i64 {
        id.queue
            .iter()
            .filter(|q| q.1.as_deref() == Some(decision))
            .map(|q| q.2)
            .sum()
    };
    let weak: i64 = id.queue.iter().map(|q| q.3).sum();
    let mut t = Table::new(&["fuzzy-matched pairs", "pairs"]);
    t.row(&[
        "pending review".to_string(),
        format::count(pairs("review", Some(false))),
    ]);
    t.row(&[
        "auto-merged (not reviewed)".to_string(),
        format::count(pairs("auto_merge", Some(false))),
    ]);
    t.row(&[
        "decided: approved".to_string(),
        format::count(decided("approve")),
    ]);
    t.row(&[
        "decided: rejected".to_string(),
        format::count(decided("reject")),
    ]);
    t.row_with(
        "muted",
        &[
            "of them weak bridges (one pair joins two groups)".to_string(),
            format::count(weak),
        ],
    );
    let mut d = Table::new(&["steward decisions", "in force", "undone", "in bulk"]);
    let mut actions: Vec<&str> = id.decisions.iter().map(|x| x.0.as_str()).collect();
    actions.dedup();
    for a in &actions {
        let of = |force: bool| {
            id.decisions
                .iter()
                .filter(|x| x.0 == *a && x.1 == force)
                .map(|x| x.2)
                .sum::<i64>()
        };
        let bulk: i64 = id.decisions.iter().filter(|x| x.0 == *a).map(|x| x.3).sum();
        d.row(&[
            a.to_string(),
            format::count(of(true)),
            format::count(of(false)),
            format::count(bulk),
        ]);
    }
    if actions.is_empty() {
        d.row_with("muted", &["none yet", "0", "0", "0"]);
    }
    format!(
        "<div class=\"cols\"><div><h3>Review queue</h3>{}</div><div><h3>Steward decisions</h3>{}</div></div>",
        t.finish(),
        d.finish()
    )
}

fn guards_html(id: &Identity) -> String {
    let mut g = Table::new(&[
        "identifier",
        "guardrail",
        "what it means",
        "values",
        "records",
        "most customers",
    ])
    .left(3);
    for (kind, status, values, records, most) in &id.guards {
        g.row(&[
            kind.clone(),
            status.replace('_', " "),
            guard_meaning(status).to_string(),
            format::count(*values),
            format::count(*records),
            most.map(format::count).unwrap_or_default(),
        ]);
    }
    g.row_with(
        "muted",
        &[
            "steward cannot-links".to_string(),
            "refused unions".to_string(),
            "unions the clustering refused because a steward kept the records apart".to_string(),
            String::new(),
            format::count(id.refused_unions),
            String::new(),
        ],
    );
    let mut html = html::figure(
        "Guardrail hits: identifier values that linked nobody",
        &g.finish(),
        "",
    );
    if !id.blocked.is_empty() {
        let mut b = Table::new(&["identifier", "blocked value", "records"]).left(2);
        for (kind, value, records) in &id.blocked {
            b.row(&[kind.clone(), format!("“{value}”"), format::count(*records)]);
        }
        html.push_str(&html::figure(
            "Blocked values carried by the most records",
            &b.finish(),
            "",
        ));
    }
    html
}

fn model_html(id: &Identity) -> Result<String> {
    if id.model.is_empty() {
        return Ok(html::p(
            "No fuzzy match model was fitted (no fuzzy comparisons configured or run).",
        ));
    }
    let mut panels: Vec<WeightPanel> = Vec::new();
    for (comparison, _, label, _, _, weight) in &id.model {
        let title = if comparison == "(prior)" {
            "prior (starting) match weight".to_string()
        } else {
            comparison.clone()
        };
        match panels.last_mut() {
            Some(p) if p.title == title => p.levels.push((label.clone(), *weight)),
            _ => panels.push(WeightPanel {
                title,
                levels: vec![(label.clone(), *weight)],
            }),
        }
    }
    // The prior first, as Splink draws it.
    panels.sort_by_key(|p| !p.title.starts_with("prior"));
    let svg = chart::match_weights(&panels)?;
    let mut t = Table::new(&[
        "comparison",
        "level",
        "m",
        "u",
        "weight (bits)",
        "Bayes factor",
    ])
    .left(2);
    for (comparison, _, label, m, u, weight) in &id.model {
        t.row(&[
            comparison.clone(),
            label.clone(),
            format!("{m:.4}"),
            format!("{u:.6}"),
            format!("{weight:+.2}"),
            bayes_factor(*weight),
        ]);
    }
    Ok(format!(
        "{}{}",
        html::figure(
            "Match weights per comparison level (the fitted Fellegi–Sunter model)",
            &svg,
            &html::note(
                "Each bar is a level's weight, log2(m/u): how much seeing it moves the odds that two records \
                 are one person (right: towards a match, left: against). A pair's match weight is the prior \
                 plus the weights of its levels."
            ),
        ),
        html::details("m, u and weights of every level", &t.finish())
    ))
}

/// 2^weight as a readable factor: `×113`, `×1/36`.
fn bayes_factor(weight: f64) -> String {
    let f = weight.exp2();
    if f >= 1.0 {
        format!("×{}", format::compact(f))
    } else if f > 0.0 {
        format!("×1/{}", format::compact(1.0 / f))
    } else {
        "×0".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fall_in_their_buckets() {
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(5), 2);
        assert_eq!(bucket(100), 6);
        assert_eq!(bucket(5000), 7);
        assert_eq!(bayes_factor(1.0), "×2");
        assert_eq!(bayes_factor(-5.0), "×1/32");
    }
}
