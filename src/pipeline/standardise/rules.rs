//! Loading the standardise rule files from a workspace's `rules/` folder:
//! `countries.toml`, `events.toml`, `people.toml`. Every error names the
//! file, the line and the field.

use super::country::Countries;
use super::events::EventNames;
use super::people::{self, EmailRules};
use crate::workspace::{ConfigError, line_of};
use anyhow::{Context, Result};
use regex::Regex;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountriesFile {
    /// Written values that mean "no country" (compared case-insensitively).
    #[serde(default)]
    null_values: Vec<String>,
    /// Local alias -> ISO alpha-2 code.
    #[serde(default)]
    aliases: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRule {
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    patterns: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    #[serde(default)]
    by_type: BTreeMap<String, Spanned<String>>,
    /// Canonical name -> its aliases and patterns.
    #[serde(default)]
    events: BTreeMap<String, EventRule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PeopleFile {
    #[serde(default)]
    email: EmailRules,
    #[serde(default)]
    lifecycle: Option<RawLifecycle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    model: Vec<String>,
    #[serde(default)]
    aliases: BTreeMap<String, Spanned<String>>,
}

/// Everything the standardise step needs from `rules/`.
pub struct Rules {
    pub countries: Countries,
    pub country_nulls: Vec<String>,
    pub events: EventNames,
    pub canonical_events: Vec<String>,
    pub email: EmailRules,
    pub lifecycle: Lifecycle,
    pub orders: super::orders::Orders,
}

pub(super) fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let line = line_of(text, offset);
        let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
        ConfigError {
            file: file.to_string(),
            line,
            message: format!("{} (in `{line_text}`)", e.message().trim_end()),
        }
    })
}

fn read(dir: &Path, name: &str) -> Result<(String, String)> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (every workspace needs it; copy it from the repository's rules/)",
            path.display()
        )
    })?;
    Ok((text, path.display().to_string()))
}

impl Rules {
    /// Load the rules of a workspace's `rules/` folder.
    pub fn load(dir: &Path) -> Result<Rules> {
        let (text, file) = read(dir, "countries.toml")?;
        let (nulls, aliases) = parse_countries(&text, &file)?;
        let countries = Countries::new(&aliases);
        let (text, file) = read(dir, "events.toml")?;
        let (events, canonical_events) = parse_events(&text, &file)?;
        let (text, file) = read(dir, "people.toml")?;
        let people: PeopleFile = parse(&text, &file)?;
        let lifecycle = match people.lifecycle {
            Some(raw) => Lifecycle::from_raw(raw, &text, &file)?,
            None => Lifecycle::default(),
        };
        // orders.toml came later: a workspace without it keeps the old
        // reading (refund rows negative, amounts as they are).
        let orders = match std::fs::read_to_string(dir.join("orders.toml")) {
            Ok(text) => {
                let file = dir.join("orders.toml").display().to_string();
                super::orders::Orders::parse(&text, &file)?
            }
            Err(_) => super::orders::Orders::default(),
        };
        Ok(Rules {
            countries,
            country_nulls: nulls,
            events,
            canonical_events,
            email: people.email,
            lifecycle,
            orders,
        })
    }
}

/// The lifecycle model and the CRM values that map to it
/// (`rules/people.toml` `[lifecycle]`).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// The model's statuses, in order.
    pub model: Vec<String>,
    /// Folded value -> status of the model.
    aliases: BTreeMap<String, String>,
}

impl Default for Lifecycle {
    /// The model alone, before `[lifecycle]` existed.
    fn default() -> Self {
        Lifecycle {
            model: people::LIFECYCLE.iter().map(|s| s.to_string()).collect(),
            aliases: BTreeMap::new(),
        }
    }
}

impl Lifecycle {
    fn from_raw(raw: RawLifecycle, text: &str, file: &str) -> Result<Lifecycle, ConfigError> {
        let model: Vec<String> = raw.model.iter().map(|m| m.trim().to_lowercase()).collect();
        let mut aliases = BTreeMap::new();
        for (value, status) in raw.aliases {
            let s = status.get_ref().trim().to_lowercase();
            if !model.contains(&s) {
                return Err(ConfigError {
                    file: file.into(),
                    line: line_of(text, status.span().start),
                    message: format!(
                        "field `lifecycle.aliases.{value}`: {:?} is not a status of the model ({})",
                        status.get_ref(),
                        model.join(", ")
                    ),
                });
            }
            aliases.insert(people::fold_alnum(&value), s);
        }
        Ok(Lifecycle { model, aliases })
    }

    /// (folded value, status) of every alias and status of the model
    /// (the warehouse seed `lifecycle_map`), aliases first.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .aliases
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for m in &self.model {
            let key = people::fold_alnum(m);
            if !self.aliases.contains_key(&key) {
                out.push((key, m.clone()));
            }
        }
        out
    }

    /// The model status a CRM value stands for, if any.
    pub fn status(&self, raw: &str) -> Option<&str> {
        let folded = people::fold_alnum(raw);
        if let Some(s) = self.aliases.get(&folded) {
            return Some(s);
        }
        self.model
            .iter()
            .find(|m| people::fold_alnum(m) == folded)
            .map(String::as_str)
    }
}

/// Local country aliases: (alias, alpha-2).
pub type Aliases = Vec<(String, String)>;

/// (null values, aliases) of a countries file; aliases must be two letters.
pub fn parse_countries(text: &str, file: &str) -> Result<(Vec<String>, Aliases), ConfigError> {
    let parsed: CountriesFile = parse(text, file)?;
    let mut aliases = Vec::new();
    for (alias, code) in parsed.aliases {
        let c = code.get_ref().trim();
        if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return Err(ConfigError {
                file: file.into(),
                line: line_of(text, code.span().start),
                message: format!(
                    "field `aliases.{alias}`: {c:?} is not an ISO 3166-1 alpha-2 code (two letters, e.g. \"US\")"
                ),
            });
        }
        aliases.push((alias, c.to_uppercase()));
    }
    let nulls = parsed
        .null_values
        .iter()
        .map(|v| v.trim().to_lowercase())
        .collect();
    Ok((nulls, aliases))
}

/// The event-name rules and the canonical names, in file order.
pub fn parse_events(text: &str, file: &str) -> Result<(EventNames, Vec<String>), ConfigError> {
    let parsed: EventsFile = parse(text, file)?;
    let mut canonical = Vec::new();
    let mut names = Vec::new();
    // Sorted by name: patterns are tried in a deterministic order.
    for (name, rule) in parsed.events {
        let mut patterns = Vec::new();
        for p in rule.patterns {
            let re = Regex::new(p.get_ref()).map_err(|e| ConfigError {
                file: file.into(),
                line: line_of(text, p.span().start),
                message: format!(
                    "field `events.{name}.patterns`: invalid regular expression {:?}: {}",
                    p.get_ref(),
                    e.to_string().lines().last().unwrap_or("")
                ),
            })?;
            patterns.push(re);
        }
        names.push(name.clone());
        canonical.push((name, rule.aliases, patterns));
    }
    let mut by_type = Vec::new();
    for (t, target) in parsed.by_type {
        if !names.iter().any(|n| n == target.get_ref()) {
            return Err(ConfigError {
                file: file.into(),
                line: line_of(text, target.span().start),
                message: format!(
                    "field `by_type.{t}`: {:?} is not one of the [events.*] names",
                    target.get_ref()
                ),
            });
        }
        by_type.push((t, target.into_inner()));
    }
    Ok((EventNames::new(canonical, by_type), names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let rules = Rules::load(&dir).unwrap();
        assert!(rules.canonical_events.contains(&"page_view".to_string()));
        assert_eq!(rules.countries.code("u.s."), Some("US"));
        assert_eq!(rules.countries.code("République française"), Some("FR"));
        assert_eq!(rules.countries.code("Holland"), Some("NL"));
        assert!(rules.country_nulls.contains(&"n/a".to_string()));
    }

    #[test]
    fn bad_regex_names_file_line_field() {
        let text = "[events.click]\naliases = [\"Click\"]\npatterns = [\"^click(\"]\n";
        let e = parse_events(text, "rules/events.toml").err().unwrap();
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("rules/events.toml:3: field `events.click.patterns`"),
            "{e}"
        );
    }

    #[test]
    fn bad_alias_code_names_file_line_field() {
        let text = "null_values = []\n[aliases]\n\"Merica\" = \"USA\"\n";
        let e = parse_countries(text, "rules/countries.toml").err().unwrap();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("aliases.Merica"), "{e}");
    }

    #[test]
    fn unknown_key_and_bad_type_target() {
        let e = parse_events("[events.click]\nalias = [\"x\"]\n", "events.toml")
            .err()
            .unwrap();
        assert!(e.message.contains("unknown field `alias`"), "{e}");
        assert_eq!(e.line, 2, "{e}");
        let e = parse_events(
            "[by_type]\npage = \"pageview\"\n[events.page_view]\n",
            "events.toml",
        )
        .err()
        .unwrap();
        assert_eq!(e.line, 2, "{e}");
    }
}
