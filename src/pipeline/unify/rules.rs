//! The rules of the unify step: survivorship (`rules/survivorship.toml`:
//! how each golden value is chosen) and profiles (`rules/profiles.toml`:
//! page views, key events, churn signals, a fixed "now").

use crate::pipeline::schema::System;
use crate::workspace::{ConfigError, Workspace, line_of};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

// ------------------------------------------------------------------ rules

/// How one golden value is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The first of these sources (source names or systems) with a value;
    /// ties inside it by the inner rule.
    SourcePriority(Vec<String>, Box<Rule>),
    MostRecent,
    MostFrequent,
    Longest,
    FirstNonEmpty,
}

impl Rule {
    fn name(&self) -> &'static str {
        match self {
            Rule::SourcePriority(..) => "source_priority",
            Rule::MostRecent => "most_recent",
            Rule::MostFrequent => "most_frequent",
            Rule::Longest => "longest",
            Rule::FirstNonEmpty => "first_non_empty",
        }
    }
}

/// The golden fields, in the order of [`UnifyRules::fields`].
pub const GOLDEN: [&str; 6] = [
    "name",
    "email",
    "phone",
    "country",
    "city",
    "lifecycle_status",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    DaysSinceLastActivity,
    DaysSinceLastOrder,
    ActivityDrop,
    RefundShare,
    Sessions30d,
    Orders,
    OrderGapRatio,
}

impl Metric {
    const ALL: [(&'static str, Metric); 7] = [
        ("days_since_last_activity", Metric::DaysSinceLastActivity),
        ("days_since_last_order", Metric::DaysSinceLastOrder),
        ("activity_drop", Metric::ActivityDrop),
        ("refund_share", Metric::RefundShare),
        ("sessions_30d", Metric::Sessions30d),
        ("orders", Metric::Orders),
        ("order_gap_ratio", Metric::OrderGapRatio),
    ];
}

/// One churn signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Above(Metric, f64),
    Below(Metric, f64),
    LifecycleIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub name: String,
    pub test: Test,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnifyRules {
    /// One rule per [`GOLDEN`] field.
    pub fields: Vec<Rule>,
    /// Fixed "now" (ms since the epoch and its text), or None for the latest
    /// event in the data.
    pub now: Option<(i64, String)>,
    pub page_views: Vec<String>,
    pub key_events: Vec<String>,
    pub churn: Vec<Signal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSurvivorship {
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    rule: Spanned<String>,
    #[serde(default)]
    sources: Vec<String>,
    then: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    now: Option<Spanned<String>>,
    #[serde(default)]
    page_views: Vec<String>,
    #[serde(default)]
    key_events: Vec<String>,
    #[serde(default)]
    churn: Vec<RawSignal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignal {
    name: Spanned<String>,
    metric: Option<Spanned<String>>,
    above: Option<f64>,
    below: Option<f64>,
    lifecycle_in: Option<Vec<String>>,
    weight: Spanned<f64>,
}

fn config_err(file: &str, text: &str, offset: usize, message: String) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line: line_of(text, offset),
        message,
    }
}

fn toml_err(file: &str, text: &str, e: toml::de::Error) -> ConfigError {
    config_err(
        file,
        text,
        e.span().map_or(0, |s| s.start),
        e.message().trim_end().to_string(),
    )
}

fn simple_rule(name: &str) -> Option<Rule> {
    Some(match name {
        "most_recent" => Rule::MostRecent,
        "most_frequent" => Rule::MostFrequent,
        "longest" => Rule::Longest,
        "first_non_empty" => Rule::FirstNonEmpty,
        _ => return None,
    })
}

impl UnifyRules {
    /// Parse `survivorship.toml` and `profiles.toml` (texts and file names
    /// for errors).
    pub fn parse(
        surv_text: &str,
        surv_file: &str,
        prof_text: &str,
        prof_file: &str,
    ) -> Result<UnifyRules, ConfigError> {
        let raw: RawSurvivorship =
            toml::from_str(surv_text).map_err(|e| toml_err(surv_file, surv_text, e))?;
        let serr = |offset: usize, m: String| config_err(surv_file, surv_text, offset, m);
        let mut fields = vec![Rule::MostRecent; GOLDEN.len()];
        for (name, f) in &raw.fields {
            let Some(fi) = GOLDEN.iter().position(|g| g == name.get_ref()) else {
                return Err(serr(
                    name.span().start,
                    format!(
                        "field `fields.{}`: not a golden field (one of {})",
                        name.get_ref(),
                        GOLDEN.join(", ")
                    ),
                ));
            };
            let rule_of = |s: &Spanned<String>| {
                simple_rule(s.get_ref()).ok_or_else(|| {
                    serr(
                        s.span().start,
                        format!(
                            "field `fields.{}.rule`: unknown rule {:?} (source_priority, most_recent, most_frequent, longest, first_non_empty)",
                            name.get_ref(),
                            s.get_ref()
                        ),
                    )
                })
            };
            fields[fi] = if f.rule.get_ref() == "source_priority" {
                if f.sources.is_empty() {
                    return Err(serr(
                        f.rule.span().start,
                        format!(
                            "field `fields.{}.sources`: source_priority needs a list of sources or systems, best first",
                            name.get_ref()
                        ),
                    ));
                }
                let then = match &f.then {
                    Some(t) => rule_of(t)?,
                    None => Rule::MostRecent,
                };
                Rule::SourcePriority(f.sources.clone(), Box::new(then))
            } else {
                rule_of(&f.rule)?
            };
        }

        let raw: RawProfiles =
            toml::from_str(prof_text).map_err(|e| toml_err(prof_file, prof_text, e))?;
        let perr = |offset: usize, m: String| config_err(prof_file, prof_text, offset, m);
        let now = match &raw.now {
            None => None,
            Some(s) if s.get_ref() == "latest_event" => None,
            Some(s) => {
                let ms = chrono::DateTime::parse_from_rfc3339(s.get_ref())
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| {
                        perr(
                            s.span().start,
                            format!(
                                "field `now`: {:?} is neither \"latest_event\" nor a time like \"2025-07-01T00:00:00Z\"",
                                s.get_ref()
                            ),
                        )
                    })?;
                Some((ms, s.get_ref().clone()))
            }
        };
        let mut churn = Vec::new();
        for s in raw.churn {
            let at = s.name.span().start;
            let test = match (&s.metric, s.above, s.below, &s.lifecycle_in) {
                (Some(m), above, below, None) if above.is_some() != below.is_some() => {
                    let metric = Metric::ALL
                        .iter()
                        .find(|(n, _)| n == m.get_ref())
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| {
                            perr(
                                m.span().start,
                                format!(
                                    "field `churn.metric`: unknown metric {:?} ({})",
                                    m.get_ref(),
                                    Metric::ALL.map(|(n, _)| n).join(", ")
                                ),
                            )
                        })?;
                    match (above, below) {
                        (Some(a), _) => Test::Above(metric, a),
                        (_, Some(b)) => Test::Below(metric, b),
                        _ => unreachable!("one of above / below"),
                    }
                }
                (None, None, None, Some(list)) => {
                    Test::LifecycleIn(list.iter().map(|v| v.to_lowercase()).collect())
                }
                _ => {
                    return Err(perr(
                        at,
                        format!(
                            "churn signal {:?}: give `metric` with one of `above` / `below`, or `lifecycle_in`",
                            s.name.get_ref()
                        ),
                    ));
                }
            };
            if !(0.0..=1.0).contains(s.weight.get_ref()) {
                return Err(perr(
                    s.weight.span().start,
                    format!(
                        "field `churn.weight` of {:?}: must be between 0 and 1",
                        s.name.get_ref()
                    ),
                ));
            }
            churn.push(Signal {
                name: s.name.get_ref().clone(),
                test,
                weight: *s.weight.get_ref(),
            });
        }
        Ok(UnifyRules {
            fields,
            now,
            page_views: raw.page_views,
            key_events: raw.key_events,
            churn,
        })
    }
}

pub fn load_rules(ws: &Workspace) -> Result<UnifyRules> {
    Ok(load_rules_with_text(ws)?.0)
}

/// The rules and the two files' texts (survivorship, profiles), which a
/// unify run stores so that live refreshes after steward decisions use the
/// rules the profiles were built with.
pub fn load_rules_with_text(ws: &Workspace) -> Result<(UnifyRules, String, String)> {
    let read = |name: &str| -> Result<(String, String)> {
        let path = ws.rules_dir().join(name);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (copy it from the repository's rules/)",
                path.display()
            )
        })?;
        Ok((text, path.display().to_string()))
    };
    let (st, sf) = read("survivorship.toml")?;
    let (pt, pf) = read("profiles.toml")?;
    let rules = UnifyRules::parse(&st, &sf, &pt, &pf)?;
    let known: Vec<&str> = ws
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .chain(System::ALL.iter().map(|s| s.as_str()))
        .collect();
    rules.check_sources(&known, &st, &sf)?;
    Ok((rules, st, pt))
}

impl UnifyRules {
    /// Every source a `source_priority` rule lists must be a source of the
    /// workspace or a system: a misspelt name would silently never win.
    pub fn check_sources(&self, known: &[&str], text: &str, file: &str) -> Result<(), ConfigError> {
        for (field, rule) in GOLDEN.iter().zip(&self.fields) {
            let Rule::SourcePriority(sources, _) = rule else {
                continue;
            };
            if let Some(bad) = sources.iter().find(|s| !known.contains(&s.as_str())) {
                let offset = text.find(&format!("\"{bad}\"")).unwrap_or(0);
                return Err(config_err(
                    file,
                    text,
                    offset,
                    format!(
                        "field `fields.{field}.sources`: unknown source {bad:?} (sources and systems: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------ survivorship

/// One candidate for a golden value.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub value: String,
    pub record: String,
    pub system: String,
    pub source: String,
    /// Record time (ms), for recency.
    pub time: Option<i64>,
}

fn norm(v: &str) -> String {
    v.trim().to_lowercase()
}

/// Among `idx` (indices into `cands`), the most recent (ties: the smallest
/// record key, so the choice never depends on read order).
fn most_recent(cands: &[Candidate], idx: &[usize]) -> Option<usize> {
    idx.iter().copied().max_by(|&a, &b| {
        cands[a]
            .time
            .cmp(&cands[b].time)
            .then_with(|| cands[b].record.cmp(&cands[a].record))
    })
}

/// Pick the golden value: (index of the winning candidate, rule text).
pub fn choose(rule: &Rule, cands: &[Candidate]) -> Option<(usize, String)> {
    let all: Vec<usize> = (0..cands.len())
        .filter(|&i| !cands[i].value.trim().is_empty())
        .collect();
    choose_among(rule, cands, &all)
}

fn choose_among(rule: &Rule, cands: &[Candidate], idx: &[usize]) -> Option<(usize, String)> {
    if idx.is_empty() {
        return None;
    }
    match rule {
        Rule::MostRecent => most_recent(cands, idx).map(|i| (i, "most_recent".into())),
        Rule::FirstNonEmpty => idx
            .iter()
            .copied()
            .min_by(|&a, &b| {
                // Records without a time count as oldest.
                cands[a]
                    .time
                    .unwrap_or(i64::MIN)
                    .cmp(&cands[b].time.unwrap_or(i64::MIN))
                    .then_with(|| cands[a].record.cmp(&cands[b].record))
            })
            .map(|i| (i, "first_non_empty".into())),
        Rule::Longest => {
            let best = idx
                .iter()
                .map(|&i| cands[i].value.trim().chars().count())
                .max()?;
            let longest: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| cands[i].value.trim().chars().count() == best)
                .collect();
            most_recent(cands, &longest).map(|i| (i, "longest".into()))
        }
        Rule::MostFrequent => {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for &i in idx {
                *counts.entry(norm(&cands[i].value)).or_default() += 1;
            }
            let top = *counts.values().max()?;
            let winners: Vec<usize> = idx
                .iter()
                .copied()
                .filter(|&i| counts[&norm(&cands[i].value)] == top)
                .collect();
            most_recent(cands, &winners)
                .map(|i| (i, format!("most_frequent ({top} of {} records)", idx.len())))
        }
        Rule::SourcePriority(order, then) => {
            for s in order {
                let here: Vec<usize> = idx
                    .iter()
                    .copied()
                    .filter(|&i| &cands[i].source == s || &cands[i].system == s)
                    .collect();
                if let Some((i, _)) = choose_among(then, cands, &here) {
                    return Some((i, format!("source_priority ({s}, then {})", then.name())));
                }
            }
            // No listed source has a value: fall back to the inner rule.
            choose_among(then, cands, idx).map(|(i, _)| {
                (
                    i,
                    format!("source_priority (none listed, then {})", then.name()),
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(value: &str, record: &str, source: &str, time: Option<i64>) -> Candidate {
        Candidate {
            value: value.into(),
            record: record.into(),
            system: if source.starts_with("shop") {
                "transactions".into()
            } else {
                "crm".into()
            },
            source: source.into(),
            time,
        }
    }

    #[test]
    fn survivorship_rules_choose_as_documented() {
        let cands = vec![
            c("ann@old.com", "crm:crm:1", "crm", Some(10)),
            c("ann@new.com", "crm:crm:2", "crm", Some(30)),
            c("ANN@old.com ", "crm:legacy:3", "legacy", Some(20)),
            c(
                "a.lee@shop.com",
                "transactions:shop:9:purchase",
                "shop",
                Some(40),
            ),
            c("", "crm:crm:4", "crm", Some(50)),
        ];
        let pick = |rule: Rule| {
            let (i, why) = choose(&rule, &cands).unwrap();
            (cands[i].record.clone(), why)
        };
        assert_eq!(pick(Rule::MostRecent).0, "transactions:shop:9:purchase");
        assert_eq!(pick(Rule::FirstNonEmpty).0, "crm:crm:1");
        // ann@old.com twice (case and spaces ignored): the more recent of them.
        let (rec, why) = pick(Rule::MostFrequent);
        assert_eq!(rec, "crm:legacy:3");
        assert_eq!(why, "most_frequent (2 of 4 records)");
        assert_eq!(pick(Rule::Longest).0, "transactions:shop:9:purchase");
        // Equal lengths: the more recent.
        let tie = [c("abc", "a", "crm", Some(1)), c("xyz", "b", "crm", Some(2))];
        assert_eq!(choose(&Rule::Longest, &tie).unwrap().0, 1);
        let (rec, why) = pick(Rule::SourcePriority(
            vec!["legacy".into(), "crm".into()],
            Box::new(Rule::MostRecent),
        ));
        assert_eq!(rec, "crm:legacy:3");
        assert_eq!(why, "source_priority (legacy, then most_recent)");
        // A system name works as a source; within it, the inner rule.
        let (rec, _) = pick(Rule::SourcePriority(
            vec!["crm".into()],
            Box::new(Rule::FirstNonEmpty),
        ));
        assert_eq!(rec, "crm:crm:1");
        // Nothing listed has a value: the inner rule over all.
        let (rec, why) = pick(Rule::SourcePriority(
            vec!["erp".into()],
            Box::new(Rule::MostRecent),
        ));
        assert_eq!(rec, "transactions:shop:9:purchase");
        assert!(why.contains("none listed"), "{why}");
        assert!(choose(&Rule::MostRecent, &[c("  ", "k", "crm", None)]).is_none());
    }

    #[test]
    fn unknown_survivorship_source_is_an_error_at_its_line() {
        let surv = "[fields.email]\nrule = \"source_priority\"\nsources = [\"crm\", \"legcay\"]\n";
        let rules = UnifyRules::parse(surv, "survivorship.toml", "", "profiles.toml").unwrap();
        let err = rules
            .check_sources(
                &["crm", "legacy", "web", "transactions"],
                surv,
                "survivorship.toml",
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "survivorship.toml:3: field `fields.email.sources`: unknown source \"legcay\" (sources and systems: crm, legacy, web, transactions)"
        );
        assert!(
            rules
                .check_sources(&["crm", "legcay"], surv, "survivorship.toml")
                .is_ok()
        );
    }

    #[test]
    fn rule_files_parse_and_errors_name_file_line_and_field() {
        let surv = include_str!("../../../rules/survivorship.toml");
        let prof = include_str!("../../../rules/profiles.toml");
        let r = UnifyRules::parse(surv, "survivorship.toml", prof, "profiles.toml").unwrap();
        assert_eq!(
            r.fields[0],
            Rule::SourcePriority(vec!["crm".into()], Box::new(Rule::MostRecent))
        );
        assert_eq!(r.fields[2], Rule::MostFrequent);
        assert!(r.now.is_none());
        assert!(r.churn.len() >= 5);

        let bad = "[fields.email]\nrule = \"newest\"\n";
        let e = UnifyRules::parse(bad, "s.toml", prof, "p.toml").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("s.toml", 2), "{e}");
        assert!(e.message.contains("fields.email.rule"), "{e}");
        let bad = "[fields.shoe_size]\nrule = \"longest\"\n";
        let e = UnifyRules::parse(bad, "s.toml", prof, "p.toml").unwrap_err();
        assert!(e.message.contains("not a golden field"), "{e}");
        let bad = "now = \"yesterday\"\n";
        let e = UnifyRules::parse(surv, "s.toml", bad, "p.toml").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("p.toml", 1), "{e}");
        let bad = "[[churn]]\nname = \"x\"\nmetric = \"mood\"\nabove = 1\nweight = 0.1\n";
        let e = UnifyRules::parse(surv, "s.toml", bad, "p.toml").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("unknown metric"), "{e}");
        let fixed = "now = \"2025-07-01T00:00:00Z\"\n";
        let r = UnifyRules::parse(surv, "s.toml", fixed, "p.toml").unwrap();
        assert_eq!(r.now.unwrap().1, "2025-07-01T00:00:00Z");
    }
}
