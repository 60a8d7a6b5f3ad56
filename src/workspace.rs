//! A workspace is a folder with `c360.toml` (sources and settings), `rules/`
//! and `c360.db`. This module loads and validates `c360.toml`; every error
//! names the file, the line and the field.

use crate::pipeline::schema::{SEGMENT_MAPPING, System};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub const CONFIG_FILE: &str = "c360.toml";
pub const RULES_DIR: &str = "rules";

/// The template `c360 init` writes as `c360.toml`.
pub const CONFIG_TEMPLATE: &str = include_str!("../rules/c360.template.toml");

/// The repository's default rule set, embedded so `init` and `demo` work from
/// any directory: (file name, contents).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("c360.template.toml", CONFIG_TEMPLATE),
    ("README.md", include_str!("../rules/README.md")),
    ("countries.toml", include_str!("../rules/countries.toml")),
    ("events.toml", include_str!("../rules/events.toml")),
    ("people.toml", include_str!("../rules/people.toml")),
    ("orders.toml", include_str!("../rules/orders.toml")),
    ("identity.toml", include_str!("../rules/identity.toml")),
    ("nicknames.csv", include_str!("../rules/nicknames.csv")),
    (
        "nicknames.LICENSE.txt",
        include_str!("../rules/nicknames.LICENSE.txt"),
    ),
    (
        "survivorship.toml",
        include_str!("../rules/survivorship.toml"),
    ),
    ("profiles.toml", include_str!("../rules/profiles.toml")),
];

/// A configuration error that points at `file:line`.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// File formats a source can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
    /// A JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// NDJSON in the Segment / RudderStack event spec (web events): loads
    /// with no hand-written mapping.
    Segment,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Segment => "segment",
        }
    }
    pub fn is_json(self) -> bool {
        matches!(self, Format::Json | Format::Ndjson | Format::Segment)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How ambiguous day/month dates such as `03/04/2024` are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DateOrder {
    /// Month first (US): 03/04/2024 is 4 March.
    #[default]
    Mdy,
    /// Day first (Europe): 03/04/2024 is 3 April.
    Dmy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    #[serde(default = "default_quote")]
    pub quote: String,
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Column names when the file has no header row.
    #[serde(default)]
    pub columns: Vec<String>,
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn yes() -> bool {
    true
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: default_delimiter(),
            quote: default_quote(),
            has_header: true,
            columns: Vec::new(),
        }
    }
}

/// Paging for REST sources.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// Where the records are in an object response (dotted path, e.g.
    /// `data`); a top-level array needs nothing.
    pub records_field: Option<String>,
    /// Dotted path of the next-page link in an object response (e.g. `next`
    /// or `links.next`); absent or null ends paging.
    pub next_field: Option<String>,
    /// Query parameter holding the page number (e.g. `page`); paging stops at
    /// the first empty page.
    pub page_param: Option<String>,
    /// First page number (default 1).
    pub first_page: Option<u64>,
    /// Query parameter for the page size, with `page_size` as its value.
    pub page_size_param: Option<String>,
    pub page_size: Option<u64>,
    /// Safety stop (default 10,000 pages).
    pub max_pages: Option<u64>,
    /// Request timeout in seconds (default 30): the whole request, from
    /// connecting to the last byte of the page.
    pub timeout_seconds: Option<u64>,
    /// Largest page in bytes (default 64 MiB); a larger page is an error.
    pub max_page_bytes: Option<u64>,
    /// Largest total of all pages in bytes (default 1 GiB).
    pub max_total_bytes: Option<u64>,
    /// Hosts other than the location's own that `next` links (and
    /// redirects) may lead to; by default paging stays on the first host.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Request headers, e.g. `headers = { Authorization = "env:CRM_TOKEN" }`:
    /// a value `env:NAME` is read from the environment at load time. Moved
    /// to [`Source::headers`] when the config is parsed (so it is empty on a
    /// parsed source).
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
}

/// Default of [`HttpOptions::max_page_bytes`].
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 64 << 20;
/// Default of [`HttpOptions::max_total_bytes`].
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1 << 30;

/// A string that must not be printed (a URL with its token, a header value).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a request header's value comes from.
#[derive(Debug, Clone)]
pub enum HeaderValue {
    /// `env:NAME`: read from the environment at load time.
    Env(String),
    /// Written in c360.toml as is.
    Literal(Secret),
}

/// One `[sources.http] headers` entry, with where it was written.
#[derive(Debug, Clone)]
pub struct HttpHeader {
    pub name: String,
    pub value: HeaderValue,
    pub file: String,
    pub line: usize,
}

/// Query parameters whose values are redacted from stored and shown URLs:
/// any whose name contains one of these (case-insensitive).
const SECRET_PARAMS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "signature",
    "sig",
    "credential",
    "session",
];

/// `url` with its secrets replaced by `***`: user name and password, and the
/// values of query parameters named like a secret ([`SECRET_PARAMS`]). Not a
/// URL (or nothing to redact): returned as written.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        // Not parseable: drop what could be a secret rather than show it.
        let no_query = url.split('?').next().unwrap_or(url);
        return match no_query.split_once("://") {
            Some((scheme, rest)) if rest.split('/').next().unwrap_or("").contains('@') => {
                let host = rest.split_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://***@{host}")
            }
            _ if no_query.len() < url.len() => format!("{no_query}?***"),
            _ => url.to_string(),
        };
    };
    let mut changed = false;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_password(None);
        let _ = parsed.set_username("***");
        changed = true;
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                if SECRET_PARAMS.iter().any(|p| lower.contains(p)) {
                    changed = true;
                    (k.into_owned(), "***".to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        if changed {
            let mut q = parsed.query_pairs_mut();
            q.clear();
            for (k, v) in &pairs {
                q.append_pair(k, v);
            }
        }
    }
    if changed {
        parsed.to_string().replace("%2A%2A%2A", "***")
    } else {
        url.to_string()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    system: System,
    location: Spanned<String>,
    format: Format,
    timezone: Option<Spanned<String>>,
    date_order: Option<DateOrder>,
    default_region: Option<Spanned<String>>,
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, RawFieldOptions>,
    #[serde(default)]
    order_lines: bool,
    #[serde(default)]
    csv: Option<CsvOptions>,
    #[serde(default)]
    http: Option<HttpOptions>,
    #[serde(default)]
    mapping: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `[sources.fields.<core field>]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFieldOptions {
    #[serde(default)]
    formats: Vec<Spanned<String>>,
    on_error: Option<Spanned<String>>,
}

/// How one core field of a source is read beyond its column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldOptions {
    /// Explicit date / time layouts (chrono `strftime`), tried first.
    pub formats: Vec<String>,
    /// A bad value is kept empty and flagged instead of rejecting the row
    /// (`on_error = "flag"`; optional fields only).
    pub flag_errors: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_db")]
    database: String,
    #[serde(default = "default_batch")]
    batch_size: Spanned<usize>,
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    date_order: DateOrder,
    default_region: Option<Spanned<String>>,
}

fn default_db() -> String {
    "c360.db".into()
}
fn default_batch() -> Spanned<usize> {
    Spanned::new(0..0, 5000)
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            database: default_db(),
            batch_size: default_batch(),
            timezone: None,
            date_order: DateOrder::default(),
            default_region: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    settings: RawSettings,
    #[serde(default)]
    sources: Vec<RawSource>,
}

/// Workspace-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: String,
    pub batch_size: usize,
    pub timezone: chrono_tz::Tz,
    pub date_order: DateOrder,
    /// The country (ISO alpha-2) of phone numbers written without a country
    /// code, where a record has no country of its own.
    pub default_region: Option<String>,
}

/// One validated source.
#[derive(Debug, Clone)]
pub struct Source {
    /// Lower-case identifier; the raw table is `raw_<name>`.
    pub name: String,
    pub system: System,
    /// A path (relative to the workspace) or an `http(s)://` URL, as written
    /// but with a URL's secrets redacted ([`redact_url`]): this is what is
    /// stored and shown. The URL actually fetched is [`Source::fetch_url`].
    pub location: String,
    /// The location exactly as written (secrets included), for fetching only.
    pub fetch_url: Secret,
    /// REST request headers (`[sources.http] headers`).
    pub headers: Vec<HttpHeader>,
    pub format: Format,
    pub timezone: chrono_tz::Tz,
    pub date_order: DateOrder,
    /// [`Settings::default_region`] for this source.
    pub default_region: Option<String>,
    pub csv: CsvOptions,
    pub http: HttpOptions,
    /// Core field -> column (or dotted JSON path; `a|b` = first non-empty).
    /// Fields not named here default to a column of the same name.
    pub mapping: BTreeMap<String, String>,
    /// `[sources.fields.<field>]`: formats and error handling per field.
    pub fields: BTreeMap<String, FieldOptions>,
    /// Transactions: each row is one line of an order, the order's fields
    /// on its first row only (Shopify); its lines become one order.
    pub order_lines: bool,
}

impl Source {
    pub fn raw_table(&self) -> String {
        format!("raw_{}", self.name)
    }

    pub fn is_http(&self) -> bool {
        self.location.starts_with("http://") || self.location.starts_with("https://")
    }

    /// The request headers with `env:NAME` values read from the environment
    /// now. A variable that is not set (or not UTF-8) is a config error
    /// naming the file, the line and the field.
    pub fn http_headers(&self) -> Result<Vec<(String, Secret)>, ConfigError> {
        self.headers
            .iter()
            .map(|h| {
                let value = match &h.value {
                    HeaderValue::Literal(v) => v.clone(),
                    HeaderValue::Env(var) => match std::env::var(var) {
                        Ok(v) => Secret(v),
                        Err(e) => {
                            return Err(ConfigError {
                                file: h.file.clone(),
                                line: h.line,
                                message: format!(
                                    "source {:?}: field `http.headers.{}`: environment variable {var} {}",
                                    self.name,
                                    h.name,
                                    match e {
                                        std::env::VarError::NotPresent => "is not set",
                                        std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                                    }
                                ),
                            });
                        }
                    },
                };
                Ok((h.name.clone(), value))
            })
            .collect()
    }

    /// The column expression for a core field: the explicit mapping, the
    /// format's default (Segment spec), or the field's own name.
    /// A fingerprint of everything staging a row of this source depends on:
    /// system, format, CSV options, time zone, date order and the column
    /// (or path) each core field is read from.
    pub fn staging_fingerprint(&self) -> String {
        let mut text = format!(
            "{:?}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.system,
            self.format,
            self.timezone.name(),
            self.date_order,
            self.csv.delimiter,
            self.csv.quote,
            self.csv.has_header,
            self.csv.columns
        );
        for field in self.system.fields() {
            text.push('|');
            text.push_str(field.name);
            text.push('=');
            text.push_str(&self.column_for(field.name));
            if let Some(o) = self.fields.get(field.name) {
                text.push_str(&format!("{:?}{}", o.formats, o.flag_errors));
            }
        }
        if self.order_lines {
            text.push_str("|order_lines");
        }
        blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
    }

    pub fn column_for(&self, field: &str) -> String {
        if let Some(col) = self.mapping.get(field) {
            return col.clone();
        }
        if self.format == Format::Segment
            && let Some((_, path)) = SEGMENT_MAPPING.iter().find(|(f, _)| *f == field)
        {
            return (*path).to_string();
        }
        field.to_string()
    }
}

/// A loaded workspace.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub settings: Settings,
    pub sources: Vec<Source>,
}

impl Workspace {
    /// Open the workspace in `root` (reads and validates `c360.toml`).
    pub fn open(root: &Path) -> Result<Workspace> {
        let path = root.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is {} a c360 workspace? create one with `c360 init {}`)",
                path.display(),
                root.display(),
                root.display()
            )
        })?;
        let (settings, sources) = parse_config(&text, &path.display().to_string())?;
        Ok(Workspace {
            root: root.to_path_buf(),
            settings,
            sources,
        })
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join(&self.settings.database)
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.root.join(RULES_DIR)
    }

    /// A source's location resolved against the workspace (URLs unchanged,
    /// with their secrets: for reading only, never to store or show).
    pub fn resolve_location(&self, source: &Source) -> String {
        if source.is_http() {
            source.fetch_url.expose().to_string()
        } else if Path::new(&source.location).is_absolute() {
            source.location.clone()
        } else {
            self.root.join(&source.location).display().to_string()
        }
    }

    /// [`Workspace::resolve_location`] as it may be stored and shown (a
    /// URL's secrets redacted).
    pub fn display_location(&self, source: &Source) -> String {
        if source.is_http() {
            source.location.clone()
        } else {
            self.resolve_location(source)
        }
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Create a new workspace in `dir`: `c360.toml` from the template, `rules/`
/// copied from the default rule set. Refuses to overwrite an existing config.
pub fn init(dir: &Path) -> Result<()> {
    let config = dir.join(CONFIG_FILE);
    if config.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            config.display()
        );
    }
    // Rule files already there (a workspace whose c360.toml was removed, a
    // rules/ folder copied in) are somebody's edits: refuse, write nothing.
    let existing: Vec<String> = DEFAULT_RULES
        .iter()
        .map(|(name, _)| dir.join(RULES_DIR).join(name))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exists; refusing to overwrite it (nothing was written)",
            existing.join(", ")
        );
    }
    std::fs::create_dir_all(dir.join(RULES_DIR))
        .with_context(|| format!("cannot create {}", dir.join(RULES_DIR).display()))?;
    for (name, body) in DEFAULT_RULES {
        let path = dir.join(RULES_DIR).join(name);
        std::fs::write(&path, body).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(&config, CONFIG_TEMPLATE)
        .with_context(|| format!("cannot write {}", config.display()))?;
    Ok(())
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Where a config error is: the file and its text, to name the line.
struct At<'t> {
    file: &'t str,
    text: &'t str,
}

impl At<'_> {
    fn err(&self, offset: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: line_of(self.text, offset),
            message,
        }
    }

    fn time_zone(&self, tz: &Spanned<String>) -> Result<chrono_tz::Tz, ConfigError> {
        tz.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
            self.err(
                tz.span().start,
                format!(
                    "field `timezone`: unknown IANA time zone {:?} (e.g. \"UTC\", \"Europe/Berlin\", \"America/New_York\")",
                    tz.get_ref()
                ),
            )
        })
    }

    /// A phone region: an ISO 3166-1 alpha-2 code the phone library knows.
    fn region(&self, region: &Spanned<String>) -> Result<String, ConfigError> {
        let code = region.get_ref().trim().to_uppercase();
        if code.parse::<phonenumber::country::Id>().is_err() {
            return Err(self.err(
                region.span().start,
                format!(
                    "field `default_region`: {:?} is not an ISO 3166-1 alpha-2 country code (e.g. \"US\", \"GB\", \"DE\")",
                    region.get_ref()
                ),
            ));
        }
        Ok(code)
    }
}

/// Parse and validate the text of a `c360.toml`. `file` is used in errors.
pub fn parse_config(text: &str, file: &str) -> Result<(Settings, Vec<Source>), ConfigError> {
    let at = At { file, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let line = text
            .lines()
            .nth(line_of(text, offset) - 1)
            .unwrap_or("")
            .trim();
        at.err(offset, format!("{} (in `{line}`)", e.message().trim_end()))
    })?;
    let settings = parse_settings(&at, raw.settings)?;
    let mut sources: Vec<Source> = Vec::new();
    for rs in raw.sources {
        if sources.iter().any(|s| &s.name == rs.name.get_ref()) {
            return Err(at.err(
                rs.name.span().start,
                format!(
                    "field `name`: source {:?} is defined twice",
                    rs.name.get_ref()
                ),
            ));
        }
        sources.push(parse_source(&at, &settings, rs)?);
    }
    Ok((settings, sources))
}

fn parse_settings(at: &At, raw: RawSettings) -> Result<Settings, ConfigError> {
    let timezone = match &raw.timezone {
        Some(tz) => at.time_zone(tz)?,
        None => chrono_tz::UTC,
    };
    if *raw.batch_size.get_ref() == 0 {
        return Err(at.err(
            raw.batch_size.span().start,
            "field `settings.batch_size`: must be at least 1".into(),
        ));
    }
    let default_region = raw
        .default_region
        .as_ref()
        .map(|r| at.region(r))
        .transpose()?;
    Ok(Settings {
        database: raw.database,
        batch_size: raw.batch_size.into_inner(),
        timezone,
        date_order: raw.date_order,
        default_region,
    })
}

/// One `[[sources]]` table, checked.
fn parse_source(at: &At, settings: &Settings, rs: RawSource) -> Result<Source, ConfigError> {
    let name = rs.name.get_ref().clone();
    let name_at = rs.name.span().start;
    if name.is_empty()
        || name.len() > 48
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(at.err(
            name_at,
            format!(
                "field `name`: source name {name:?} must be 1-48 characters of a-z, 0-9 and _, not starting with a digit (it names the table raw_<name>)"
            ),
        ));
    }
    let location = rs.location.get_ref().trim().to_string();
    if location.is_empty() {
        return Err(at.err(
            rs.location.span().start,
            format!("source {name:?}: field `location` is empty"),
        ));
    }
    let is_http = location.starts_with("http://") || location.starts_with("https://");
    if is_http && matches!(rs.format, Format::Csv | Format::Parquet) {
        return Err(at.err(
            rs.location.span().start,
            format!(
                "source {name:?}: field `format`: REST sources must be json, ndjson or segment, not {}",
                rs.format
            ),
        ));
    }
    if rs.format == Format::Segment && rs.system != System::Web {
        return Err(at.err(
            name_at,
            format!(
                "source {name:?}: field `format`: \"segment\" is the web-event spec; system must be \"web\", not {:?}",
                rs.system.as_str()
            ),
        ));
    }
    if rs.order_lines
        && (rs.system != System::Transactions
            || !matches!(rs.format, Format::Csv | Format::Parquet))
    {
        return Err(at.err(
            name_at,
            format!(
                "source {name:?}: field `order_lines`: only transactions sources in csv or parquet have order lines"
            ),
        ));
    }
    let csv = rs.csv.clone().unwrap_or_default();
    if rs.format == Format::Csv {
        check_csv(&csv, &name).map_err(|m| at.err(name_at, m))?;
    }
    let mapping = parse_mapping(at, &name, rs.system, &rs.mapping)?;
    let fields = parse_field_options(at, &name, rs.system, &rs.fields)?;
    let timezone = match &rs.timezone {
        Some(tz) => at.time_zone(tz)?,
        None => settings.timezone,
    };
    let default_region = match &rs.default_region {
        Some(r) => Some(at.region(r)?),
        None => settings.default_region.clone(),
    };
    let mut http = rs.http.clone().unwrap_or_default();
    let headers = parse_headers(at, &name, &mut http)?;
    if !is_http && !headers.is_empty() {
        return Err(at.err(
            name_at,
            format!(
                "source {name:?}: field `http.headers`: only REST (http:// or https://) sources send headers"
            ),
        ));
    }
    for (field, v) in [
        ("max_page_bytes", http.max_page_bytes),
        ("max_total_bytes", http.max_total_bytes),
        ("timeout_seconds", http.timeout_seconds),
    ] {
        if v == Some(0) {
            return Err(at.err(
                name_at,
                format!("source {name:?}: field `http.{field}`: must be at least 1"),
            ));
        }
    }
    let shown = if is_http {
        redact_url(&location)
    } else {
        location.clone()
    };
    Ok(Source {
        name,
        system: rs.system,
        fetch_url: Secret(location),
        location: shown,
        headers,
        format: rs.format,
        timezone,
        date_order: rs.date_order.unwrap_or(settings.date_order),
        default_region,
        csv,
        http,
        mapping,
        fields,
        order_lines: rs.order_lines,
    })
}

/// `[sources.fields.<field>]`: a core field of the system; formats that
/// chrono can read; `on_error` "flag" (optional fields only) or "reject".
fn parse_field_options(
    at: &At,
    name: &str,
    system: System,
    raw: &BTreeMap<Spanned<String>, RawFieldOptions>,
) -> Result<BTreeMap<String, FieldOptions>, ConfigError> {
    let mut out = BTreeMap::new();
    for (field, opts) in raw {
        let Some(core) = system.field(field.get_ref()) else {
            let known: Vec<&str> = system.fields().iter().map(|f| f.name).collect();
            return Err(at.err(
                field.span().start,
                format!(
                    "source {name:?}: field `fields.{}`: not a core field of {system} (core fields: {})",
                    field.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        for f in &opts.formats {
            let bad = chrono::format::StrftimeItems::new(f.get_ref())
                .any(|i| matches!(i, chrono::format::Item::Error));
            if bad || f.get_ref().trim().is_empty() {
                return Err(at.err(
                    f.span().start,
                    format!(
                        "source {name:?}: field `fields.{}.formats`: {:?} is not a date/time format (chrono strftime, e.g. \"%d.%m.%Y %H:%M\")",
                        core.name,
                        f.get_ref()
                    ),
                ));
            }
        }
        let flag_errors = match opts.on_error.as_ref().map(|o| (o.get_ref().as_str(), o)) {
            None | Some(("reject", _)) => false,
            Some(("flag", o)) if core.required => {
                return Err(at.err(
                    o.span().start,
                    format!(
                        "source {name:?}: field `fields.{}.on_error`: {} is required; a row without a good value is rejected (only optional fields can be flagged)",
                        core.name, core.name
                    ),
                ));
            }
            Some(("flag", _)) => true,
            Some((other, o)) => {
                return Err(at.err(
                    o.span().start,
                    format!(
                        "source {name:?}: field `fields.{}.on_error`: {other:?} is not \"reject\" or \"flag\"",
                        core.name
                    ),
                ));
            }
        };
        out.insert(
            core.name.to_string(),
            FieldOptions {
                formats: opts.formats.iter().map(|f| f.get_ref().clone()).collect(),
                flag_errors,
            },
        );
    }
    Ok(out)
}

/// The CSV options of a source, checked; the message names the field.
fn check_csv(csv: &CsvOptions, name: &str) -> Result<(), String> {
    if csv.delimiter.len() != 1 {
        return Err(format!(
            "source {name:?}: field `csv.delimiter` must be one ASCII character, got {:?}",
            csv.delimiter
        ));
    }
    if csv.quote.len() != 1 {
        return Err(format!(
            "source {name:?}: field `csv.quote` must be one ASCII character, got {:?}",
            csv.quote
        ));
    }
    if !csv.has_header && csv.columns.is_empty() {
        return Err(format!(
            "source {name:?}: field `csv.columns` must list the column names when `has_header = false`"
        ));
    }
    Ok(())
}

/// `[sources.mapping]`: core field -> column, each field a core field of
/// the system and each column named.
fn parse_mapping(
    at: &At,
    name: &str,
    system: System,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut mapping = BTreeMap::new();
    for (field, column) in raw {
        let field_name = field.get_ref();
        if system.field(field_name).is_none() {
            let known: Vec<&str> = system.fields().iter().map(|f| f.name).collect();
            return Err(at.err(
                field.span().start,
                format!(
                    "source {name:?}: field `mapping.{field_name}`: {field_name:?} is not a core field of {system} (core fields: {})",
                    known.join(", ")
                ),
            ));
        }
        if column.get_ref().trim().is_empty() {
            return Err(at.err(
                column.span().start,
                format!("source {name:?}: field `mapping.{field_name}`: empty column name"),
            ));
        }
        mapping.insert(field_name.clone(), column.get_ref().trim().to_string());
    }
    Ok(mapping)
}

/// `[sources.http] headers`: valid names; `env:NAME` values read at fetch
/// time.
fn parse_headers(
    at: &At,
    name: &str,
    http: &mut HttpOptions,
) -> Result<Vec<HttpHeader>, ConfigError> {
    let mut headers = Vec::new();
    for (header, value) in std::mem::take(&mut http.headers) {
        let offset = value.span().start;
        let valid_name = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(at.err(
                offset,
                format!(
                    "source {name:?}: field `http.headers`: {header:?} is not a valid header name"
                ),
            ));
        }
        let value = match value.get_ref().strip_prefix("env:") {
            Some(var) if var.trim().is_empty() => {
                return Err(at.err(
                    offset,
                    format!(
                        "source {name:?}: field `http.headers.{header}`: `env:` needs a variable name (e.g. \"env:CRM_TOKEN\")"
                    ),
                ));
            }
            Some(var) => HeaderValue::Env(var.trim().to_string()),
            None => HeaderValue::Literal(Secret(value.into_inner())),
        };
        headers.push(HttpHeader {
            name: header,
            value,
            file: at.file.to_string(),
            line: line_of(at.text, offset),
        });
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses() {
        let (settings, sources) = parse_config(CONFIG_TEMPLATE, "c360.toml").unwrap();
        assert_eq!(settings.database, "c360.db");
        assert_eq!(sources.len(), 3);
        assert_eq!(sources[0].column_for("address"), "street");
        assert_eq!(
            sources[1].column_for("cookie_id"),
            "anonymousId|anonymous_id"
        );
        assert_eq!(sources[2].column_for("order_id"), "order_id");
    }

    #[test]
    fn unknown_mapping_field_names_line_and_field() {
        let text = "[[sources]]\nname = \"crm\"\nsystem = \"crm\"\nlocation = \"a.csv\"\nformat = \"csv\"\n[sources.mapping]\nadress = \"street\"\n";
        let e = parse_config(text, "c360.toml").unwrap_err();
        assert_eq!(e.line, 7);
        assert!(e.to_string().starts_with("c360.toml:7: "), "{e}");
        assert!(e.message.contains("mapping.adress"), "{e}");
    }

    #[test]
    fn bad_system_names_line() {
        let text =
            "[[sources]]\nname = \"x\"\nsystem = \"erp\"\nlocation = \"a.csv\"\nformat = \"csv\"\n";
        let e = parse_config(text, "w/c360.toml").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("erp"), "{e}");
    }
}
