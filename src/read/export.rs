//! Exports of the unified tables for BI tools (CSV, Parquet).
//!
//! Rows are streamed from SQLite in batches, so a 10M-event export holds one
//! batch in memory. Parquet keeps the types: whole numbers as Int64, amounts
//! as Float64, flags as Boolean, times as Datetime (milliseconds, UTC; the
//! values are UTC, written without a zone so every reader shows them as
//! stored). CSV writes times as ISO 8601 UTC text (`...Z`), which BI tools
//! parse. A file is written beside its destination and renamed when
//! complete: an interrupted export never leaves a half file behind.
//!
//! CSV text cells are safe to open in a spreadsheet
//! ([`safe_text::csv_cell`]): a value starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return that is not a plain number is written with a
//! leading `'` (OWASP), and a NUL byte is written as the two characters
//! `\0`. Numeric, flag and time columns are written unchanged; Parquet
//! keeps every value as it is (typed columns run no formulas).

use crate::pipeline::progress::Progress;
use crate::pipeline::timeparse::iso_ms;
use crate::safe_text;
use anyhow::{Context, Result, bail};
use polars::prelude::{
    Column, DataFrame, DataType, Field, IntoSeries, NamedFrom, ParquetWriter, Schema, Series,
    TimeUnit,
};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Tables that can be exported (segments join them with the analyse step).
pub const TABLES: [&str; 2] = ["customer360_profiles", "customer360_events"];

/// Internal columns left out of exports.
const INTERNAL: [&str; 4] = ["row_hash", "name_key", "name_key_rev", "event_seq"];

/// Text columns holding UTC times.
const TIMES: [&str; 8] = [
    "event_time",
    "first_seen",
    "last_seen",
    "first_order_at",
    "last_order_at",
    "last_activity_at",
    "as_of",
    "updated_at",
];

/// 0/1 columns.
const FLAGS: [&str; 1] = ["anonymous"];

const BATCH: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => bail!("unknown format {other:?}: use csv or parquet"),
        }
    }

    /// From a file name's extension, if it names a format.
    pub fn from_path(path: &Path) -> Option<Format> {
        Format::parse(path.extension()?.to_str()?).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Flag,
    Time,
    Text,
}

impl Kind {
    fn dtype(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Real => DataType::Float64,
            Kind::Flag => DataType::Boolean,
            Kind::Time => DataType::Datetime(TimeUnit::Milliseconds, None),
            Kind::Text => DataType::String,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    pub table: String,
    pub rows: u64,
    pub columns: usize,
    pub path: PathBuf,
    pub seconds: f64,
}

impl ExportReport {
    pub fn summary(&self) -> String {
        format!(
            "{} rows × {} columns of {} -> {} in {:.2}s",
            self.rows,
            self.columns,
            self.table,
            self.path.display(),
            self.seconds
        )
    }
}

/// The exported columns of a table and their kinds.
fn columns(conn: &Connection, table: &str) -> Result<Vec<(String, Kind)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let cols = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols
        .into_iter()
        .filter(|(name, _)| !INTERNAL.contains(&name.as_str()))
        .map(|(name, decl)| {
            let kind = if FLAGS.contains(&name.as_str()) {
                Kind::Flag
            } else if TIMES.contains(&name.as_str()) {
                Kind::Time
            } else {
                match decl.to_ascii_uppercase().as_str() {
                    "INTEGER" => Kind::Int,
                    "REAL" => Kind::Real,
                    _ => Kind::Text,
                }
            };
            (name, kind)
        })
        .collect())
}

/// One column's values of the current batch.
enum Buf {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Flag(Vec<Option<bool>>),
    Time(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
}

impl Buf {
    fn new(kind: Kind) -> Buf {
        match kind {
            Kind::Int => Buf::Int(Vec::with_capacity(BATCH)),
            Kind::Real => Buf::Real(Vec::with_capacity(BATCH)),
            Kind::Flag => Buf::Flag(Vec::with_capacity(BATCH)),
            Kind::Time => Buf::Time(Vec::with_capacity(BATCH)),
            Kind::Text => Buf::Text(Vec::with_capacity(BATCH)),
        }
    }

    fn push(&mut self, v: ValueRef<'_>) {
        let as_text = |v: ValueRef<'_>| match v {
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(x) => Some(x.to_string()),
            ValueRef::Null | ValueRef::Blob(_) => None,
        };
        match self {
            Buf::Int(b) => b.push(match v {
                ValueRef::Integer(i) => Some(i),
                ValueRef::Real(x) => Some(x as i64),
                _ => None,
            }),
            Buf::Real(b) => b.push(match v {
                ValueRef::Real(x) => Some(x),
                ValueRef::Integer(i) => Some(i as f64),
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
                _ => None,
            }),
            Buf::Flag(b) => b.push(match v {
                ValueRef::Integer(i) => Some(i != 0),
                _ => None,
            }),
            Buf::Time(b) => b.push(match v {
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(iso_ms),
                _ => None,
            }),
            Buf::Text(b) => b.push(as_text(v)),
        }
    }

    fn take(&mut self, name: &str) -> Result<Column> {
        let s: Series = match self {
            Buf::Int(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Real(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Flag(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Text(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Time(b) => Series::new(name.into(), std::mem::take(b))
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .context("times to Datetime")?
                .into_series(),
        };
        Ok(s.into())
    }
}

fn temp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

/// Export `table` to `out` in `format`.
pub fn export(
    conn: &Connection,
    table: &str,
    format: Format,
    out: &Path,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    export_where(conn, table, None, format, out, progress)
}

/// Export the profiles of a segment (its filter text) as an audience file.
pub fn export_segment(
    conn: &Connection,
    filter: &str,
    format: Format,
    out: &Path,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let cond = crate::read::segments::condition(conn, filter)?;
    export_where(
        conn,
        "customer360_profiles",
        Some(cond),
        format,
        out,
        progress,
    )
}

/// Export the rows of `table` matching a parameterised condition.
pub fn export_where(
    conn: &Connection,
    table: &str,
    filter: Option<(String, Vec<rusqlite::types::Value>)>,
    format: Format,
    out: &Path,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let started = Instant::now();
    if !TABLES.contains(&table) {
        bail!(
            "cannot export {table:?}: tables are {} (segments come with the analyse step)",
            TABLES.join(", ")
        );
    }
    let total: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    if total == 0 {
        bail!("{table} is empty: run the unify step first (`c360 run --step unify`)");
    }
    let cols = columns(conn, table)?;
    let order = if table == "customer360_events" {
        "event_seq"
    } else {
        "customer360_id"
    };
    let list: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let (cond, args) = filter.unwrap_or_else(|| ("1".to_string(), Vec::new()));
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM {table} WHERE {cond} ORDER BY {order}",
        list.join(", ")
    ))?;
    let part = temp_path(out);
    progress.start(&format!("export {table}"), total as u64);
    let result = (|| -> Result<u64> {
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut n = 0u64;
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_path(&part)
                    .with_context(|| format!("creating {}", part.display()))?;
                w.write_record(&list)?;
                let mut record: Vec<String> = vec![String::new(); list.len()];
                while let Some(r) = rows.next()? {
                    for (i, cell) in record.iter_mut().enumerate() {
                        cell.clear();
                        match r.get_ref(i)? {
                            ValueRef::Null | ValueRef::Blob(_) => {}
                            ValueRef::Integer(x) => cell.push_str(&x.to_string()),
                            ValueRef::Real(x) => cell.push_str(&x.to_string()),
                            // Text a spreadsheet could run as a formula is
                            // neutralised; numbers are written as they are.
                            ValueRef::Text(t) => {
                                cell.push_str(&safe_text::csv_cell(&String::from_utf8_lossy(t)))
                            }
                        }
                    }
                    w.write_record(&record)?;
                    n += 1;
                    if n.is_multiple_of(BATCH as u64) {
                        progress.update(n);
                        if progress.is_cancelled() {
                            bail!("export cancelled");
                        }
                    }
                }
                w.flush()?;
            }
            Format::Parquet => {
                let file = std::fs::File::create(&part)
                    .with_context(|| format!("creating {}", part.display()))?;
                let schema = Schema::from_iter(
                    cols.iter()
                        .map(|(name, kind)| Field::new(name.as_str().into(), kind.dtype())),
                );
                let mut writer = ParquetWriter::new(file).batched(&schema)?;
                let mut bufs: Vec<Buf> = cols.iter().map(|(_, k)| Buf::new(*k)).collect();
                let mut in_batch = 0usize;
                let mut flush = |bufs: &mut Vec<Buf>, height: usize| -> Result<()> {
                    let columns = bufs
                        .iter_mut()
                        .zip(&cols)
                        .map(|(b, (name, _))| b.take(name))
                        .collect::<Result<Vec<Column>>>()?;
                    let frame = DataFrame::new(height, columns)?;
                    writer.write_batch(&frame)?;
                    Ok(())
                };
                while let Some(r) = rows.next()? {
                    for (i, b) in bufs.iter_mut().enumerate() {
                        b.push(r.get_ref(i)?);
                    }
                    in_batch += 1;
                    n += 1;
                    if in_batch == BATCH {
                        flush(&mut bufs, in_batch)?;
                        in_batch = 0;
                        progress.update(n);
                        if progress.is_cancelled() {
                            bail!("export cancelled");
                        }
                    }
                }
                if in_batch > 0 {
                    flush(&mut bufs, in_batch)?;
                }
                writer.finish()?;
            }
        }
        Ok(n)
    })();
    progress.finish();
    let rows = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, out)
        .with_context(|| format!("moving {} to {}", part.display(), out.display()))?;
    Ok(ExportReport {
        table: table.to_string(),
        rows,
        columns: cols.len(),
        path: out.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
