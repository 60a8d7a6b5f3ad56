//! Countries and regions to ISO 3166 codes.
//!
//! The list comes from the `keshvar` crate (every ISO 3166-1 country with its
//! alpha-2, alpha-3 and numeric codes, ISO short and long names, unofficial
//! names, and names in every language it has, plus ISO 3166-2 subdivisions).
//! `rules/countries.toml` adds local aliases on top. Lookups fold case,
//! accents, punctuation and spaces ("U.S." = "us", "España" = "espana").
//! A value that matches nothing is kept and flagged, never guessed.

use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

/// Fold a name for lookup: NFKD, drop combining marks, keep letters and
/// digits only, lowercase.
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Name -> alpha-2 code.
pub struct Countries {
    by_name: HashMap<String, String>,
    /// alpha-2 -> (folded subdivision code or name -> ISO 3166-2 code).
    subdivisions: HashMap<String, HashMap<String, String>>,
}

impl Countries {
    /// Build the lookup from keshvar plus local `aliases` (alias -> alpha-2).
    /// Local aliases win over the built-in names.
    pub fn new(aliases: &[(String, String)]) -> Countries {
        let mut by_name: HashMap<String, String> = HashMap::new();
        let mut subdivisions = HashMap::new();
        // Codes first (they never collide), then names; an ambiguous name
        // (the same spelling for two countries) keeps its first country.
        for country in keshvar::CountryIterator::new() {
            let a2 = country.alpha2().to_string();
            for key in [
                a2.clone(),
                country.alpha3().to_string(),
                country.number().to_string(),
            ] {
                by_name.insert(fold(&key), a2.clone());
            }
        }
        // Other country codes seen in the wild: Olympic (IOC: "GER") and
        // international vehicle codes ("D"), below the ISO codes.
        for country in keshvar::CountryIterator::new() {
            let a2 = country.alpha2().to_string();
            let ioc = country.maybe_ioc().map(|c| c.to_string());
            let vehicle = country
                .maybe_vehicle_registration_code()
                .map(str::to_string);
            for code in ioc.into_iter().chain(vehicle) {
                by_name.entry(fold(&code)).or_insert_with(|| a2.clone());
            }
        }
        // Then names, in order of authority: ISO names, common names,
        // translations. A spelling shared by two countries keeps the first.
        let countries: Vec<keshvar::Country> = keshvar::CountryIterator::new().collect();
        let mut insert = |name: &str, a2: &str| {
            let key = fold(name);
            if key.chars().count() >= 2 {
                by_name.entry(key).or_insert_with(|| a2.to_string());
            }
        };
        for c in &countries {
            let a2 = c.alpha2().to_string();
            insert(c.iso_short_name(), &a2);
            insert(c.iso_long_name(), &a2);
        }
        for c in &countries {
            let a2 = c.alpha2().to_string();
            for n in c.unofficial_name_list() {
                insert(n, &a2);
            }
        }
        for c in &countries {
            let a2 = c.alpha2().to_string();
            let mut translations: Vec<(&&str, &&str)> = c.translations().iter().collect();
            translations.sort();
            for (_, n) in translations {
                insert(n, &a2);
            }
        }
        for c in &countries {
            let a2 = c.alpha2().to_string();
            let mut subs: HashMap<String, String> = HashMap::new();
            let mut codes: Vec<_> = c.subdivisions().iter().collect();
            codes.sort_by_key(|(code, _)| **code);
            for (code, sub) in codes {
                let iso = format!("{a2}-{code}");
                subs.insert(fold(code), iso.clone());
                subs.insert(fold(&iso), iso.clone());
                subs.entry(fold(sub.name())).or_insert_with(|| iso.clone());
                for n in sub.unofficial_name_list() {
                    subs.entry(fold(n)).or_insert_with(|| iso.clone());
                }
            }
            subdivisions.insert(a2, subs);
        }
        for (alias, code) in aliases {
            by_name.insert(fold(alias), code.to_uppercase());
        }
        Countries {
            by_name,
            subdivisions,
        }
    }

    /// Every (folded name, alpha-2 code) the lookup knows, sorted (the
    /// warehouse seed `country_aliases`).
    pub fn entries(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .by_name
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        out.sort_unstable();
        out
    }

    /// The alpha-2 code for a written country, if known.
    pub fn code(&self, raw: &str) -> Option<&str> {
        self.by_name.get(&fold(raw)).map(String::as_str)
    }

    /// Is this an ISO alpha-2 code we know?
    pub fn is_code(&self, code: &str) -> bool {
        code.len() == 2 && self.subdivisions.contains_key(code)
    }

    /// The ISO 3166-2 code of a region written in a country, if known.
    pub fn subdivision(&self, alpha2: &str, raw: &str) -> Option<&str> {
        self.subdivisions
            .get(alpha2)?
            .get(&fold(raw))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_to_alpha2() {
        let c = Countries::new(&[("Merica".into(), "us".into())]);
        let cases = [
            ("US", "US"),
            ("USA", "US"),
            ("u.s.", "US"),
            ("U.S.A.", "US"),
            ("United States", "US"),
            ("United States of America", "US"),
            ("Merica", "US"),
            ("840", "US"),
            ("DE", "DE"),
            ("DEU", "DE"),
            ("Germany", "DE"),
            ("Deutschland", "DE"),
            ("Allemagne", "DE"),
            ("UK", "GB"),
            ("United Kingdom", "GB"),
            ("Great Britain", "GB"),
            ("Holland", "NL"),
            ("The Netherlands", "NL"),
            ("Nederland", "NL"),
            ("España", "ES"),
            ("espana", "ES"),
            ("France", "FR"),
            ("AUS", "AU"),
            ("Österreich", "AT"),
            ("Schweiz", "CH"),
            ("日本", "JP"),
            ("GER", "DE"),
            ("D", "DE"),
            ("SUI", "CH"),
        ];
        for (raw, want) in cases {
            assert_eq!(c.code(raw), Some(want), "{raw:?}");
        }
        // "N/A" folds to "na" (Namibia): the standardise step treats the
        // null words of rules/countries.toml as missing before this lookup.
        for unknown in ["Atlantis", "", "unknown"] {
            assert_eq!(c.code(unknown), None, "{unknown:?}");
        }
        assert!(c.is_code("DE") && !c.is_code("XX"));
    }

    #[test]
    fn subdivisions() {
        let c = Countries::new(&[]);
        assert_eq!(c.subdivision("US", "CA"), Some("US-CA"));
        assert_eq!(c.subdivision("US", "California"), Some("US-CA"));
        assert_eq!(c.subdivision("DE", "Bayern"), Some("DE-BY"));
        assert_eq!(c.subdivision("US", "Narnia"), None);
    }
}
