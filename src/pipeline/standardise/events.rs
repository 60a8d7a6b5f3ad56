//! Event names to a canonical set, from `rules/events.toml`: the event type
//! (Segment `page`, `screen`, `identify`), then exact aliases after folding
//! (case, spaces, dashes, dots), then regex patterns. Names that match
//! nothing are kept as written and listed as unmapped.

use regex::Regex;
use std::collections::HashMap;

/// Fold an event name: lowercase; runs of anything not a letter or digit
/// become one `_`, and so does a camelCase boundary; no leading or trailing
/// `_`. "Page View", "pageView" and "PAGE-VIEW" all fold to "page_view".
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut gap = false;
    let mut prev_lower = false;
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            // camelCase: a capital after a lower-case letter starts a word.
            if (gap || (prev_lower && c.is_uppercase())) && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
            out.extend(c.to_lowercase());
        } else {
            gap = true;
            prev_lower = false;
        }
    }
    out
}

/// How a name was mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Type,
    Alias,
    Pattern,
}

pub struct EventNames {
    by_type: HashMap<String, String>,
    exact: HashMap<String, String>,
    patterns: Vec<(Regex, String)>,
}

impl EventNames {
    /// `canonical`: (canonical name, aliases, patterns) in file order;
    /// `by_type`: event type -> canonical name.
    pub fn new(
        canonical: Vec<(String, Vec<String>, Vec<Regex>)>,
        by_type: Vec<(String, String)>,
    ) -> EventNames {
        let mut exact = HashMap::new();
        let mut patterns = Vec::new();
        for (name, aliases, pats) in canonical {
            exact.insert(fold(&name), name.clone());
            for a in aliases {
                exact.insert(fold(&a), name.clone());
            }
            for p in pats {
                patterns.push((p, name.clone()));
            }
        }
        EventNames {
            by_type: by_type.into_iter().map(|(t, n)| (fold(&t), n)).collect(),
            exact,
            patterns,
        }
    }

    /// (folded event type, canonical), (folded alias, canonical) and
    /// (pattern, canonical) in the order they are tried (the warehouse
    /// seeds and patterns).
    #[allow(clippy::type_complexity)]
    pub fn entries(&self) -> (Vec<(&str, &str)>, Vec<(&str, &str)>, Vec<(&str, &str)>) {
        fn sorted(m: &HashMap<String, String>) -> Vec<(&str, &str)> {
            let mut v: Vec<(&str, &str)> =
                m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            v.sort_unstable();
            v
        }
        let patterns = self
            .patterns
            .iter()
            .map(|(re, n)| (re.as_str(), n.as_str()))
            .collect();
        (sorted(&self.by_type), sorted(&self.exact), patterns)
    }

    /// The canonical name of an event and how it was found, or None.
    pub fn canonical(&self, name: &str, event_type: Option<&str>) -> Option<(&str, How)> {
        if let Some(t) = event_type
            && let Some(n) = self.by_type.get(&fold(t))
        {
            return Some((n, How::Type));
        }
        let folded = fold(name);
        if let Some(n) = self.exact.get(&folded) {
            return Some((n, How::Alias));
        }
        self.patterns
            .iter()
            .find(|(re, _)| re.is_match(&folded))
            .map(|(_, n)| (n.as_str(), How::Pattern))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("Page View"), "page_view");
        assert_eq!(fold("  add-to-cart "), "add_to_cart");
        assert_eq!(fold("PAGE__VIEW"), "page_view");
        assert_eq!(fold("Order Completed!"), "order_completed");
        assert_eq!(fold("sessionStart"), "session_start");
        assert_eq!(fold("addToCart"), "add_to_cart");
        assert_eq!(fold("PAGE_VIEW"), "page_view");
    }

    #[test]
    fn type_alias_pattern_unmapped() {
        let names = EventNames::new(
            vec![
                (
                    "page_view".into(),
                    vec!["pageview".into(), "Page Viewed".into()],
                    vec![],
                ),
                (
                    "purchase".into(),
                    vec!["Order Completed".into()],
                    vec![Regex::new("^(order|purchase)_(done|complete)").unwrap()],
                ),
            ],
            vec![("page".into(), "page_view".into())],
        );
        assert_eq!(
            names.canonical("Home", Some("page")),
            Some(("page_view", How::Type))
        );
        assert_eq!(
            names.canonical("PAGE VIEWED", Some("track")),
            Some(("page_view", How::Alias))
        );
        assert_eq!(
            names.canonical("page_view", None),
            Some(("page_view", How::Alias))
        );
        assert_eq!(
            names.canonical("order-complete-v2", None),
            Some(("purchase", How::Pattern))
        );
        assert_eq!(names.canonical("Video Played", Some("track")), None);
    }
}
