//! Stage as SQL: the raw tables (one per source, every column as text, plus
//! its row number) to typed `stg_*` rows and `rejects` with their reasons,
//! as [`crate::pipeline::load::stage`] does; read = staged + rejected is
//! checked at the end.
//!
//! A raw table holds `row_num` (the record's number in its file, from 1),
//! `raw_line` (the record as read), `read_error` and `read_detail` (set when
//! the loader could not read the record: `ragged_row`, `invalid_utf8`), and
//! then, for CSV and Parquet sources, one text column per column of the
//! file, named as in the file. JSON sources (json, ndjson, segment) keep the
//! record's JSON text in `raw_line` only; the mapping's paths are read from
//! it here.

use super::{Dialect, Script, times};
use crate::pipeline::schema::{Field, FieldType, System, staging_columns};
use crate::workspace::{Format, Source};
use anyhow::{Result, bail};

/// A source and what its raw table holds.
pub struct RawSource<'a> {
    pub source: &'a Source,
    /// The file's columns (CSV, Parquet); empty for JSON sources.
    pub columns: Vec<String>,
    /// DuckDB: the JSON paths read as text, extracted in one pass per
    /// record (`jx[i]`) instead of one parse per path.
    pub paths: std::cell::RefCell<Vec<String>>,
}

impl<'a> RawSource<'a> {
    pub fn new(source: &'a Source, columns: Vec<String>) -> RawSource<'a> {
        RawSource {
            source,
            columns,
            paths: Default::default(),
        }
    }

    /// The SQL of the text at a JSON path of the record.
    fn json_text(&self, d: Dialect, path: &str) -> String {
        if d != Dialect::DuckDb {
            return d.json_text("raw_line", path);
        }
        let mut paths = self.paths.borrow_mut();
        let i = match paths.iter().position(|p| p == path) {
            Some(i) => i,
            None => {
                paths.push(path.to_string());
                paths.len() - 1
            }
        };
        format!("jx[{}]", i + 1)
    }

    /// The one-pass extraction of every path (DuckDB), or None.
    fn extraction(&self, d: Dialect) -> Option<String> {
        let paths = self.paths.borrow();
        (d == Dialect::DuckDb && !paths.is_empty()).then(|| {
            let list: Vec<String> = paths.iter().map(|p| d.lit(p)).collect();
            format!(
                "CASE WHEN json_ok THEN json_extract_string(raw_line, [{}]) END",
                list.join(", ")
            )
        })
    }
}

impl RawSource<'_> {
    pub fn is_json(&self) -> bool {
        matches!(
            self.source.format,
            Format::Json | Format::Ndjson | Format::Segment
        )
    }
}

/// The staging table of a system.
pub fn staging_table(system: System) -> &'static str {
    match system {
        System::Crm => "stg_crm_customers",
        System::Web => "stg_web_events",
        System::Transactions => "stg_transactions",
    }
}

/// A trimmed text, NULL when empty.
fn present(x: &str) -> String {
    format!("NULLIF(trim({x}), '')")
}

/// The SQL of one mapping alternative, or None when the source lacks it.
fn alternative(d: Dialect, raw: &RawSource, alt: &str, field: &Field) -> Result<Option<String>> {
    let alt = alt.trim();
    if alt == "row()" {
        return Ok(Some(format!("CAST(row_num AS {})", d.text())));
    }
    if alt.starts_with("hash(") {
        bail!(
            "source {:?}: the mapping of {} uses hash(...), which the warehouse scripts do not compute; map a real id column instead",
            raw.source.name,
            field.name
        );
    }
    if alt.contains(" + ") {
        let parts: Vec<String> = alt
            .split(" + ")
            .map(|p| alternative(d, raw, p, field))
            .collect::<Result<Option<Vec<_>>>>()?
            .unwrap_or_default();
        if parts.is_empty() {
            return Ok(None);
        }
        return Ok(Some(present(&d.join_non_null(" ", &parts))));
    }
    if raw.is_json() {
        let path = format!("$.{alt}");
        let value = if field.ty == FieldType::JsonObject {
            d.json_part("raw_line", &path)
        } else {
            present(&raw.json_text(d, &path))
        };
        // Malformed records are rejected; their paths are not read.
        return Ok(Some(format!("CASE WHEN json_ok THEN {value} END")));
    }
    let col = raw
        .columns
        .iter()
        .find(|c| *c == alt)
        .or_else(|| raw.columns.iter().find(|c| c.eq_ignore_ascii_case(alt)));
    Ok(col.map(|c| present(&d.ident(c))))
}

/// A field's value (first alternative with one), or None.
fn field_value(d: Dialect, raw: &RawSource, field: &Field) -> Result<Option<String>> {
    let spec = raw.source.column_for(field.name);
    let explicit = raw.source.mapping.contains_key(field.name);
    let alts: Vec<&str> = if spec.contains('|') {
        spec.split('|').collect()
    } else {
        vec![spec.as_str()]
    };
    let mut found = Vec::new();
    for alt in alts {
        if let Some(sql) = alternative(d, raw, alt, field)? {
            found.push(sql);
        }
    }
    if found.is_empty() {
        if explicit && !raw.is_json() {
            bail!(
                "source {:?}: the mapping of {} names {spec:?}, which the file's columns ({}) lack",
                raw.source.name,
                field.name,
                raw.columns.join(", ")
            );
        }
        if field.required {
            bail!(
                "source {:?}: no column for the required field {}",
                raw.source.name,
                field.name
            );
        }
        return Ok(None);
    }
    Ok(Some(if found.len() == 1 {
        found.remove(0)
    } else {
        format!("COALESCE({})", found.join(", "))
    }))
}

/// A number written with a currency sign or thousands separators, as a
/// double (NULL when it is none).
fn number(d: Dialect, t: &str) -> String {
    let bare = d.re_replace(t, r"[\s$€£¥]", "");
    let dot = format!("CAST({} AS {})", d.re_replace(&bare, ",", ""), d.double());
    let comma = format!("CAST(replace({bare}, ',', '.') AS {})", d.double());
    format!(
        "CASE WHEN {} THEN {dot} WHEN {} THEN {comma} END",
        d.re_match(
            &bare,
            r"^[+-]?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?([eE][+-]?\d+)?$"
        ),
        d.re_match(&bare, r"^[+-]?\d+,\d{1,2}$"),
    )
}

fn integer(d: Dialect, t: &str) -> String {
    format!(
        "CASE WHEN {} THEN CAST(CAST({t} AS {}) AS {}) END",
        d.re_match(t, r"^[+-]?\d{1,18}(\.0+)?$"),
        d.double(),
        d.int()
    )
}

/// The typed value of a field and, where the type can fail, the condition
/// of a bad value and its reason.
struct Typed {
    value: String,
    bad: Option<(String, &'static str, &'static str)>,
}

fn typed(d: Dialect, raw: &RawSource, field: &Field, v: &str, parsed: &mut Vec<String>) -> Typed {
    let src = raw.source;
    match field.ty {
        FieldType::Text => Typed {
            value: v.to_string(),
            bad: None,
        },
        FieldType::Timestamp => {
            parsed.push(format!(
                "{} AS ts_{}",
                times::timestamp(d, v, src.date_order, src.timezone.name()),
                field.name
            ));
            let ts = format!("ts_{}", field.name);
            Typed {
                value: d.iso_utc(&ts),
                bad: Some((
                    format!("({v} IS NOT NULL AND {ts} IS NULL)"),
                    "bad_timestamp",
                    "is not a timestamp",
                )),
            }
        }
        FieldType::Number => {
            let n = number(d, v);
            Typed {
                bad: Some((
                    format!("({v} IS NOT NULL AND ({n}) IS NULL)"),
                    "bad_number",
                    "is not a number",
                )),
                value: format!("({n})"),
            }
        }
        FieldType::Integer => {
            let n = integer(d, v);
            Typed {
                bad: Some((
                    format!("({v} IS NOT NULL AND ({n}) IS NULL)"),
                    "bad_integer",
                    "is not a whole number",
                )),
                value: format!("({n})"),
            }
        }
        FieldType::JsonObject => Typed {
            bad: Some((
                format!("({v} IS NOT NULL AND NOT {})", d.json_valid(v)),
                "bad_json",
                "is not a JSON object",
            )),
            value: v.to_string(),
        },
    }
}

/// A reason a row is rejected: its condition, reason code, field and
/// detail (SQL expressions).
struct Problem {
    cond: String,
    reason: &'static str,
    field: String,
    detail: String,
}

/// The script staging one source: `chk_<source>` (every row with its
/// first problem), then its staged rows and its rejects.
pub fn source_script(d: Dialect, raw: &RawSource, n: usize) -> Result<Script> {
    let src = raw.source;
    let system = src.system;
    let mut values = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    if raw.is_json() {
        problems.push(Problem {
            cond: "NOT json_ok".to_string(),
            reason: "malformed_json",
            field: "NULL".into(),
            detail: d.lit("the record is not a JSON object"),
        });
    }
    let mut cols = Vec::new();
    let mut parsed = Vec::new();
    for field in system.fields() {
        let v = field_value(d, raw, field)?;
        let name = field.name;
        let Some(v) = v else {
            cols.push(format!("CAST(NULL AS {}) AS {name}", sql_type(d, field)));
            if field.ty == FieldType::Timestamp {
                cols.push(format!("CAST(NULL AS {}) AS {name}_raw", d.text()));
            }
            continue;
        };
        values.push(format!("{v} AS v_{name}"));
        let vv = format!("v_{name}");
        if field.required {
            problems.push(Problem {
                cond: format!("{vv} IS NULL"),
                reason: "missing_value",
                field: d.lit(name),
                detail: d.lit(&format!("required field {name} is empty")),
            });
        }
        let t = typed(d, raw, field, &vv, &mut parsed);
        if let Some((cond, reason, what)) = &t.bad {
            problems.push(Problem {
                cond: cond.clone(),
                reason,
                field: d.lit(name),
                detail: format!(
                    "{} || {vv} || {}",
                    d.lit(&format!("{name}: \"")),
                    d.lit(&format!("\" {what}"))
                ),
            });
        }
        cols.push(format!("{} AS {name}", t.value));
        if field.ty == FieldType::Timestamp {
            cols.push(format!("{vv} AS {name}_raw"));
        }
    }
    for group in system.required_any() {
        let mut present_any = Vec::new();
        for f in group.iter() {
            if values.iter().any(|v| v.ends_with(&format!(" AS v_{f}"))) {
                present_any.push(format!("v_{f} IS NOT NULL"));
            }
        }
        let cond = if present_any.is_empty() {
            "TRUE".to_string()
        } else {
            format!("NOT ({})", present_any.join(" OR "))
        };
        problems.push(Problem {
            cond,
            reason: "missing_identifier",
            field: d.lit(&group.join("|")),
            detail: d.lit(&format!("none of {} has a value", group.join(", "))),
        });
    }
    let extra = extra_sql(d, raw)?;
    let case = |read: &str, pick: &dyn Fn(&Problem) -> String| {
        let arms: Vec<String> = problems
            .iter()
            .map(|p| format!("WHEN {} THEN {}", p.cond, pick(p)))
            .collect();
        format!(
            "CASE WHEN read_error IS NOT NULL THEN {read} {} END",
            arms.join(" ")
        )
    };
    let reason_sql = case("read_error", &|p| d.lit(p.reason));
    let field_sql = case("NULL", &|p| p.field.clone());
    let detail_sql = case("read_detail", &|p| p.detail.clone());
    let stg = staging_table(system);
    let staged_cols = staging_columns(system);
    let chk = format!("chk_{}", src.name);
    let json_ok = if raw.is_json() {
        d.json_valid("raw_line")
    } else {
        "TRUE".to_string()
    };
    let mut sql = String::new();
    sql.push_str(&d.create_as(
        &chk,
        &format!(
            "WITH t0 AS (\n  SELECT t.*, {json_ok} AS json_ok FROM {} t\n), j AS (\n  SELECT t0.*{jx} FROM t0\n), w AS (\n  SELECT j.*{}{}\n  FROM j\n), v AS (\n  SELECT w.*{}{}\n  FROM w\n)\nSELECT row_num,\n  {reason_sql} AS reason,\n  {field_sql} AS field,\n  {detail_sql} AS detail,\n  {},\n  {extra} AS extra\nFROM v",
            src.raw_table(),
            if values.is_empty() { "" } else { ",\n    " },
            values.join(",\n    "),
            if parsed.is_empty() { "" } else { ",\n    " },
            parsed.join(",\n    "),
            cols.join(",\n  "),
            jx = raw.extraction(d).map_or_else(String::new, |x| format!(", {x} AS jx")),
        ),
    ));
    let select_cols: Vec<String> = staged_cols
        .iter()
        .map(|c| match c.as_str() {
            "source" => format!("{} AS source", d.lit(&src.name)),
            "batch_id" => format!("CAST(1 AS {}) AS batch_id", d.int()),
            other => other.to_string(),
        })
        .collect();
    // Views over the checked rows: the one copy of the staged rows is the
    // system's table that 19_stage_rejects.sql builds (then drops these).
    sql.push_str(&format!(
        "CREATE OR REPLACE VIEW {stg}_{} AS\nSELECT {} FROM {chk} WHERE reason IS NULL;\n",
        src.name,
        select_cols.join(", ")
    ));
    sql.push_str(&format!(
        "CREATE OR REPLACE VIEW rejects_{} AS\nSELECT {} AS source, c.row_num, c.field, c.reason, c.detail, r.raw_line AS raw FROM {chk} c JOIN {} r ON r.row_num = c.row_num WHERE c.reason IS NOT NULL;\n",
        src.name,
        d.lit(&src.name),
        src.raw_table()
    ));
    Ok(Script::new(
        &format!("{:02}_stage_{}.sql", 10 + n, src.name),
        "stage",
        &format!(
            "{} → {stg} (typed, validated) and its rejects with reasons",
            src.raw_table()
        ),
        sql,
    ))
}

/// The SQL type of a staged field.
fn sql_type(d: Dialect, field: &Field) -> &'static str {
    match field.ty {
        FieldType::Number => d.double(),
        FieldType::Integer => d.int(),
        _ => d.text(),
    }
}

/// Columns of a tabular file that map to no core field, as a JSON object
/// of their non-empty values (JSON sources: NULL, see the README).
fn extra_sql(d: Dialect, raw: &RawSource) -> Result<String> {
    if raw.is_json() {
        return Ok(format!("CAST(NULL AS {})", d.text()));
    }
    let mut used: Vec<String> = Vec::new();
    for field in raw.source.system.fields() {
        let spec = raw.source.column_for(field.name);
        for alt in spec.split('|').flat_map(|a| a.split(" + ")) {
            let alt = alt.trim();
            if let Some(c) = raw
                .columns
                .iter()
                .find(|c| *c == alt)
                .or_else(|| raw.columns.iter().find(|c| c.eq_ignore_ascii_case(alt)))
            {
                used.push(c.clone());
            }
        }
    }
    let parts: Vec<String> = raw
        .columns
        .iter()
        .filter(|c| !used.contains(c))
        .map(|c| {
            let v = present(&d.ident(c));
            format!(
                "CASE WHEN {v} IS NOT NULL THEN {} || {} END",
                d.lit(&format!("{}:", json_key(c))),
                d.json_string(&v)
            )
        })
        .collect();
    if parts.is_empty() {
        return Ok(format!("CAST(NULL AS {})", d.text()));
    }
    let body = d.join_non_null(",", &parts);
    Ok(format!("NULLIF('{{' || {body} || '}}', '{{}}')"))
}

/// A column name as a JSON object key.
fn json_key(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
}

/// The scripts that close staging: each system's staged rows in one
/// table, every reject in `rejects`, and the count check.
pub fn union_script(d: Dialect, raws: &[RawSource]) -> Script {
    let mut sql = String::new();
    for system in System::ALL {
        let stg = staging_table(system);
        let parts: Vec<String> = raws
            .iter()
            .filter(|r| r.source.system == system)
            .map(|r| format!("SELECT * FROM {stg}_{}", r.source.name))
            .collect();
        let select = if parts.is_empty() {
            let cols: Vec<String> = staging_columns(system)
                .iter()
                .map(|c| format!("CAST(NULL AS {}) AS {c}", d.text()))
                .collect();
            format!("SELECT {} WHERE 1 = 0", cols.join(", "))
        } else {
            parts.join("\nUNION ALL\n")
        };
        sql.push_str(&d.create_as(stg, &select));
    }
    let rejects: Vec<String> = raws
        .iter()
        .map(|r| format!("SELECT * FROM rejects_{}", r.source.name))
        .collect();
    sql.push_str(&d.create_as("rejects", &rejects.join("\nUNION ALL\n")));
    let counts: Vec<String> = raws
        .iter()
        .map(|r| {
            format!(
                "SELECT {name} AS source, (SELECT count(*) FROM {raw}) AS rows_read, (SELECT count(*) FROM {stg}_{n}) AS rows_staged, (SELECT count(*) FROM rejects_{n}) AS rows_rejected",
                name = d.lit(&r.source.name),
                raw = r.source.raw_table(),
                stg = staging_table(r.source.system),
                n = r.source.name
            )
        })
        .collect();
    sql.push_str(&d.create_as("load_counts", &counts.join("\nUNION ALL\n")));
    sql.push_str(&d.fail_if(
        "(SELECT count(*) FROM load_counts WHERE rows_read <> rows_staged + rows_rejected) > 0",
        "stage: rows read <> staged + rejected",
    ));
    sql.push_str(";\n");
    for r in raws {
        sql.push_str(&format!(
            "DROP VIEW IF EXISTS {}_{n};\nDROP VIEW IF EXISTS rejects_{n};\nDROP TABLE IF EXISTS chk_{n};\n",
            staging_table(r.source.system),
            n = r.source.name
        ));
    }
    Script::new(
        "19_stage_rejects.sql",
        "stage",
        "stg_* of every source, rejects, load_counts (read = staged + rejected, checked)",
        sql,
    )
}
