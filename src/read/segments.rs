//! Segments: a small filter language over profile fields, e.g.
//!
//! ```text
//! country = "DE" and orders >= 3 and last_order < 90d
//! lifecycle in ("lapsed", "churned") or (churn_risk >= 0.6 and not anonymous)
//! email contains "@gmail." and city is not empty
//! ```
//!
//! A filter is parsed into a syntax tree, then either compiled to a
//! parameterised SQL condition (values are always bound parameters, never
//! spliced into the SQL text) or evaluated in memory over columns loaded
//! once, which makes a live count while typing take milliseconds on a
//! million profiles. Errors point at the offending token by column.
//!
//! Durations (`90d`, `12w`, `6m`, `1y`) on time fields compare the age:
//! `last_order < 90d` means "last order less than 90 days ago", measured
//! from the profiles' `as_of` (the unify step's "now").

use anyhow::{Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

const DAY_MS: i64 = 86_400_000;
/// Longest duration a filter may name, either way (about 2,700 years):
/// `now - duration` must stay a representable time.
const MAX_DURATION_DAYS: f64 = 1_000_000.0;
/// Deepest nesting of `(` and `not` (the parser is recursive: 100,000 `(`
/// would overflow its stack).
pub const MAX_DEPTH: usize = 64;
/// Most conditions in one filter (`a and b and ...` makes a tree as deep as
/// it is long, which evaluation walks recursively).
pub const MAX_CONDITIONS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Time,
    Flag,
}

/// (name in filters, profile column, kind).
pub const FIELDS: &[(&str, &str, Kind)] = &[
    ("name", "name", Kind::Text),
    ("email", "email", Kind::Text),
    ("phone", "phone", Kind::Text),
    ("country", "country", Kind::Text),
    ("city", "city", Kind::Text),
    ("lifecycle", "lifecycle_status", Kind::Text),
    ("favourite_category", "favourite_category", Kind::Text),
    ("rfm", "rfm_segment", Kind::Text),
    ("id", "customer360_id", Kind::Text),
    ("orders", "orders", Kind::Number),
    ("refunds", "refunds", Kind::Number),
    ("revenue", "revenue", Kind::Number),
    ("aov", "aov", Kind::Number),
    ("churn_risk", "churn_risk", Kind::Number),
    ("days_inactive", "days_since_last_activity", Kind::Number),
    ("sessions_30d", "sessions_30d", Kind::Number),
    ("sessions_90d", "sessions_90d", Kind::Number),
    ("page_views_30d", "page_views_30d", Kind::Number),
    ("page_views_90d", "page_views_90d", Kind::Number),
    ("key_events_30d", "key_events_30d", Kind::Number),
    ("key_events_90d", "key_events_90d", Kind::Number),
    ("rfm_recency", "rfm_recency", Kind::Number),
    ("rfm_frequency", "rfm_frequency", Kind::Number),
    ("rfm_monetary", "rfm_monetary", Kind::Number),
    ("crm_records", "crm_records", Kind::Number),
    ("web_events", "web_events", Kind::Number),
    ("last_order", "last_order_at", Kind::Time),
    ("first_order", "first_order_at", Kind::Time),
    ("last_activity", "last_activity_at", Kind::Time),
    ("first_seen", "first_seen", Kind::Time),
    ("last_seen", "last_seen", Kind::Time),
    ("anonymous", "anonymous", Kind::Flag),
];

/// A filter error: what is wrong and at which character (0-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {}: {message}", .at + 1)]
pub struct FilterError {
    pub at: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    /// A duration in days (90d, 12w = 84, 6m = 180, 1y = 365).
    Dur(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: String| FilterError { at, message: m };
    while i < chars.len() {
        let (at, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push((at, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((at, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((at, Tok::Comma));
                i += 1;
            }
            '"' | '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(err(
                                at,
                                "unterminated string: add the closing quote".into(),
                            ));
                        }
                        Some(&(_, q)) if q == c => break,
                        Some(&(_, '\\')) if chars.get(j + 1).is_some() => {
                            s.push(chars[j + 1].1);
                            j += 2;
                        }
                        Some(&(_, ch)) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push((at, Tok::Str(s)));
                i = j + 1;
            }
            '=' | '!' | '<' | '>' | '~' => {
                let next = chars.get(i + 1).map(|x| x.1);
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', Some('>')) => ("!=", 2),
                    ('<', _) => ("<", 1),
                    ('>', Some('=')) => (">=", 2),
                    ('>', _) => (">", 1),
                    ('~', _) => ("contains", 1),
                    _ => return Err(err(at, format!("unexpected {c:?}: did you mean != ?"))),
                };
                out.push((at, Tok::Op(op)));
                i += len;
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].1.is_ascii_alphanumeric() || matches!(chars[j].1, '.' | '-' | '_'))
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().map(|x| x.1).collect();
                let (num, unit) = match word.find(|ch: char| ch.is_ascii_alphabetic()) {
                    Some(k) if !word.contains('-') || k > 0 => (&word[..k], &word[k..]),
                    _ => (word.as_str(), ""),
                };
                // A date (2025-01-31) is a string value.
                if word.len() >= 8
                    && word[..4].chars().all(|d| d.is_ascii_digit())
                    && word.contains('-')
                {
                    out.push((at, Tok::Str(word.clone())));
                } else {
                    let n: f64 = num
                        .parse()
                        .map_err(|_| err(at, format!("{word:?} is not a number")))?;
                    if !n.is_finite() {
                        return Err(err(at, format!("{word:?} is too large a number")));
                    }
                    let tok = match unit {
                        "" => Tok::Num(n),
                        "d" => Tok::Dur(n),
                        "w" => Tok::Dur(n * 7.0),
                        "m" => Tok::Dur(n * 30.0),
                        "y" => Tok::Dur(n * 365.0),
                        u => {
                            return Err(err(
                                at,
                                format!("unknown unit {u:?} in {word:?}: use d, w, m or y (90d)"),
                            ));
                        }
                    };
                    if let Tok::Dur(d) = tok
                        && d.abs() > MAX_DURATION_DAYS
                    {
                        return Err(err(
                            at,
                            format!(
                                "duration {word:?} is out of range: at most {MAX_DURATION_DAYS} days (about 2,700 years) either way"
                            ),
                        ));
                    }
                    out.push((at, tok));
                }
                i = j;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].1.is_alphanumeric() || chars[j].1 == '_') {
                    j += 1;
                }
                let word: String = chars[i..j].iter().map(|x| x.1).collect();
                out.push((at, Tok::Word(word.to_lowercase())));
                i = j;
            }
            c => return Err(err(at, format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    /// Days.
    Dur(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// field index, operator, value.
    Cmp(usize, &'static str, Lit),
    In(usize, Vec<Lit>),
    Empty(usize, bool),
    /// A flag field alone: `anonymous`.
    Flag(usize),
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    /// Current nesting of `(` and `not` (at most [`MAX_DEPTH`]).
    depth: usize,
    /// Conditions parsed so far (at most [`MAX_CONDITIONS`]).
    conditions: usize,
}

fn suggest(word: &str) -> String {
    let best = FIELDS
        .iter()
        .map(|(n, _, _)| (strsim::levenshtein(word, n), *n))
        .min();
    match best {
        Some((d, n)) if d <= 3 => format!(" (did you mean {n}?)"),
        _ => format!(
            " (fields: {})",
            FIELDS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
        ),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.0)
    }
    fn err<T>(&self, m: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            at: self.at(),
            message: m.into(),
        })
    }
    fn word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.and()?;
        while self.word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.not()?;
        while self.word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    /// Enter one more level of `(` or `not`, at the current token.
    fn deeper(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!(
                "nested too deeply: at most {MAX_DEPTH} levels of ( and not"
            ));
        }
        self.depth += 1;
        Ok(())
    }
    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.word("not") {
            self.deeper()?;
            self.pos += 1;
            let e = Expr::Not(Box::new(self.not()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.atom()
    }
    fn value(&mut self, kind: Kind, field: &str) -> Result<Lit, FilterError> {
        let at = self.at();
        let lit = match self.peek().cloned() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Num(n)) => Lit::Num(n),
            Some(Tok::Dur(d)) => Lit::Dur(d),
            Some(Tok::Word(w)) if w == "true" || w == "false" => Lit::Num(f64::from(w == "true")),
            Some(Tok::Word(w)) => {
                return self.err(format!(
                    "{w:?} is not a value: quote text (\"{w}\") or write a number"
                ));
            }
            _ => return self.err("a value is missing here"),
        };
        let ok = matches!(
            (&lit, kind),
            (Lit::Str(_), Kind::Text | Kind::Time)
                | (Lit::Num(_), Kind::Number | Kind::Flag)
                | (Lit::Dur(_), Kind::Time)
        );
        if let (Lit::Str(text), Kind::Time) = (&lit, kind)
            && !is_date(text)
        {
            return Err(FilterError {
                at,
                message: format!(
                    "{text:?} is not a date: {field} takes a date like \"2025-01-31\" (or \"2025-01-31T08:00:00Z\") or a duration like 90d"
                ),
            });
        }
        if !ok {
            let want = match kind {
                Kind::Text => "quoted text",
                Kind::Number => "a number",
                Kind::Time => "a duration like 90d or a date like \"2025-01-31\"",
                Kind::Flag => "true or false",
            };
            return Err(FilterError {
                at,
                message: format!("{field} takes {want}"),
            });
        }
        self.pos += 1;
        Ok(lit)
    }
    fn atom(&mut self) -> Result<Expr, FilterError> {
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.deeper()?;
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("missing )");
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Word(w)) => {
                let Some(fi) = FIELDS.iter().position(|f| f.0 == w) else {
                    return self.err(format!("unknown field {w:?}{}", suggest(&w)));
                };
                if self.conditions >= MAX_CONDITIONS {
                    return self.err(format!(
                        "too many conditions: at most {MAX_CONDITIONS} in one filter"
                    ));
                }
                self.conditions += 1;
                let (name, _, kind) = FIELDS[fi];
                self.pos += 1;
                if kind == Kind::Flag
                    && !matches!(self.peek(), Some(Tok::Op(_)))
                    && !self.word("is")
                {
                    return Ok(Expr::Flag(fi));
                }
                if self.word("is") {
                    self.pos += 1;
                    let negated = self.word("not");
                    if negated {
                        self.pos += 1;
                    }
                    if !self.word("empty") {
                        return self.err("write `is empty` or `is not empty`");
                    }
                    self.pos += 1;
                    return Ok(Expr::Empty(fi, !negated));
                }
                if self.word("in") {
                    self.pos += 1;
                    if self.peek() != Some(&Tok::LParen) {
                        return self.err("`in` takes a list: in (\"a\", \"b\")");
                    }
                    self.pos += 1;
                    let mut list = vec![self.value(kind, name)?];
                    while self.peek() == Some(&Tok::Comma) {
                        self.pos += 1;
                        list.push(self.value(kind, name)?);
                    }
                    if self.peek() != Some(&Tok::RParen) {
                        return self.err("missing ) after the list");
                    }
                    self.pos += 1;
                    return Ok(Expr::In(fi, list));
                }
                let op = match self.peek() {
                    Some(Tok::Op(op)) => *op,
                    Some(Tok::Word(w)) if w == "contains" => "contains",
                    _ => {
                        return self.err(format!(
                            "after {name}, write an operator (= != < <= > >= contains in is)"
                        ));
                    }
                };
                if op == "contains" && kind != Kind::Text {
                    return self.err(format!("contains works on text; {name} is not text"));
                }
                self.pos += 1;
                let lit = self.value(kind, name)?;
                Ok(Expr::Cmp(fi, op, lit))
            }
            Some(_) => self.err("expected a field name or ("),
            None => self.err("the filter ends too soon"),
        }
    }
}

/// Parse a filter.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(FilterError {
            at: 0,
            message: "empty filter".into(),
        });
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.len(),
        depth: 0,
        conditions: 0,
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return p.err("unexpected text here: join conditions with and / or");
    }
    Ok(e)
}

/// The moment ages are measured from: the profiles' `as_of`.
fn as_of_ms(conn: &Connection) -> Result<i64> {
    let t: Option<String> = conn
        .query_row("SELECT as_of FROM customer360_profiles LIMIT 1", [], |r| {
            r.get(0)
        })
        .ok();
    Ok(t.as_deref()
        .and_then(crate::pipeline::timeparse::iso_ms)
        .unwrap_or(0))
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// The moment `days` before `now_ms`, saturating (the parser keeps
/// durations within [`MAX_DURATION_DAYS`]; a hand-built [`Lit::Dur`] may
/// not be).
fn ago(now_ms: i64, days: f64) -> i64 {
    // `as` saturates a float to i64 (NaN to 0).
    now_ms.saturating_sub((days * DAY_MS as f64) as i64)
}

/// A parameterised SQL condition over `customer360_profiles`.
pub fn to_sql(e: &Expr, now_ms: i64, args: &mut Vec<Value>) -> String {
    let bind = |args: &mut Vec<Value>, v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    let lit = |args: &mut Vec<Value>, kind: Kind, l: &Lit| -> String {
        match l {
            Lit::Str(s) if kind == Kind::Text => bind(args, Value::Text(s.clone())),
            Lit::Str(s) => bind(args, Value::Text(s.clone())),
            Lit::Num(n) => bind(args, Value::Real(*n)),
            Lit::Dur(d) => bind(args, Value::Text(iso(ago(now_ms, *d)))),
        }
    };
    match e {
        Expr::And(a, b) => format!(
            "({} AND {})",
            to_sql(a, now_ms, args),
            to_sql(b, now_ms, args)
        ),
        Expr::Or(a, b) => format!(
            "({} OR {})",
            to_sql(a, now_ms, args),
            to_sql(b, now_ms, args)
        ),
        Expr::Not(a) => format!("NOT coalesce({}, 0)", to_sql(a, now_ms, args)),
        Expr::Flag(fi) => format!("{} = 1", FIELDS[*fi].1),
        Expr::Empty(fi, empty) => {
            let c = FIELDS[*fi].1;
            if *empty {
                format!("({c} IS NULL OR {c} = '')")
            } else {
                format!("({c} IS NOT NULL AND {c} <> '')")
            }
        }
        Expr::In(fi, list) => {
            let (_, col, kind) = FIELDS[*fi];
            let items: Vec<String> = list.iter().map(|l| lit(args, kind, l)).collect();
            if kind == Kind::Text {
                format!(
                    "lower({col}) IN ({})",
                    items
                        .iter()
                        .map(|i| format!("lower({i})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!("{col} IN ({})", items.join(", "))
            }
        }
        Expr::Cmp(fi, op, l) => {
            let (_, col, kind) = FIELDS[*fi];
            if *op == "contains" {
                let Lit::Str(s) = l else {
                    unreachable!("checked by the parser")
                };
                let p = bind(
                    args,
                    Value::Text(format!("%{}%", s.replace('%', "\\%").replace('_', "\\_"))),
                );
                return format!("{col} LIKE {p} ESCAPE '\\'");
            }
            // An age: `last_order < 90d` = less than 90 days ago = after
            // now - 90d; the comparison turns around.
            let op = match (l, *op) {
                (Lit::Dur(_), "<") => ">",
                (Lit::Dur(_), "<=") => ">=",
                (Lit::Dur(_), ">") => "<",
                (Lit::Dur(_), ">=") => "<=",
                (_, o) => o,
            };
            let v = lit(args, kind, l);
            if kind == Kind::Text && matches!(op, "=" | "!=") {
                format!("lower({col}) {op} lower({v})")
            } else {
                format!("{col} {op} {v}")
            }
        }
    }
}

/// Columns of the profiles loaded into memory for fast counts.
#[derive(Default)]
pub struct Columns {
    ids: usize,
    text: HashMap<usize, Vec<Option<Box<str>>>>,
    num: HashMap<usize, Vec<Option<f64>>>,
    now_ms: i64,
}

impl Columns {
    pub fn new(conn: &Connection) -> Result<Columns> {
        Ok(Columns {
            ids: conn.query_row("SELECT count(*) FROM customer360_profiles", [], |r| {
                r.get::<_, i64>(0)
            })? as usize,
            now_ms: as_of_ms(conn)?,
            ..Default::default()
        })
    }

    pub fn len(&self) -> usize {
        self.ids
    }

    pub fn is_empty(&self) -> bool {
        self.ids == 0
    }

    /// The fields `e` reads that are not loaded yet.
    pub fn missing(&self, e: &Expr) -> Vec<usize> {
        let mut fields = Vec::new();
        collect_fields(e, &mut fields);
        fields.sort_unstable();
        fields.dedup();
        fields.retain(|fi| !self.text.contains_key(fi) && !self.num.contains_key(fi));
        fields
    }

    /// Add the columns another load read. When that load saw other
    /// profiles (another count or `as_of`: a run happened in between), the
    /// columns held so far describe rows that no longer line up, so they
    /// are dropped rather than mixed with the new ones.
    pub fn merge(&mut self, other: Columns) {
        if (other.ids, other.now_ms) != (self.ids, self.now_ms) {
            *self = other;
            return;
        }
        self.text.extend(other.text);
        self.num.extend(other.num);
    }

    /// Every column `e` reads is loaded and has one value per profile.
    fn check(&self, e: &Expr) -> Result<()> {
        let mut fields = Vec::new();
        collect_fields(e, &mut fields);
        for fi in fields {
            let len = match FIELDS[fi].2 {
                Kind::Text => self.text.get(&fi).map(Vec::len),
                _ => self.num.get(&fi).map(Vec::len),
            };
            match len {
                None => anyhow::bail!("segment count: column {} is not loaded", FIELDS[fi].1),
                Some(n) if n != self.ids => anyhow::bail!(
                    "segment count: column {} has {n} values for {} profiles (the profiles changed while it was read; count again)",
                    FIELDS[fi].1,
                    self.ids
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Load the columns `e` reads (each once, in primary-key order).
    pub fn load_for(&mut self, conn: &Connection, e: &Expr) -> Result<()> {
        let fields = self.missing(e);
        self.load_fields(conn, &fields)
    }

    /// Load these fields' columns (a worker thread does this for the
    /// screen, so typing never waits on a column read).
    pub fn load_fields(&mut self, conn: &Connection, fields: &[usize]) -> Result<()> {
        for &fi in fields {
            let (_, col, kind) = FIELDS[fi];
            match kind {
                Kind::Text if !self.text.contains_key(&fi) => {
                    let mut stmt = conn.prepare(&format!(
                        "SELECT lower({col}) FROM customer360_profiles ORDER BY customer360_id"
                    ))?;
                    let v: Vec<Option<Box<str>>> = stmt
                        .query_map([], |r| {
                            Ok(r.get::<_, Option<String>>(0)?.map(String::into_boxed_str))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    self.expect_rows(col, v.len())?;
                    self.text.insert(fi, v);
                }
                Kind::Number | Kind::Flag | Kind::Time if !self.num.contains_key(&fi) => {
                    let mut stmt = conn.prepare(&format!(
                        "SELECT {col} FROM customer360_profiles ORDER BY customer360_id"
                    ))?;
                    let v: Vec<Option<f64>> = stmt
                        .query_map([], |r| {
                            Ok(match r.get_ref(0)? {
                                rusqlite::types::ValueRef::Integer(i) => Some(i as f64),
                                rusqlite::types::ValueRef::Real(x) => Some(x),
                                rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                                    .ok()
                                    .and_then(crate::pipeline::timeparse::iso_ms)
                                    .map(|ms| ms as f64),
                                _ => None,
                            })
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    self.expect_rows(col, v.len())?;
                    self.num.insert(fi, v);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A column read must have one value per profile counted at
    /// [`Columns::new`]; otherwise the profiles changed in between.
    fn expect_rows(&self, col: &str, rows: usize) -> Result<()> {
        if rows != self.ids {
            anyhow::bail!(
                "segment columns: {col} has {rows} rows but {} profiles were counted (the profiles changed while reading; count again)",
                self.ids
            );
        }
        Ok(())
    }

    /// Profiles matching `e`, or an error when a column it reads is not
    /// loaded or does not have one value per profile.
    pub fn try_count(&self, e: &Expr) -> Result<u64> {
        self.check(e)?;
        Ok(self.count(e))
    }

    /// Profiles matching `e` (its columns must be loaded: see
    /// [`Columns::try_count`]): the filter is bound to its columns once,
    /// then rows are tested in parallel. Never panics: a column not loaded,
    /// or a row beyond a column's end, reads as a missing value.
    pub fn count(&self, e: &Expr) -> u64 {
        use rayon::prelude::*;
        let b = self.bind(e);
        (0..self.ids)
            .into_par_iter()
            .with_min_len(16_384)
            .filter(|&i| b.eval(i) == Some(true))
            .count() as u64
    }

    /// A loaded text column (empty when not loaded: every row unknown).
    fn text_col(&self, fi: usize) -> &[Option<Box<str>>] {
        self.text.get(&fi).map_or(&[], Vec::as_slice)
    }

    /// A loaded number or time column (empty when not loaded).
    fn num_col(&self, fi: usize) -> &[Option<f64>] {
        self.num.get(&fi).map_or(&[], Vec::as_slice)
    }

    fn bind<'a>(&'a self, e: &Expr) -> Bound<'a> {
        match e {
            Expr::And(a, b) => Bound::And(Box::new(self.bind(a)), Box::new(self.bind(b))),
            Expr::Or(a, b) => Bound::Or(Box::new(self.bind(a)), Box::new(self.bind(b))),
            Expr::Not(a) => Bound::Not(Box::new(self.bind(a))),
            Expr::Flag(fi) => Bound::Flag(self.num_col(*fi)),
            Expr::Empty(fi, empty) => match FIELDS[*fi].2 {
                Kind::Text => Bound::EmptyText(self.text_col(*fi), *empty),
                _ => Bound::EmptyNum(self.num_col(*fi), *empty),
            },
            Expr::In(fi, list) => match FIELDS[*fi].2 {
                Kind::Text => Bound::InText(
                    self.text_col(*fi),
                    list.iter()
                        .filter_map(|l| match l {
                            Lit::Str(s) => Some(s.to_lowercase()),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Bound::InNum(
                    self.num_col(*fi),
                    list.iter()
                        .filter_map(|l| match l {
                            Lit::Num(n) => Some(*n),
                            _ => None,
                        })
                        .collect(),
                ),
            },
            Expr::Cmp(fi, op, l) => match (FIELDS[*fi].2, l) {
                (Kind::Text, Lit::Str(s)) => Bound::Text(self.text_col(*fi), op, s.to_lowercase()),
                (Kind::Text, _) => Bound::Never,
                (_, Lit::Num(n)) => Bound::Num(self.num_col(*fi), op, *n),
                // An age turns the comparison around (see to_sql).
                (_, Lit::Dur(d)) => Bound::Num(
                    self.num_col(*fi),
                    match *op {
                        "<" => ">",
                        "<=" => ">=",
                        ">" => "<",
                        ">=" => "<=",
                        o => o,
                    },
                    ago(self.now_ms, *d) as f64,
                ),
                (_, Lit::Str(s)) => match crate::pipeline::timeparse::iso_ms(&date_time(s)) {
                    Some(ms) => Bound::Num(self.num_col(*fi), op, ms as f64),
                    None => Bound::Never,
                },
            },
        }
    }
}

/// A filter bound to its loaded columns.
enum Bound<'a> {
    And(Box<Bound<'a>>, Box<Bound<'a>>),
    Or(Box<Bound<'a>>, Box<Bound<'a>>),
    Not(Box<Bound<'a>>),
    Flag(&'a [Option<f64>]),
    EmptyText(&'a [Option<Box<str>>], bool),
    EmptyNum(&'a [Option<f64>], bool),
    InText(&'a [Option<Box<str>>], Vec<String>),
    InNum(&'a [Option<f64>], Vec<f64>),
    Text(&'a [Option<Box<str>>], &'static str, String),
    Num(&'a [Option<f64>], &'static str, f64),
    /// A comparison no value can satisfy (unknown).
    Never,
}

impl Bound<'_> {
    /// SQL three-valued logic: None = unknown (a missing value).
    fn eval(&self, i: usize) -> Option<bool> {
        match self {
            Bound::And(a, b) => match (a.eval(i), b.eval(i)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Bound::Or(a, b) => match (a.eval(i), b.eval(i)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Bound::Not(a) => Some(!a.eval(i).unwrap_or(false)),
            Bound::Flag(col) => Some(col.get(i) == Some(&Some(1.0))),
            Bound::EmptyText(col, empty) => Some(
                col.get(i)
                    .and_then(|v| v.as_deref())
                    .is_none_or(str::is_empty)
                    == *empty,
            ),
            Bound::EmptyNum(col, empty) => Some(col.get(i).copied().flatten().is_none() == *empty),
            Bound::InText(col, list) => {
                let v = col.get(i)?.as_deref()?;
                Some(list.iter().any(|s| s == v))
            }
            Bound::InNum(col, list) => {
                let v = (*col.get(i)?)?;
                Some(list.contains(&v))
            }
            Bound::Text(col, op, s) => {
                let v = col.get(i)?.as_deref()?;
                Some(match *op {
                    "=" => v == s,
                    "!=" => v != s,
                    "<" => v < s.as_str(),
                    "<=" => v <= s.as_str(),
                    ">" => v > s.as_str(),
                    ">=" => v >= s.as_str(),
                    _ => v.contains(s.as_str()),
                })
            }
            Bound::Num(col, op, x) => {
                let v = (*col.get(i)?)?;
                Some(match *op {
                    "=" => v == *x,
                    "!=" => v != *x,
                    "<" => v < *x,
                    "<=" => v <= *x,
                    ">" => v > *x,
                    _ => v >= *x,
                })
            }
            Bound::Never => None,
        }
    }
}

/// A real calendar date ("2025-01-31"), or an RFC 3339 time.
fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// A date as a timestamp ("2025-01-31" -> "2025-01-31T00:00:00.000Z").
fn date_time(s: &str) -> String {
    if s.len() == 10 {
        format!("{s}T00:00:00.000Z")
    } else {
        s.to_string()
    }
}

pub fn collect_fields(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Expr::Not(a) => collect_fields(a, out),
        Expr::Cmp(f, ..) | Expr::In(f, _) | Expr::Empty(f, _) | Expr::Flag(f) => out.push(*f),
    }
}

/// Count profiles matching a filter in SQL (the reference the in-memory
/// count is tested against, and what exports select).
pub fn count_sql(conn: &Connection, e: &Expr) -> Result<u64> {
    let mut args = Vec::new();
    let cond = to_sql(e, as_of_ms(conn)?, &mut args);
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM customer360_profiles WHERE {cond}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

/// The SQL condition and its parameters for a filter text.
pub fn condition(conn: &Connection, filter: &str) -> Result<(String, Vec<Value>)> {
    let e = parse(filter).map_err(|e| anyhow::anyhow!("filter {filter:?}: {e}"))?;
    let mut args = Vec::new();
    let cond = to_sql(&e, as_of_ms(conn)?, &mut args);
    Ok((cond, args))
}

/// The SQL condition of a filter text, its parameters appended to `args`
/// (numbered after the ones already there).
pub fn condition_into(conn: &Connection, filter: &str, args: &mut Vec<Value>) -> Result<String> {
    let e = parse(filter).map_err(|e| anyhow::anyhow!("filter {filter:?}: {e}"))?;
    Ok(to_sql(&e, as_of_ms(conn)?, args))
}

/// A saved segment (rules/segments.toml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub name: String,
    pub filter: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SegmentsFile {
    #[serde(default)]
    segments: Vec<Segment>,
}

/// The segments saved in `rules/segments.toml` (none when it is missing);
/// a bad filter names the file and the segment.
pub fn load(rules_dir: &Path) -> Result<Vec<Segment>> {
    let path = rules_dir.join("segments.toml");
    // Only a missing file means "no segments": an unreadable one is an
    // error, or the next save would overwrite it with just the new segment.
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let file: SegmentsFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |s| crate::workspace::line_of(&text, s.start));
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim_end())
    })?;
    for s in &file.segments {
        parse(&s.filter).map_err(|e| {
            let line = text
                .find(&s.filter)
                .map_or(1, |o| crate::workspace::line_of(&text, o));
            anyhow::anyhow!("{}:{line}: segment {:?}: {e}", path.display(), s.name)
        })?;
    }
    Ok(file.segments)
}

/// Save (add or replace by name) a segment.
pub fn save(rules_dir: &Path, segment: Segment) -> Result<()> {
    parse(&segment.filter).map_err(|e| anyhow::anyhow!("filter {:?}: {e}", segment.filter))?;
    let mut all = load(rules_dir)?;
    match all.iter_mut().find(|s| s.name == segment.name) {
        Some(s) => *s = segment,
        None => all.push(segment),
    }
    let body = toml::to_string(&SegmentsFile { segments: all })?;
    let path = rules_dir.join("segments.toml");
    std::fs::write(
        &path,
        format!("# Saved segments: filters over profile fields (see README, Segments).\n\n{body}"),
    )
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_date_that_is_not_a_date_is_an_error_at_its_place() {
        let e = parse(r#"first_order > "2025-13-01""#).unwrap_err();
        assert!(e.message.contains("is not a date"), "{}", e.message);
        assert_eq!(e.at, 14, "the column of the quoted date");
        assert!(parse(r#"first_order > "2025-12-01""#).is_ok());
        assert!(parse(r#"first_order > "2025-02-30""#).is_err());
        assert!(parse(r#"last_order < "2025-03-01T08:00:00Z""#).is_ok());
    }

    use super::*;

    fn sql(text: &str) -> (String, Vec<Value>) {
        let mut args = Vec::new();
        let s = to_sql(&parse(text).unwrap(), 1_000 * DAY_MS, &mut args);
        (s, args)
    }

    #[test]
    fn filters_compile_to_parameterised_sql() {
        let (s, args) = sql(r#"country = "DE" and orders >= 3 and last_order < 90d"#);
        assert_eq!(
            s,
            "((lower(country) = lower(?1) AND orders >= ?2) AND last_order_at > ?3)"
        );
        assert_eq!(args[0], Value::Text("DE".into()));
        assert_eq!(args[1], Value::Real(3.0));
        assert_eq!(args[2], Value::Text(iso(910 * DAY_MS)));
        let (s, _) = sql(r#"lifecycle in ("lapsed", 'churned') or not anonymous"#);
        assert!(
            s.contains("lower(lifecycle_status) IN (lower(?1), lower(?2))"),
            "{s}"
        );
        assert!(s.contains("NOT coalesce(anonymous = 1, 0)"), "{s}");
        let (s, args) = sql(r#"email contains "50%_off" and city is not empty"#);
        assert!(s.contains("email LIKE ?1 ESCAPE"), "{s}");
        assert_eq!(args[0], Value::Text("%50\\%\\_off%".into()));
        assert!(s.contains("city IS NOT NULL AND city <> ''"), "{s}");
    }

    #[test]
    fn injection_stays_a_value() {
        let (s, args) = sql(r#"name = "x' OR 1=1; DROP TABLE customer360_profiles; --""#);
        assert_eq!(s, "lower(name) = lower(?1)");
        assert_eq!(
            args,
            vec![Value::Text(
                "x' OR 1=1; DROP TABLE customer360_profiles; --".into()
            )]
        );
        // Field names come from a fixed list: anything else is an error.
        let e = parse("name; DROP TABLE x = 1").unwrap_err();
        assert_eq!(e.at, 4, "{e}");
        let e = parse("customer360_id = 'x'").unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        let cases = [
            ("contry = \"DE\"", 0, "did you mean country"),
            ("country = DE", 10, "quote text"),
            ("orders >= \"3\"", 10, "orders takes a number"),
            ("orders >= 3 and", 15, "ends too soon"),
            ("(orders > 1", 11, "missing )"),
            ("orders 3", 7, "write an operator"),
            ("last_order < 90x", 13, "unknown unit"),
            ("name = \"ann", 7, "unterminated"),
            ("orders > 1 country = \"DE\"", 11, "join conditions"),
            ("revenue contains \"1\"", 8, "contains works on text"),
        ];
        for (text, at, msg) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.at, at, "{text}: {e}");
            assert!(e.message.contains(msg), "{text}: {e}");
        }
        assert_eq!(
            parse("contry = 1").unwrap_err().to_string(),
            "column 1: unknown field \"contry\" (did you mean country?)"
        );
    }

    #[test]
    fn in_memory_counts_match_sql() {
        let conn = crate::store::open_in_memory().unwrap();
        let rows = [
            (
                "C1",
                "DE",
                "lapsed",
                3,
                120.0,
                Some("2025-06-01T00:00:00.000Z"),
                0,
            ),
            (
                "C2",
                "de",
                "active",
                5,
                80.0,
                Some("2025-01-01T00:00:00.000Z"),
                0,
            ),
            ("C3", "FR", "active", 0, 0.0, None, 0),
            (
                "C4",
                "",
                "churned",
                1,
                10.0,
                Some("2025-06-20T00:00:00.000Z"),
                1,
            ),
        ];
        for (id, c, l, o, r, last, anon) in rows {
            conn.execute(
                "INSERT INTO customer360_profiles (customer360_id, anonymous, country, lifecycle_status,
                    orders, revenue, last_order_at, as_of, row_hash, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '2025-07-01T00:00:00.000Z', 0, 'x')",
                rusqlite::params![id, anon, c, l, o, r, last],
            )
            .unwrap();
        }
        let mut cols = Columns::new(&conn).unwrap();
        for (text, want) in [
            (r#"country = "DE""#, 2),
            (r#"country = "DE" and orders >= 3 and last_order < 90d"#, 1),
            (r#"last_order > 90d"#, 1),
            (r#"last_order < "2025-03-01""#, 1),
            (r#"lifecycle in ("lapsed", "churned")"#, 2),
            (r#"not anonymous and revenue > 50"#, 2),
            (r#"country is empty"#, 1),
            (r#"country is not empty or anonymous"#, 4),
            (r#"not (orders > 0)"#, 1),
            (r#"country contains "e""#, 2),
        ] {
            let e = parse(text).unwrap();
            cols.load_for(&conn, &e).unwrap();
            assert_eq!(cols.count(&e), want, "{text} in memory");
            assert_eq!(count_sql(&conn, &e).unwrap(), want, "{text} in SQL");
        }
    }

    #[test]
    fn huge_duration_is_a_parse_error_at_its_token() {
        for (text, at) in [
            ("last_order < -99999999999999999999d", 13),
            ("orders > 1 and last_order >= 99999999999999999999y", 29),
            ("last_order < 1000001d", 13),
            ("last_order < 2740y", 13),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.at, at, "{text}: {e}");
            assert!(e.message.contains("out of range"), "{text}: {e}");
        }
        // Within the range: a time ~2,700 years ago either way, no overflow.
        let (s, args) = sql("last_order < -1000000d or last_order > 1000000d");
        assert_eq!(s, "(last_order_at > ?1 OR last_order_at < ?2)");
        assert_eq!(args[0], Value::Text(iso(1_001_000 * DAY_MS)));
        assert_eq!(args[1], Value::Text(iso(-999_000 * DAY_MS)));
        // A number too large for a float is an error, not infinity.
        let e = parse(&format!("orders > 1{}", "0".repeat(400))).unwrap_err();
        assert_eq!(e.at, 9, "{e}");
        assert!(e.message.contains("too large a number"), "{e}");
        // A hand-built duration beyond the range saturates.
        assert_eq!(ago(0, -1e30), i64::MAX);
        assert_eq!(ago(0, 1e30), -i64::MAX);
        assert_eq!(ago(i64::MIN + 5, 1.0), i64::MIN);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let parens = format!("{}orders > 1{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = parse(&parens).unwrap_err();
        assert_eq!(e.at, MAX_DEPTH, "{e}");
        assert!(e.message.contains("nested too deeply"), "{e}");
        let nots = format!("{}anonymous", "not ".repeat(100_000));
        let e = parse(&nots).unwrap_err();
        assert_eq!(e.at, 4 * MAX_DEPTH, "{e}");
        assert!(e.message.contains("nested too deeply"), "{e}");
        // Exactly the limit parses.
        let ok = format!(
            "{}orders > 1{}",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert!(parse(&ok).is_ok());
        assert!(parse(&format!("{}anonymous", "not ".repeat(MAX_DEPTH))).is_ok());
        // Depth is nesting, not length: 64 separate groups are fine.
        let groups = vec!["(orders > 1)"; 100].join(" and ");
        assert!(parse(&groups).is_ok());
        // A long chain of conditions is capped too (each `and` deepens the tree).
        let chain = vec!["orders > 1"; MAX_CONDITIONS + 1].join(" and ");
        let e = parse(&chain).unwrap_err();
        assert_eq!(e.at, MAX_CONDITIONS * "orders > 1 and ".len(), "{e}");
        assert!(e.message.contains("too many conditions"), "{e}");
    }

    #[test]
    fn the_longest_allowed_chain_counts_in_memory_and_in_sql() {
        let conn = crate::store::open_in_memory().unwrap();
        for (id, o) in [("C1", 5), ("C2", 0)] {
            conn.execute(
                "INSERT INTO customer360_profiles (customer360_id, anonymous, orders, as_of, row_hash, updated_at)
                 VALUES (?1, 0, ?2, '2025-07-01T00:00:00.000Z', 0, 'x')",
                rusqlite::params![id, o],
            )
            .unwrap();
        }
        let chain = vec!["orders > 1"; MAX_CONDITIONS].join(" and ");
        let e = parse(&chain).unwrap();
        let mut cols = Columns::new(&conn).unwrap();
        cols.load_for(&conn, &e).unwrap();
        assert_eq!(cols.try_count(&e).unwrap(), 1);
        assert_eq!(count_sql(&conn, &e).unwrap(), 1);
    }

    #[test]
    fn an_unreadable_segments_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty(), "no file: no segments");
        // A segments.toml that cannot be read (here: a folder).
        std::fs::create_dir(dir.path().join("segments.toml")).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("cannot read "), "{err}");
        let seg = Segment {
            name: "big".into(),
            filter: "orders > 1".into(),
            description: String::new(),
        };
        assert!(
            save(dir.path(), seg).is_err(),
            "never overwritten by a save"
        );
        assert!(dir.path().join("segments.toml").is_dir());
    }

    #[test]
    fn mixed_length_columns_are_an_error_not_a_panic() {
        let conn = crate::store::open_in_memory().unwrap();
        let add = |id: &str, country: &str, orders: i64| {
            conn.execute(
                "INSERT INTO customer360_profiles (customer360_id, anonymous, country, orders, as_of, row_hash, updated_at)
                 VALUES (?1, 0, ?2, ?3, '2025-07-01T00:00:00.000Z', 0, 'x')",
                rusqlite::params![id, country, orders],
            )
            .unwrap();
        };
        add("C1", "DE", 3);
        add("C2", "FR", 1);
        let country = parse(r#"country = "DE""#).unwrap();
        let both = parse(r#"country = "DE" and orders > 2"#).unwrap();
        let mut cols = Columns::new(&conn).unwrap();
        cols.load_for(&conn, &country).unwrap();
        // A run adds profiles; the next column is read by a new load.
        add("C0", "DE", 9);
        let field = |n: &str| FIELDS.iter().position(|f| f.0 == n).unwrap();
        let mut later = Columns::new(&conn).unwrap();
        later.load_fields(&conn, &[field("orders")]).unwrap();
        // Before: country had 2 values, orders 3, and row 2 indexed past
        // the end of country. Now the stale column is dropped...
        cols.merge(later);
        assert_eq!(cols.len(), 3);
        assert_eq!(cols.missing(&both), vec![field("country")]);
        let e = cols.try_count(&both).unwrap_err().to_string();
        assert_eq!(e, "segment count: column country is not loaded");
        cols.load_for(&conn, &both).unwrap();
        assert_eq!(cols.try_count(&both).unwrap(), 2);
        // ...and a column of the wrong length is refused when read...
        let mut stale = Columns::new(&conn).unwrap();
        stale.ids = 5;
        let e = stale.load_for(&conn, &country).unwrap_err().to_string();
        assert_eq!(
            e,
            "segment columns: country has 3 rows but 5 profiles were counted (the profiles changed while reading; count again)"
        );
        // ...or counted with try_count; count itself reads past the end as
        // missing values instead of panicking.
        let mut short = Columns::new(&conn).unwrap();
        short.load_for(&conn, &both).unwrap();
        short.ids = 5;
        let e = short.try_count(&both).unwrap_err().to_string();
        assert!(
            e.contains("column country has 3 values for 5 profiles"),
            "{e}"
        );
        assert_eq!(short.count(&both), 2);
        assert_eq!(short.count(&parse("country is empty").unwrap()), 2);
        assert_eq!(short.count(&parse("not (orders > 2)").unwrap()), 3);
        // A column never loaded: unknown everywhere, no panic.
        assert_eq!(short.count(&parse("revenue > 0").unwrap()), 0);
    }

    #[test]
    fn segments_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        save(
            dir.path(),
            Segment {
                name: "de buyers".into(),
                filter: r#"country = "DE" and orders >= 3"#.into(),
                description: "".into(),
            },
        )
        .unwrap();
        save(
            dir.path(),
            Segment {
                name: "de buyers".into(),
                filter: r#"country = "DE" and orders >= 5"#.into(),
                description: "loyal".into(),
            },
        )
        .unwrap();
        let all = load(dir.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].filter.ends_with(">= 5"));
        assert!(
            save(
                dir.path(),
                Segment {
                    name: "bad".into(),
                    filter: "orders >".into(),
                    description: "".into()
                }
            )
            .is_err()
        );
        std::fs::write(
            dir.path().join("segments.toml"),
            "[[segments]]\nname = \"x\"\nfilter = \"contry = 1\"\n",
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("segments.toml:3") && e.contains("did you mean country"),
            "{e}"
        );
    }
}
