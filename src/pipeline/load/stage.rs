//! Step 2, land and stage (`c360 load`).
//!
//! Every input row lands in `raw_<source>` in its original text with batch id
//! and row number. Each row then either goes to the system's staging table
//! (typed, validated) or to `rejects` with its field, reason and original
//! text: rows read = staged + rejected, always (a CHECK constraint on
//! `load_batches` enforces it). A load is one transaction; loading content
//! already loaded for that source adds nothing.
//!
//! Reading and validating run on a worker thread; the calling thread only
//! writes to SQLite, so both cores are busy on a large load.

mod mapping;
mod restage;

use crate::pipeline::load::extract::{Input, RawRow, RawText, Record, RowSink};
use crate::pipeline::progress::Progress;
use crate::pipeline::schema::{Field, FieldType, System, staging_columns};
use crate::pipeline::timeparse::{format_utc, parse_timestamp_with};
use crate::store::{self, BulkInsert, ident};
use crate::workspace::{Source, Workspace};
use anyhow::{Context, Result, anyhow, bail};
pub use restage::{RestageReport, restage, restage_all};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Instant;

/// Reject reasons for values (row-level read problems use
/// [`crate::pipeline::load::extract::BadRow::code`]).
pub mod reason {
    pub const MISSING_VALUE: &str = "missing_value";
    pub const MISSING_IDENTIFIER: &str = "missing_identifier";
    pub const BAD_TIMESTAMP: &str = "bad_timestamp";
    pub const BAD_NUMBER: &str = "bad_number";
    pub const BAD_INTEGER: &str = "bad_integer";
    pub const BAD_JSON: &str = "bad_json";
    pub const BAD_TIMEZONE: &str = "bad_timezone";
}

/// What one load did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub source: String,
    pub location: String,
    /// The new batch, or the earlier batch that already holds this content.
    pub batch_id: i64,
    /// True when the content was already loaded and nothing was added.
    pub already_loaded: bool,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_staged: u64,
    pub rows_rejected: u64,
    pub seconds: f64,
    /// Set when batches of this source were staged with another mapping,
    /// format or time zone than c360.toml now gives: what to run about it.
    pub restage_hint: Option<String>,
    /// JSON sources: mapped paths no record had (the closest paths named).
    pub warnings: Vec<String>,
}

/// Why [`load_all`] did not load every source, and exactly what it did: the
/// sources that committed (each load is its own transaction, so they stay
/// loaded), the ones that failed (nothing of them was written) and, after a
/// cancel, the ones not tried. Its `Display` is the whole summary; callers
/// can `downcast_ref` it from the `anyhow::Error` to print a table.
#[derive(Debug)]
pub struct LoadAllError {
    pub loaded: Vec<LoadReport>,
    pub failed: Vec<(String, anyhow::Error)>,
    pub not_tried: Vec<String>,
}

impl std::fmt::Display for LoadAllError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.loaded.len() + self.failed.len() + self.not_tried.len();
        write!(
            f,
            "{} of {total} source(s) failed to load",
            self.failed.len()
        )?;
        for (name, e) in &self.failed {
            write!(f, "\n  {name}: {e:#}")?;
        }
        let committed: Vec<String> = self
            .loaded
            .iter()
            .map(|r| {
                if r.already_loaded {
                    format!("{} (already loaded as batch {})", r.source, r.batch_id)
                } else {
                    format!("{} (batch {})", r.source, r.batch_id)
                }
            })
            .collect();
        let not_committed: Vec<&str> = self
            .failed
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.not_tried.iter().map(String::as_str))
            .collect();
        write!(
            f,
            "\ncommitted: {}; not committed: {}",
            if committed.is_empty() {
                "none".to_string()
            } else {
                committed.join(", ")
            },
            not_committed.join(", ")
        )?;
        if !self.not_tried.is_empty() {
            write!(
                f,
                " (not tried after the cancel: {})",
                self.not_tried.join(", ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadAllError {}

/// Load every source of the workspace, in order, each in its own
/// transaction. A source that fails does not stop the others (a cancel
/// does); when any failed the result is a [`LoadAllError`] saying which
/// sources committed and which did not.
pub fn load_all(
    conn: &mut Connection,
    ws: &Workspace,
    progress: &dyn Progress,
) -> Result<Vec<LoadReport>> {
    if ws.sources.is_empty() {
        bail!(
            "{} defines no sources; add a [[sources]] table (see README)",
            ws.root.join(crate::workspace::CONFIG_FILE).display()
        );
    }
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    let mut not_tried = Vec::new();
    for s in &ws.sources {
        if progress.is_cancelled() && !failed.is_empty() {
            not_tried.push(s.name.clone());
            continue;
        }
        match load_source(conn, ws, s, progress) {
            Ok(r) => loaded.push(r),
            Err(e) => {
                progress.finish();
                failed.push((s.name.clone(), e));
            }
        }
    }
    if failed.is_empty() {
        return Ok(loaded);
    }
    Err(LoadAllError {
        loaded,
        failed,
        not_tried,
    }
    .into())
}

/// Load one source (one transaction).
pub fn load_source(
    conn: &mut Connection,
    ws: &Workspace,
    source: &Source,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    // One load at a time per workspace (and never during a step).
    let _run =
        crate::store::lock::lock_run(&ws.db_path(), &format!("load {}", source.name), progress)?;
    let started = Instant::now();
    // `fetch_location` may carry secrets (a REST URL's token); everything
    // stored or shown uses `location`, with them redacted.
    let fetch_location = ws.resolve_location(source);
    let location = ws.display_location(source);
    progress.start(&format!("load {}", source.name), 1000);
    let input = Input::open(source, &fetch_location)?;
    let hash = input.content_hash();
    let bytes = input.bytes();
    let staging_fp = source.staging_fingerprint();
    let restage_hint = restage_hint(conn, source, &staging_fp)?;
    if let Some(hint) = &restage_hint {
        progress.message(hint);
    }

    if let Some(b) = conn
        .query_row(
            "SELECT batch_id, rows_read, rows_staged, rows_rejected FROM load_batches
             WHERE source = ?1 AND content_hash = ?2",
            params![source.name, hash],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()?
    {
        progress.message(&format!(
            "{}: {} already loaded as batch {} — nothing added",
            source.name, location, b.0
        ));
        progress.finish();
        return Ok(LoadReport {
            source: source.name.clone(),
            location,
            batch_id: b.0,
            already_loaded: true,
            bytes,
            rows_read: b.1 as u64,
            rows_staged: b.2 as u64,
            rows_rejected: b.3 as u64,
            seconds: started.elapsed().as_secs_f64(),
            restage_hint,
            warnings: Vec::new(),
        });
    }

    let tx = conn.transaction()?;
    let now = crate::pipeline::timeparse::now_utc();
    tx.execute(
        "INSERT INTO load_batches (source, system, location, format, content_hash, bytes,
           rows_read, rows_staged, rows_rejected, seconds, status, started_at, staging_fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, 0, 0, 'loading', ?7, ?8)",
        params![
            source.name,
            source.system.as_str(),
            location,
            source.format.as_str(),
            hash,
            bytes as i64,
            now,
            staging_fp
        ],
    )?;
    let batch_id = tx.last_insert_rowid();
    let raw_table = source.raw_table();
    // The rowid is the row's key (batch_id << 32 | row_num): one b-tree, no
    // extra index, and still a direct lookup by batch and row.
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {t} (id INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL,
           row_num INTEGER NOT NULL, raw BLOB NOT NULL);",
        t = ident(&raw_table),
    ))?;

    // Reader + validator on a worker thread, writer here.
    let (sender, receiver) = mpsc::sync_channel::<Vec<Processed>>(4);
    let batch_size = ws.settings.batch_size;
    let (counts, read_result) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut sink = Validator::new(source, sender, batch_size, progress);
            let result = input.extract(source, &mut sink);
            let result = result.and_then(|()| sink.flush());
            result.map(|()| (sink.kept_header(), sink.warnings()))
        });
        let written = write_rows(&tx, source, batch_id, &raw_table, receiver, progress);
        let read = reader.join().unwrap_or_else(|payload| {
            Err(anyhow!(
                "source {:?}: reading {} failed: the reader thread panicked ({}); the load was rolled back",
                source.name,
                location,
                crate::pipeline::load::extract::panic_message(payload.as_ref())
            ))
        });
        (written, read)
    });
    // Any early return below drops `tx`, which rolls the load back.
    if progress.is_cancelled() {
        bail!("load of {} cancelled; nothing was written", source.name);
    }
    // A writer error (SQLite) comes first: the reader then only saw the
    // channel close. Otherwise a reader error (missing column, unreadable
    // file) explains why the writer saw the input end early.
    let (staged, rejected) = counts?;
    let (header, warnings) = read_result?;
    for w in &warnings {
        progress.message(w);
    }
    let seconds = started.elapsed().as_secs_f64();
    tx.execute(
        "UPDATE load_batches SET rows_read = ?1, rows_staged = ?2, rows_rejected = ?3,
           seconds = ?4, status = 'loaded', finished_at = ?5, header = ?6 WHERE batch_id = ?7",
        params![
            (staged + rejected) as i64,
            staged as i64,
            rejected as i64,
            seconds,
            crate::pipeline::timeparse::now_utc(),
            header,
            batch_id
        ],
    )?;
    tx.execute(
        "INSERT INTO sources (name, system, location, format, raw_table, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(name) DO UPDATE SET system = excluded.system, location = excluded.location,
           format = excluded.format, raw_table = excluded.raw_table, updated_at = excluded.updated_at",
        params![
            source.name,
            source.system.as_str(),
            source.location,
            source.format.as_str(),
            raw_table,
            crate::pipeline::timeparse::now_utc()
        ],
    )?;
    crate::store::versions::bump(&tx, crate::store::versions::STAGED)?;
    tx.commit()
        .with_context(|| format!("committing the load of {}", source.name))?;
    progress.finish();
    Ok(LoadReport {
        source: source.name.clone(),
        location,
        batch_id,
        already_loaded: false,
        bytes,
        rows_read: staged + rejected,
        rows_staged: staged,
        rows_rejected: rejected,
        seconds,
        restage_hint,
        warnings,
    })
}

/// When batches of `source` were staged with settings other than the
/// current ones (`fingerprint`), a sentence saying so and what to run.
/// Batches loaded before fingerprints were kept say nothing.
fn restage_hint(conn: &Connection, source: &Source, fingerprint: &str) -> Result<Option<String>> {
    let (n, rows): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(rows_read), 0) FROM load_batches
         WHERE source = ?1 AND staging_fingerprint IS NOT NULL AND staging_fingerprint != ?2",
        params![source.name, fingerprint],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n > 0).then(|| {
        format!(
            "source {}: its mapping, format or time zone in c360.toml changed since {n} batch(es) ({rows} rows) were staged; `c360 load --restage --source {}` stages them again from the raw rows kept (steward decisions are kept)",
            source.name, source.name
        )
    }))
}

/// The rowid of a raw or staged row: batch id in the high 32 bits, row
/// number in the low 32 (a file of more than 4 billion rows is refused).
pub fn row_key(batch_id: i64, row_num: u64) -> i64 {
    (batch_id << 32) | (row_num as i64 & 0xffff_ffff)
}

/// A row after validation.
struct Processed {
    row_num: u64,
    raw: RawText,
    outcome: Outcome,
}

enum Outcome {
    /// Values for the staging columns after (source, batch_id, row_num).
    Staged(Vec<Sql>),
    Rejected {
        field: Option<String>,
        reason: &'static str,
        detail: String,
    },
}

fn write_rows(
    tx: &Connection,
    source: &Source,
    batch_id: i64,
    raw_table: &str,
    receiver: mpsc::Receiver<Vec<Processed>>,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let mut writer = RowWriter::new(tx, source, batch_id, Some(raw_table));
    for chunk in receiver {
        if progress.is_cancelled() {
            // Dropping the receiver stops the reader; the caller rolls back.
            return Ok((writer.staged, writer.rejected));
        }
        for row in chunk {
            writer.push(row)?;
        }
    }
    writer.finish()
}

/// Writes validated rows of one batch: each to the staging table or to
/// `rejects`, and (on a load, not a restage) its raw text to `raw_<source>`.
struct RowWriter<'c> {
    batch_id: i64,
    source_name: Sql,
    raw_insert: Option<BulkInsert<'c>>,
    stg_insert: BulkInsert<'c>,
    rej_insert: BulkInsert<'c>,
    staged: u64,
    rejected: u64,
}

impl<'c> RowWriter<'c> {
    fn new(tx: &'c Connection, source: &Source, batch_id: i64, raw_table: Option<&str>) -> Self {
        let raw_cols = [
            "id".to_string(),
            "batch_id".into(),
            "row_num".into(),
            "raw".into(),
        ];
        let mut stg_cols = vec!["rowid".to_string()];
        stg_cols.extend(staging_columns(source.system));
        let rej_cols: Vec<String> = [
            "batch_id", "source", "row_num", "field", "reason", "detail", "raw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        RowWriter {
            batch_id,
            source_name: Sql::Text(source.name.clone()),
            raw_insert: raw_table.map(|t| BulkInsert::new(tx, t, &raw_cols)),
            stg_insert: BulkInsert::new(tx, source.system.staging_table(), &stg_cols),
            rej_insert: BulkInsert::new(tx, "rejects", &rej_cols),
            staged: 0,
            rejected: 0,
        }
    }

    fn push(&mut self, row: Processed) -> Result<()> {
        let batch_id = self.batch_id;
        let raw = match row.raw {
            RawText::Text(t) => Sql::Text(t),
            RawText::Bytes(b) => Sql::Blob(b),
        };
        let row_num = Sql::Integer(row.row_num as i64);
        let key = Sql::Integer(row_key(batch_id, row.row_num));
        if let Some(raw_insert) = &mut self.raw_insert {
            raw_insert.push([
                key.clone(),
                Sql::Integer(batch_id),
                row_num.clone(),
                raw.clone(),
            ])?;
        }
        match row.outcome {
            Outcome::Staged(values) => {
                self.stg_insert.push(
                    [
                        key,
                        self.source_name.clone(),
                        Sql::Integer(batch_id),
                        row_num,
                    ]
                    .into_iter()
                    .chain(values),
                )?;
                self.staged += 1;
            }
            Outcome::Rejected {
                field,
                reason,
                detail,
            } => {
                self.rej_insert.push([
                    Sql::Integer(batch_id),
                    self.source_name.clone(),
                    row_num,
                    field.map_or(Sql::Null, Sql::Text),
                    Sql::Text(reason.to_string()),
                    Sql::Text(detail),
                    raw,
                ])?;
                self.rejected += 1;
            }
        }
        Ok(())
    }

    /// Flush what is buffered; (staged, rejected).
    fn finish(&mut self) -> Result<(u64, u64)> {
        if let Some(raw_insert) = &mut self.raw_insert {
            raw_insert.finish()?;
        }
        self.stg_insert.finish()?;
        self.rej_insert.finish()?;
        Ok((self.staged, self.rejected))
    }
}

/// One row as it is checked: its typed values, why it would be rejected,
/// which fields had a value, the JSON keys used and the bad values flagged
/// (`on_error = "flag"`).
#[derive(Default)]
struct Checked<'p> {
    values: Vec<Sql>,
    problems: Vec<(String, &'static str, String)>,
    present: HashSet<&'p str>,
    used_keys: HashSet<&'p str>,
    flagged: Vec<(&'static str, String)>,
    /// The currency an amount named (`$12.00`), for a row without one.
    currency: Option<String>,
    /// The row's `timezone`, when it names no zone, and whether a naive
    /// time of the row needed it.
    bad_zone: Option<String>,
    zone_needed: bool,
}

/// Reads rows, validates them against the source's mapping and sends them to
/// the writer in batches.
struct Validator<'a> {
    source: &'a Source,
    sender: mpsc::SyncSender<Vec<Processed>>,
    batch: Vec<Processed>,
    batch_size: usize,
    progress: &'a dyn Progress,
    plan: Vec<mapping::FieldPlan>,
    columns: Vec<String>,
    /// Tabular: columns no core field uses (kept in `extra`).
    extra_columns: Vec<usize>,
    /// The CSV header row's bytes, as read.
    header_raw: Option<Vec<u8>>,
    /// `order_lines = true`: an order's fields from its first row.
    fill: Option<mapping::FillDown>,
    /// JSON sources: mapped paths not seen yet.
    json_check: Option<mapping::JsonCheck>,
}

impl<'a> Validator<'a> {
    fn new(
        source: &'a Source,
        sender: mpsc::SyncSender<Vec<Processed>>,
        batch_size: usize,
        progress: &'a dyn Progress,
    ) -> Self {
        // JSON plans are known up front; tabular ones wait for the header.
        let plan = mapping::json_plan(source);
        let json_check = mapping::JsonCheck::new(source, &plan);
        Validator {
            source,
            sender,
            batch: Vec::with_capacity(batch_size),
            batch_size,
            progress,
            plan,
            columns: Vec::new(),
            extra_columns: Vec::new(),
            header_raw: None,
            fill: None,
            json_check,
        }
    }

    /// Mapped JSON paths no record had.
    fn warnings(&self) -> Vec<String> {
        self.json_check
            .as_ref()
            .map_or_else(Vec::new, |c| c.warnings(&self.source.name))
    }

    /// The fill-down of an order's fields, for a caller that reads the
    /// rows itself (restage).
    fn take_fill(&mut self) -> Option<mapping::FillDown> {
        self.fill.take()
    }

    /// What a restage needs of the header, kept with the batch: the CSV
    /// header row, or a JSON array of Parquet column names.
    fn kept_header(&self) -> Option<String> {
        match self.source.format {
            crate::workspace::Format::Csv => self
                .header_raw
                .as_ref()
                .map(|h| String::from_utf8_lossy(h).into_owned()),
            crate::workspace::Format::Parquet => serde_json::to_string(&self.columns).ok(),
            _ => None,
        }
    }

    /// A read row's outcome: rejected when it could not be read, else
    /// validated against the mapping.
    fn outcome(&self, record: &Record, row_num: u64) -> Outcome {
        match record {
            Record::Bad { kind, detail } => Outcome::Rejected {
                field: None,
                reason: kind.code(),
                detail: detail.clone(),
            },
            record => self.validate(record, row_num),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        // The writer hung up: it failed or was cancelled; it reports why.
        self.sender
            .send(batch)
            .map_err(|_| anyhow!("load of {} stopped", self.source.name))
    }

    fn validate(&self, record: &Record, row_num: u64) -> Outcome {
        let mut row = Checked {
            values: Vec::with_capacity(self.plan.len() + 4),
            ..Checked::default()
        };
        let tz = self.row_zone(record, row_num, &mut row);
        let mut currency_at = None;
        for plan in &self.plan {
            if plan.field.name == "currency" {
                currency_at = Some(row.values.len());
            }
            let value = mapping::value_of(plan, record, row_num).map(|(v, keys)| {
                row.present.insert(plan.field.name);
                row.used_keys.extend(keys);
                v
            });
            self.typed(plan.field, value, tz, &mut row);
        }
        self.settle_zone(&mut row);
        // `$12.00` in a source without a currency column: USD.
        if let (Some(at), Some(code)) = (currency_at, row.currency.take())
            && row.values[at] == Sql::Null
        {
            row.values[at] = Sql::Text(code);
        }
        for group in self.source.system.required_any() {
            if !group.iter().any(|f| row.present.contains(f)) {
                row.problems.push((
                    group.join("|"),
                    reason::MISSING_IDENTIFIER,
                    format!("none of {} has a value", group.join(", ")),
                ));
            }
        }
        if let Some((field, reason, _)) = row.problems.first() {
            let detail = row
                .problems
                .iter()
                .map(|p| p.2.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Outcome::Rejected {
                field: Some(field.clone()),
                reason,
                detail,
            };
        }
        let extra = self.extra(record, &row.used_keys, &row.flagged);
        row.values.push(extra);
        Outcome::Staged(row.values)
    }

    /// The zone of the row's naive times: its own `timezone` value (IANA,
    /// Windows or Rails names, offsets), else the source's. A value that
    /// names no zone is a bad value of the `timezone` field.
    fn row_zone(&self, record: &Record, row_num: u64, row: &mut Checked<'_>) -> chrono_tz::Tz {
        let Some(plan) = self.plan.iter().find(|p| p.field.name == "timezone") else {
            return self.source.timezone;
        };
        let Some((v, _)) = mapping::value_of(plan, record, row_num) else {
            return self.source.timezone;
        };
        let text = v.into_text();
        match crate::pipeline::zones::zone(&text) {
            Some(tz) => tz,
            None => {
                // Wrong only if a naive time of the row needs it: decided
                // once the row's times are read ([`Self::settle_zone`]).
                row.bad_zone = Some(text);
                self.source.timezone
            }
        }
    }

    /// A `timezone` that names no zone: the row is rejected when one of its
    /// times was naive (it would be read in the wrong zone); when every time
    /// carried its offset the value is only flagged.
    fn settle_zone(&self, row: &mut Checked<'_>) {
        let Some(text) = row.bad_zone.take() else {
            return;
        };
        let field = self
            .source
            .system
            .field("timezone")
            .expect("every system has timezone");
        if row.zone_needed {
            self.bad(
                field,
                reason::BAD_TIMEZONE,
                format!(
                    "timezone: {text:?} is not a time zone (IANA, Windows or Rails name, or an offset), and the row's times need one"
                ),
                &text,
                row,
            );
        } else {
            row.flagged
                .push((field.name, format!("{}: {text}", reason::BAD_TIMEZONE)));
        }
    }

    /// A bad value: the row's rejection reason, or (`on_error = "flag"`)
    /// kept empty and listed in the row's `extra._invalid`.
    fn bad(
        &self,
        field: &'static Field,
        reason: &'static str,
        detail: String,
        text: &str,
        row: &mut Checked<'_>,
    ) {
        if self
            .source
            .fields
            .get(field.name)
            .is_some_and(|o| o.flag_errors)
        {
            row.flagged.push((field.name, format!("{reason}: {text}")));
        } else {
            row.problems.push((field.name.into(), reason, detail));
        }
    }

    /// One field's value, typed, appended to the row (a timestamp is
    /// followed by its original text).
    fn typed(
        &self,
        field: &'static Field,
        value: Option<FieldValue>,
        tz: chrono_tz::Tz,
        row: &mut Checked<'_>,
    ) {
        let Some(v) = value else {
            if field.required {
                row.problems.push((
                    field.name.into(),
                    reason::MISSING_VALUE,
                    format!("required field {} is empty", field.name),
                ));
            }
            row.values.push(Sql::Null);
            if field.ty == FieldType::Timestamp {
                row.values.push(Sql::Null);
            }
            return;
        };
        let formats = self
            .source
            .fields
            .get(field.name)
            .map_or(&[][..], |o| &o.formats[..]);
        let (parsed, problem) = match field.ty {
            FieldType::Text => (Sql::Text(v.into_text()), None),
            FieldType::Timestamp => {
                let text = v.into_text();
                let parsed = parse_timestamp_with(&text, tz, self.source.date_order, formats);
                if row.bad_zone.is_some() && parsed.is_some() {
                    // Naive: read in another zone, the instant moves.
                    let far = chrono_tz::Etc::GMTMinus14;
                    row.zone_needed |=
                        parse_timestamp_with(&text, far, self.source.date_order, formats) != parsed;
                }
                let parsed = parsed.map(|ts| Sql::Text(format_utc(&ts)));
                if parsed.is_none() {
                    self.bad(
                        field,
                        reason::BAD_TIMESTAMP,
                        format!("{}: {text:?} is not a timestamp", field.name),
                        &text,
                        row,
                    );
                }
                row.values.push(parsed.unwrap_or(Sql::Null));
                row.values.push(Sql::Text(text));
                return;
            }
            FieldType::Number => {
                let text = v.into_text();
                match parse_number_and_currency(&text) {
                    Some((n, currency)) => {
                        if row.currency.is_none() {
                            row.currency = currency;
                        }
                        (Sql::Real(n), None)
                    }
                    None => (
                        Sql::Null,
                        Some((reason::BAD_NUMBER, "is not a number", text)),
                    ),
                }
            }
            FieldType::Integer => {
                let text = v.into_text();
                match parse_integer(&text) {
                    Some(n) => (Sql::Integer(n), None),
                    None => (
                        Sql::Null,
                        Some((reason::BAD_INTEGER, "is not a whole number", text)),
                    ),
                }
            }
            FieldType::JsonObject => match v.into_json_object() {
                Ok(json) => (Sql::Text(json), None),
                Err(detail) => (Sql::Null, Some((reason::BAD_JSON, "", detail))),
            },
        };
        if let Some((reason, what, text)) = problem {
            let detail = if what.is_empty() {
                format!("{}: {text}", field.name)
            } else {
                format!("{}: {text:?} {what}", field.name)
            };
            self.bad(field, reason, detail, &text, row);
        }
        row.values.push(parsed);
    }

    /// Unmapped columns, or the top-level keys of a JSON record that gave no
    /// core field its value, as a JSON object (NULL when there are none).
    fn extra(&self, record: &Record, used_keys: &HashSet<&str>, flagged: &[(&str, String)]) -> Sql {
        let mut extra = serde_json::Map::new();
        if !flagged.is_empty() {
            let invalid: serde_json::Map<String, Value> = flagged
                .iter()
                .map(|(f, v)| (f.to_string(), Value::String(v.clone())))
                .collect();
            extra.insert("_invalid".into(), Value::Object(invalid));
        }
        match record {
            Record::Row(values) => {
                for &i in &self.extra_columns {
                    if let Some(Some(v)) = values.get(i)
                        && !v.trim().is_empty()
                    {
                        extra.insert(self.columns[i].clone(), Value::String(v.clone()));
                    }
                }
            }
            Record::Json(map) => {
                for (k, v) in map {
                    if !used_keys.contains(k.as_str()) && !v.is_null() {
                        extra.insert(k.clone(), v.clone());
                    }
                }
            }
            Record::Bad { .. } => {}
        }
        if extra.is_empty() {
            Sql::Null
        } else {
            Sql::Text(Value::Object(extra).to_string())
        }
    }
}

impl RowSink for Validator<'_> {
    fn header(&mut self, raw: &[u8]) {
        self.header_raw = Some(raw.to_vec());
    }

    fn columns(&mut self, columns: &[String]) -> Result<()> {
        let (plan, used) = mapping::tabular_plan(self.source, columns)?;
        if self.source.order_lines {
            self.fill = mapping::FillDown::new(&plan, columns.len());
            if self.fill.is_none() {
                bail!(
                    "source {:?}: `order_lines = true` needs order_id mapped to one column",
                    self.source.name
                );
            }
        }
        self.plan = plan;
        self.columns = columns.to_vec();
        self.extra_columns = (0..columns.len()).filter(|&i| !used[i]).collect();
        Ok(())
    }

    fn row(&mut self, mut row: RawRow) -> Result<()> {
        if let Some(fill) = self.fill.as_mut() {
            fill.apply(&mut row.record);
        }
        if let Some(check) = self.json_check.as_mut() {
            check.see(&self.plan, &row.record, row.row_num);
        }
        if row.row_num > u32::MAX as u64 {
            bail!(
                "source {:?}: more than {} rows in one file; split it",
                self.source.name,
                u32::MAX
            );
        }
        let outcome = self.outcome(&row.record, row.row_num);
        self.batch.push(Processed {
            row_num: row.row_num,
            raw: row.raw,
            outcome,
        });
        if self.batch.len() >= self.batch_size {
            if self.progress.is_cancelled() {
                bail!("load of {} cancelled", self.source.name);
            }
            self.flush()?;
        }
        Ok(())
    }

    fn progress(&mut self, done: u64, total: u64) {
        // Report in per-mille of the input so units do not matter.
        if let Some(per_mille) = done.saturating_mul(1000).checked_div(total) {
            self.progress.update(per_mille);
        }
    }
}

/// A field's value as read: text, or JSON for nested values.
pub(crate) enum FieldValue {
    Text(String),
    Json(Value),
}

impl FieldValue {
    fn from_json(v: &Value) -> Option<FieldValue> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(FieldValue::Text(s.clone())),
            Value::Number(n) => Some(FieldValue::Text(n.to_string())),
            Value::Bool(b) => Some(FieldValue::Text(b.to_string())),
            other => Some(FieldValue::Json(other.clone())),
        }
    }

    fn is_blank(&self) -> bool {
        match self {
            FieldValue::Text(s) => s.trim().is_empty(),
            FieldValue::Json(_) => false,
        }
    }

    fn into_text(self) -> String {
        match self {
            FieldValue::Text(s) => s,
            FieldValue::Json(v) => v.to_string(),
        }
    }

    fn into_json_object(self) -> Result<String, String> {
        let value = match self {
            FieldValue::Json(v) => v,
            FieldValue::Text(s) => match serde_json::from_str::<Value>(&s) {
                Ok(v) => v,
                Err(e) => return Err(format!("{s:?} is not JSON ({e})")),
            },
        };
        match value {
            Value::Object(_) => Ok(value.to_string()),
            other => Err(format!("expected a JSON object, found {other}")),
        }
    }
}

/// Decimal numbers: `12`, `-3.5`, `1e3`, and amounts as exports write
/// them (`1,234.50`, `$1,234.50`, `1.234,50 €`, `(12.00)`: see
/// [`crate::pipeline::money`]).
pub fn parse_number(text: &str) -> Option<f64> {
    parse_number_and_currency(text).map(|(n, _)| n)
}

/// [`parse_number`] and the currency the text names, if any.
pub fn parse_number_and_currency(text: &str) -> Option<(f64, Option<String>)> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(n) => n.is_finite().then_some((n, None)),
        Err(_) => crate::pipeline::money::parse_money(t),
    }
}

/// Whole numbers; `3.0` counts, `3.5` does not.
pub fn parse_integer(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let f = parse_number(t)?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

/// Row counts of the tables a load writes, for summaries and tests.
pub fn staged_count(conn: &Connection, system: System) -> Result<u64> {
    store::count(conn, system.staging_table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("12.5"), Some(12.5));
        assert_eq!(parse_number(" -3 "), Some(-3.0));
        assert_eq!(parse_number("1,234.50"), Some(1234.5));
        assert_eq!(parse_number("12,5"), Some(12.5));
        assert_eq!(
            parse_number_and_currency("$1,234.50"),
            Some((1234.5, Some("USD".into())))
        );
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_integer("3"), Some(3));
        assert_eq!(parse_integer("3.0"), Some(3));
        assert_eq!(parse_integer("3.5"), None);
        assert_eq!(parse_integer("x"), None);
    }
}
