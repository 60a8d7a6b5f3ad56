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
    /// The header row's original bytes (CSV with a header), kept so the rows
    /// can be staged again later from their raw text alone.
    fn header(&mut self, _raw: &[u8]) {}
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
                url: crate::workspace::redact_url(location),
                pages,
            });
        }
        // Look before opening: opening a FIFO blocks until a writer comes,
        // and a folder opens but cannot be mapped ("No such device").
        let meta = std::fs::metadata(location)
            .with_context(|| format!("source {:?}: cannot open {location}", source.name))?;
        check_regular(source, location, &meta)?;
        let file = std::fs::File::open(location)
            .with_context(|| format!("source {:?}: cannot open {location}", source.name))?;
        let meta = file
            .metadata()
            .with_context(|| format!("source {:?}: cannot read {location}", source.name))?;
        check_regular(source, location, &meta)?;
        let len = meta.len();
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
                    Format::Parquet => read_parquet_guarded(Path::new(path), sink)
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

/// A source's `location` must be a regular file (or a link to one).
fn check_regular(source: &Source, location: &str, meta: &std::fs::Metadata) -> Result<()> {
    if meta.is_dir() {
        bail!(
            "source {:?}: location {location} is a folder, not a file (point `location` in c360.toml at the {} file itself)",
            source.name,
            source.format
        );
    }
    if !meta.is_file() {
        bail!(
            "source {:?}: location {location} is not a regular file (a FIFO, socket or device cannot be loaded; copy the data to a file)",
            source.name
        );
    }
    Ok(())
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

/// Where the `index`-th physical line of the file starts (1-based line
/// numbers for messages): counts line ends (`\n`, `\r\n`, `\r`) forward
/// from the last question, so asking in increasing order is linear overall.
struct LineCounter {
    offset: usize,
    line: u64,
}

impl LineCounter {
    fn new() -> Self {
        LineCounter { offset: 0, line: 1 }
    }

    /// The 1-based line of byte `offset` (offsets asked in increasing order).
    fn line_of(&mut self, data: &[u8], offset: usize) -> u64 {
        let offset = offset.min(data.len());
        if offset < self.offset {
            // Not expected; recount from the start rather than be wrong.
            *self = LineCounter::new();
        }
        let mut i = self.offset;
        while i < offset {
            match data[i] {
                b'\n' => self.line += 1,
                b'\r' if data.get(i + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            i += 1;
        }
        self.offset = offset;
        self.line
    }
}

/// The bytes of one CSV row as stored in `raw_<source>`: from its first byte
/// to the last byte before its line end, exactly as in the file. The line end
/// itself (`\n`, `\r\n` or `\r`) is not part of the row; line breaks inside
/// quoted fields are kept as they are. `start..end` is what the CSV reader
/// consumed, which can begin with the previous row's `\n` (after a `\r`) or
/// blank lines and ends with the line end.
fn row_span(data: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && matches!(data[start], b'\n' | b'\r') {
        start += 1;
    }
    while end > start && matches!(data[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    (start, end)
}

/// Length of the first physical line of `bytes` and of its line end.
fn first_line(bytes: &[u8]) -> (usize, usize) {
    match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
        None => (bytes.len(), 0),
        Some(i) if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') => (i, 2),
        Some(i) => (i, 1),
    }
}

/// The physical lines of `bytes` (split at `\n`, `\r\n` and `\r`).
fn physical_lines(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    loop {
        let (len, end) = first_line(bytes);
        lines.push(&bytes[..len]);
        if end == 0 {
            return lines;
        }
        bytes = &bytes[len + end..];
    }
}

/// Fields of one line read on its own: with quoting (`quote`) or without.
fn field_count(line: &[u8], delimiter: u8, quote: Option<u8>) -> usize {
    let mut fields = 1;
    let mut in_quotes = false;
    let mut at_start = true;
    for &b in line {
        if in_quotes {
            if Some(b) == quote {
                in_quotes = false;
            }
        } else if b == delimiter {
            fields += 1;
            at_start = true;
            continue;
        } else if at_start && Some(b) == quote {
            in_quotes = true;
        }
        at_start = false;
    }
    fields
}

/// For a CSV row in which a quoted field crosses a line break: why the row
/// does not fit the header, or `None` when it does (a legitimate multi-line
/// value). It does not fit when the quote is never closed, when the row has
/// more or fewer fields than the header, when the field's closing quote is
/// followed by text (the quote that closed it opened a value of a later line:
/// `,"Paris,...`), or when every line inside it is a complete row of its own.
/// `raw` is the whole row as the CSV reader read it; `None` also when no
/// quoted field crosses a line break.
fn crossing_quote_problem(
    raw: &[u8],
    delimiter: u8,
    quote: u8,
    expected: usize,
    found: usize,
) -> Option<String> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        AfterQuote,
    }
    let mut state = State::FieldStart;
    let mut crossed = false;
    let mut field_crossed = false;
    let mut bad_close = false;
    for &b in raw {
        state = match state {
            State::FieldStart if b == quote => {
                field_crossed = false;
                State::Quoted
            }
            State::FieldStart | State::Unquoted if b == delimiter => State::FieldStart,
            State::FieldStart | State::Unquoted => State::Unquoted,
            State::Quoted if b == quote => State::AfterQuote,
            State::Quoted => {
                if b == b'\n' || b == b'\r' {
                    crossed = true;
                    field_crossed = true;
                }
                State::Quoted
            }
            State::AfterQuote if b == quote => State::Quoted,
            State::AfterQuote if b == delimiter => State::FieldStart,
            State::AfterQuote => {
                bad_close |= field_crossed;
                State::Unquoted
            }
        };
    }
    if !crossed {
        return None;
    }
    let lines = physical_lines(raw);
    let spans = lines.len();
    let opened = "a quoted field opened on this line";
    if state == State::Quoted {
        return Some(format!(
            "{opened} is never closed (it would run over the {} remaining line(s) of the file)",
            spans - 1
        ));
    }
    if found != expected {
        return Some(format!(
            "{opened} runs across {spans} lines and the row they make has {found} fields, not the header's {expected}"
        ));
    }
    if bad_close {
        return Some(format!(
            "{opened} runs across {spans} lines and its closing quote is followed by more text (a stray quote)"
        ));
    }
    if spans >= 3 && expected >= 2 {
        let inner = &lines[1..spans - 1];
        let all_rows = inner.iter().all(|line| {
            field_count(line, delimiter, Some(quote)) == expected
                || field_count(line, delimiter, None) == expected
        });
        if all_rows {
            return Some(format!(
                "{opened} runs across {spans} lines and each of the {} line(s) inside it is a complete row of its own (a stray quote)",
                inner.len()
            ));
        }
    }
    None
}

/// CSV through the `csv` crate, row by row. A quoted field that crosses a line
/// break must still make a row that fits the header
/// ([`crossing_quote_problem`]); when it does not (a stray or unterminated
/// quote), only the line where the quote opened is rejected (`malformed_csv`,
/// with its line number) and reading starts again at the next line, so a
/// stray quote costs the lines it really spans, not the rest of the file.
fn read_csv(
    source: &Source,
    data: &[u8],
    sink: &mut dyn RowSink,
    release: &mut Release<'_>,
) -> Result<()> {
    let opts = &source.csv;
    let delimiter = opts.delimiter.as_bytes()[0];
    let quote = opts.quote.as_bytes()[0];
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(delimiter)
        .quote(quote)
        .has_headers(false)
        .flexible(true);
    // `base`: where in `data` the current reader started (it restarts after
    // a row broken by a stray quote).
    let mut base = 0usize;
    let mut reader = builder.from_reader(data);
    let mut lines = LineCounter::new();
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
        let start = base + reader.position().byte() as usize;
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // The reader resynchronises at the next record; keep this one.
                let end = (base + reader.position().byte() as usize).min(data.len());
                let (rs, re) = row_span(data, start.min(end), end);
                row_num += 1;
                let line = lines.line_of(data, rs);
                sink.row(RawRow {
                    row_num,
                    raw: RawText::from_bytes(&data[rs..re]),
                    record: Record::Bad {
                        kind: BadRow::MalformedCsv,
                        detail: format!("line {line}: {e}"),
                    },
                })?;
                continue;
            }
        };
        if !more {
            break;
        }
        let end = (base + reader.position().byte() as usize).min(data.len());
        let (rs, re) = row_span(data, start, end);
        let raw_bytes = &data[rs..re];
        let Some(cols) = &columns else {
            let names = header_names(source, &record)?;
            sink.header(raw_bytes);
            sink.columns(&names)?;
            columns = Some(names);
            continue;
        };
        row_num += 1;
        if raw_bytes.iter().any(|&b| b == b'\n' || b == b'\r')
            && let Some(problem) =
                crossing_quote_problem(raw_bytes, delimiter, quote, cols.len(), record.len())
        {
            // Reject the line the quote opened on; read again from the next.
            let (len, line_end) = first_line(raw_bytes);
            let line = lines.line_of(data, rs);
            sink.row(RawRow {
                row_num,
                raw: RawText::from_bytes(&raw_bytes[..len]),
                record: Record::Bad {
                    kind: BadRow::MalformedCsv,
                    detail: format!(
                        "line {line}: {problem}; only line {line} is rejected and reading resumes at line {}",
                        line + 1
                    ),
                },
            })?;
            base = rs + len + line_end;
            reader = builder.from_reader(&data[base..]);
            continue;
        }
        let raw = RawText::from_bytes(raw_bytes);
        let rec = csv_record(&record, cols);
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

/// The column names of a CSV header record (a leading BOM and spaces
/// around names removed).
fn header_names(source: &Source, record: &csv::ByteRecord) -> Result<Vec<String>> {
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
    Ok(names)
}

/// One CSV record as a row of the header's columns, or why it is not one.
fn csv_record(record: &csv::ByteRecord, cols: &[String]) -> Record {
    if record.len() != cols.len() {
        return Record::Bad {
            kind: BadRow::Ragged,
            detail: format!(
                "expected {} fields (the header's), found {}",
                cols.len(),
                record.len()
            ),
        };
    }
    let mut values = Vec::with_capacity(cols.len());
    for (i, field) in record.iter().enumerate() {
        match std::str::from_utf8(field) {
            Ok(s) => values.push(Some(s.to_string())),
            Err(e) => {
                return Record::Bad {
                    kind: BadRow::InvalidUtf8,
                    detail: format!(
                        "column {:?}: invalid UTF-8 at byte {} of the value",
                        cols[i],
                        e.valid_up_to()
                    ),
                };
            }
        }
    }
    Record::Row(values)
}

/// Reads rows again from the raw text kept in the workspace (`load
/// --restage`), one row at a time, with the source's current format and CSV
/// options: a row keeps its number, and so its key.
pub struct Reparser {
    format: Format,
    csv: Option<csv::ReaderBuilder>,
    /// The columns of tabular rows (CSV, Parquet).
    columns: Vec<String>,
}

impl Reparser {
    /// `header` is what the load kept of the batch's header: the CSV header
    /// row's bytes, or a JSON array of Parquet column names. None when the
    /// format needs none (JSON, NDJSON, a CSV without a header row).
    pub fn new(source: &Source, header: Option<&[u8]>) -> Result<Reparser> {
        let mut builder = None;
        let mut columns = Vec::new();
        match source.format {
            Format::Csv => {
                let mut b = csv::ReaderBuilder::new();
                b.delimiter(source.csv.delimiter.as_bytes()[0])
                    .quote(source.csv.quote.as_bytes()[0])
                    .has_headers(false)
                    .flexible(true);
                columns = if source.csv.has_header {
                    let header = header.ok_or_else(|| {
                        anyhow!("source {:?}: no header row was kept", source.name)
                    })?;
                    let mut record = csv::ByteRecord::new();
                    b.from_reader(header).read_byte_record(&mut record)?;
                    header_names(source, &record)?
                } else {
                    source.csv.columns.clone()
                };
                builder = Some(b);
            }
            Format::Parquet => {
                let header = header.ok_or_else(|| {
                    anyhow!("source {:?}: no column names were kept", source.name)
                })?;
                columns = serde_json::from_slice(header).map_err(|e| {
                    anyhow!(
                        "source {:?}: kept column names unreadable: {e}",
                        source.name
                    )
                })?;
            }
            Format::Ndjson | Format::Segment | Format::Json => {}
        }
        Ok(Reparser {
            format: source.format,
            csv: builder,
            columns,
        })
    }

    /// The column names tabular rows are aligned with (empty for JSON).
    pub fn columns(&self) -> Option<&[String]> {
        match self.format {
            Format::Csv | Format::Parquet => Some(&self.columns),
            _ => None,
        }
    }

    /// One raw row read again.
    pub fn record(&self, raw: &RawText) -> Record {
        let text = match raw {
            RawText::Text(t) => t.as_str(),
            RawText::Bytes(b) => {
                if let Some(builder) = &self.csv {
                    return self.csv_row(builder, b);
                }
                let valid = std::str::from_utf8(b).err().map_or(0, |e| e.valid_up_to());
                return Record::Bad {
                    kind: BadRow::InvalidUtf8,
                    detail: format!("invalid UTF-8 at byte {valid} of the line"),
                };
            }
        };
        match (self.format, &self.csv) {
            (Format::Csv, Some(builder)) => self.csv_row(builder, text.as_bytes()),
            (Format::Parquet, _) => self.parquet_row(text),
            _ => json_record(text),
        }
    }

    fn csv_row(&self, builder: &csv::ReaderBuilder, bytes: &[u8]) -> Record {
        let mut record = csv::ByteRecord::new();
        let mut reader = builder.from_reader(bytes);
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => record.clear(),
            Err(e) => {
                return Record::Bad {
                    kind: BadRow::MalformedCsv,
                    detail: e.to_string(),
                };
            }
        }
        let rest = reader.position().byte() as usize;
        if rest < bytes.len() && !bytes[rest..].iter().all(u8::is_ascii_whitespace) {
            return Record::Bad {
                kind: BadRow::MalformedCsv,
                detail: "the row's text holds more than one CSV record".into(),
            };
        }
        csv_record(&record, &self.columns)
    }

    /// A Parquet row was kept as a JSON object of its columns.
    fn parquet_row(&self, text: &str) -> Record {
        let map = match json_record(text) {
            Record::Json(map) => map,
            other => return other,
        };
        let values = self
            .columns
            .iter()
            .map(|name| match map.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => Some(v.to_string()),
            })
            .collect();
        Record::Row(values)
    }
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
    // Lines end at `\n`, `\r\n` or a lone `\r`; the line end is not part of
    // the row's raw text.
    let mut offset = 0usize;
    while offset < data.len() {
        let rest = &data[offset..];
        let (len, line_end) = first_line(rest);
        let line = &rest[..len];
        offset += len + line_end;
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
            release.consumed(offset.saturating_sub(len + line_end));
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
///
/// Bounded: each page at most `http.max_page_bytes`, all pages together at
/// most `http.max_total_bytes`, at most `http.max_pages` pages. Links are
/// joined with the `url` crate and must stay on the location's host (or one
/// of `http.allow_hosts`). Headers come from `http.headers` (`env:NAME`
/// values read now). Every message shows the URL with its secrets redacted.
fn fetch_pages(source: &Source, url: &str) -> Result<Vec<Vec<u8>>> {
    use crate::workspace::{DEFAULT_MAX_PAGE_BYTES, DEFAULT_MAX_TOTAL_BYTES, redact_url};
    let http = &source.http;
    let headers = source.http_headers()?;
    let timeout = http.timeout_seconds.unwrap_or(30);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(timeout)))
        .http_status_as_error(false)
        .build()
        .into();
    let max_pages = http.max_pages.unwrap_or(10_000);
    let max_page = http.max_page_bytes.unwrap_or(DEFAULT_MAX_PAGE_BYTES);
    let max_total = http.max_total_bytes.unwrap_or(DEFAULT_MAX_TOTAL_BYTES);
    let shown_url = redact_url(url);
    let first = url::Url::parse(url).map_err(|e| {
        anyhow!(
            "source {:?}: {shown_url} is not a valid URL: {e}",
            source.name
        )
    })?;
    let host_allowed = |link: &url::Url| -> bool {
        let Some(host) = link.host_str() else {
            return false;
        };
        (Some(host) == first.host_str()
            && link.port_or_known_default() == first.port_or_known_default())
            || http.allow_hosts.iter().any(|h| {
                let h = h.trim();
                h.eq_ignore_ascii_case(host)
                    || link
                        .port()
                        .is_some_and(|p| h.eq_ignore_ascii_case(&format!("{host}:{p}")))
            })
    };
    let mut pages = Vec::new();
    let mut total = 0u64;
    let mut next_url = Some(first.clone());
    let mut page_no = http.first_page.unwrap_or(1);
    while let Some(current) = next_url.take() {
        let shown = redact_url(current.as_str());
        if pages.len() as u64 >= max_pages {
            bail!(
                "source {:?}: more than {max_pages} pages at {shown_url} (raise http.max_pages)",
                source.name
            );
        }
        let mut request = agent.get(current.as_str());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.expose());
        }
        if let Some(param) = &http.page_param {
            request = request.query(param, page_no.to_string());
            if let (Some(size_param), Some(size)) = (&http.page_size_param, http.page_size) {
                request = request.query(size_param, size.to_string());
            }
        }
        let response = request.call().map_err(|e| match e {
            ureq::Error::Timeout(kind) => anyhow!(
                "source {:?}: GET {shown} timed out: the {kind} timeout of {timeout} s (http.timeout_seconds = {timeout}, for the whole request) ran out",
                source.name
            ),
            other => anyhow!("source {:?}: GET {shown} failed: {other}", source.name),
        })?;
        {
            use ureq::ResponseExt;
            let landed = response.get_uri().to_string();
            if let Ok(landed) = url::Url::parse(&landed)
                && !host_allowed(&landed)
            {
                bail!(
                    "source {:?}: GET {shown} was redirected to another host ({}); add it to http.allow_hosts to allow it",
                    source.name,
                    landed.host_str().unwrap_or("?")
                );
            }
        }
        let status = response.status();
        if !status.is_success() {
            bail!(
                "source {:?}: GET {shown} answered HTTP {}",
                source.name,
                status.as_u16()
            );
        }
        let limit = max_page.min(max_total - total);
        let body = response
            .into_body()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) if limit < max_page => anyhow!(
                    "source {:?}: the pages of {shown_url} exceed http.max_total_bytes = {max_total} bytes in all (at {shown}); raise it",
                    source.name
                ),
                ureq::Error::BodyExceedsLimit(_) => anyhow!(
                    "source {:?}: page {} at {shown} is larger than http.max_page_bytes = {max_page} bytes; raise it",
                    source.name,
                    pages.len() + 1
                ),
                ureq::Error::Timeout(kind) => anyhow!(
                    "source {:?}: reading {shown} timed out: the {kind} timeout of {timeout} s (http.timeout_seconds = {timeout}, for the whole request) ran out",
                    source.name
                ),
                other => anyhow!("source {:?}: reading {shown}: {other}", source.name),
            })?;
        total += body.len() as u64;

        let (empty, next_link) = if source.format == Format::Json {
            let value: Value = serde_json::from_slice(&body).map_err(|e| {
                anyhow!(
                    "source {:?}: {shown} is not JSON (line {}, column {}: {e})",
                    source.name,
                    e.line(),
                    e.column()
                )
            })?;
            let empty = records_of(&value, source)
                .with_context(|| format!("source {:?}: {shown}", source.name))?
                .is_empty();
            let next = match http
                .next_field
                .as_deref()
                .and_then(|p| json_path(&value, p))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(link) => Some(resolve_url(&current, link).map_err(|e| {
                    anyhow!(
                        "source {:?}: the next link {:?} of {shown} is not a valid URL: {e}",
                        source.name,
                        redact_url(link)
                    )
                })?),
                None => None,
            };
            (empty, next)
        } else {
            (body.iter().all(u8::is_ascii_whitespace), None)
        };
        if empty && http.page_param.is_some() {
            break;
        }
        pages.push(body);
        if let Some(link) = next_link {
            if !host_allowed(&link) {
                bail!(
                    "source {:?}: the next link of {shown} goes to another host ({}), not followed; add it to http.allow_hosts to follow it",
                    source.name,
                    link.host_str().unwrap_or("?")
                );
            }
            next_url = Some(link);
        } else if http.page_param.is_some() {
            page_no += 1;
            next_url = Some(first.clone());
        }
    }
    Ok(pages)
}

/// Resolve a possibly relative link against the URL it came from.
fn resolve_url(base: &url::Url, link: &str) -> Result<url::Url, url::ParseError> {
    base.join(link)
}

/// The message of a caught panic (its `&str` / `String` payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

/// [`read_parquet`] with polars' panics caught: polars asserts on some
/// corrupt files (e.g. "offset + length <= self.length") instead of
/// returning an error. Either way the load fails and its transaction is
/// rolled back by the caller, so nothing of the file is committed.
fn read_parquet_guarded(path: &Path, sink: &mut dyn RowSink) -> Result<()> {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_parquet(path, sink)));
    match result {
        Ok(r) => r,
        Err(payload) => bail!(
            "corrupt Parquet: the Parquet reader failed ({}); nothing of this file was loaded",
            panic_message(payload.as_ref())
        ),
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
        .map_err(|e| anyhow!("corrupt Parquet (not a readable Parquet file: {e})"))?;
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
            .map_err(|e| anyhow!("corrupt Parquet (not a readable Parquet file: {e})"))?;
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
        let base = url::Url::parse("http://127.0.0.1:8080/api/customers?page=1").unwrap();
        let join = |l: &str| resolve_url(&base, l).unwrap().to_string();
        assert_eq!(
            join("/api/customers?cursor=abc"),
            "http://127.0.0.1:8080/api/customers?cursor=abc"
        );
        assert_eq!(
            join("?page=2"),
            "http://127.0.0.1:8080/api/customers?page=2"
        );
        assert_eq!(join("other"), "http://127.0.0.1:8080/api/other");
        assert_eq!(join("../x"), "http://127.0.0.1:8080/x");
        assert_eq!(join("//other.host/p"), "http://other.host/p");
        assert_eq!(join("https://x.y/z"), "https://x.y/z");
    }

    #[test]
    fn json_paths() {
        let v: Value = serde_json::from_str(r#"{"a":{"b":{"c":1}},"x":2}"#).unwrap();
        assert_eq!(json_path(&v, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(json_path(&v, "x"), Some(&Value::from(2)));
        assert_eq!(json_path(&v, "a.z"), None);
    }
}
