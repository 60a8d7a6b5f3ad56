//! Step 1, extract: read a source into rows, keeping each row's original text.
//!
//! Readers push rows into a [`RowSink`] instead of returning an iterator so a
//! reader can borrow its memory-mapped file. A row that cannot be read (a
//! ragged CSV row, invalid UTF-8, a malformed JSON line) is still pushed, as
//! [`Record::Bad`], so the stage step can reject it with its reason: nothing is
//! dropped. A file that cannot be read at all (unreadable, a JSON array that
//! does not parse) is an error and nothing of it is written.
//!
//! Parquet goes through polars. CSV and NDJSON use streaming row readers
//! (`csv`, `serde_json`) because polars' readers stop or coerce at the first
//! bad row, and we must reject that one row with its reason and keep the rest
//! (see README, "Deviations").

use crate::workspace::{Format, Source};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::path::Path;

/// Why a row could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRow {
    /// A CSV row with more or fewer fields than the header.
    Ragged,
    /// Bytes that are not UTF-8.
    InvalidUtf8,
    /// A JSON line (or array element) that does not parse.
    MalformedJson,
    /// A JSON value that is not an object.
    NotAnObject,
    /// A CSV row the CSV reader could not read.
    MalformedCsv,
}

impl BadRow {
    pub fn code(self) -> &'static str {
        match self {
            BadRow::Ragged => "ragged_row",
            BadRow::InvalidUtf8 => "invalid_utf8",
            BadRow::MalformedJson => "malformed_json",
            BadRow::NotAnObject => "not_an_object",
            BadRow::MalformedCsv => "malformed_csv",
        }
    }
}

/// A row's content as read.
#[derive(Debug, Clone)]
pub enum Record {
    /// Values aligned with the columns given to [`RowSink::columns`]; `None`
    /// is a null (Parquet) or a cell that is absent.
    Row(Vec<Option<String>>),
    /// A JSON object (JSON array element, NDJSON line, REST record).
    Json(serde_json::Map<String, Value>),
    /// A row that could not be read, with a human-readable detail.
    Bad { kind: BadRow, detail: String },
}

/// The original text of a row: text when it is UTF-8, else the exact bytes.
#[derive(Debug, Clone, PartialEq)]
pub enum RawText {
    Text(String),
    Bytes(Vec<u8>),
}

impl RawText {
    pub fn from_bytes(bytes: &[u8]) -> RawText {
        match std::str::from_utf8(bytes) {
            Ok(s) => RawText::Text(s.to_string()),
            Err(_) => RawText::Bytes(bytes.to_vec()),
        }
    }
}

/// One input row.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// 1-based data row number within the file (header not counted).
    pub row_num: u64,
    pub raw: RawText,
    pub record: Record,
}

/// Where extracted rows go.
pub trait RowSink {
    /// Called once, before any row, by tabular readers (CSV, Parquet) with the
    /// file's column names. Returning an error aborts the extract.
    fn columns(&mut self, columns: &[String]) -> Result<()>;
    /// One row. Returning an error aborts the extract.
    fn row(&mut self, row: RawRow) -> Result<()>;
    /// Progress in the reader's units (bytes for text files, rows otherwise).
    fn progress(&mut self, _done: u64, _total: u64) {}
}

/// The input of one load: its bytes (mapped or fetched) and their hash.
pub enum Input {
    /// A local file, memory-mapped (or empty).
    File {
        path: String,
        map: Option<memmap2::Mmap>,
    },
    /// REST pages, fetched in full before loading.
    Http { url: String, pages: Vec<Vec<u8>> },
}

impl Input {
    /// Open a source's input: map the file or fetch every page.
    pub fn open(source: &Source, location: &str) -> Result<Input> {
        if source.is_http() {
            let pages = fetch_pages(source, location)?;
            return Ok(Input::Http {
                url: location.to_string(),
                pages,
            });
        }
        let file = std::fs::File::open(location)
            .with_context(|| format!("source {:?}: cannot open {location}", source.name))?;
        let len = file.metadata()?.len();
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and lives only for this load; a
            // file truncated by another program while we read it is outside
            // what we can defend against (as for any reader).
            let map = unsafe { memmap2::Mmap::map(&file) }
                .with_context(|| format!("source {:?}: cannot map {location}", source.name))?;
            // Read once, front to back: let the kernel read ahead.
            let _ = map.advise(memmap2::Advice::Sequential);
            Some(map)
        };
        Ok(Input::File {
            path: location.to_string(),
            map,
        })
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Input::File { map, .. } => map.as_ref().map_or(0, |m| m.len() as u64),
            Input::Http { pages, .. } => pages.iter().map(|p| p.len() as u64).sum(),
        }
    }

    /// blake3 of the content (of every page, in order, for REST sources).
    pub fn content_hash(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        match self {
            Input::File { map, .. } => {
                // In slices, giving each back to the kernel once hashed, so
                // hashing a large file does not make it resident.
                let mut release = Release::new(map.as_ref());
                let data: &[u8] = map.as_deref().unwrap_or(&[]);
                for (i, chunk) in data.chunks(Release::STEP).enumerate() {
                    hasher.update(chunk);
                    release.consumed((i + 1) * Release::STEP);
                }
            }
            Input::Http { pages, .. } => {
                for p in pages {
                    hasher.update(&(p.len() as u64).to_le_bytes());
                    hasher.update(p);
                }
            }
        }
        hasher.finalize().to_hex().to_string()
    }

    pub fn location(&self) -> &str {
        match self {
            Input::File { path, .. } => path,
            Input::Http { url, .. } => url,
        }
    }

    /// Read every row into `sink`.
    pub fn extract(&self, source: &Source, sink: &mut dyn RowSink) -> Result<()> {
        match self {
            Input::File { path, map } => {
                let data: &[u8] = map.as_deref().unwrap_or(&[]);
                let mut release = Release::new(map.as_ref());
                match source.format {
                    Format::Csv => read_csv(source, data, sink, &mut release),
                    Format::Ndjson | Format::Segment => {
                        let mut row_num = 0;
                        read_ndjson(data, &mut row_num, sink, &mut release)
                    }
                    Format::Json => {
                        let mut row_num = 0;
                        read_json_array(data, &mut row_num, sink)
                            .with_context(|| format!("source {:?}: {path}", source.name))
                    }
                    Format::Parquet => read_parquet(Path::new(path), sink)
                        .with_context(|| format!("source {:?}: {path}", source.name)),
                }
            }
            Input::Http { url, pages } => {
                let mut row_num = 0;
                for (i, page) in pages.iter().enumerate() {
                    match source.format {
                        Format::Ndjson | Format::Segment => {
                            read_ndjson(page, &mut row_num, sink, &mut Release::new(None))?
                        }
                        _ => {
                            read_json_page(page, source, &mut row_num, sink).with_context(|| {
                                format!("source {:?}: {url}, page {}", source.name, i + 1)
                            })?
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Gives the pages of a memory-mapped file back to the kernel once they are
/// read, so a multi-gigabyte input does not count against resident memory.
struct Release<'a> {
    map: Option<&'a memmap2::Mmap>,
    done: usize,
}

impl<'a> Release<'a> {
    const STEP: usize = 64 << 20;

    fn new(map: Option<&'a memmap2::Mmap>) -> Self {
        Release { map, done: 0 }
    }

    /// Everything before `offset` has been read and copied out.
    fn consumed(&mut self, offset: usize) {
        let Some(map) = self.map else { return };
        if offset < self.done + Self::STEP {
            return;
        }
        let end = offset.min(map.len()) & !0xfff; // whole pages only
        // SAFETY: the map is a read-only file mapping; dropping its pages
        // only means a later access would read them from the file again,
        // and nothing before `offset` is read again.
        let _ = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                self.done,
                end - self.done,
            )
        };
        self.done = end;
    }
}

fn trim_newline(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = b {
        b = rest;
    }
    b
}

fn read_csv(
    source: &Source,
    data: &[u8],
    sink: &mut dyn RowSink,
    release: &mut Release<'_>,
) -> Result<()> {
    let opts = &source.csv;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter.as_bytes()[0])
        .quote(opts.quote.as_bytes()[0])
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let total = data.len() as u64;
    let mut record = csv::ByteRecord::new();
    let mut columns: Option<Vec<String>> = if opts.has_header {
        None
    } else {
        Some(opts.columns.clone())
    };
    if let Some(cols) = &columns {
        sink.columns(cols)?;
    }
    let mut row_num = 0u64;
    loop {
        let start = reader.position().byte() as usize;
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // The reader resynchronises at the next record; keep this one.
                let end = (reader.position().byte() as usize).min(data.len());
                row_num += 1;
                sink.row(RawRow {
                    row_num,
                    raw: RawText::from_bytes(trim_newline(&data[start.min(end)..end])),
                    record: Record::Bad {
                        kind: BadRow::MalformedCsv,
                        detail: e.to_string(),
                    },
                })?;
                continue;
            }
        };
        if !more {
            break;
        }
        let end = (reader.position().byte() as usize).min(data.len());
        let raw_bytes = trim_newline(&data[start..end]);
        let Some(cols) = &columns else {
            let mut names = Vec::with_capacity(record.len());
            for (i, field) in record.iter().enumerate() {
                let name = std::str::from_utf8(field).map_err(|_| {
                    anyhow!(
                        "source {:?}: the header row is not valid UTF-8",
                        source.name
                    )
                })?;
                let name = if i == 0 {
                    name.trim_start_matches('\u{feff}')
                } else {
                    name
                };
                names.push(name.trim().to_string());
            }
            sink.columns(&names)?;
            columns = Some(names);
            continue;
        };
        row_num += 1;
        let raw = RawText::from_bytes(raw_bytes);
        let rec = if record.len() != cols.len() {
            Record::Bad {
                kind: BadRow::Ragged,
                detail: format!(
                    "expected {} fields (the header's), found {}",
                    cols.len(),
                    record.len()
                ),
            }
        } else {
            let mut values = Vec::with_capacity(cols.len());
            let mut bad = None;
            for (i, field) in record.iter().enumerate() {
                match std::str::from_utf8(field) {
                    Ok(s) => values.push(Some(s.to_string())),
                    Err(e) => {
                        bad = Some(Record::Bad {
                            kind: BadRow::InvalidUtf8,
                            detail: format!(
                                "column {:?}: invalid UTF-8 at byte {} of the value",
                                cols[i],
                                e.valid_up_to()
                            ),
                        });
                        break;
                    }
                }
            }
            bad.unwrap_or(Record::Row(values))
        };
        sink.row(RawRow {
            row_num,
            raw,
            record: rec,
        })?;
        if row_num.is_multiple_of(4096) {
            sink.progress(end as u64, total);
            release.consumed(start);
        }
    }
    if columns.is_none() {
        bail!(
            "source {:?}: the file is empty (no header row)",
            source.name
        );
    }
    sink.progress(total, total);
    Ok(())
}

/// Parse one JSON text into a row record.
fn json_record(text: &str) -> Record {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Record::Json(map),
        Ok(other) => Record::Bad {
            kind: BadRow::NotAnObject,
            detail: format!("expected a JSON object, found {}", json_kind(&other)),
        },
        Err(e) => Record::Bad {
            kind: BadRow::MalformedJson,
            detail: format!("column {}: {e}", e.column()),
        },
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_ndjson(
    data: &[u8],
    row_num: &mut u64,
    sink: &mut dyn RowSink,
    release: &mut Release<'_>,
) -> Result<()> {
    let total = data.len() as u64;
    let mut offset = 0usize;
    for line in data.split(|&b| b == b'\n') {
        offset += line.len() + 1;
        let line = trim_newline(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        *row_num += 1;
        let (raw, record) = match std::str::from_utf8(line) {
            Ok(text) => (RawText::Text(text.to_string()), json_record(text)),
            Err(e) => (
                RawText::Bytes(line.to_vec()),
                Record::Bad {
                    kind: BadRow::InvalidUtf8,
                    detail: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to()),
                },
            ),
        };
        sink.row(RawRow {
            row_num: *row_num,
            raw,
            record,
        })?;
        if row_num.is_multiple_of(4096) {
            sink.progress(offset as u64, total);
            release.consumed(offset.saturating_sub(line.len() + 1));
        }
    }
    sink.progress(total, total);
    Ok(())
}

fn read_json_array(data: &[u8], row_num: &mut u64, sink: &mut dyn RowSink) -> Result<()> {
    let text = std::str::from_utf8(data).map_err(|e| {
        anyhow!(
            "the JSON file is not valid UTF-8 (byte {}); nothing was loaded",
            e.valid_up_to()
        )
    })?;
    if text.trim().is_empty() {
        return Ok(());
    }
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).map_err(|e| {
        anyhow!(
            "not a JSON array of objects (line {}, column {}: {e}); nothing was loaded",
            e.line(),
            e.column()
        )
    })?;
    let total = items.len() as u64;
    for item in items {
        *row_num += 1;
        let raw = item.get();
        sink.row(RawRow {
            row_num: *row_num,
            raw: RawText::Text(raw.to_string()),
            record: json_record(raw),
        })?;
        if row_num.is_multiple_of(4096) {
            sink.progress(*row_num, total);
        }
    }
    Ok(())
}

/// Follow a dotted path (`a.b.c`) into a JSON value.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |v, key| v.as_object()?.get(key))
}

/// One REST page: a JSON array, or an object holding the records.
fn read_json_page(
    page: &[u8],
    source: &Source,
    row_num: &mut u64,
    sink: &mut dyn RowSink,
) -> Result<()> {
    let value: Value = serde_json::from_slice(page).map_err(|e| {
        anyhow!(
            "response is not JSON (line {}, column {}: {e})",
            e.line(),
            e.column()
        )
    })?;
    let records = records_of(&value, source)?;
    for item in records {
        *row_num += 1;
        let raw = RawText::Text(item.to_string());
        let record = match item {
            Value::Object(map) => Record::Json(map.clone()),
            other => Record::Bad {
                kind: BadRow::NotAnObject,
                detail: format!("expected a JSON object, found {}", json_kind(other)),
            },
        };
        sink.row(RawRow {
            row_num: *row_num,
            raw,
            record,
        })?;
    }
    Ok(())
}

/// The records of a REST response.
fn records_of<'a>(value: &'a Value, source: &Source) -> Result<&'a Vec<Value>> {
    if let Value::Array(items) = value {
        return Ok(items);
    }
    let candidates: Vec<&str> = match &source.http.records_field {
        Some(f) => vec![f.as_str()],
        None => vec!["data", "records", "items", "results"],
    };
    for path in &candidates {
        if let Some(Value::Array(items)) = json_path(value, path) {
            return Ok(items);
        }
    }
    bail!(
        "response is a JSON {} without a records array at {} (set http.records_field)",
        json_kind(value),
        candidates.join(" / ")
    )
}

/// Fetch every page of a REST source (JSON array / object pages or NDJSON).
fn fetch_pages(source: &Source, url: &str) -> Result<Vec<Vec<u8>>> {
    let http = &source.http;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(
            http.timeout_seconds.unwrap_or(30),
        )))
        .http_status_as_error(false)
        .build()
        .into();
    let max_pages = http.max_pages.unwrap_or(10_000);
    let mut pages = Vec::new();
    let mut next_url = Some(url.to_string());
    let mut page_no = http.first_page.unwrap_or(1);
    while let Some(current) = next_url.take() {
        if pages.len() as u64 >= max_pages {
            bail!(
                "source {:?}: more than {max_pages} pages at {url} (raise http.max_pages)",
                source.name
            );
        }
        let mut request = agent.get(&current);
        if let Some(param) = &http.page_param {
            request = request.query(param, page_no.to_string());
            if let (Some(size_param), Some(size)) = (&http.page_size_param, http.page_size) {
                request = request.query(size_param, size.to_string());
            }
        }
        let response = request
            .call()
            .with_context(|| format!("source {:?}: GET {current} failed", source.name))?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "source {:?}: GET {current} answered HTTP {}",
                source.name,
                status.as_u16()
            );
        }
        let body = response
            .into_body()
            .with_config()
            .limit(1 << 32)
            .read_to_vec()
            .with_context(|| format!("source {:?}: reading {current}", source.name))?;

        let (empty, next_link) = if source.format.is_json() && source.format == Format::Json {
            let value: Value = serde_json::from_slice(&body).map_err(|e| {
                anyhow!(
                    "source {:?}: {current} is not JSON (line {}, column {}: {e})",
                    source.name,
                    e.line(),
                    e.column()
                )
            })?;
            let empty = records_of(&value, source)
                .with_context(|| format!("source {:?}: {current}", source.name))?
                .is_empty();
            let next = http
                .next_field
                .as_deref()
                .and_then(|p| json_path(&value, p))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| resolve_url(&current, s));
            (empty, next)
        } else {
            (body.iter().all(u8::is_ascii_whitespace), None)
        };
        if empty && http.page_param.is_some() {
            break;
        }
        pages.push(body);
        if let Some(link) = next_link {
            next_url = Some(link);
        } else if http.page_param.is_some() {
            page_no += 1;
            next_url = Some(url.to_string());
        }
    }
    Ok(pages)
}

/// Resolve a possibly relative link against the URL it came from.
fn resolve_url(base: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        return link.to_string();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    if link.starts_with('/') {
        format!("{}{}", &base[..host_end], link)
    } else if link.starts_with('?') {
        let path_end = base.find('?').unwrap_or(base.len());
        format!("{}{}", &base[..path_end], link)
    } else {
        let path = &base[..base.find('?').unwrap_or(base.len())];
        let dir_end = path
            .rfind('/')
            .filter(|&i| i >= host_end)
            .map_or(path.len(), |i| i + 1);
        format!("{}{}", &path[..dir_end], link)
    }
}

/// Parquet via polars, in slices so memory per step stays bounded. The raw
/// text of a row is a JSON object of its values (numbers unquoted).
fn read_parquet(path: &Path, sink: &mut dyn RowSink) -> Result<()> {
    use polars::prelude::*;
    let open = || -> Result<ParquetReader<std::fs::File>> {
        Ok(ParquetReader::new(std::fs::File::open(path)?))
    };
    let height = open()?
        .num_rows()
        .map_err(|e| anyhow!("not a readable Parquet file: {e}"))?;
    // Read in windows of rows so memory stays bounded whatever the file size;
    // each window is then turned into rows in smaller slices.
    const WINDOW: usize = 200_000;
    const SLICE: usize = 20_000;
    let total = height as u64;
    let mut names: Vec<String> = Vec::new();
    let mut numeric: Vec<bool> = Vec::new();
    let mut row_num = 0u64;
    let mut window_start = 0usize;
    while window_start < height.max(1) {
        let df = open()?
            .with_slice(Some((window_start, WINDOW)))
            .finish()
            .map_err(|e| anyhow!("not a readable Parquet file: {e}"))?;
        if window_start == 0 {
            names = df
                .get_column_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            sink.columns(&names)?;
            numeric = df
                .columns()
                .iter()
                .map(|c| c.dtype().is_primitive_numeric() || c.dtype().is_bool())
                .collect();
        }
        if df.height() == 0 {
            break;
        }
        window_start += df.height();
        let mut offset = 0usize;
        while offset < df.height() {
            let part = df.slice(offset as i64, SLICE);
            let mut columns: Vec<Vec<Option<String>>> = Vec::with_capacity(names.len());
            for (col, name) in part.columns().iter().zip(&names) {
                let as_text = col
                    .cast(&DataType::String)
                    .map_err(|e| anyhow!("column {name:?} cannot be read as text: {e}"))?;
                let strings = as_text.str()?;
                columns.push(strings.iter().map(|v| v.map(str::to_string)).collect());
            }
            for i in 0..part.height() {
                row_num += 1;
                let values: Vec<Option<String>> = columns.iter().map(|c| c[i].clone()).collect();
                let mut raw = serde_json::Map::with_capacity(names.len());
                for ((name, v), is_num) in names.iter().zip(&values).zip(&numeric) {
                    let json = match v {
                        None => serde_json::Value::Null,
                        Some(s) if *is_num => serde_json::from_str(s)
                            .unwrap_or_else(|_| serde_json::Value::String(s.to_string())),
                        Some(s) => serde_json::Value::String(s.to_string()),
                    };
                    raw.insert(name.clone(), json);
                }
                sink.row(RawRow {
                    row_num,
                    raw: RawText::Text(serde_json::Value::Object(raw).to_string()),
                    record: Record::Row(values),
                })?;
            }
            offset += SLICE;
            sink.progress(row_num, total);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        let base = "http://127.0.0.1:8080/api/customers?page=1";
        assert_eq!(
            resolve_url(base, "/api/customers?cursor=abc"),
            "http://127.0.0.1:8080/api/customers?cursor=abc"
        );
        assert_eq!(
            resolve_url(base, "?page=2"),
            "http://127.0.0.1:8080/api/customers?page=2"
        );
        assert_eq!(
            resolve_url(base, "other"),
            "http://127.0.0.1:8080/api/other"
        );
        assert_eq!(resolve_url(base, "https://x.y/z"), "https://x.y/z");
    }

    #[test]
    fn json_paths() {
        let v: Value = serde_json::from_str(r#"{"a":{"b":{"c":1}},"x":2}"#).unwrap();
        assert_eq!(json_path(&v, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(json_path(&v, "x"), Some(&Value::from(2)));
        assert_eq!(json_path(&v, "a.z"), None);
    }
}
