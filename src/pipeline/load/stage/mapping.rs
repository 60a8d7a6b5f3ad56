//! A source's mapping: where each core field's value is read from.
//!
//! A mapping value (`[sources.mapping] field = "…"`) is an expression:
//! - `Email`: a column (its exact name, else the name in any case), or in
//!   JSON a dotted path (`context.traits.email`);
//! - `a|b`: the first alternative with a value;
//! - `Date + Time`: the values of several columns joined by a space (a date
//!   and a time exported in two columns);
//! - `hash(Email, Name)`: a derived id, for lists without one: the parts'
//!   values (trimmed, lower case) hashed, so the same person in a
//!   re-exported list keeps the same id;
//! - `row()`: the row's number in its file, a derived id for a list that is
//!   only ever appended to.
//!
//! A column the mapping names that the file lacks is an error naming the
//! closest real columns, never a silently empty field.

use super::FieldValue;
use crate::pipeline::load::extract::Record;
use crate::pipeline::schema::Field;
use crate::workspace::Source;
use anyhow::{Result, bail};

/// Where a core field's value comes from.
pub(super) enum Getter {
    Column(usize),
    Path(Vec<String>),
    /// Parts joined by a space.
    Join(Vec<Getter>),
    /// A derived id from the parts' values.
    Hash(Vec<Getter>),
    /// The row's number in its file.
    Row,
}

pub(super) struct FieldPlan {
    pub field: &'static Field,
    /// Alternatives, first non-empty wins. Empty: the source lacks the field.
    pub getters: Vec<Getter>,
}

/// One alternative of a mapping value, parsed.
#[derive(Debug, PartialEq)]
enum Spec {
    Name(String),
    Join(Vec<String>),
    Hash(Vec<String>),
    Row,
}

/// `a|b|c` -> ["a", "b", "c"] (a column literally named with `|` still works
/// when listed alone).
pub(super) fn alternatives(spec: &str) -> Vec<String> {
    let mut alts = vec![spec.to_string()];
    if spec.contains('|') {
        alts.extend(spec.split('|').map(|s| s.trim().to_string()));
    }
    alts
}

fn parse_spec(alt: &str) -> Spec {
    let t = alt.trim();
    if t == "row()" {
        return Spec::Row;
    }
    if let Some(inner) = t.strip_prefix("hash(").and_then(|r| r.strip_suffix(')')) {
        return Spec::Hash(inner.split(',').map(|p| p.trim().to_string()).collect());
    }
    if t.contains(" + ") {
        return Spec::Join(t.split(" + ").map(|p| p.trim().to_string()).collect());
    }
    Spec::Name(t.to_string())
}

/// The plan of a JSON source, known before any record is read.
pub(super) fn json_plan(source: &Source) -> Vec<FieldPlan> {
    let path = |p: &str| Getter::Path(p.split('.').map(str::to_string).collect());
    source
        .system
        .fields()
        .iter()
        .map(|field| {
            let getters = alternatives(&source.column_for(field.name))
                .iter()
                .map(|alt| match parse_spec(alt) {
                    Spec::Name(n) => path(&n),
                    Spec::Join(parts) => Getter::Join(parts.iter().map(|p| path(p)).collect()),
                    Spec::Hash(parts) => Getter::Hash(parts.iter().map(|p| path(p)).collect()),
                    Spec::Row => Getter::Row,
                })
                .collect();
            FieldPlan { field, getters }
        })
        .collect()
}

/// The plan of a tabular source once its columns are known, and which
/// columns it uses. A required field with no column, or a column the
/// mapping names that the file lacks, is an error that names the file's
/// columns (the closest ones first).
pub(super) fn tabular_plan(
    source: &Source,
    columns: &[String],
) -> Result<(Vec<FieldPlan>, Vec<bool>)> {
    let mut used = vec![false; columns.len()];
    let find = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .or_else(|| columns.iter().position(|c| c.eq_ignore_ascii_case(name)))
    };
    let mut plan = Vec::new();
    for field in source.system.fields() {
        let spec = source.column_for(field.name);
        let explicit = source.mapping.contains_key(field.name);
        let mut getters = Vec::new();
        // Names the mapping gives that the file lacks; `partial`: a part of
        // a join or hash is missing (a typo, never an alternative).
        let mut missing: Vec<String> = Vec::new();
        let mut partial = false;
        let alts = alternatives(&spec);
        // The whole value as one column name first (`a|b` may be a name).
        let tried = match find(&alts[0]) {
            Some(c) => {
                used[c] = true;
                getters.push(Getter::Column(c));
                &alts[..0]
            }
            None if alts.len() > 1 => &alts[1..],
            None => &alts[..],
        };
        for alt in tried {
            let names = match parse_spec(alt) {
                Spec::Row => {
                    getters.push(Getter::Row);
                    continue;
                }
                Spec::Name(n) => vec![n],
                Spec::Join(n) | Spec::Hash(n) => n,
            };
            let found: Vec<Option<usize>> = names.iter().map(|n| find(n)).collect();
            if found.iter().any(Option::is_none) {
                missing.extend(
                    names
                        .iter()
                        .zip(&found)
                        .filter(|(_, f)| f.is_none())
                        .map(|(n, _)| n.clone()),
                );
                partial |= names.len() > 1;
                continue;
            }
            let cols: Vec<Getter> = found
                .into_iter()
                .flatten()
                .inspect(|&c| used[c] = true)
                .map(Getter::Column)
                .collect();
            getters.push(match parse_spec(alt) {
                Spec::Join(_) => Getter::Join(cols),
                Spec::Hash(_) => Getter::Hash(cols),
                _ => cols.into_iter().next().expect("one column"),
            });
        }
        if getters.is_empty() && field.required {
            bail!(
                "source {:?} ({}): required column {:?} (core field {}) is missing; the file has columns: {}. Map it in c360.toml under [sources.mapping] as {} = \"<column>\" (or derive an id: {} = \"hash(<column>, …)\"). Nothing of this source was loaded.",
                source.name,
                source.location,
                spec,
                field.name,
                by_closeness(columns, &spec).join(", "),
                field.name,
                field.name
            );
        }
        if explicit && (getters.is_empty() || partial) {
            let name = missing.first().cloned().unwrap_or_else(|| spec.clone());
            bail!(
                "source {:?} ({}): field `mapping.{}`: column {:?} is not in the file; closest columns: {}. Nothing of this source was loaded.",
                source.name,
                source.location,
                field.name,
                name,
                by_closeness(columns, &name)
                    .iter()
                    .take(3)
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        plan.push(FieldPlan { field, getters });
    }
    Ok((plan, used))
}

/// The columns, closest to `name` first (case and punctuation ignored).
fn by_closeness(columns: &[String], name: &str) -> Vec<String> {
    let fold = crate::pipeline::standardise::people::fold_alnum;
    let target = fold(name);
    let mut scored: Vec<(f64, &String)> = columns
        .iter()
        .map(|c| {
            let f = fold(c);
            let mut score = strsim::normalized_damerau_levenshtein(&target, &f);
            if !f.is_empty() && !target.is_empty() && (f.contains(&target) || target.contains(&f)) {
                score = score.max(0.8);
            }
            (score, c)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, c)| c.clone()).collect()
}

/// A getter's value in a record and, for JSON, the top-level keys it used.
fn get<'p>(
    getter: &'p Getter,
    record: &Record,
    row_num: u64,
    keys: &mut Vec<&'p str>,
) -> Option<FieldValue> {
    let v = match (getter, record) {
        (Getter::Column(i), Record::Row(values)) => values
            .get(*i)
            .and_then(|v| v.as_deref())
            .map(|s| FieldValue::Text(s.to_string())),
        (Getter::Path(parts), Record::Json(map)) => {
            let mut cur = map.get(&parts[0]);
            for key in &parts[1..] {
                cur = cur.and_then(|v| v.as_object()).and_then(|o| o.get(key));
            }
            let v = cur.and_then(FieldValue::from_json);
            if v.as_ref().is_some_and(|v| !v.is_blank()) {
                keys.push(parts[0].as_str());
            }
            v
        }
        (Getter::Join(parts), record) => {
            let texts: Vec<String> = parts
                .iter()
                .filter_map(|p| get(p, record, row_num, keys))
                .filter(|v| !v.is_blank())
                .map(|v| v.into_text().trim().to_string())
                .collect();
            (!texts.is_empty()).then(|| FieldValue::Text(texts.join(" ")))
        }
        (Getter::Hash(parts), record) => {
            let texts: Vec<String> = parts
                .iter()
                .map(|p| {
                    get(p, record, row_num, keys)
                        .map(|v| v.into_text().trim().to_lowercase())
                        .unwrap_or_default()
                })
                .collect();
            texts.iter().any(|t| !t.is_empty()).then(|| {
                let hash = blake3::hash(texts.join("\u{1f}").as_bytes());
                FieldValue::Text(format!("h{}", &hash.to_hex()[..16]))
            })
        }
        (Getter::Row, _) => Some(FieldValue::Text(row_num.to_string())),
        _ => None,
    };
    v.filter(|v| !v.is_blank())
}

/// The field's value (first alternative with one) and the top-level JSON
/// keys it came from.
pub(super) fn value_of<'p>(
    plan: &'p FieldPlan,
    record: &Record,
    row_num: u64,
) -> Option<(FieldValue, Vec<&'p str>)> {
    for getter in &plan.getters {
        let mut keys = Vec::new();
        if let Some(v) = get(getter, record, row_num, &mut keys) {
            return Some((v, keys));
        }
    }
    None
}

/// JSON sources: the explicitly mapped fields no record gave a value, as
/// the paths seen in the first records tell (the file has no header to
/// check the mapping against before reading).
pub(super) struct JsonCheck {
    /// Plan index, field, mapping value; dropped once a record has it.
    waiting: Vec<(usize, &'static str, String)>,
    /// Dotted paths of the first records.
    seen: std::collections::BTreeSet<String>,
    records: u64,
}

impl JsonCheck {
    pub fn new(source: &Source, plan: &[FieldPlan]) -> Option<JsonCheck> {
        if !source.format.is_json() {
            return None;
        }
        let waiting: Vec<_> = plan
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let spec = source.mapping.get(p.field.name)?;
                Some((i, p.field.name, spec.clone()))
            })
            .collect();
        Some(JsonCheck {
            waiting,
            seen: Default::default(),
            records: 0,
        })
    }

    pub fn see(&mut self, plan: &[FieldPlan], record: &Record, row_num: u64) {
        let Record::Json(map) = record else { return };
        self.records += 1;
        if self.records <= 20 {
            paths(map, "", 0, &mut self.seen);
        }
        self.waiting
            .retain(|(i, _, _)| value_of(&plan[*i], record, row_num).is_none());
    }

    /// One sentence per mapped field no record had, with the closest paths.
    pub fn warnings(&self, source: &str) -> Vec<String> {
        if self.records == 0 {
            return Vec::new();
        }
        let seen: Vec<String> = self.seen.iter().cloned().collect();
        self.waiting
            .iter()
            .map(|(_, field, spec)| {
                let closest: Vec<String> = by_closeness(&seen, spec)
                    .into_iter()
                    .take(3)
                    .map(|c| format!("{c:?}"))
                    .collect();
                format!(
                    "source {source:?}: field `mapping.{field}`: {spec:?} had no value in any of the {} records; closest paths: {}",
                    self.records,
                    closest.join(", ")
                )
            })
            .collect()
    }
}

/// The dotted paths of a JSON object's values, three levels deep.
fn paths(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    depth: usize,
    out: &mut std::collections::BTreeSet<String>,
) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            serde_json::Value::Object(inner) if depth < 2 => paths(inner, &path, depth + 1, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// Fields of one line of an order (the rest are the order's own).
const LINE_FIELDS: &[&str] = &[
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
];

/// `order_lines = true`: each row is one line of an order and the order's
/// own fields (time, customer, e-mail, status, total…) are on its first row
/// only, as Shopify's orders export writes them. A row of the same order as
/// the row before takes its empty cells, except the line's own, from the
/// order's first row. The raw rows stay as read; only the staged values
/// are filled.
pub(super) struct FillDown {
    order_col: usize,
    /// Per column: a line's own (never filled).
    line_col: Vec<bool>,
    /// The order id and cells of the current order's first row.
    first: Option<(String, Vec<Option<String>>)>,
}

impl FillDown {
    /// For a tabular plan whose order id is one column.
    pub fn new(plan: &[FieldPlan], columns: usize) -> Option<FillDown> {
        let order_col = plan
            .iter()
            .find(|p| p.field.name == "order_id")
            .and_then(|p| match p.getters.as_slice() {
                [Getter::Column(c)] => Some(*c),
                _ => None,
            })?;
        let mut line_col = vec![false; columns];
        for p in plan.iter().filter(|p| LINE_FIELDS.contains(&p.field.name)) {
            for g in &p.getters {
                if let Getter::Column(c) = g {
                    line_col[*c] = true;
                }
            }
        }
        Some(FillDown {
            order_col,
            line_col,
            first: None,
        })
    }

    pub fn apply(&mut self, record: &mut Record) {
        let Record::Row(cells) = record else {
            return;
        };
        let blank = |c: &Option<String>| c.as_deref().is_none_or(|s| s.trim().is_empty());
        let Some(id) = cells
            .get(self.order_col)
            .filter(|c| !blank(c))
            .cloned()
            .flatten()
        else {
            return;
        };
        match &self.first {
            Some((first_id, first)) if *first_id == id => {
                for (i, cell) in cells.iter_mut().enumerate() {
                    if blank(cell)
                        && !self.line_col.get(i).copied().unwrap_or(true)
                        && let Some(v) = first.get(i)
                    {
                        cell.clone_from(v);
                    }
                }
            }
            _ => self.first = Some((id, cells.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_keep_the_whole_spec_first() {
        assert_eq!(alternatives("a"), vec!["a"]);
        assert_eq!(alternatives("a|b"), vec!["a|b", "a", "b"]);
    }

    #[test]
    fn specs_parse() {
        assert_eq!(parse_spec("Email"), Spec::Name("Email".into()));
        assert_eq!(
            parse_spec("Date + Time"),
            Spec::Join(vec!["Date".into(), "Time".into()])
        );
        assert_eq!(
            parse_spec("hash(Email Address, Name)"),
            Spec::Hash(vec!["Email Address".into(), "Name".into()])
        );
        assert_eq!(parse_spec(" row() "), Spec::Row);
    }

    #[test]
    fn an_orders_lines_take_its_fields_from_its_first_row() {
        use crate::pipeline::schema::System;
        let field = |name: &str| System::Transactions.field(name).unwrap();
        let plan = vec![
            FieldPlan {
                field: field("order_id"),
                getters: vec![Getter::Column(0)],
            },
            FieldPlan {
                field: field("order_time"),
                getters: vec![Getter::Column(1)],
            },
            FieldPlan {
                field: field("product_name"),
                getters: vec![Getter::Column(2)],
            },
        ];
        let mut fill = FillDown::new(&plan, 3).unwrap();
        let row = |v: [&str; 3]| {
            Record::Row(
                v.iter()
                    .map(|s| (!s.is_empty()).then(|| s.to_string()))
                    .collect(),
            )
        };
        let cells = |r: Record| match r {
            Record::Row(c) => c
                .into_iter()
                .map(|c| c.unwrap_or_default())
                .collect::<Vec<_>>(),
            _ => unreachable!(),
        };
        let mut out = Vec::new();
        for v in [
            ["#1001", "2024-03-05 10:00", "Mug"],
            ["#1001", "", "Tea"],
            ["#1001", "", ""],
            ["#1002", "2024-03-06 11:00", "Pot"],
            ["#1003", "", "Cup"],
        ] {
            let mut r = row(v);
            fill.apply(&mut r);
            out.push(cells(r).join("|"));
        }
        assert_eq!(
            out,
            [
                "#1001|2024-03-05 10:00|Mug",
                "#1001|2024-03-05 10:00|Tea",
                // A line's own cells are never filled.
                "#1001|2024-03-05 10:00|",
                "#1002|2024-03-06 11:00|Pot",
                // Another order: nothing to take.
                "#1003||Cup",
            ]
        );
    }

    #[test]
    fn closest_columns_come_first() {
        let cols: Vec<String> = ["First Name", "Email", "Phone Number", "Lifecycle Stage"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(by_closeness(&cols, "E-mail")[0], "Email");
        assert_eq!(by_closeness(&cols, "phone")[0], "Phone Number");
    }
}
