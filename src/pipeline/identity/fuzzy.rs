//! Fuzzy matching: blocking, field comparisons with levels, Fellegi–Sunter
//! weights estimated without labels, term-frequency adjustment and bands.
//!
//! The model, as in Splink's reading of Fellegi and Sunter:
//!
//! - **u** (how often two *different* people agree at a level) is measured on
//!   random record pairs, which are almost all non-matches;
//! - **m** (how often two records of the *same* person agree at a level) is
//!   estimated by expectation–maximisation with u held fixed, once per
//!   blocking rule on the pairs that rule produced, leaving out the fields
//!   the rule blocked on (those pairs agree on them by construction);
//! - the **prior** λ (the chance that two random records match) is the mean
//!   posterior over all record pairs, pairs outside the candidates counting
//!   as non-matches;
//! - a pair's weight is Σ log2(m/u) over its comparisons; an exact agreement
//!   on a `tf` field uses the value's own frequency instead of u, so a shared
//!   "Zbigniew" says more than a shared "John".
//!
//! Comparisons that share a `group` (address, landline, last name: evidence
//! that travels together in a household) are scored as **one** comparison
//! whose level is how many of them agree and differ, so a household is not
//! counted as three independent proofs.
//!
//! Nothing here touches SQLite: the resolve step feeds records in with
//! [`Columns::push`] and writes what [`score`] returns.

use super::deterministic::{RawCompare, RawFuzzy};
use crate::pipeline::schema::System;
use crate::workspace::{ConfigError, line_of};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use unicode_normalization::UnicodeNormalization;

/// Level of a comparison where either side is empty: no evidence either way.
pub const NULL: u8 = u8::MAX;
/// Floor for m and u so that no weight is infinite.
const FLOOR: f64 = 1e-6;
/// Least share of true matches given to any level of a comparison: records
/// of one person do sometimes differ everywhere (moved, married, typed
/// badly), and one comparison must not veto all the others with an
/// estimate of zero (at most log2(1e-3) = -10 bits).
const M_FLOOR: f64 = 1e-3;

/// How two values of a field are compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// exact / different.
    Exact,
    /// First names: exact / nickname or initial / Jaro-Winkler bands / different.
    Name(Vec<f64>),
    /// exact / Jaro-Winkler ≥ each threshold / different.
    JaroWinkler(Vec<f64>),
    /// exact / Levenshtein distance ≤ each threshold / different.
    Levenshtein(Vec<usize>),
    /// Dates (YYYY-MM-DD): exact / day-month swapped / year ±1 or one digit
    /// off / different.
    Date,
    /// Digits only: exact / one or two digits differ / different.
    Phone,
    /// exact / same mailbox name at another domain / different. (No
    /// "nearly the same" level: marco.mitchell42@ and marco.mitchell@ are
    /// as often two namesakes as one person, and the names already count.)
    Email,
}

impl Method {
    /// Human labels of the levels, strongest first; the last is "different".
    pub fn labels(&self) -> Vec<String> {
        let mut out = vec!["exact".to_string()];
        match self {
            Method::Exact => {}
            Method::Name(ts) => {
                out.push("nickname or initial".into());
                out.extend(ts.iter().map(|t| format!("jaro-winkler ≥ {t}")));
            }
            Method::JaroWinkler(ts) => out.extend(ts.iter().map(|t| format!("jaro-winkler ≥ {t}"))),
            Method::Levenshtein(ks) => {
                out.extend(ks.iter().map(|k| format!("edit distance ≤ {k}")))
            }
            Method::Date => {
                out.push("day and month swapped".into());
                out.push("year ±1 or one digit off".into());
            }
            Method::Phone => out.push("one or two digits differ".into()),
            Method::Email => out.push("same mailbox name".into()),
        }
        out.push("different".into());
        out
    }

    /// Number of levels (without building the labels: called per pair).
    pub fn levels(&self) -> usize {
        2 + match self {
            Method::Exact => 0,
            Method::Name(ts) => 1 + ts.len(),
            Method::JaroWinkler(ts) => ts.len(),
            Method::Levenshtein(ks) => ks.len(),
            Method::Date => 2,
            Method::Phone | Method::Email => 1,
        }
    }

    /// How values of a field compared this way are normalised.
    fn norm(&self) -> Norm {
        match self {
            Method::Phone => Norm::Digits,
            Method::Date => Norm::Date,
            Method::Email => Norm::Lower,
            _ => Norm::Fold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    /// Lowercase, accents removed, punctuation to spaces, spaces collapsed.
    Fold,
    Lower,
    Digits,
    Date,
}

/// Where a compared value comes from: a core field or a key of `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldRef {
    Core(String),
    Extra(String),
}

impl FieldRef {
    pub fn label(&self) -> String {
        match self {
            FieldRef::Core(f) => f.clone(),
            FieldRef::Extra(k) => format!("extra.{k}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    /// Index into [`FuzzyRules::fields`].
    pub field: usize,
    pub method: Method,
    pub tf: bool,
    pub group: Option<String>,
}

/// How a blocking key part is derived from a field's normalised value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Whole,
    Initial,
    First3,
    Year,
    /// The last 7 characters: a phone's subscriber number, the same with
    /// or without its country code or trunk zero.
    Last7,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlockingRule {
    pub name: String,
    /// (field index, transform).
    pub keys: Vec<(usize, Transform)>,
}

/// The `[fuzzy]` part of `rules/identity.toml`.
#[derive(Debug, Clone)]
pub struct FuzzyRules {
    pub systems: Vec<System>,
    pub auto_merge: f64,
    pub review: f64,
    pub weak_bridge: f64,
    pub max_block_size: usize,
    pub random_pairs: usize,
    pub em_iterations: usize,
    /// The fields read, once per normalisation (a field compared `exact`
    /// and `date` appears twice, each normalised its own way).
    pub fields: Vec<FieldRef>,
    /// How each of `fields` is normalised.
    norms: Vec<Norm>,
    pub comparisons: Vec<Comparison>,
    pub blocking: Vec<BlockingRule>,
    /// Name -> nickname groups it belongs to.
    pub nicknames: HashMap<String, Vec<u32>>,
    /// `nicknames_file`: more groups, read from `rules/` by
    /// [`FuzzyRules::add_nicknames`].
    pub nicknames_file: Option<String>,
}

/// A comparison's method with its thresholds, checked.
fn method_of(
    c: &RawCompare,
    err: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Method, ConfigError> {
    let thresholds = |default: &[f64]| -> Result<Vec<f64>, ConfigError> {
        let t = c.thresholds.clone().unwrap_or_else(|| default.to_vec());
        if t.windows(2).any(|w| w[0] < w[1]) || t.iter().any(|x| !(0.0..=1.0).contains(x)) {
            return Err(err(
                c.method.span().start,
                format!(
                    "field `fuzzy.compare.thresholds` of {:?}: need similarities between 0 and 1, highest first",
                    c.name
                ),
            ));
        }
        Ok(t)
    };
    Ok(match c.method.get_ref().as_str() {
        "exact" => Method::Exact,
        "name" => Method::Name(thresholds(&[0.92, 0.8])?),
        "jaro_winkler" => Method::JaroWinkler(thresholds(&[0.92, 0.8])?),
        "levenshtein" => {
            let t = c.thresholds.clone().unwrap_or_else(|| vec![1.0, 2.0]);
            Method::Levenshtein(t.iter().map(|x| x.max(0.0) as usize).collect())
        }
        "date" => Method::Date,
        "phone" => Method::Phone,
        "email" => Method::Email,
        other => {
            return Err(err(
                c.method.span().start,
                format!(
                    "field `fuzzy.compare.method` of {:?}: {other:?} is not one of exact, name, jaro_winkler, levenshtein, date, phone, email",
                    c.name
                ),
            ));
        }
    })
}

/// A blocking key's transform (`field:initial`, `:first3`, `:year`).
fn transform_of(
    t: Option<&str>,
    k: &toml::Spanned<String>,
    name: &str,
    err: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Transform, ConfigError> {
    Ok(match t {
        None => Transform::Whole,
        Some("initial") => Transform::Initial,
        Some("first3") => Transform::First3,
        Some("year") => Transform::Year,
        Some("last7") => Transform::Last7,
        Some(other) => {
            return Err(err(
                k.span().start,
                format!(
                    "field `fuzzy.blocking.keys` of {:?}: {other:?} is not a key transform (initial, first3, year, last7)",
                    name
                ),
            ));
        }
    })
}

impl FuzzyRules {
    pub(super) fn from_raw(raw: RawFuzzy, text: &str, file: &str) -> Result<Self, ConfigError> {
        let err = |offset: usize, message: String| ConfigError {
            file: file.to_string(),
            line: line_of(text, offset),
            message,
        };
        let mut systems = Vec::new();
        for s in &raw.systems {
            match System::ALL.into_iter().find(|x| x.as_str() == s.get_ref()) {
                Some(sys) => systems.push(sys),
                None => {
                    return Err(err(
                        s.span().start,
                        format!(
                            "field `fuzzy.systems`: {:?} is not crm, web or transactions",
                            s.get_ref()
                        ),
                    ));
                }
            }
        }
        let probability = |v: &toml::Spanned<f64>, name: &str| {
            let x = *v.get_ref();
            if (0.0..=1.0).contains(&x) {
                Ok(x)
            } else {
                Err(err(
                    v.span().start,
                    format!("field `fuzzy.{name}`: {x} is not a probability between 0 and 1"),
                ))
            }
        };
        let auto_merge = probability(&raw.auto_merge, "auto_merge")?;
        let review = probability(&raw.review, "review")?;
        if review > auto_merge {
            return Err(err(
                raw.review.span().start,
                format!("field `fuzzy.review`: {review} is above auto_merge ({auto_merge})"),
            ));
        }
        let weak_bridge = match &raw.weak_bridge {
            Some(w) => probability(w, "weak_bridge")?,
            None => 1.0,
        };
        // A field is read once per way its values are normalised: an
        // `exact` and a `date` comparison of one field each see the value
        // normalised their own way (a date comparison never sees folded
        // text). Blocking keys use the first comparison's normalisation.
        let mut fields: Vec<FieldRef> = Vec::new();
        let mut norms: Vec<Norm> = Vec::new();
        let mut field_index = |name: &toml::Spanned<String>,
                               what: &str,
                               norm: Option<Norm>|
         -> Result<usize, ConfigError> {
            let f = name.get_ref();
            let r = match f.strip_prefix("extra.") {
                Some(k) if !k.is_empty() => FieldRef::Extra(k.to_string()),
                _ => {
                    if !systems.iter().any(|s| s.field(f).is_some()) {
                        return Err(err(
                            name.span().start,
                            format!(
                                "field `{what}`: {f:?} is not a core field of {} (or extra.<key>)",
                                systems
                                    .iter()
                                    .map(|s| s.as_str())
                                    .collect::<Vec<_>>()
                                    .join("/")
                            ),
                        ));
                    }
                    FieldRef::Core(f.to_string())
                }
            };
            let found = fields
                .iter()
                .zip(&norms)
                .position(|(x, n)| *x == r && norm.is_none_or(|want| *n == want));
            Ok(match found {
                Some(i) => i,
                None => {
                    fields.push(r);
                    norms.push(norm.unwrap_or(Norm::Fold));
                    fields.len() - 1
                }
            })
        };
        let mut comparisons = Vec::new();
        for c in &raw.compare {
            let method = method_of(c, &err)?;
            let field = field_index(&c.field, "fuzzy.compare.field", Some(method.norm()))?;
            comparisons.push(Comparison {
                name: c.name.clone(),
                field,
                method,
                tf: c.tf,
                group: c.group.clone(),
            });
        }
        if comparisons.is_empty() {
            return Err(err(
                0,
                "field `fuzzy.compare`: at least one comparison is needed".into(),
            ));
        }
        let mut blocking = Vec::new();
        for b in &raw.blocking {
            let mut keys = Vec::new();
            for k in &b.keys {
                let (name, t) = match k.get_ref().rsplit_once(':') {
                    Some((n, t)) => (n.to_string(), Some(t)),
                    None => (k.get_ref().clone(), None),
                };
                let transform = transform_of(t, k, &b.name, &err)?;
                let spanned = toml::Spanned::new(k.span(), name);
                keys.push((
                    field_index(&spanned, "fuzzy.blocking.keys", None)?,
                    transform,
                ));
            }
            if keys.is_empty() {
                return Err(err(
                    0,
                    format!("field `fuzzy.blocking.keys` of {:?}: no keys", b.name),
                ));
            }
            blocking.push(BlockingRule {
                name: b.name.clone(),
                keys,
            });
        }
        let units = comparisons.iter().filter(|c| c.group.is_none()).count()
            + comparisons
                .iter()
                .filter_map(|c| c.group.as_ref())
                .collect::<std::collections::HashSet<_>>()
                .len();
        if units > 16 {
            return Err(err(
                0,
                format!(
                    "field `fuzzy.compare`: {units} comparisons (groups count once); at most 16"
                ),
            ));
        }
        if blocking.is_empty() || blocking.len() > 16 {
            return Err(err(
                0,
                "field `fuzzy.blocking`: between 1 and 16 blocking rules are needed".into(),
            ));
        }
        let mut nicknames: HashMap<String, Vec<u32>> = HashMap::new();
        for (g, names) in raw.nicknames.iter().enumerate() {
            for n in names {
                nicknames.entry(fold(n)).or_default().push(g as u32);
            }
        }
        let rules = FuzzyRules {
            systems,
            auto_merge,
            review,
            weak_bridge,
            max_block_size: raw.max_block_size.unwrap_or(500),
            random_pairs: raw.random_pairs.unwrap_or(500_000),
            em_iterations: raw.em_iterations.unwrap_or(30),
            fields,
            norms,
            comparisons,
            blocking,
            nicknames,
            nicknames_file: raw.nicknames_file.clone(),
        };
        // Levels are bytes, and NULL (255) means "no value".
        for unit in rules.units() {
            let n = unit.levels(&rules);
            if n > NULL as usize {
                return Err(err(
                    raw.compare[unit.members[0]].method.span().start,
                    format!(
                        "field `fuzzy.compare`: {:?} has {n} levels (thresholds, or comparisons in its group); at most {NULL}",
                        unit.name
                    ),
                ));
            }
        }
        Ok(rules)
    }

    fn field_norm(&self, field: usize) -> Norm {
        self.norms.get(field).copied().unwrap_or(Norm::Fold)
    }

    /// How field `f` is normalised: fold, lower, digits or date (the
    /// warehouse scripts normalise the same way).
    pub fn norm_name(&self, f: usize) -> &'static str {
        match self.norms.get(f) {
            Some(Norm::Fold) | None => "fold",
            Some(Norm::Lower) => "lower",
            Some(Norm::Digits) => "digits",
            Some(Norm::Date) => "date",
        }
    }

    /// The scoring units: single comparisons and groups, in first-seen order.
    pub fn units(&self) -> Vec<Unit> {
        let mut units: Vec<Unit> = Vec::new();
        for (ci, c) in self.comparisons.iter().enumerate() {
            match &c.group {
                Some(g) => match units.iter_mut().find(|u| u.group.as_deref() == Some(g)) {
                    Some(u) => u.members.push(ci),
                    None => units.push(Unit {
                        name: g.clone(),
                        group: Some(g.clone()),
                        members: vec![ci],
                    }),
                },
                None => units.push(Unit {
                    name: c.name.clone(),
                    group: None,
                    members: vec![ci],
                }),
            }
        }
        units
    }
}

/// What is scored: one comparison, or a group of comparisons scored as one.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub name: String,
    pub group: Option<String>,
    pub members: Vec<usize>,
}

impl Unit {
    pub fn levels(&self, rules: &FuzzyRules) -> usize {
        match self.group {
            None => rules.comparisons[self.members[0]].method.levels(),
            Some(_) => (self.members.len() + 1).pow(2),
        }
    }

    /// Whether a level can occur (group levels count at most all members).
    pub fn possible(&self, level: usize) -> bool {
        match self.group {
            None => true,
            Some(_) => {
                let n = self.members.len() + 1;
                let (a, d) = (level / n, level % n);
                a + d > 0 && a + d < n
            }
        }
    }

    pub fn label(&self, rules: &FuzzyRules, level: u8) -> String {
        if level == NULL {
            return "no value".into();
        }
        match self.group {
            None => rules.comparisons[self.members[0]].method.labels()[level as usize].clone(),
            Some(_) => {
                let n = self.members.len() + 1;
                let (a, d) = (level as usize / n, level as usize % n);
                match (a, d) {
                    (a, 0) => format!("{a} agree"),
                    (0, d) => format!("{d} differ"),
                    (a, d) => format!("{a} agree, {d} differ"),
                }
            }
        }
    }

    /// A rough strength of a level (higher = more like a match), used to
    /// start EM from a sensible place.
    fn strength(&self, rules: &FuzzyRules, level: usize) -> f64 {
        match self.group {
            None => {
                let n = rules.comparisons[self.members[0]].method.levels();
                (n - 1 - level) as f64 * 2.0 - (n - 1) as f64
            }
            Some(_) => {
                let n = self.members.len() + 1;
                (level / n) as f64 * 2.0 - (level % n) as f64 * 2.0
            }
        }
    }
}

/// Lowercase, strip accents, keep letters and digits, collapse spaces.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for ch in s.nfd() {
        if unicode_normalization::char::is_combining_mark(ch) {
            continue;
        }
        if ch.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(ch.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

fn normalise(norm: Norm, raw: &str) -> Option<String> {
    let v = match norm {
        Norm::Fold => fold(raw),
        Norm::Lower => raw.trim().to_lowercase(),
        Norm::Digits => raw.chars().filter(|c| c.is_ascii_digit()).collect(),
        Norm::Date => date_prefix(raw).map_or_else(String::new, str::to_string),
    };
    (!v.is_empty()).then_some(v)
}

/// The `YYYY-MM-DD` a value starts with (after trimming), if it does. Reads
/// bytes, never slices at a byte index, so a multibyte character anywhere
/// (`1980-03-0é`) is simply not a date.
fn date_prefix(raw: &str) -> Option<&str> {
    let t = raw.trim();
    let head = t.as_bytes().get(..10)?;
    let ok = head.iter().enumerate().all(|(i, &b)| {
        if i == 4 || i == 7 {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    });
    // Ten ASCII bytes: byte 10 is a character boundary.
    ok.then(|| &t[..10])
}

/// The fuzzy records, one interned column per field.
#[derive(Debug, Default)]
pub struct Columns {
    norms: Vec<Norm>,
    /// Per field: value id per record (u32::MAX = empty).
    ids: Vec<Vec<u32>>,
    /// Per field: distinct values and how many records hold each.
    values: Vec<Vec<String>>,
    counts: Vec<Vec<u32>>,
    /// Per field: records with a value.
    non_empty: Vec<u64>,
    /// Per field: records whose value is longer than
    /// [`MAX_COMPARED_CHARS`] (compared on its first characters only).
    capped: Vec<u64>,
    /// Per field: raw values pushed and not yet interned, in one buffer.
    raw: Vec<RawColumn>,
    /// Per record: its index among all the resolve step's records.
    pub global: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

/// One field's raw values, back to back in one buffer (no allocation per
/// value): value `i` is `text[ends[i - 1]..ends[i]]`, empty = no value.
#[derive(Debug, Default, Clone)]
struct RawColumn {
    text: String,
    ends: Vec<u64>,
}

impl RawColumn {
    fn push(&mut self, value: Option<&str>) {
        if let Some(v) = value {
            self.text.push_str(v);
        }
        self.ends.push(self.text.len() as u64);
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        let mut start = 0usize;
        self.ends.iter().map(move |&end| {
            let v = &self.text[start..end as usize];
            start = end as usize;
            v
        })
    }
}

/// Normalise and intern one field's raw values: each distinct raw text is
/// normalised once. Returns (ids, values, counts).
fn intern(
    norm: Norm,
    raw: &RawColumn,
    junk: &(impl Fn(&str) -> bool + Sync),
) -> (Vec<u32>, Vec<String>, Vec<u32>) {
    let mut by_raw: FxHashMap<&str, u32> = FxHashMap::default();
    let mut by_value: FxHashMap<String, u32> = FxHashMap::default();
    let mut values: Vec<String> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut ids = Vec::with_capacity(raw.ends.len());
    for r in raw.iter() {
        let id = if r.is_empty() {
            EMPTY
        } else {
            match by_raw.get(r) {
                Some(&id) => id,
                None => {
                    let id = match normalise(norm, r) {
                        Some(v) if !junk(&v) => match by_value.get(&v) {
                            Some(&id) => id,
                            None => {
                                let id = values.len() as u32;
                                values.push(v.clone());
                                counts.push(0);
                                by_value.insert(v, id);
                                id
                            }
                        },
                        _ => EMPTY,
                    };
                    by_raw.insert(r, id);
                    id
                }
            }
        };
        if id != EMPTY {
            counts[id as usize] += 1;
        }
        ids.push(id);
    }
    (ids, values, counts)
}

impl Columns {
    pub fn new(rules: &FuzzyRules) -> Self {
        let n = rules.fields.len();
        Columns {
            norms: (0..n).map(|f| rules.field_norm(f)).collect(),
            ids: vec![Vec::new(); n],
            values: vec![Vec::new(); n],
            counts: vec![Vec::new(); n],
            non_empty: vec![0; n],
            capped: vec![0; n],
            raw: vec![RawColumn::default(); n],
            global: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.global.len()
    }

    pub fn is_empty(&self) -> bool {
        self.global.is_empty()
    }

    /// Add a record; `value(f)` gives the raw text of field `f`. Call
    /// [`Columns::seal`] once all records are in.
    pub fn push<'a>(&mut self, global: u32, mut value: impl FnMut(usize) -> Option<&'a str>) {
        for (f, raw) in self.raw.iter_mut().enumerate() {
            raw.push(value(f));
        }
        self.global.push(global);
    }

    /// Normalise and intern the pushed values (fields in parallel); values
    /// `junk` says are junk (blocked values: "unknown", "x@x.x", "000000"...)
    /// count as empty.
    pub fn seal(&mut self, junk: impl Fn(&str) -> bool + Sync) {
        let raw = std::mem::take(&mut self.raw);
        let built: Vec<(Vec<u32>, Vec<String>, Vec<u32>)> = raw
            .par_iter()
            .zip(self.norms.par_iter())
            .map(|(r, &norm)| intern(norm, r, &junk))
            .collect();
        drop(raw);
        self.ids.clear();
        self.values.clear();
        self.counts.clear();
        self.non_empty.clear();
        self.capped.clear();
        for (ids, values, counts) in built {
            self.non_empty.push(counts.iter().map(|&c| c as u64).sum());
            self.capped.push(
                values
                    .iter()
                    .zip(&counts)
                    .filter(|(v, _)| capped(v).len() < v.len())
                    .map(|(_, &c)| c as u64)
                    .sum(),
            );
            self.ids.push(ids);
            self.values.push(values);
            self.counts.push(counts);
        }
        self.raw = vec![RawColumn::default(); self.ids.len()];
    }

    pub fn value(&self, field: usize, record: u32) -> Option<&str> {
        let id = self.ids[field][record as usize];
        (id != EMPTY).then(|| self.values[field][id as usize].as_str())
    }

    fn non_empty(&self, field: usize) -> u64 {
        self.non_empty[field]
    }

    /// Records whose value of `field` is longer than
    /// [`MAX_COMPARED_CHARS`]: their similarity levels read only its first
    /// characters ("exact" still reads it whole).
    pub fn capped(&self, field: usize) -> u64 {
        self.capped.get(field).copied().unwrap_or(0)
    }
}

impl FuzzyRules {
    /// Add the nickname groups of a CSV of `name,relationship,nickname`
    /// rows (a header row is allowed; relationship `has_nickname`): each
    /// name with its nicknames is one group. Errors name the file and line.
    pub fn add_nicknames(&mut self, text: &str, file: &str) -> Result<(), ConfigError> {
        let mut group_of: HashMap<String, u32> = HashMap::new();
        let mut next = self.nicknames.values().flatten().max().map_or(0, |g| g + 1);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("name1,")) {
                continue;
            }
            let parts: Vec<&str> = line.split(',').map(str::trim).collect();
            let [name, relation, nickname] = parts[..] else {
                return Err(ConfigError {
                    file: file.into(),
                    line: i + 1,
                    message: format!("expected name,relationship,nickname, found {line:?}"),
                });
            };
            if relation != "has_nickname" {
                continue;
            }
            let (name, nickname) = (fold(name), fold(nickname));
            let g = *group_of.entry(name.clone()).or_insert_with(|| {
                next += 1;
                next - 1
            });
            for n in [name, nickname] {
                let groups = self.nicknames.entry(n).or_default();
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- comparing

fn nickname_or_initial(a: &str, b: &str, nick: &HashMap<String, Vec<u32>>) -> bool {
    let initial = |x: &str, y: &str| x.chars().count() == 1 && y.starts_with(x);
    if initial(a, b) || initial(b, a) {
        return true;
    }
    match (nick.get(a), nick.get(b)) {
        (Some(ga), Some(gb)) => ga.iter().any(|g| gb.contains(g)),
        _ => false,
    }
}

/// Most characters of a value the similarity levels look at: Jaro-Winkler
/// and edit distances cost (length × length) per pair, so one 200,000
/// character name would otherwise make every pair it is in take seconds.
/// "exact" still compares whole values; longer values are counted in
/// [`Columns::capped`] (and [`Scored::capped`]).
pub const MAX_COMPARED_CHARS: usize = 256;

/// The first [`MAX_COMPARED_CHARS`] characters of `s` (cut on a character
/// boundary).
pub fn capped(s: &str) -> &str {
    match s.char_indices().nth(MAX_COMPARED_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The level at which two normalised, non-empty values agree: "exact" on
/// the whole values, the other levels on their first
/// [`MAX_COMPARED_CHARS`] characters (two long values differing only
/// after those are near, never exact).
pub fn compare(method: &Method, a: &str, b: &str, nick: &HashMap<String, Vec<u32>>) -> u8 {
    if a == b || (matches!(method, Method::Phone) && same_number(a, b)) {
        return 0;
    }
    compare_different(method, capped(a), capped(b), nick)
}

/// Two phone numbers' digits that are one number written with and
/// without its country code (`18908289758`, `8908289758`), or nationally
/// with a trunk zero (`49301234567`, `0301234567`): numbers the phone
/// library could not validate are still compared this way.
fn same_number(a: &str, b: &str) -> bool {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let national = short.strip_prefix('0').unwrap_or(short);
    [short, national].iter().any(|s| {
        let cut = long.len() - s.len();
        s.len() >= 7
            && (1..=3).contains(&cut)
            && long.ends_with(s)
            && long[..cut]
                .parse::<u16>()
                .is_ok_and(|code| phonenumber::metadata::DATABASE.by_code(&code).is_some())
    })
}

/// The level of two values known to differ (never 0, "exact").
fn compare_different<'a>(
    method: &Method,
    a: &'a str,
    b: &'a str,
    nick: &HashMap<String, Vec<u32>>,
) -> u8 {
    // `a` and `b` may be equal here (values equal in their first
    // MAX_COMPARED_CHARS characters): each method then gives its nearest
    // level below exact.
    let bands = |sim: f64, ts: &[f64], first: u8| -> u8 {
        ts.iter()
            .position(|t| sim >= *t)
            .map_or(first + ts.len() as u8, |i| first + i as u8)
    };
    match method {
        Method::Exact => 1,
        Method::Name(ts) => {
            if nickname_or_initial(a, b, nick) {
                1
            } else {
                bands(strsim::jaro_winkler(a, b), ts, 2)
            }
        }
        Method::JaroWinkler(ts) => bands(strsim::jaro_winkler(a, b), ts, 1),
        Method::Levenshtein(ks) => {
            let d = strsim::levenshtein(a, b);
            ks.iter()
                .position(|k| d <= *k)
                .map_or(1 + ks.len() as u8, |i| 1 + i as u8)
        }
        Method::Date => {
            // Normalised to YYYY-MM-DD when the field's values are dates;
            // anything else (a short or free-text value) is no date and
            // so different, never a slice out of bounds.
            let (Some(a), Some(b)) = (date_prefix(a), date_prefix(b)) else {
                return 3;
            };
            if a == b {
                return 2;
            }
            let (ya, ma, da) = (&a[..4], &a[5..7], &a[8..10]);
            let (yb, mb, db) = (&b[..4], &b[5..7], &b[8..10]);
            if ya == yb && ma == db && da == mb {
                1
            } else {
                let year_off = (ma, da) == (mb, db)
                    && matches!((ya.parse::<i32>(), yb.parse::<i32>()), (Ok(x), Ok(y)) if (x - y).abs() == 1);
                let one_digit = a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count() == 1;
                if year_off || one_digit { 2 } else { 3 }
            }
        }
        Method::Phone => {
            // Values are digits already. Same length: count differing
            // digits; otherwise an edit distance.
            if a.len().abs_diff(b.len()) > 2 || a.len().min(b.len()) < 6 {
                return 2;
            }
            let near = if a.len() == b.len() {
                a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count() <= 2
            } else {
                strsim::levenshtein(a, b) <= 2
            };
            if near { 1 } else { 2 }
        }
        Method::Email => {
            let local = |s: &'a str| s.split_once('@').map_or(s, |(l, _)| l);
            if local(a) == local(b) { 1 } else { 2 }
        }
    }
}

/// Levels of one pair for every comparison (member levels, for explaining).
pub fn member_levels(rules: &FuzzyRules, cols: &Columns, a: u32, b: u32) -> Vec<u8> {
    rules
        .comparisons
        .iter()
        .map(|c| {
            let (ia, ib) = (cols.ids[c.field][a as usize], cols.ids[c.field][b as usize]);
            if ia == EMPTY || ib == EMPTY {
                NULL
            } else if ia == ib {
                0
            } else {
                // Interned: different ids are different values, so only
                // the capped prefixes are read (cost bounded per pair).
                compare_different(
                    &c.method,
                    capped(&cols.values[c.field][ia as usize]),
                    capped(&cols.values[c.field][ib as usize]),
                    &rules.nicknames,
                )
            }
        })
        .collect()
}

/// Whether two records differ in every one of `comparisons` (indexes into
/// `rules.comparisons`): each with a value on both sides, at its
/// "different" level. Such a pair (two people sharing an e-mail: a couple)
/// is never merged without a steward.
pub fn all_differ(
    rules: &FuzzyRules,
    cols: &Columns,
    a: u32,
    b: u32,
    comparisons: &[usize],
) -> bool {
    if comparisons.is_empty() {
        return false;
    }
    let levels = member_levels(rules, cols, a, b);
    comparisons.iter().all(|&c| {
        levels[c] != NULL && levels[c] as usize + 1 == rules.comparisons[c].method.levels()
    })
}

/// Unit levels from member levels.
fn unit_levels(rules: &FuzzyRules, units: &[Unit], members: &[u8], out: &mut Vec<u8>) {
    for u in units {
        match u.group {
            None => out.push(members[u.members[0]]),
            Some(_) => {
                let n = u.members.len() + 1;
                let (mut agree, mut differ) = (0, 0);
                for &m in &u.members {
                    let l = members[m];
                    if l == NULL {
                        continue;
                    }
                    let last = rules.comparisons[m].method.levels() as u8 - 1;
                    if l < last { agree += 1 } else { differ += 1 }
                }
                out.push(if agree + differ == 0 {
                    NULL
                } else {
                    (agree * n + differ) as u8
                });
            }
        }
    }
}

// ----------------------------------------------------------------- blocking

/// What one blocking rule produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingStat {
    pub rule: String,
    pub pairs: u64,
    pub blocks: u64,
    /// Blocks over `max_block_size`, skipped, and the pairs they held.
    pub skipped_blocks: u64,
    pub skipped_pairs: u64,
}

fn key_part(t: Transform, v: &str) -> &str {
    match t {
        Transform::Whole => v,
        Transform::Initial => v.char_indices().nth(1).map_or(v, |(i, _)| &v[..i]),
        Transform::First3 => v.char_indices().nth(3).map_or(v, |(i, _)| &v[..i]),
        Transform::Year => v.get(..4).unwrap_or(v),
        Transform::Last7 => v.char_indices().rev().nth(6).map_or(v, |(i, _)| &v[i..]),
    }
}

/// Candidate pairs (a < b, record indices in `cols`) with a bit per
/// blocking rule that produced them, sorted and deduplicated.
pub fn block(rules: &FuzzyRules, cols: &Columns) -> (Vec<(u64, u16)>, Vec<BlockingStat>) {
    let mut all: Vec<(u64, u16)> = Vec::new();
    let mut stats = Vec::new();
    for (ri, rule) in rules.blocking.iter().enumerate() {
        let mut keyed: Vec<(u64, u32)> = (0..cols.len() as u32)
            .into_par_iter()
            .filter_map(|r| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                for &(f, t) in &rule.keys {
                    let v = cols.value(f, r)?;
                    key_part(t, v).hash(&mut h);
                    0xffu8.hash(&mut h);
                }
                Some((h.finish(), r))
            })
            .collect();
        keyed.par_sort_unstable();
        let mut stat = BlockingStat {
            rule: rule.name.clone(),
            pairs: 0,
            blocks: 0,
            skipped_blocks: 0,
            skipped_pairs: 0,
        };
        let mut start = 0;
        while start < keyed.len() {
            let mut end = start + 1;
            while end < keyed.len() && keyed[end].0 == keyed[start].0 {
                end += 1;
            }
            let n = (end - start) as u64;
            if n > 1 {
                if n as usize > rules.max_block_size {
                    stat.skipped_blocks += 1;
                    stat.skipped_pairs += n * (n - 1) / 2;
                } else {
                    stat.blocks += 1;
                    stat.pairs += n * (n - 1) / 2;
                    for i in start..end {
                        for j in i + 1..end {
                            let (a, b) = (keyed[i].1, keyed[j].1);
                            let (a, b) = if a < b { (a, b) } else { (b, a) };
                            all.push((((a as u64) << 32) | b as u64, 1 << ri));
                        }
                    }
                }
            }
            start = end;
        }
        stats.push(stat);
    }
    all.par_sort_unstable_by_key(|p| p.0);
    let mut out: Vec<(u64, u16)> = Vec::with_capacity(all.len());
    for (pair, bit) in all {
        match out.last_mut() {
            Some(last) if last.0 == pair => last.1 |= bit,
            _ => out.push((pair, bit)),
        }
    }
    (out, stats)
}

// ----------------------------------------------------------------- the model

/// m and u per unit and level, and the prior.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    /// Probability that two random records are the same person.
    pub lambda: f64,
    /// Per blocking rule: (EM iterations run, share of its pairs that match).
    pub em: Vec<(usize, f64)>,
}

impl Model {
    pub fn weight(&self, unit: usize, level: u8) -> f64 {
        if level == NULL {
            0.0
        } else {
            let l = level as usize;
            (self.m[unit][l].max(FLOOR) / self.u[unit][l].max(FLOOR)).log2()
        }
    }

    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }
}

/// Estimate u: the share of random record pairs at each level of each unit.
pub fn estimate_u(
    rules: &FuzzyRules,
    units: &[Unit],
    cols: &Columns,
    samples: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let n = cols.len() as u32;
    let mut counts: Vec<Vec<u64>> = units.iter().map(|u| vec![0; u.levels(rules)]).collect();
    if n < 2 {
        return counts
            .iter()
            .map(|c| vec![1.0 / c.len() as f64; c.len()])
            .collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pairs: Vec<(u32, u32)> = (0..samples)
        .map(|_| {
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            (a, b)
        })
        .collect();
    let partial: Vec<Vec<Vec<u64>>> = pairs
        .par_chunks(8192)
        .map(|chunk| {
            let mut local: Vec<Vec<u64>> = counts.clone();
            let mut buf = Vec::with_capacity(units.len());
            for &(a, b) in chunk {
                buf.clear();
                unit_levels(rules, units, &member_levels(rules, cols, a, b), &mut buf);
                for (ui, &l) in buf.iter().enumerate() {
                    if l != NULL {
                        local[ui][l as usize] += 1;
                    }
                }
            }
            local
        })
        .collect();
    for p in partial {
        for (ui, levels) in p.into_iter().enumerate() {
            for (l, c) in levels.into_iter().enumerate() {
                counts[ui][l] += c;
            }
        }
    }
    counts
        .iter()
        .map(|c| {
            let total: u64 = c.iter().sum();
            let k = c.len() as f64;
            c.iter()
                .map(|&x| (x as f64 + 0.5) / (total as f64 + 0.5 * k))
                .collect()
        })
        .collect()
}

/// Expectation–maximisation of m and the match share `lambda` over pattern
/// counts, u held fixed. `free[u]` says which units take part (the others
/// are ignored: the pairs were blocked on them). Returns (m, lambda,
/// iterations).
pub fn em(
    patterns: &HashMap<Vec<u8>, u64>,
    u: &[Vec<f64>],
    m0: &[Vec<f64>],
    free: &[bool],
    iterations: usize,
) -> (Vec<Vec<f64>>, f64, usize) {
    let mut m: Vec<Vec<f64>> = m0.to_vec();
    let mut lambda = 0.1;
    // In a fixed order (a HashMap iterates in a different order in every
    // run, and float sums depend on their order): identical input gives
    // bit-identical m and lambda.
    let mut pats: Vec<(&Vec<u8>, f64)> = patterns.iter().map(|(p, &c)| (p, c as f64)).collect();
    pats.sort_unstable_by(|x, y| x.0.cmp(y.0));
    let total: f64 = pats.iter().map(|p| p.1).sum();
    if total == 0.0 {
        return (m, 0.0, 0);
    }
    let mut done = 0;
    for it in 0..iterations {
        done = it + 1;
        let mut acc: Vec<Vec<f64>> = m.iter().map(|l| vec![0.0; l.len()]).collect();
        let mut matched = 0.0;
        for (pat, count) in &pats {
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for (ui, &l) in pat.iter().enumerate() {
                if free[ui] && l != NULL {
                    pm *= m[ui][l as usize].max(FLOOR);
                    pu *= u[ui][l as usize].max(FLOOR);
                }
            }
            let g = pm / (pm + pu);
            matched += g * count;
            for (ui, &l) in pat.iter().enumerate() {
                if free[ui] && l != NULL {
                    acc[ui][l as usize] += g * count;
                }
            }
        }
        let new_lambda = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        let mut delta = (new_lambda - lambda).abs();
        for (ui, levels) in acc.iter().enumerate() {
            if !free[ui] {
                continue;
            }
            let s: f64 = levels.iter().sum();
            if s > 0.0 {
                for (l, x) in levels.iter().enumerate() {
                    let v = x / s;
                    delta = delta.max((v - m[ui][l]).abs());
                    m[ui][l] = v;
                }
            }
        }
        lambda = new_lambda;
        if delta < 1e-6 {
            break;
        }
    }
    (m, lambda, done)
}

// ------------------------------------------------------------------ scoring

/// A scored pair worth keeping (review band or better).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub a: u32,
    pub b: u32,
    pub weight: f64,
    pub probability: f64,
    pub rules: u16,
}

/// What [`score`] found.
#[derive(Debug)]
pub struct Scored {
    pub units: Vec<Unit>,
    pub model: Model,
    pub blocking: Vec<BlockingStat>,
    pub comparisons: u64,
    /// Pairs at or above the review threshold, best first.
    pub kept: Vec<Candidate>,
    pub auto_rejected: u64,
    pub phases: Vec<(&'static str, f64)>,
    /// Per field (label) with values longer than [`MAX_COMPARED_CHARS`]:
    /// how many records hold one. Their similarity levels read only the
    /// first characters, so a report should show this.
    pub capped: Vec<(String, u64)>,
}

/// Term-frequency-adjusted weight of an exact agreement on unit `ui`.
fn tf_weight(
    rules: &FuzzyRules,
    units: &[Unit],
    cols: &Columns,
    model: &Model,
    ui: usize,
    a: u32,
) -> Option<f64> {
    let unit = &units[ui];
    if unit.group.is_some() {
        return None;
    }
    let c = &rules.comparisons[unit.members[0]];
    if !c.tf {
        return None;
    }
    let id = cols.ids[c.field][a as usize];
    let freq = cols.counts[c.field][id as usize] as f64 / cols.non_empty(c.field).max(1) as f64;
    Some((model.m[ui][0].max(FLOOR) / freq.max(FLOOR)).log2())
}

/// Weight of unit `ui` at `level` for the pair (a, b), and whether a term
/// frequency set it. An exact match on a `tf` comparison weighs
/// log2(m / frequency of the value); a near match never weighs more than an
/// exact match on either of the two values would (otherwise "patricia" ~
/// "patrica" could outweigh "patricia" = "patricia", a common name).
#[allow(clippy::too_many_arguments)]
fn pair_unit_weight(
    rules: &FuzzyRules,
    units: &[Unit],
    cols: &Columns,
    model: &Model,
    ui: usize,
    level: u8,
    a: u32,
    b: u32,
) -> (f64, bool) {
    let base = model.weight(ui, level);
    if level == NULL {
        return (base, false);
    }
    let Some(wa) = tf_weight(rules, units, cols, model, ui, a) else {
        return (base, false);
    };
    if level == 0 {
        return (wa, true);
    }
    match tf_weight(rules, units, cols, model, ui, b) {
        Some(wb) if base > wa.min(wb) => (wa.min(wb), true),
        _ => (base, false),
    }
}

/// Weight of each unit for a pair, with term-frequency adjustment.
pub fn unit_weights(
    rules: &FuzzyRules,
    units: &[Unit],
    cols: &Columns,
    model: &Model,
    a: u32,
    b: u32,
) -> Vec<(u8, f64, bool)> {
    let members = member_levels(rules, cols, a, b);
    let mut levels = Vec::with_capacity(units.len());
    unit_levels(rules, units, &members, &mut levels);
    levels
        .iter()
        .enumerate()
        .map(|(ui, &l)| {
            let (w, tf) = pair_unit_weight(rules, units, cols, model, ui, l, a, b);
            (l, w, tf)
        })
        .collect()
}

/// How many pairs (those `keep` accepts by their rule bits) show each
/// pattern of levels; units not `free` read as no value. Counted in
/// parallel on packed keys (at most 16 units, a byte each).
fn pattern_counts(
    levels: &[u8],
    nu: usize,
    pairs: &[(u64, u16)],
    keep: impl Fn(u16) -> bool + Sync,
    free: &[bool],
) -> HashMap<Vec<u8>, u64> {
    let packed: HashMap<u128, u64> = pairs
        .par_iter()
        .enumerate()
        .fold(
            HashMap::new,
            |mut acc: HashMap<u128, u64>, (pi, &(_, bits))| {
                if keep(bits) {
                    let mut key = 0u128;
                    for (ui, &l) in levels[pi * nu..(pi + 1) * nu].iter().enumerate() {
                        key = (key << 8) | u128::from(if free[ui] { l } else { NULL });
                    }
                    *acc.entry(key).or_default() += 1;
                }
                acc
            },
        )
        .reduce(HashMap::new, |mut a, b| {
            for (k, v) in b {
                *a.entry(k).or_default() += v;
            }
            a
        });
    packed
        .into_iter()
        .map(|(key, n)| {
            let pat: Vec<u8> = (0..nu)
                .map(|ui| (key >> (8 * (nu - 1 - ui))) as u8)
                .collect();
            (pat, n)
        })
        .collect()
}

/// Σ f(x) over `xs`, in parallel but in a fixed order: fixed-size chunks
/// summed left to right, then the chunk sums left to right. (A rayon
/// `sum()` adds in an order that depends on work stealing, so two runs on
/// the same input could differ in the last digits.)
fn ordered_sum(xs: &[f64], f: impl Fn(f64) -> f64 + Sync) -> f64 {
    let partial: Vec<f64> = xs
        .par_chunks(4096)
        .map(|c| c.iter().fold(0.0, |acc, &x| acc + f(x)))
        .collect();
    partial.iter().fold(0.0, |acc, &x| acc + x)
}

/// Block, compare, estimate the model and score every candidate pair.
pub fn score(rules: &FuzzyRules, cols: &Columns, seed: u64) -> Scored {
    score_keeping(rules, cols, seed, &FxHashSet::default())
}

/// [`score`], comparing and keeping the pairs in `keep` (`a << 32 | b`,
/// a < b) whatever the blocking rules and their probability: pairs a
/// steward must see (two people sharing an identifier).
pub fn score_keeping(
    rules: &FuzzyRules,
    cols: &Columns,
    seed: u64,
    keep: &FxHashSet<u64>,
) -> Scored {
    let mut phases = Vec::new();
    let mut clock = std::time::Instant::now();
    let mut lap = |name: &'static str, phases: &mut Vec<(&'static str, f64)>| {
        phases.push((name, clock.elapsed().as_secs_f64()));
        clock = std::time::Instant::now();
    };
    let units = rules.units();
    let (mut pairs, blocking) = block(rules, cols);
    // Pairs a steward must see are compared even when no blocking rule
    // found them (no rule bit: EM, per blocking rule, leaves them out).
    if !keep.is_empty() {
        let present: FxHashSet<u64> = pairs.iter().map(|&(p, _)| p).collect();
        let mut extra: Vec<u64> = keep
            .iter()
            .copied()
            .filter(|p| !present.contains(p))
            .collect();
        extra.sort_unstable();
        pairs.extend(extra.into_iter().map(|p| (p, 0)));
    }
    lap("blocking", &mut phases);

    // Unit levels of every candidate pair, flat.
    let nu = units.len();
    let levels: Vec<u8> = pairs
        .par_chunks(4096)
        .flat_map_iter(|chunk| {
            let mut out = Vec::with_capacity(chunk.len() * nu);
            for &(p, _) in chunk {
                let members = member_levels(rules, cols, (p >> 32) as u32, p as u32);
                unit_levels(rules, &units, &members, &mut out);
            }
            out
        })
        .collect();
    lap("compare", &mut phases);

    let u = estimate_u(rules, &units, cols, rules.random_pairs, seed);
    lap("estimate u", &mut phases);

    // m: EM per blocking rule on its own pairs, fields it blocked on left out.
    let m0: Vec<Vec<f64>> = units
        .iter()
        .map(|unit| {
            let raw: Vec<f64> = (0..unit.levels(rules))
                .map(|l| 2f64.powf(unit.strength(rules, l)))
                .collect();
            let s: f64 = raw.iter().sum();
            raw.iter().map(|x| x / s).collect()
        })
        .collect();
    let uses_field = |unit: &Unit, fields: &[usize]| {
        unit.members
            .iter()
            .any(|&c| fields.contains(&rules.comparisons[c].field))
    };
    let mut m_sum: Vec<Vec<f64>> = m0.iter().map(|l| vec![0.0; l.len()]).collect();
    let mut m_weight = vec![0.0; nu];
    let mut em_stats = Vec::new();
    for (ri, rule) in rules.blocking.iter().enumerate() {
        let fields: Vec<usize> = rule.keys.iter().map(|k| k.0).collect();
        let free: Vec<bool> = units
            .iter()
            .map(|unit| !uses_field(unit, &fields))
            .collect();
        let patterns = pattern_counts(&levels, nu, &pairs, |bits| bits & (1 << ri) != 0, &free);
        let count: u64 = patterns.values().sum();
        let (m, lambda, iters) = em(&patterns, &u, &m0, &free, rules.em_iterations);
        em_stats.push((iters, lambda));
        // A rule's estimates count by the matches it saw, and much more
        // when more comparisons were free: EM on one or two comparisons
        // cannot tell a namesake from a match with a typo.
        let n_free = free.iter().filter(|f| **f).count() as i32;
        let matches = lambda * count as f64 * 8f64.powi(n_free);
        for ui in 0..nu {
            if free[ui] && matches > 0.0 {
                for (l, x) in m[ui].iter().enumerate() {
                    m_sum[ui][l] += x * matches;
                }
                m_weight[ui] += matches;
            }
        }
    }
    // Units every rule blocked on: EM over all candidates.
    let mut m = m0.clone();
    if m_weight.contains(&0.0) {
        let all = vec![true; nu];
        let patterns = pattern_counts(&levels, nu, &pairs, |_| true, &all);
        let (fallback, _, _) = em(&patterns, &u, &m0, &all, rules.em_iterations);
        for ui in 0..nu {
            if m_weight[ui] == 0.0 {
                m[ui] = fallback[ui].clone();
            }
        }
    }
    for ui in 0..nu {
        if m_weight[ui] > 0.0 {
            m[ui] = m_sum[ui].iter().map(|x| x / m_weight[ui]).collect();
        }
        let unit = &units[ui];
        for (l, x) in m[ui].iter_mut().enumerate() {
            if unit.possible(l) {
                *x = x.max(M_FLOOR);
            }
        }
        let total: f64 = m[ui].iter().sum();
        m[ui].iter_mut().for_each(|x| *x /= total);
    }
    let mut model = Model {
        m,
        u,
        lambda: 0.0,
        em: em_stats,
    };
    lap("estimate m (EM)", &mut phases);

    // Weights of every candidate, then the prior by fixed point.
    let weights: Vec<f64> = pairs
        .par_iter()
        .enumerate()
        .map(|(pi, &(p, _))| {
            let (a, b) = ((p >> 32) as u32, p as u32);
            levels[pi * nu..(pi + 1) * nu]
                .iter()
                .enumerate()
                .map(|(ui, &l)| pair_unit_weight(rules, &units, cols, &model, ui, l, a, b).0)
                .sum()
        })
        .collect();
    let n = cols.len() as f64;
    let total_pairs = (n * (n - 1.0) / 2.0).max(1.0);
    let best_rule = rules
        .blocking
        .iter()
        .enumerate()
        .map(|(ri, _)| {
            let count = pairs.iter().filter(|p| p.1 & (1 << ri) != 0).count() as f64;
            model.em[ri].1 * count
        })
        .fold(1.0, f64::max);
    let mut lambda = (best_rule / total_pairs).clamp(1e-12, 0.5);
    for _ in 0..20 {
        let odds = lambda / (1.0 - lambda);
        let expected = ordered_sum(&weights, |w| {
            let k = odds * w.exp2();
            k / (1.0 + k)
        });
        let next = (expected / total_pairs).clamp(1e-12, 0.5);
        if (next / lambda - 1.0).abs() < 1e-4 {
            lambda = next;
            break;
        }
        lambda = next;
    }
    model.lambda = lambda;
    let prior = model.prior_weight();
    let mut kept: Vec<Candidate> = pairs
        .par_iter()
        .zip(weights.par_iter())
        .filter_map(|(&(p, bits), &w)| {
            let probability = 1.0 / (1.0 + (-(w + prior)).exp2());
            (probability >= rules.review || keep.contains(&p)).then_some(Candidate {
                a: (p >> 32) as u32,
                b: p as u32,
                weight: w,
                probability,
                rules: bits,
            })
        })
        .collect();
    kept.sort_by(|x, y| {
        y.weight
            .total_cmp(&x.weight)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    let auto_rejected = pairs.len() as u64 - kept.len() as u64;
    lap("score", &mut phases);
    Scored {
        units,
        model,
        blocking,
        comparisons: pairs.len() as u64,
        kept,
        auto_rejected,
        phases,
        capped: capped_fields(rules, cols),
    }
}

/// [`Scored::capped`]: fields (by label, once each) with capped values.
fn capped_fields(rules: &FuzzyRules, cols: &Columns) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for (f, field) in rules.fields.iter().enumerate() {
        let n = cols.capped(f);
        if n == 0 {
            continue;
        }
        let label = field.label();
        match out.iter_mut().find(|(l, _)| *l == label) {
            Some(x) => x.1 = x.1.max(n),
            None => out.push((label, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick() -> HashMap<String, Vec<u32>> {
        let mut m = HashMap::new();
        m.insert("william".to_string(), vec![0]);
        m.insert("bill".to_string(), vec![0]);
        m
    }

    #[test]
    fn comparison_levels() {
        let n = nick();
        let name = Method::Name(vec![0.92, 0.8]);
        assert_eq!(compare(&name, "william", "william", &n), 0);
        assert_eq!(compare(&name, "william", "bill", &n), 1);
        assert_eq!(compare(&name, "w", "william", &n), 1);
        assert_eq!(compare(&name, "jonathan", "jonathon", &n), 2);
        assert_eq!(compare(&name, "anna", "hannah", &n), 3);
        assert_eq!(compare(&name, "anna", "peter", &n), 4);
        assert_eq!(compare(&Method::Date, "1980-03-04", "1980-04-03", &n), 1);
        assert_eq!(compare(&Method::Date, "1980-03-04", "1981-03-04", &n), 2);
        assert_eq!(compare(&Method::Date, "1980-03-04", "1980-03-05", &n), 2);
        assert_eq!(compare(&Method::Date, "1980-03-04", "1975-11-21", &n), 3);
        assert_eq!(compare(&Method::Phone, "33612345678", "33612345679", &n), 1);
        assert_eq!(compare(&Method::Phone, "33612345678", "4915112345", &n), 2);
        assert_eq!(compare(&Method::Phone, "33612345678", "3361234567", &n), 1);
        // Blocking on a phone's last 7 digits puts both forms in one block.
        assert_eq!(key_part(Transform::Last7, "49301234567"), "1234567");
        assert_eq!(key_part(Transform::Last7, "0301234567"), "1234567");
        assert_eq!(key_part(Transform::Last7, "12345"), "12345");
        // With and without the country code, or a trunk zero: one number.
        assert_eq!(compare(&Method::Phone, "18908289758", "8908289758", &n), 0);
        assert_eq!(compare(&Method::Phone, "49301234567", "0301234567", &n), 0);
        assert_eq!(compare(&Method::Phone, "18908289758", "908289758", &n), 1);
        assert_eq!(compare(&Method::Email, "ann@x.com", "ann@y.org", &n), 1);
        assert_eq!(
            compare(&Method::Email, "ann.lee@x.com", "annlee@x.com", &n),
            2
        );
        for m in [
            Method::Exact,
            Method::Name(vec![0.9, 0.8]),
            Method::JaroWinkler(vec![0.9]),
            Method::Levenshtein(vec![1, 2]),
            Method::Date,
            Method::Phone,
            Method::Email,
        ] {
            assert_eq!(m.levels(), m.labels().len(), "{m:?}");
        }
        assert_eq!(
            compare(&Method::Levenshtein(vec![1, 2]), "75011", "75012", &n),
            1
        );
        assert_eq!(fold("  Dvořák-SMITH "), "dvorak smith");
        assert_eq!(
            normalise(Norm::Date, "1980-03-04"),
            Some("1980-03-04".into())
        );
        assert_eq!(normalise(Norm::Date, "04/03/1980"), None);
    }

    #[test]
    fn a_near_match_never_outweighs_an_exact_match_of_its_values() {
        let text = r#"
systems = ["crm"]
auto_merge = 0.9
review = 0.5
[[compare]]
name = "first_name"
field = "first_name"
method = "name"
thresholds = [0.92, 0.80]
tf = true
[[blocking]]
name = "first initial"
keys = ["first_name:initial"]
"#;
        let raw: super::super::deterministic::RawFuzzy = toml::from_str(text).unwrap();
        let rules = FuzzyRules::from_raw(raw, text, "identity.toml").unwrap();
        let units = rules.units();
        let mut cols = Columns::new(&rules);
        let names: Vec<&str> = std::iter::repeat_n("patricia", 98)
            .chain(["patrica", "zebedee", "zebedie", "anna"])
            .collect();
        for (i, n) in names.iter().enumerate() {
            cols.push(i as u32, |_| Some(n));
        }
        cols.seal(|_| false);
        // Levels: exact, nickname/initial, JW >= 0.92, JW >= 0.80, different.
        let model = Model {
            m: vec![vec![0.5, 0.1, 0.3, 0.05, 0.05]],
            u: vec![vec![0.01, 0.001, 0.0001, 0.01, 0.978]],
            lambda: 0.01,
            em: vec![(1, 0.1)],
        };
        let w = |a: u32, b: u32| pair_unit_weights_for_test(&rules, &units, &cols, &model, a, b);
        let (level, exact_common, tf) = w(0, 1);
        assert_eq!(level, 0);
        assert!(tf);
        // patricia ~ patrica: a near match, capped at "patricia" = "patricia".
        let (level, near, tf) = w(0, 98);
        assert_eq!(level, 2, "JW >= 0.92");
        assert!(tf, "capped by the term frequency");
        assert!(
            (near - exact_common).abs() < 1e-9,
            "{near} vs {exact_common}"
        );
        assert!(near < model.weight(0, 2));
        // zebedee ~ zebedie: both rare; the cap (log2(0.5 * 102) = 5.67)
        // still binds below the level's own 11.55 bits.
        let (level, rare, _) = w(99, 100);
        assert_eq!(level, 2);
        assert!(rare > near && rare < model.weight(0, 2), "{rare}");
        // A disagreement keeps its own (negative) weight.
        let (level, differ, tf) = w(0, 101);
        assert_eq!(level, 4);
        assert!(!tf && differ < 0.0);
    }

    fn rules_of(text: &str) -> FuzzyRules {
        let raw: super::super::deterministic::RawFuzzy = toml::from_str(text).unwrap();
        FuzzyRules::from_raw(raw, text, "identity.toml").unwrap()
    }

    #[test]
    fn multibyte_birth_date_does_not_panic() {
        // Byte 10 of "1980-03-0é" is inside the é: no slice there.
        assert_eq!(normalise(Norm::Date, "1980-03-0é"), None);
        assert_eq!(normalise(Norm::Date, "é980-03-04"), None);
        assert_eq!(normalise(Norm::Date, "1980-0é-04"), None);
        assert_eq!(normalise(Norm::Date, "1980-03-"), None);
        assert_eq!(
            normalise(Norm::Date, " 1980-03-04é "),
            Some("1980-03-04".into())
        );
        // Through columns and scoring: the bad date is no value.
        let rules = rules_of(
            r#"
systems = ["crm"]
auto_merge = 0.9
review = 0.5
[[compare]]
name = "birth_date"
field = "birth_date"
method = "date"
[[blocking]]
name = "birth year"
keys = ["birth_date:year"]
"#,
        );
        let mut cols = Columns::new(&rules);
        for (i, d) in ["1980-03-04", "1980-03-0é", "1980-04-03", "1980-03-0ö"]
            .iter()
            .enumerate()
        {
            cols.push(i as u32, |_| Some(*d));
        }
        cols.seal(|_| false);
        assert_eq!(cols.value(0, 1), None);
        assert_eq!(member_levels(&rules, &cols, 0, 2), vec![1], "swapped");
        assert_eq!(member_levels(&rules, &cols, 0, 1), vec![NULL]);
        let s = score(&rules, &cols, 1);
        assert_eq!(s.comparisons, 1, "only the two real dates share a year");
    }

    #[test]
    fn exact_then_date_comparison_on_short_values_does_not_panic() {
        let rules = rules_of(
            r#"
systems = ["crm"]
auto_merge = 0.9
review = 0.5
[[compare]]
name = "birth_date exact"
field = "birth_date"
method = "exact"
[[compare]]
name = "birth_date"
field = "birth_date"
method = "date"
[[blocking]]
name = "birth date initial"
keys = ["birth_date:initial"]
"#,
        );
        // One field, read twice: folded for `exact`, as a date for `date`.
        assert_eq!(rules.fields.len(), 2);
        assert_eq!(rules.field_norm(0), Norm::Fold);
        assert_eq!(rules.field_norm(1), Norm::Date);
        assert_eq!(rules.comparisons[0].field, 0);
        assert_eq!(rules.comparisons[1].field, 1);
        assert_eq!(rules.blocking[0].keys, vec![(0, Transform::Initial)]);
        let mut cols = Columns::new(&rules);
        for (i, d) in ["1980-03-04", "1980-04-03", "1", "19", "1980-03-04"]
            .iter()
            .enumerate()
        {
            cols.push(i as u32, |_| Some(*d));
        }
        cols.seal(|_| false);
        assert_eq!(cols.value(0, 0), Some("1980 03 04"));
        assert_eq!(cols.value(1, 0), Some("1980-03-04"));
        assert_eq!(cols.value(1, 2), None, "\"1\" is no date");
        // exact: different; date: day and month swapped.
        assert_eq!(member_levels(&rules, &cols, 0, 1), vec![1, 1]);
        // Short values: exact compares them, the date comparison has none.
        assert_eq!(member_levels(&rules, &cols, 2, 3), vec![1, NULL]);
        assert_eq!(member_levels(&rules, &cols, 0, 4), vec![0, 0]);
        // The date method itself is safe on anything.
        let n = HashMap::new();
        assert_eq!(compare(&Method::Date, "1", "19", &n), 3);
        assert_eq!(compare(&Method::Date, "1980 03 04", "1980 04 03", &n), 3);
        assert_eq!(compare(&Method::Date, "1980-03-0é", "1980-03-04", &n), 3);
        let s = score(&rules, &cols, 1);
        assert_eq!(s.comparisons, 10, "all five share the initial 1");
    }

    #[test]
    fn too_many_levels_is_a_config_error_not_a_wrapped_byte() {
        let thresholds: Vec<String> = (0..300).map(|k| k.to_string()).collect();
        let text = format!(
            "systems = [\"crm\"]\nauto_merge = 0.9\nreview = 0.5\n[[compare]]\nname = \"city\"\nfield = \"city\"\nmethod = \"levenshtein\"\nthresholds = [{}]\n[[blocking]]\nname = \"city\"\nkeys = [\"city\"]\n",
            thresholds.join(", ")
        );
        let raw: super::super::deterministic::RawFuzzy = toml::from_str(&text).unwrap();
        let e = FuzzyRules::from_raw(raw, &text, "identity.toml").unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("\"city\" has 302 levels"), "{e}");
    }

    #[test]
    fn long_values_are_capped_for_similarity_but_exact_stays_whole() {
        let n = HashMap::new();
        let jw = Method::JaroWinkler(vec![0.92, 0.8]);
        let name = Method::Name(vec![0.92, 0.8]);
        let lev = Method::Levenshtein(vec![1, 2]);
        let common = "x".repeat(256);
        let a = format!("{common}{}", "a".repeat(44));
        let b = format!("{common}{}", "b".repeat(44));
        // Same first 256 characters, different values: near, never exact.
        assert_eq!(compare(&jw, &a, &b, &n), 1);
        assert_eq!(compare(&name, &a, &b, &n), 2);
        assert_eq!(compare(&lev, &a, &b, &n), 1);
        assert_eq!(compare(&Method::Exact, &a, &b, &n), 1);
        assert_eq!(compare(&jw, &a, &a.clone(), &n), 0);
        // The cut is on a character boundary.
        let wide = "é".repeat(300);
        assert_eq!(capped(&wide).chars().count(), MAX_COMPARED_CHARS);
        assert_eq!(capped(&wide).len(), 2 * MAX_COMPARED_CHARS);
        assert_eq!(capped("short"), "short");
    }

    #[test]
    fn a_200k_character_first_name_is_bounded_and_counted() {
        let rules = rules_of(
            r#"
systems = ["crm"]
auto_merge = 0.9
review = 0.5
random_pairs = 200000
[[compare]]
name = "first_name"
field = "first_name"
method = "name"
tf = true
[[compare]]
name = "last_name"
field = "last_name"
method = "jaro_winkler"
[[blocking]]
name = "last name"
keys = ["last_name"]
"#,
        );
        let huge = format!("Ann{}", "é".repeat(200_000));
        let mut cols = Columns::new(&rules);
        for i in 0..19u32 {
            let first = match i {
                0 => huge.as_str(),
                1 | 2 => "Anna",
                _ => "Bob",
            };
            let last = if i < 10 { "Lee" } else { "Stone" };
            cols.push(i, |f| Some(if f == 0 { first } else { last }));
        }
        cols.seal(|_| false);
        assert_eq!(cols.capped(0), 1);
        assert_eq!(cols.capped(1), 0);
        let t = std::time::Instant::now();
        let s = score(&rules, &cols, 42);
        let secs = t.elapsed().as_secs_f64();
        // Before the cap: tens of seconds (every random pair with the long
        // name ran Jaro-Winkler on 200,000 characters).
        assert!(secs < 5.0, "scoring took {secs:.1} s");
        assert_eq!(s.capped, vec![("first_name".to_string(), 1)]);
        // The long name is still compared, on its first 256 characters.
        let levels = member_levels(&rules, &cols, 0, 1);
        assert_eq!(levels[1], 0, "same last name");
        assert!(levels[0] > 0 && levels[0] < NULL, "{levels:?}");
    }

    /// Records for the determinism test: 600 people, some duplicated with
    /// typos, names and dates from a seeded generator.
    fn noisy_columns(rules: &FuzzyRules) -> Columns {
        let firsts = [
            "anna", "bob", "carla", "dieter", "eve", "farid", "gosia", "hugo",
        ];
        let lasts = [
            "lee", "stone", "moss", "green", "brown", "kowalski", "ng", "ortiz",
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut rows: Vec<[String; 3]> = Vec::new();
        for _ in 0..600 {
            let f = firsts[rng.random_range(0..firsts.len())].to_string();
            let l = lasts[rng.random_range(0..lasts.len())].to_string();
            let d = format!(
                "19{:02}-{:02}-{:02}",
                rng.random_range(50..99),
                rng.random_range(1..13),
                rng.random_range(1..29)
            );
            rows.push([f.clone(), l.clone(), d.clone()]);
            for _ in 0..rng.random_range(0..3) {
                let mut r = [f.clone(), l.clone(), d.clone()];
                let k = rng.random_range(0..3);
                if k < 2 {
                    r[k].push('x');
                } else {
                    r[2] = format!("{}{}", &d[..8], (b'0' + rng.random_range(0..10)) as char);
                }
                rows.push(r);
            }
        }
        let mut cols = Columns::new(rules);
        for (i, r) in rows.iter().enumerate() {
            cols.push(i as u32, |f| Some(r[f].as_str()));
        }
        cols.seal(|_| false);
        cols
    }

    #[test]
    fn match_probabilities_are_bit_identical_across_runs_and_thread_counts() {
        let rules = rules_of(
            r#"
systems = ["crm"]
auto_merge = 0.9
review = 0.01
random_pairs = 50000
[[compare]]
name = "first_name"
field = "first_name"
method = "name"
tf = true
[[compare]]
name = "last_name"
field = "last_name"
method = "jaro_winkler"
tf = true
[[compare]]
name = "birth_date"
field = "birth_date"
method = "date"
[[blocking]]
name = "first initial"
keys = ["first_name:initial"]
[[blocking]]
name = "birth year"
keys = ["birth_date:year"]
"#,
        );
        let cols = noisy_columns(&rules);
        let bits = |s: &Scored| -> Vec<u64> {
            let mut out = vec![s.model.lambda.to_bits()];
            for v in s.model.m.iter().chain(&s.model.u) {
                out.extend(v.iter().map(|x| x.to_bits()));
            }
            out.extend(s.model.em.iter().map(|e| e.1.to_bits()));
            for c in &s.kept {
                out.extend([c.a as u64, c.b as u64, c.weight.to_bits()]);
                out.push(c.probability.to_bits());
            }
            out
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| bits(&score(&rules, &cols, 42)))
        };
        let first = run(4);
        assert!(first.len() > 100, "the test scores enough pairs");
        for threads in [4, 1, 3, 4] {
            assert!(
                run(threads) == first,
                "{threads} threads: not bit-identical"
            );
        }
    }

    fn pair_unit_weights_for_test(
        rules: &FuzzyRules,
        units: &[Unit],
        cols: &Columns,
        model: &Model,
        a: u32,
        b: u32,
    ) -> (u8, f64, bool) {
        unit_weights(rules, units, cols, model, a, b)[0]
    }

    /// EM recovers known m and lambda from pairs drawn from a known model.
    #[test]
    fn em_recovers_known_parameters() {
        let m_true = [
            vec![0.85, 0.10, 0.05],
            vec![0.7, 0.3],
            vec![0.9, 0.08, 0.02],
        ];
        let u_true = [
            vec![0.01, 0.09, 0.90],
            vec![0.05, 0.95],
            vec![0.002, 0.05, 0.948],
        ];
        let lambda_true = 0.3;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let draw = |p: &[f64], rng: &mut ChaCha8Rng| {
            let x: f64 = rng.random();
            let mut acc = 0.0;
            for (i, pi) in p.iter().enumerate() {
                acc += pi;
                if x < acc {
                    return i as u8;
                }
            }
            (p.len() - 1) as u8
        };
        let mut patterns: HashMap<Vec<u8>, u64> = HashMap::new();
        for _ in 0..200_000 {
            let is_match = rng.random::<f64>() < lambda_true;
            let pat: Vec<u8> = (0..3)
                .map(|c| {
                    if is_match {
                        draw(&m_true[c], &mut rng)
                    } else {
                        draw(&u_true[c], &mut rng)
                    }
                })
                .collect();
            *patterns.entry(pat).or_default() += 1;
        }
        let m0 = vec![vec![0.5, 0.3, 0.2], vec![0.6, 0.4], vec![0.5, 0.3, 0.2]];
        let (m, lambda, iters) = em(&patterns, &u_true, &m0, &[true, true, true], 200);
        assert!((lambda - lambda_true).abs() < 0.01, "lambda {lambda}");
        for c in 0..3 {
            for l in 0..m_true[c].len() {
                assert!(
                    (m[c][l] - m_true[c][l]).abs() < 0.02,
                    "m[{c}][{l}] = {} want {} after {iters} iterations",
                    m[c][l],
                    m_true[c][l]
                );
            }
        }
    }
}
