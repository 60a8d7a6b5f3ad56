//! Normalisers for people fields: e-mail, phone, names, postcodes, cities,
//! birth dates, lifecycle status. Each is a pure function from a raw value to
//! a [`Norm`]: the clean value and whether the input was valid. Applying a
//! normaliser to its own output changes nothing (tested as a property).

use crate::pipeline::timeparse::parse_date_with;
use crate::workspace::DateOrder;
use serde::Deserialize;
use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

/// A normalised value. `valid == false` keeps the (tidied) original and flags
/// it; nothing is ever guessed silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Norm {
    pub value: String,
    pub valid: bool,
}

impl Norm {
    fn ok(value: String) -> Norm {
        Norm { value, valid: true }
    }
    fn flagged(value: String) -> Norm {
        Norm {
            value,
            valid: false,
        }
    }
}

/// Per-domain e-mail rules (from `rules/people.toml`).
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DomainRule {
    /// Dots in the local part do not matter (gmail).
    #[serde(default)]
    pub ignore_dots: bool,
    /// `name+tag@` delivers to `name@` (drop the tag).
    #[serde(default)]
    pub drop_plus_tag: bool,
    /// Write the domain as this one (googlemail.com -> gmail.com).
    pub canonical_domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EmailRules {
    #[serde(default)]
    pub domains: BTreeMap<String, DomainRule>,
}

/// Collapse runs of whitespace to one space and trim; Unicode NFC.
pub fn tidy(s: &str) -> String {
    let nfc: String = s.nfc().collect();
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// E-mail: trim, lowercase, syntax check, then the domain's rules.
pub fn email(raw: &str, rules: &EmailRules) -> Norm {
    let s = tidy(raw).to_lowercase().replace(' ', "");
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Norm::flagged(s);
    };
    let domain = domain.trim_end_matches('.');
    let valid_local = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_domain = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    if !(valid_local && valid_domain) {
        return Norm::flagged(s);
    }
    let mut local = local.to_string();
    let mut domain = domain.to_string();
    if let Some(rule) = rules.domains.get(&domain) {
        if rule.drop_plus_tag
            && let Some((base, _tag)) = local.split_once('+')
            && !base.is_empty()
        {
            local = base.to_string();
        }
        if rule.ignore_dots {
            local = local.replace('.', "");
        }
        if let Some(canonical) = &rule.canonical_domain {
            domain = canonical.clone();
        }
    }
    Norm::ok(format!("{local}@{domain}"))
}

/// Phone to E.164 (`+4915112345678`), read in the record's country when it
/// has no international prefix. `00` is read as `+`.
pub fn phone(raw: &str, country: Option<&str>) -> Norm {
    let tidy = tidy(raw);
    let digits: String = tidy.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 || digits.chars().all(|c| c == '0') {
        return Norm::flagged(tidy);
    }
    let text = if let Some(rest) = tidy.strip_prefix("00") {
        format!("+{rest}")
    } else {
        tidy.clone()
    };
    let region = country.and_then(|c| c.parse::<phonenumber::country::Id>().ok());
    match phonenumber::parse(region, &text) {
        // E.164 written directly: "+", country code, the national number with
        // its leading zeros (Italy). The crate's formatter would run its
        // format regexes for nothing.
        Ok(number) if phonenumber::is_valid(&number) => {
            let national = number.national();
            Norm::ok(format!(
                "+{}{}{}",
                number.code().value(),
                "0".repeat(national.zeros() as usize),
                national.value()
            ))
        }
        _ => Norm::flagged(tidy),
    }
}

/// Name: tidy; all-upper or all-lower words get title case ("JOHN" -> "John",
/// "o'neil" -> "O'Neil"); mixed case is kept ("McDonald", "van den Berg").
pub fn name(raw: &str) -> Norm {
    let s = tidy(raw);
    let has_upper = s.chars().any(char::is_uppercase);
    let has_lower = s.chars().any(char::is_lowercase);
    if has_upper && has_lower {
        return Norm::ok(s);
    }
    Norm::ok(title_case(&s))
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_alphabetic() {
            // A letter whose capital is several letters (ß -> SS) stays as
            // it is, so title case is idempotent.
            if start && c.to_uppercase().count() == 1 {
                out.extend(c.to_uppercase());
            } else if start {
                out.push(c);
            } else {
                out.extend(c.to_lowercase());
            }
            start = false;
        } else {
            out.push(c);
            start = matches!(c, ' ' | '-' | '\'' | '’' | '.');
        }
    }
    out
}

/// Split "Last, First" (or "First Last") into (first, last).
pub fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let s = name(full).value;
    if let Some((last, first)) = s.split_once(',') {
        let (first, last) = (first.trim(), last.trim());
        return (
            (!first.is_empty()).then(|| first.to_string()),
            (!last.is_empty()).then(|| last.to_string()),
        );
    }
    match s.rsplit_once(' ') {
        Some((first, last)) => (Some(first.to_string()), Some(last.to_string())),
        None if s.is_empty() => (None, None),
        None => (Some(s), None),
    }
}

/// Lower case, letters and digits only: how status and vocabulary values
/// are compared ("Marketing Qualified Lead" = "marketing_qualified_lead").
pub fn fold_alnum(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Postcode: uppercase, single spaces.
pub fn postcode(raw: &str) -> Norm {
    Norm::ok(tidy(raw).to_uppercase())
}

/// City: tidy, title case when all upper / all lower.
pub fn city(raw: &str) -> Norm {
    name(raw)
}

/// Birth date to ISO `YYYY-MM-DD` (day/month order from the source).
pub fn birth_date(raw: &str, order: DateOrder, formats: &[String]) -> Norm {
    let s = tidy(raw);
    match parse_date_with(&s, order, formats) {
        Some(d) => Norm::ok(d.format("%Y-%m-%d").to_string()),
        None => Norm::flagged(s),
    }
}

/// The lifecycle statuses the rules know (lowercase).
pub const LIFECYCLE: &[&str] = &["lead", "prospect", "active", "lapsed", "churned"];

/// Lifecycle status: the model's status the value stands for
/// (`rules/people.toml` `[lifecycle]`); unknown values kept (lowercase) and
/// flagged.
pub fn lifecycle(raw: &str, rules: &super::rules::Lifecycle) -> Norm {
    match rules.status(raw) {
        Some(s) => Norm::ok(s.to_string()),
        None => Norm::flagged(tidy(raw).to_lowercase()),
    }
}

/// Currency code: uppercase three letters, else flagged.
pub fn currency(raw: &str) -> Norm {
    let s = tidy(raw).to_uppercase();
    if s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()) {
        Norm::ok(s)
    } else {
        Norm::flagged(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gmail_rules() -> EmailRules {
        let mut domains = BTreeMap::new();
        domains.insert(
            "gmail.com".to_string(),
            DomainRule {
                ignore_dots: true,
                drop_plus_tag: true,
                canonical_domain: None,
            },
        );
        domains.insert(
            "googlemail.com".to_string(),
            DomainRule {
                ignore_dots: true,
                drop_plus_tag: true,
                canonical_domain: Some("gmail.com".into()),
            },
        );
        EmailRules { domains }
    }

    #[test]
    fn emails() {
        let r = gmail_rules();
        let cases = [
            ("  John.Smith+shop@Gmail.com ", "johnsmith@gmail.com", true),
            ("j.o.h.n@googlemail.com", "john@gmail.com", true),
            ("anna.b+x@example.com", "anna.b+x@example.com", true),
            ("ANNA@EXAMPLE.CO.UK", "anna@example.co.uk", true),
            ("not-an-email", "not-an-email", false),
            ("a@b", "a@b", false),
            ("a..b@example.com", "a..b@example.com", false),
            ("@example.com", "@example.com", false),
            ("x@exa mple.com", "x@example.com", true),
        ];
        for (raw, want, valid) in cases {
            let n = email(raw, &r);
            assert_eq!((n.value.as_str(), n.valid), (want, valid), "{raw:?}");
        }
    }

    #[test]
    fn phones_to_e164() {
        let cases = [
            ("+1 415 555 0134", Some("US"), "+14155550134", true),
            ("(415) 555-0134", Some("US"), "+14155550134", true),
            ("415.555.0134", Some("US"), "+14155550134", true),
            ("004915112345678", None, "+4915112345678", true),
            ("+49 151 12345678", Some("DE"), "+4915112345678", true),
            ("0151 12345678", Some("DE"), "+4915112345678", true),
            ("06 12 34 56 78", Some("FR"), "+33612345678", true),
            ("020 7946 0958", Some("GB"), "+442079460958", true),
            ("000-000-0000", Some("US"), "000-000-0000", false),
            ("12", Some("US"), "12", false),
            ("unknown", Some("US"), "unknown", false),
        ];
        for (raw, country, want, valid) in cases {
            let n = phone(raw, country);
            assert_eq!((n.value.as_str(), n.valid), (want, valid), "{raw:?}");
        }
    }

    #[test]
    fn names_and_places() {
        assert_eq!(name("  JOHN  ").value, "John");
        assert_eq!(name("smith").value, "Smith");
        assert_eq!(name("o'neil-jones").value, "O'Neil-Jones");
        assert_eq!(name("McDonald").value, "McDonald");
        assert_eq!(name("van den Berg").value, "van den Berg");
        // NFC: a decomposed ü becomes one character.
        assert_eq!(name("Mu\u{308}ller").value, "Müller");
        assert_eq!(
            split_full_name("Smith, John"),
            (Some("John".into()), Some("Smith".into()))
        );
        assert_eq!(
            split_full_name("mary ann jones"),
            (Some("Mary Ann".into()), Some("Jones".into()))
        );
        assert_eq!(postcode(" sw1a  1aa ").value, "SW1A 1AA");
        assert_eq!(city("NEW YORK ").value, "New York");
        assert_eq!(
            birth_date("25/12/1980", DateOrder::Mdy, &[]).value,
            "1980-12-25"
        );
        assert_eq!(
            birth_date("03/04/1980", DateOrder::Dmy, &[]).value,
            "1980-04-03"
        );
        assert_eq!(
            birth_date("May 23, 1959", DateOrder::Mdy, &[]).value,
            "1959-05-23"
        );
        assert_eq!(
            birth_date("20 Sep 1975", DateOrder::Dmy, &[]).value,
            "1975-09-20"
        );
        assert_eq!(
            birth_date("19750920", DateOrder::Mdy, &[]).value,
            "1975-09-20"
        );
        let dotted = ["%Y.%d.%m".to_string()];
        assert_eq!(
            birth_date("1975.20.09", DateOrder::Mdy, &dotted).value,
            "1975-09-20"
        );
        assert!(!birth_date("someday", DateOrder::Mdy, &[]).valid);
        let model = super::super::rules::Lifecycle::default();
        assert_eq!(lifecycle(" ACTIVE ", &model).value, "active");
        assert!(!lifecycle("vip", &model).valid);
        assert_eq!(currency(" eur").value, "EUR");
    }
}
