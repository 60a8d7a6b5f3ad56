//! `c360 load --restage`: stage the rows already landed again, from the raw
//! text kept in `raw_<source>`, with the source's current mapping, format,
//! CSV options, time zone and date order.
//!
//! Every row keeps its batch and row number (its key), so steward decisions,
//! which name records by source and record id, stay where they are. Each
//! batch's staged rows and rejects are replaced in the same transaction; rows
//! read = staged + rejected still holds per batch. Standardise then re-reads
//! every batch on its next run (its incremental state is reset), and the
//! steps after it follow from the versions the restage bumps.

use super::{Outcome, Processed, RowWriter, Validator, row_key};
use crate::pipeline::load::extract::{Input, RawText, Reparser, RowSink};
use crate::pipeline::progress::Progress;
use crate::store::ident;
use crate::workspace::{Format, Source, Workspace};
use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params};
use std::sync::mpsc;
use std::time::Instant;

/// What restaging one source did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestageReport {
    pub source: String,
    pub batches: u64,
    pub rows_read: u64,
    pub staged_before: u64,
    pub rejected_before: u64,
    pub rows_staged: u64,
    pub rows_rejected: u64,
    pub seconds: f64,
}

/// Restage every source (or only `only`), each in its own transaction.
pub fn restage_all(
    conn: &mut Connection,
    ws: &Workspace,
    only: Option<&str>,
    progress: &dyn Progress,
) -> Result<Vec<RestageReport>> {
    let mut reports = Vec::new();
    for source in ws
        .sources
        .iter()
        .filter(|s| only.is_none_or(|n| n == s.name))
    {
        reports.push(restage(conn, ws, source, progress)?);
    }
    Ok(reports)
}

/// One loaded batch, as the restage needs it.
struct Batch {
    id: i64,
    content_hash: String,
    header: Option<String>,
    staged: u64,
    rejected: u64,
}

/// Restage every batch of one source (one transaction: all or nothing).
pub fn restage(
    conn: &mut Connection,
    ws: &Workspace,
    source: &Source,
    progress: &dyn Progress,
) -> Result<RestageReport> {
    let _run = crate::store::lock::lock_run(
        &ws.db_path(),
        &format!("load --restage {}", source.name),
        progress,
    )?;
    let started = Instant::now();
    let tx = conn.transaction()?;
    let batches = loaded_batches(&tx, &source.name)?;
    let mut report = RestageReport {
        source: source.name.clone(),
        batches: batches.len() as u64,
        rows_read: 0,
        staged_before: batches.iter().map(|b| b.staged).sum(),
        rejected_before: batches.iter().map(|b| b.rejected).sum(),
        rows_staged: 0,
        rows_rejected: 0,
        seconds: 0.0,
    };
    if batches.is_empty() {
        progress.message(&format!(
            "{}: nothing loaded yet, nothing to restage",
            source.name
        ));
        return Ok(report);
    }
    let total = report.staged_before + report.rejected_before;
    progress.start(&format!("restage {}", source.name), total);
    let fingerprint = source.staging_fingerprint();
    // Every batch of the source is restaged: its rejects go at once (by the
    // source index), each batch's staged rows by their key range.
    tx.execute("DELETE FROM rejects WHERE source = ?1", [&source.name])?;
    let mut done = 0u64;
    for batch in &batches {
        let header = match &batch.header {
            Some(h) => Some(h.clone()),
            None => recover_header(ws, source, batch)?,
        };
        let (staged, rejected) = restage_batch(
            &tx,
            ws,
            source,
            batch,
            header.as_deref(),
            &mut done,
            progress,
        )
        .with_context(|| {
            format!(
                "restaging batch {} of source {:?}; nothing was changed",
                batch.id, source.name
            )
        })?;
        tx.execute(
            "UPDATE load_batches SET rows_read = ?1, rows_staged = ?2, rows_rejected = ?3,
               header = ?4, staging_fingerprint = ?5, format = ?6, restaged_at = ?7
             WHERE batch_id = ?8",
            params![
                (staged + rejected) as i64,
                staged as i64,
                rejected as i64,
                header,
                fingerprint,
                source.format.as_str(),
                crate::pipeline::timeparse::now_utc(),
                batch.id
            ],
        )?;
        report.rows_staged += staged;
        report.rows_rejected += rejected;
    }
    report.rows_read = report.rows_staged + report.rows_rejected;
    // Standardise's incremental state covers batches by number; every one
    // of them has new staged rows now, so its next run reads them all.
    tx.execute("DELETE FROM standardise_state", [])?;
    crate::store::versions::bump(&tx, crate::store::versions::STAGED)?;
    tx.commit()
        .with_context(|| format!("committing the restage of {}", source.name))?;
    progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn loaded_batches(tx: &Connection, source: &str) -> Result<Vec<Batch>> {
    let mut stmt = tx.prepare(
        "SELECT batch_id, content_hash, header, rows_staged, rows_rejected FROM load_batches
         WHERE source = ?1 ORDER BY batch_id",
    )?;
    let rows = stmt.query_map([source], |r| {
        Ok(Batch {
            id: r.get(0)?,
            content_hash: r.get(1)?,
            header: r.get(2)?,
            staged: r.get::<_, i64>(3)? as u64,
            rejected: r.get::<_, i64>(4)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Rows read from the raw table per round.
const CHUNK: usize = 20_000;

/// Replace one batch's staged rows and rejects with its raw rows staged
/// again; (staged, rejected).
fn restage_batch(
    tx: &Connection,
    ws: &Workspace,
    source: &Source,
    batch: &Batch,
    header: Option<&str>,
    done: &mut u64,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let reparser = Reparser::new(source, header.map(str::as_bytes))?;
    // The validator's channel is not used: rows are validated here in
    // parallel and written by this thread.
    let (sender, _receiver) = mpsc::sync_channel(1);
    let mut validator = Validator::new(source, sender, ws.settings.batch_size, progress);
    if let Some(columns) = reparser.columns() {
        validator.columns(columns)?;
    }
    // An order's fields from its first row: in row order, across chunks.
    let mut fill = validator.take_fill();
    let (lo, hi) = (row_key(batch.id, 0), row_key(batch.id + 1, 0));
    tx.execute(
        &format!(
            "DELETE FROM {} WHERE rowid >= ?1 AND rowid < ?2",
            source.system.staging_table()
        ),
        params![lo, hi],
    )?;
    let mut writer = RowWriter::new(tx, source, batch.id, None);
    let mut read = tx.prepare(&format!(
        "SELECT id, row_num, raw FROM {} WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT {CHUNK}",
        ident(&source.raw_table())
    ))?;
    let mut from = lo;
    loop {
        let rows: Vec<(i64, u64, RawText)> = read
            .query_map(params![from, hi], |r| {
                let raw = match r.get::<_, Sql>(2)? {
                    Sql::Blob(b) => RawText::Bytes(b),
                    Sql::Text(t) => RawText::Text(t),
                    other => RawText::Text(format!("{other:?}")),
                };
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, raw))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let Some(&(last, _, _)) = rows.last() else {
            break;
        };
        if progress.is_cancelled() {
            bail!("restage of {} cancelled", source.name);
        }
        let mut records: Vec<(u64, RawText, _)> = rows
            .into_par_iter()
            .map(|(_, row_num, raw)| {
                let record = reparser.record(&raw);
                (row_num, raw, record)
            })
            .collect();
        if let Some(fill) = fill.as_mut() {
            for (_, _, record) in records.iter_mut() {
                fill.apply(record);
            }
        }
        let processed: Vec<Processed> = records
            .into_par_iter()
            .map(|(row_num, raw, record)| {
                let outcome: Outcome = validator.outcome(&record, row_num);
                Processed {
                    row_num,
                    raw,
                    outcome,
                }
            })
            .collect();
        *done += processed.len() as u64;
        for row in processed {
            writer.push(row)?;
        }
        progress.update(*done);
        from = last + 1;
    }
    writer.finish()
}

/// The header of a batch loaded before headers were kept, read from the
/// source's file when it still holds exactly the batch's content. None when
/// the format needs no header.
fn recover_header(ws: &Workspace, source: &Source, batch: &Batch) -> Result<Option<String>> {
    let needs_header = match source.format {
        Format::Csv => source.csv.has_header,
        Format::Parquet => true,
        _ => false,
    };
    if !needs_header {
        return Ok(None);
    }
    let unrecoverable = || {
        anyhow!(
            "source {:?}: batch {} was loaded before c360 kept header rows, and {} no longer holds its content, so its rows cannot be read again; nothing was changed",
            source.name,
            batch.id,
            ws.display_location(source)
        )
    };
    let input = Input::open(source, &ws.resolve_location(source)).map_err(|_| unrecoverable())?;
    if input.content_hash() != batch.content_hash {
        return Err(unrecoverable());
    }
    let mut sink = HeaderOnly::default();
    // The sink stops the read at the header; that error is expected.
    let _ = input.extract(source, &mut sink);
    match (source.format, sink.header, sink.columns) {
        (Format::Csv, Some(raw), _) => Ok(Some(String::from_utf8_lossy(&raw).into_owned())),
        (Format::Parquet, _, Some(columns)) => Ok(Some(serde_json::to_string(&columns)?)),
        _ => Err(unrecoverable()),
    }
}

/// A sink that keeps the header and stops the read there.
#[derive(Default)]
struct HeaderOnly {
    header: Option<Vec<u8>>,
    columns: Option<Vec<String>>,
}

impl RowSink for HeaderOnly {
    fn header(&mut self, raw: &[u8]) {
        self.header = Some(raw.to_vec());
    }

    fn columns(&mut self, columns: &[String]) -> Result<()> {
        self.columns = Some(columns.to_vec());
        bail!("header read")
    }

    fn row(&mut self, _row: crate::pipeline::load::extract::RawRow) -> Result<()> {
        bail!("header read")
    }
}
