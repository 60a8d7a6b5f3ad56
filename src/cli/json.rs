//! `--json`: the documents commands print instead of text, one JSON value
//! on stdout (escaped for a terminal by [`c360::safe_text::json_document`]).
//! The values come from the same library calls as the text.

use anyhow::Result;
use c360::pipeline::STEPS;
use c360::pipeline::schema::System;
use c360::store;
use c360::workspace::Workspace;
use serde_json::{Value, json};

/// Print one JSON document on stdout.
pub fn emit(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", c360::safe_text::json_document(value)?);
    Ok(())
}

/// The commands that print JSON, for the error when another is asked to.
pub const COMMANDS: &str =
    "status, rejects, review (all), explain, segment count|list, eval, bench, check, schema";

/// The tables `status` counts, text and JSON alike: staging, rejects, the
/// clean tables and the unified ones.
pub fn status_tables() -> impl Iterator<Item = &'static str> {
    System::ALL.iter().map(|s| s.staging_table()).chain([
        "rejects",
        "clean_crm_customers",
        "clean_web_events",
        "clean_transactions",
        "customer360_profiles",
        "customer360_events",
    ])
}

/// `c360 status --json`: the sources with their last load, table counts
/// and each step's last run.
pub fn status(ws: &Workspace) -> Result<Value> {
    let conn = store::open(&ws.db_path())?;
    let mut sources = Vec::new();
    for s in &ws.sources {
        let last = store::batches(&conn, Some(&s.name))?.into_iter().next();
        sources.push(json!({
            "name": s.name,
            "system": s.system.as_str(),
            "format": s.format.as_str(),
            "location": s.location,
            "last_load": last,
        }));
    }
    let mut tables = serde_json::Map::new();
    for table in status_tables() {
        tables.insert(table.into(), store::count(&conn, table)?.into());
    }
    let mut steps = Vec::new();
    for step in STEPS {
        let last = if step.available {
            c360::pipeline::last_run(&conn, step.name)?
        } else {
            None
        };
        steps.push(json!({"step": step.name, "available": step.available, "last_run": last}));
    }
    let (read, staged, rejected) = store::load_totals(&conn)?;
    Ok(json!({
        "workspace": ws.root.display().to_string(),
        "sources": sources,
        "rows": {"read": read, "staged": staged, "rejected": rejected},
        "tables": tables,
        "pipeline": steps,
    }))
}

/// A benchmark's report as data: its markdown tables as arrays of rows
/// (numbers as numbers), every other line as a note.
pub fn bench(name: &str, report: &str) -> Value {
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    let lines: Vec<&str> = report.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let separator = lines.get(i + 1).is_some_and(|l| is_separator(l));
        if line.starts_with('|') && separator {
            let columns = cells(line);
            let mut rows = Vec::new();
            i += 2;
            while i < lines.len() && lines[i].trim().starts_with('|') {
                let row: serde_json::Map<String, Value> = columns
                    .iter()
                    .cloned()
                    .zip(cells(lines[i]).into_iter().map(|c| typed(&c)))
                    .collect();
                rows.push(Value::Object(row));
                i += 1;
            }
            tables.push(json!({"columns": columns, "rows": rows}));
            continue;
        }
        if !line.is_empty() {
            notes.push(line.to_string());
        }
        i += 1;
    }
    json!({"bench": name, "tables": tables, "notes": notes})
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split('|').map(|c| c.trim().to_string()).collect()
}

/// A cell as a number when it is one (thousands separators allowed), else text.
fn typed(cell: &str) -> Value {
    let plain = cell.replace(',', "");
    if let Ok(n) = plain.parse::<i64>() {
        return n.into();
    }
    match plain.parse::<f64>() {
        Ok(x) if x.is_finite() => x.into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bench_report_becomes_tables_of_typed_rows_and_notes() {
        let report = "generated 10 people\n\n| run | records | seconds | peak RSS (MiB) |\n|---|---:|---:|---:|\n| first run | 1,225 | 4.02 | NaN |\n| re-run | 1225 | 3.5 | 470 |\n\nquality: F1 0.99\n";
        let v = bench("resolve", report);
        assert_eq!(v["bench"], "resolve");
        let rows = &v["tables"][0]["rows"];
        assert_eq!(rows[0]["run"], "first run");
        assert_eq!(rows[0]["records"], 1225);
        assert_eq!(rows[0]["seconds"], 4.02);
        assert_eq!(rows[0]["peak RSS (MiB)"], "NaN");
        assert_eq!(rows[1]["peak RSS (MiB)"], 470);
        assert_eq!(
            v["notes"],
            json!(["generated 10 people", "quality: F1 0.99"])
        );
    }
}
