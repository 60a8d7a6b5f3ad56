//! Exports of the output tables for BI tools (CSV, Parquet, and a DuckDB
//! file set over the Parquet files).
//!
//! The columns of a table and their types come from the data dictionary
//! ([`crate::read::dictionary`]): what it documents is what the files hold.
//! Rows are streamed from SQLite in batches, so a 10M-event export holds one
//! batch in memory. Each file is written beside its destination and renamed
//! when complete: an interrupted export never leaves a half file behind.
//!
//! The same logical type in both formats:
//!
//! - whole numbers Int64 / digits; amounts Float64 / decimals that always
//!   have a point (`12.0`, so no reader takes a column of whole amounts for
//!   integers);
//! - flags Boolean / `true`, `false`;
//! - times Datetime (milliseconds, zone `UTC`, so Parquet's
//!   `isAdjustedToUTC` is true) / ISO 8601 UTC text (`...Z`);
//! - `rfm_segment` as the text code `R5F1M4` in both (SQLite's `514` would
//!   read as a number from CSV); the scores are their own integer columns;
//! - list columns (`crm_ids`, `churn_signals`, a candidate's `blocking`
//!   and `flags`) are `List(String)` in Parquet. CSV has no lists: the main
//!   file leaves them out and a child table `<table>__<column>.csv` holds one
//!   value per row, with the table's key and the value's position (from 1).
//!
//! CSV text cells are safe to open in a spreadsheet
//! ([`safe_text::csv_cell`]): a value starting with `=`, `+`, `-`, `@`, a
//! tab or a carriage return that is not a plain number is written with a
//! leading `'` (OWASP), and a NUL byte is written as the two characters
//! `\0`. Numeric, flag and time columns are written unchanged; Parquet
//! keeps every value as it is (typed columns run no formulas).

use crate::pipeline::progress::Progress;
use crate::pipeline::timeparse::{iso_ms, now_utc};
use crate::read::dictionary::{self, Column, Kind, Origin, Table};
use crate::read::segments::{self, Segment};
use crate::safe_text;
use anyhow::{Context, Result, bail};
use polars::prelude::{
    BatchedWriter, Column as PlColumn, DataFrame, DataType, Field, IntoSeries, ListBuilderTrait,
    ListStringChunkedBuilder, NamedFrom, ParquetWriter, Schema, Series, TimeUnit, TimeZone,
};
use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

const fn exportable_count() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < dictionary::TABLES.len() {
        if matches!(dictionary::TABLES[i].origin, Origin::Sqlite) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The SQLite tables that can be exported one at a time ([`export`]): the
/// dictionary's, in its order. [`export_all`] writes these and the saved
/// segments.
pub const TABLES: [&str; exportable_count()] = {
    let mut out = [""; exportable_count()];
    let (mut i, mut k) = (0, 0);
    while i < dictionary::TABLES.len() {
        if matches!(dictionary::TABLES[i].origin, Origin::Sqlite) {
            out[k] = dictionary::TABLES[i].name;
            k += 1;
        }
        i += 1;
    }
    out
};

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

#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    pub table: String,
    pub rows: u64,
    /// Exported columns (list columns included).
    pub columns: usize,
    /// The main file: the one asked for, or (export_all) the Parquet file.
    pub path: PathBuf,
    pub seconds: f64,
    /// Every file written, `path` first (a CSV export's list-column child
    /// tables, export_all's CSV files).
    pub files: Vec<PathBuf>,
}

impl ExportReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} rows × {} columns of {} -> {} in {:.2}s",
            self.rows,
            self.columns,
            self.table,
            self.path.display(),
            self.seconds
        );
        let more: Vec<String> = self.files[1.min(self.files.len())..]
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if !more.is_empty() {
            s.push_str(&format!(" (and {})", more.join(", ")));
        }
        s
    }
}

// ---- values: one conversion per kind, shared by both formats ----------

fn int_of(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(x) => Some(x as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn real_of(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Real(x) => Some(x),
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn flag_of(v: ValueRef<'_>) -> Option<bool> {
    match v {
        ValueRef::Integer(i) => Some(i != 0),
        ValueRef::Real(x) => Some(x != 0.0),
        ValueRef::Text(b"1" | b"true") => Some(true),
        ValueRef::Text(b"0" | b"false") => Some(false),
        _ => None,
    }
}

/// Milliseconds of a stored UTC time (`2024-03-05T14:22:05.123Z`, the
/// fraction optional).
fn utc_ms(s: &str) -> Option<i64> {
    let base = iso_ms(s)?;
    let b = s.as_bytes();
    let mut ms = 0;
    if b.get(19) == Some(&b'.') {
        let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).take(3);
        let mut n = 0;
        for &d in digits {
            ms = ms * 10 + i64::from(d - b'0');
            n += 1;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    Some(base + ms)
}

fn time_of(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Text(t) => utc_ms(std::str::from_utf8(t).ok()?),
        _ => None,
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn text_of(v: ValueRef<'_>) -> Option<Cow<'_, str>> {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t)),
        ValueRef::Integer(i) => Some(Cow::Owned(i.to_string())),
        ValueRef::Real(x) => Some(Cow::Owned(x.to_string())),
        ValueRef::Null => None,
    }
}

/// SQLite's `514` as `R5F1M4`; anything else as it is.
fn rfm_code(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    if b.len() == 3 && b.iter().all(u8::is_ascii_digit) {
        Cow::Owned(format!(
            "R{}F{}M{}",
            b[0] as char, b[1] as char, b[2] as char
        ))
    } else {
        Cow::Borrowed(s)
    }
}

/// The values of a packed list (empty ones dropped).
fn items<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    text.split(sep)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A decimal that reads back as one: always with a point.
fn real_text(x: f64, out: &mut String) {
    let s = x.to_string();
    out.push_str(&s);
    if x.is_finite() && !s.contains(['.', 'e', 'E']) {
        out.push_str(".0");
    }
}

/// A CSV cell of a (non-list) column.
fn csv_cell(kind: Kind, v: ValueRef<'_>, out: &mut String) {
    out.clear();
    match kind {
        Kind::Int => {
            if let Some(i) = int_of(v) {
                out.push_str(&i.to_string());
            }
        }
        Kind::Real => {
            if let Some(x) = real_of(v) {
                real_text(x, out);
            }
        }
        Kind::Flag => {
            if let Some(f) = flag_of(v) {
                out.push_str(if f { "true" } else { "false" });
            }
        }
        Kind::Time => {
            if let Some(ms) = time_of(v) {
                out.push_str(&iso(ms));
            }
        }
        Kind::Rfm => {
            if let Some(t) = text_of(v) {
                out.push_str(&safe_text::csv_cell(&rfm_code(&t)));
            }
        }
        Kind::Text | Kind::Id | Kind::Json | Kind::Raw | Kind::List { .. } => {
            // Text a spreadsheet could run as a formula is neutralised.
            if let Some(t) = text_of(v) {
                out.push_str(&safe_text::csv_cell(&t));
            }
        }
    }
}

fn dtype(kind: Kind) -> DataType {
    match kind {
        Kind::Int => DataType::Int64,
        Kind::Real => DataType::Float64,
        Kind::Flag => DataType::Boolean,
        Kind::Time => DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
        Kind::List { .. } => DataType::List(Box::new(DataType::String)),
        Kind::Text | Kind::Id | Kind::Json | Kind::Rfm | Kind::Raw => DataType::String,
    }
}

// ---- files written beside their destination ----------------------------

/// A file being written as `<name>.part` beside `path`.
struct Part {
    part: PathBuf,
    path: PathBuf,
}

impl Part {
    fn new(path: PathBuf) -> Part {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        Part {
            part: path.with_file_name(name),
            path,
        }
    }

    fn create(&self) -> Result<File> {
        File::create(&self.part).with_context(|| format!("creating {}", self.part.display()))
    }

    fn commit(&self) -> Result<()> {
        std::fs::rename(&self.part, &self.path)
            .with_context(|| format!("moving {} to {}", self.part.display(), self.path.display()))
    }
}

/// Write `text` to `path` (beside it, then renamed).
fn write_file(path: &Path, text: &str) -> Result<()> {
    let p = Part::new(path.to_path_buf());
    std::fs::write(&p.part, text).with_context(|| format!("writing {}", p.part.display()))?;
    p.commit()
}

// ---- one table's output in one or both formats -------------------------

/// The CSV child table of a list column.
struct Child {
    col: usize,
    sep: &'static str,
    writer: csv::Writer<File>,
    file: Part,
}

struct CsvOut {
    main: csv::Writer<File>,
    file: Part,
    /// Columns of the main file (all but the list columns).
    plain: Vec<usize>,
    keys: Vec<usize>,
    children: Vec<Child>,
    record: Vec<String>,
    key_cells: Vec<String>,
}

/// One column's values of the current Parquet batch.
enum Buf {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Flag(Vec<Option<bool>>),
    Time(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Rfm(Vec<Option<String>>),
    /// Boxed: the builder is large, and a batch has one per list column.
    List(Box<ListStringChunkedBuilder>, &'static str),
}

fn list_builder(name: &str) -> Box<ListStringChunkedBuilder> {
    Box::new(ListStringChunkedBuilder::new(name.into(), BATCH, BATCH))
}

impl Buf {
    fn new(c: &Column) -> Buf {
        match c.kind {
            Kind::Int => Buf::Int(Vec::with_capacity(BATCH)),
            Kind::Real => Buf::Real(Vec::with_capacity(BATCH)),
            Kind::Flag => Buf::Flag(Vec::with_capacity(BATCH)),
            Kind::Time => Buf::Time(Vec::with_capacity(BATCH)),
            Kind::Rfm => Buf::Rfm(Vec::with_capacity(BATCH)),
            Kind::List { sep, .. } => Buf::List(list_builder(c.name), sep),
            Kind::Text | Kind::Id | Kind::Json | Kind::Raw => Buf::Text(Vec::with_capacity(BATCH)),
        }
    }

    fn push(&mut self, v: ValueRef<'_>) {
        match self {
            Buf::Int(b) => b.push(int_of(v)),
            Buf::Real(b) => b.push(real_of(v)),
            Buf::Flag(b) => b.push(flag_of(v)),
            Buf::Time(b) => b.push(time_of(v)),
            Buf::Text(b) => b.push(text_of(v).map(Cow::into_owned)),
            Buf::Rfm(b) => b.push(text_of(v).map(|t| rfm_code(&t).into_owned())),
            Buf::List(b, sep) => match text_of(v) {
                Some(t) => b.append_values_iter(items(&t, sep).into_iter()),
                None => b.append_null(),
            },
        }
    }

    fn take(&mut self, name: &str) -> PlColumn {
        let s: Series = match self {
            Buf::Int(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Real(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Flag(b) => Series::new(name.into(), std::mem::take(b)),
            Buf::Text(b) | Buf::Rfm(b) => Series::new(name.into(), std::mem::take(b)),
            // Int64 milliseconds as a UTC Datetime (a cast would need
            // polars' `timezones` feature to keep the zone).
            Buf::Time(b) => Series::new(name.into(), std::mem::take(b))
                .into_datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
            Buf::List(b, _) => std::mem::replace(b, list_builder(name))
                .finish()
                .into_series(),
        };
        s.into()
    }
}

struct ParquetOut {
    writer: BatchedWriter<File>,
    file: Part,
    bufs: Vec<Buf>,
    in_batch: usize,
}

/// Where one table goes: the CSV file (its list columns' child tables
/// beside it, named by `child_path`) and / or the Parquet file.
struct Target {
    csv: Option<PathBuf>,
    parquet: Option<PathBuf>,
}

/// One table's files being written, row by row.
struct Output {
    table: &'static Table,
    cols: Vec<&'static Column>,
    csv: Option<CsvOut>,
    parquet: Option<ParquetOut>,
    rows: u64,
}

/// The CSV child table of `column` beside `main` (`profiles.csv` ->
/// `profiles__crm_ids.csv`).
fn child_path(main: &Path, column: &str) -> PathBuf {
    let stem = main.file_stem().unwrap_or_default().to_string_lossy();
    let name = match main.extension() {
        Some(ext) => format!("{stem}__{column}.{}", ext.to_string_lossy()),
        None => format!("{stem}__{column}"),
    };
    main.with_file_name(name)
}

impl Output {
    fn new(table: &'static Table, target: &Target) -> Result<Output> {
        let cols: Vec<&'static Column> = table.exported().collect();
        let mut out = Output {
            table,
            cols,
            csv: None,
            parquet: None,
            rows: 0,
        };
        // Created one by one: on an error the ones made so far are removed.
        if let Err(e) = out.open(target) {
            out.abort();
            return Err(e);
        }
        Ok(out)
    }

    fn open(&mut self, target: &Target) -> Result<()> {
        let table = self.table;
        let cols = &self.cols;
        if let Some(path) = &target.csv {
            let file = Part::new(path.clone());
            let mut main = csv::Writer::from_writer(file.create()?);
            let plain: Vec<usize> = (0..cols.len())
                .filter(|&i| !matches!(cols[i].kind, Kind::List { .. }))
                .collect();
            main.write_record(plain.iter().map(|&i| cols[i].name))?;
            let keys: Vec<usize> = table
                .key
                .iter()
                .map(|k| cols.iter().position(|c| c.name == *k).unwrap_or(0))
                .collect();
            self.csv = Some(CsvOut {
                main,
                file,
                record: vec![String::new(); plain.len()],
                key_cells: vec![String::new(); keys.len()],
                plain,
                keys,
                children: Vec::new(),
            });
            for (i, c) in cols.iter().enumerate() {
                let (Kind::List { sep, .. }, Some((_, header))) = (c.kind, table.child(c)) else {
                    continue;
                };
                let file = Part::new(child_path(path, c.name));
                let mut writer = csv::Writer::from_writer(file.create()?);
                writer.write_record(&header)?;
                if let Some(csv) = self.csv.as_mut() {
                    csv.children.push(Child {
                        col: i,
                        sep,
                        writer,
                        file,
                    });
                }
            }
        }
        if let Some(path) = &target.parquet {
            let file = Part::new(path.clone());
            let schema = Schema::from_iter(
                cols.iter()
                    .map(|c| Field::new(c.name.into(), dtype(c.kind))),
            );
            let writer = ParquetWriter::new(file.create()?).batched(&schema)?;
            self.parquet = Some(ParquetOut {
                writer,
                file,
                bufs: cols.iter().map(|c| Buf::new(c)).collect(),
                in_batch: 0,
            });
        }
        Ok(())
    }

    fn row(&mut self, vals: &[ValueRef<'_>]) -> Result<()> {
        let cols = &self.cols;
        if let Some(c) = self.csv.as_mut() {
            for (cell, &i) in c.record.iter_mut().zip(&c.plain) {
                csv_cell(cols[i].kind, vals[i], cell);
            }
            c.main.write_record(&c.record)?;
            if !c.children.is_empty() {
                for (cell, &i) in c.key_cells.iter_mut().zip(&c.keys) {
                    csv_cell(cols[i].kind, vals[i], cell);
                }
                for child in &mut c.children {
                    let Some(text) = text_of(vals[child.col]) else {
                        continue;
                    };
                    for (k, item) in items(&text, child.sep).into_iter().enumerate() {
                        let position = (k + 1).to_string();
                        let value = safe_text::csv_cell(item);
                        let record = c
                            .key_cells
                            .iter()
                            .map(String::as_str)
                            .chain([position.as_str(), value.as_ref()]);
                        child.writer.write_record(record)?;
                    }
                }
            }
        }
        if let Some(p) = self.parquet.as_mut() {
            for (b, v) in p.bufs.iter_mut().zip(vals) {
                b.push(*v);
            }
            p.in_batch += 1;
            if p.in_batch == BATCH {
                Self::flush(p, cols)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(p: &mut ParquetOut, cols: &[&'static Column]) -> Result<()> {
        let columns: Vec<PlColumn> = p
            .bufs
            .iter_mut()
            .zip(cols)
            .map(|(b, c)| b.take(c.name))
            .collect();
        let frame = DataFrame::new(p.in_batch, columns)?;
        p.writer.write_batch(&frame)?;
        p.in_batch = 0;
        Ok(())
    }

    fn parts(&self) -> Vec<&Part> {
        let mut parts = Vec::new();
        if let Some(c) = &self.csv {
            parts.push(&c.file);
            parts.extend(c.children.iter().map(|ch| &ch.file));
        }
        if let Some(p) = &self.parquet {
            parts.push(&p.file);
        }
        parts
    }

    /// Remove the files written so far.
    fn abort(&self) {
        for p in self.parts() {
            let _ = std::fs::remove_file(&p.part);
        }
    }

    /// Complete every file and move it into place: the paths, the main
    /// CSV file first, then its child tables, then the Parquet file.
    fn finish(mut self) -> Result<Vec<PathBuf>> {
        let done = (|| -> Result<()> {
            if let Some(c) = self.csv.as_mut() {
                c.main.flush()?;
                for ch in &mut c.children {
                    ch.writer.flush()?;
                }
            }
            if let Some(p) = self.parquet.as_mut() {
                if p.in_batch > 0 {
                    Self::flush(p, &self.cols)?;
                }
                p.writer.finish()?;
            }
            Ok(())
        })();
        if let Err(e) = done {
            self.abort();
            return Err(e);
        }
        let parts = self.parts();
        for p in &parts {
            p.commit()?;
        }
        Ok(parts.iter().map(|p| p.path.clone()).collect())
    }
}

/// Stream `sql`'s rows (the exported columns, in order) into `out`.
fn stream(
    conn: &Connection,
    sql: &str,
    args: &[Value],
    out: &mut Output,
    progress: &dyn Progress,
) -> Result<()> {
    let mut stmt = conn.prepare(sql)?;
    let n = out.cols.len();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(r) = rows.next()? {
        // One small vector a row: the values borrow the row.
        let vals = (0..n)
            .map(|i| r.get_ref(i))
            .collect::<rusqlite::Result<Vec<ValueRef<'_>>>>()?;
        out.row(&vals)?;
        if out.rows.is_multiple_of(BATCH as u64) {
            progress.update(out.rows);
            if progress.is_cancelled() {
                bail!("export cancelled");
            }
        }
    }
    Ok(())
}

fn sqlite_table(name: &str) -> Result<&'static Table> {
    match dictionary::table(name) {
        Some(t) if t.origin == Origin::Sqlite => Ok(t),
        _ => bail!(
            "cannot export {name:?}: tables are {} (saved segments: `segment export`, or export_all)",
            TABLES.join(", ")
        ),
    }
}

/// Export a table (optionally the rows matching a condition) to `target`.
fn write_table(
    conn: &Connection,
    t: &'static Table,
    filter: Option<(String, Vec<Value>)>,
    target: &Target,
    progress: &dyn Progress,
) -> Result<(u64, usize, Vec<PathBuf>)> {
    let total = crate::store::count(conn, t.name)?;
    let mut out = Output::new(t, target)?;
    let list: Vec<&str> = out.cols.iter().map(|c| c.name).collect();
    let (cond, args) = filter.unwrap_or_else(|| ("1".to_string(), Vec::new()));
    let sql = format!(
        "SELECT {} FROM {} WHERE {cond} ORDER BY {}",
        list.join(", "),
        t.name,
        t.order_by
    );
    progress.start(&format!("export {}", t.name), total);
    let streamed = stream(conn, &sql, &args, &mut out, progress);
    progress.finish();
    if let Err(e) = streamed {
        out.abort();
        return Err(e);
    }
    let (rows, columns) = (out.rows, out.cols.len());
    Ok((rows, columns, out.finish()?))
}

/// Export `table` to `out` in `format` (a CSV export writes its list
/// columns' child tables beside it, see the module docs).
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
    let cond = segments::condition(conn, filter)?;
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
    filter: Option<(String, Vec<Value>)>,
    format: Format,
    out: &Path,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let started = Instant::now();
    let t = sqlite_table(table)?;
    if matches!(t.name, "customer360_profiles" | "customer360_events")
        && crate::store::count(conn, t.name)? == 0
    {
        bail!(
            "{} is empty: run the unify step first (`c360 run --step unify`)",
            t.name
        );
    }
    let target = match format {
        Format::Csv => Target {
            csv: Some(out.to_path_buf()),
            parquet: None,
        },
        Format::Parquet => Target {
            csv: None,
            parquet: Some(out.to_path_buf()),
        },
    };
    let (rows, columns, files) = write_table(conn, t, filter, &target, progress)?;
    Ok(ExportReport {
        table: t.name.to_string(),
        rows,
        columns,
        path: out.to_path_buf(),
        seconds: started.elapsed().as_secs_f64(),
        files,
    })
}

/// The rows of a segments table.
fn write_segments(
    conn: &Connection,
    t: &'static Table,
    saved: &[Segment],
    target: &Target,
    progress: &dyn Progress,
) -> Result<(u64, usize, Vec<PathBuf>)> {
    let mut out = Output::new(t, target)?;
    progress.start(&format!("export {}", t.name), saved.len() as u64);
    let written = (|| -> Result<()> {
        for (k, s) in saved.iter().enumerate() {
            let (cond, args) = segments::condition(conn, &s.filter)
                .with_context(|| format!("segment {:?}", s.name))?;
            match t.name {
                "segments" => {
                    let n: i64 = conn.query_row(
                        &format!("SELECT count(*) FROM customer360_profiles WHERE {cond}"),
                        rusqlite::params_from_iter(args.iter()),
                        |r| r.get(0),
                    )?;
                    let vals = [
                        Value::Text(s.name.clone()),
                        Value::Text(s.filter.clone()),
                        Value::Text(s.description.clone()),
                        Value::Integer(n),
                    ];
                    let refs: Vec<ValueRef<'_>> = vals.iter().map(ValueRef::from).collect();
                    out.row(&refs)?;
                }
                _ => {
                    // The segment's name is parameter 1; the filter's are
                    // numbered after it.
                    let mut args = vec![Value::Text(s.name.clone())];
                    let cond = segments::condition_into(conn, &s.filter, &mut args)?;
                    stream(
                        conn,
                        &format!(
                            "SELECT ?1, customer360_id FROM customer360_profiles
                             WHERE {cond} ORDER BY customer360_id"
                        ),
                        &args,
                        &mut out,
                        progress,
                    )?;
                }
            }
            progress.update(k as u64 + 1);
            if progress.is_cancelled() {
                bail!("export cancelled");
            }
        }
        Ok(())
    })();
    progress.finish();
    if let Err(e) = written {
        out.abort();
        return Err(e);
    }
    let (rows, columns) = (out.rows, out.cols.len());
    Ok((rows, columns, out.finish()?))
}

/// Path of `p` relative to `base` with `/` separators (for the manifest
/// and duckdb.sql).
fn relative(p: &Path, base: &Path) -> String {
    p.strip_prefix(base)
        .unwrap_or(p)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Export every table of the dictionary, the saved segments' memberships
/// included, under `out_dir`:
///
/// - `parquet/<table>.parquet` (typed, list columns as lists);
/// - `csv/<table>.csv` and `csv/<table>__<column>.csv` for list columns;
/// - `duckdb.sql`: a view per table over its Parquet file, by relative
///   path (`duckdb -c ".read duckdb.sql"` run in `out_dir`);
/// - `schema.md` / `schema.json`: the data dictionary;
/// - `manifest.json` and `README.md`: the tables, their row counts and
///   files. The manifest is written last (an earlier one is removed
///   first): a directory without it holds an unfinished export.
///
/// `segments` are the saved segments (`segments::load(&ws.rules_dir())`).
pub fn export_all(
    conn: &Connection,
    segments: &[Segment],
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<ExportReport>> {
    if crate::store::count(conn, "customer360_profiles")? == 0 {
        bail!("customer360_profiles is empty: run the pipeline first (`c360 run --all`)");
    }
    let manifest_path = out_dir.join("manifest.json");
    for dir in [out_dir.join("csv"), out_dir.join("parquet")] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(&manifest_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", manifest_path.display()));
        }
        _ => {}
    }
    let mut reports = Vec::new();
    for t in dictionary::TABLES {
        let started = Instant::now();
        let parquet = out_dir.join("parquet").join(format!("{}.parquet", t.name));
        let target = Target {
            csv: Some(out_dir.join("csv").join(format!("{}.csv", t.name))),
            parquet: Some(parquet.clone()),
        };
        let (rows, columns, mut files) = match t.origin {
            Origin::Sqlite => write_table(conn, t, None, &target, progress)?,
            Origin::Segments => write_segments(conn, t, segments, &target, progress)?,
        };
        // The Parquet file first.
        files.retain(|f| *f != parquet);
        files.insert(0, parquet.clone());
        reports.push(ExportReport {
            table: t.name.to_string(),
            rows,
            columns,
            path: parquet,
            seconds: started.elapsed().as_secs_f64(),
            files,
        });
    }
    write_file(&out_dir.join("duckdb.sql"), &duckdb_sql(out_dir, &reports))?;
    write_file(&out_dir.join("schema.md"), &dictionary::markdown())?;
    write_file(
        &out_dir.join("schema.json"),
        &serde_json::to_string_pretty(&dictionary::json())?,
    )?;
    write_file(&out_dir.join("README.md"), &readme(out_dir, &reports))?;
    let tables: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.table,
                "rows": r.rows,
                "columns": r.columns,
                "parquet": relative(&r.files[0], out_dir),
                "csv": r.files[1..].iter().map(|f| relative(f, out_dir)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "exported_at": now_utc(),
        "schema": "schema.json",
        "duckdb": "duckdb.sql",
        "tables": tables,
    });
    write_file(&manifest_path, &serde_json::to_string_pretty(&manifest)?)?;
    Ok(reports)
}

fn duckdb_sql(out_dir: &Path, reports: &[ExportReport]) -> String {
    let mut sql = String::from(
        "-- c360 export: one view per table over its Parquet file (paths relative to this\n\
         -- directory). In it: duckdb -c \".read duckdb.sql\", or duckdb c360.duckdb < duckdb.sql\n\
         -- for a database file that keeps the views.\n",
    );
    for r in reports {
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet('{}');\n",
            r.table,
            relative(&r.files[0], out_dir).replace('\'', "''")
        ));
    }
    sql
}

fn readme(out_dir: &Path, reports: &[ExportReport]) -> String {
    let mut md = format!(
        "# c360 export\n\nExported at {}. Every table in two formats: `parquet/` (typed: Int64, \
         Float64, Boolean, UTC timestamps, lists as `List(String)`) and `csv/` (ISO 8601 UTC \
         times, `true`/`false` flags; a list column is its own file `<table>__<column>.csv` \
         with the table's key, the position and one value per row). What every column means \
         and its type: `schema.md` (`schema.json` for programs).\n\n\
         - DuckDB: `duckdb -c \".read duckdb.sql\"` in this directory creates a view per table \
         over its Parquet file (`duckdb c360.duckdb < duckdb.sql` keeps them in a database file).\n\
         - pandas / pyarrow / polars: read the Parquet files; from CSV, read id columns \
         (type `id` in `schema.md`) as text, e.g. `pd.read_csv(path, dtype={{\"record_id\": str}})`, \
         since a source's ids may be all digits.\n\n\
         | table | rows | columns | files |\n|---|---:|---:|---|\n",
        now_utc()
    );
    for r in reports {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.table,
            r.rows,
            r.columns,
            r.files
                .iter()
                .map(|f| format!("`{}`", relative(f, out_dir)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_the_same_for_both_formats() {
        assert_eq!(
            utc_ms("2024-03-05T14:22:05.123Z"),
            Some(iso_ms("2024-03-05T14:22:05Z").unwrap() + 123)
        );
        assert_eq!(
            utc_ms("2024-03-05T14:22:05.1Z").map(|m| m % 1000),
            Some(100)
        );
        assert_eq!(
            iso(utc_ms("2024-03-05T14:22:05.007Z").unwrap()),
            "2024-03-05T14:22:05.007Z"
        );
        assert_eq!(
            iso(utc_ms("2024-03-05T14:22:05Z").unwrap()),
            "2024-03-05T14:22:05.000Z"
        );
        assert_eq!(rfm_code("514"), "R5F1M4");
        assert_eq!(rfm_code("R5F1M4"), "R5F1M4");
        let mut s = String::new();
        real_text(3.0, &mut s);
        assert_eq!(s, "3.0");
        s.clear();
        real_text(-12.5, &mut s);
        assert_eq!(s, "-12.5");
        assert_eq!(items("a, b, ", ", "), ["a", "b"]);
        assert!(items("", ",").is_empty());
        assert_eq!(
            child_path(Path::new("/x/profiles.csv"), "crm_ids"),
            Path::new("/x/profiles__crm_ids.csv")
        );
        assert!(TABLES.contains(&"customer360_profiles") && TABLES.contains(&"rejects"));
        assert!(!TABLES.contains(&"segment_members"));
    }
}
