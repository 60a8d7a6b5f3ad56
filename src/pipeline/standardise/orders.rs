//! `rules/orders.toml`: what an order's status means for revenue, and the
//! reporting currency with its rates.

use super::rules::parse;
use crate::workspace::{ConfigError, line_of};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// What an order row is, by its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// An order; its revenue counts.
    Purchase,
    /// A refund row of its own: negative revenue and quantity.
    Refund,
    /// An order refunded in full: counted, revenue 0.
    Refunded,
    /// An order partly refunded: revenue less the refunded amount.
    Partial,
    /// Not a sale (voided, pending, cancelled): no order, no revenue.
    Void,
}

impl OrderKind {
    fn parse(s: &str) -> Option<OrderKind> {
        Some(match s {
            "purchase" => OrderKind::Purchase,
            "refund" => OrderKind::Refund,
            "refunded" => OrderKind::Refunded,
            "partial" => OrderKind::Partial,
            "void" => OrderKind::Void,
            _ => return None,
        })
    }

    /// The kind's name in `rules/orders.toml`.
    pub fn name(self) -> &'static str {
        match self {
            OrderKind::Purchase => "purchase",
            OrderKind::Refund => "refund",
            OrderKind::Refunded => "refunded",
            OrderKind::Partial => "partial",
            OrderKind::Void => "void",
        }
    }

    /// The `transaction_type` the clean row gets.
    pub fn transaction_type(self) -> &'static str {
        match self {
            OrderKind::Refund => "refund",
            OrderKind::Void => "void",
            _ => "purchase",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrders {
    #[serde(default)]
    statuses: BTreeMap<String, Spanned<String>>,
    currency: Option<RawCurrency>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurrency {
    reporting: String,
    #[serde(default)]
    rates: BTreeMap<String, Spanned<f64>>,
    #[serde(default)]
    dated: Vec<BTreeMap<String, Spanned<toml::Value>>>,
}

/// The order rules.
#[derive(Debug, Clone)]
pub struct Orders {
    /// Folded status -> kind.
    statuses: BTreeMap<String, OrderKind>,
    /// Revenue is converted to this currency (None: amounts as they are).
    pub reporting: Option<String>,
    /// Currency -> units of the reporting currency per unit.
    rates: BTreeMap<String, f64>,
    /// Rates from a date on, sorted by date.
    dated: Vec<(NaiveDate, BTreeMap<String, f64>)>,
}

impl Default for Orders {
    /// Before `orders.toml`: refund rows by their type, no conversion.
    fn default() -> Self {
        let statuses = ["refund", "return", "refunded", "returned"]
            .iter()
            .map(|s| (s.to_string(), OrderKind::Refund))
            .collect();
        Orders {
            statuses,
            reporting: None,
            rates: BTreeMap::new(),
            dated: Vec::new(),
        }
    }
}

use super::people::fold_alnum as fold;

impl Orders {
    pub fn parse(text: &str, file: &str) -> Result<Orders, ConfigError> {
        let raw: RawOrders = parse(text, file)?;
        let err = |offset: usize, message: String| ConfigError {
            file: file.into(),
            line: line_of(text, offset),
            message,
        };
        let mut statuses = BTreeMap::new();
        for (status, kind) in raw.statuses {
            let k = OrderKind::parse(kind.get_ref()).ok_or_else(|| {
                err(
                    kind.span().start,
                    format!(
                        "field `statuses.{status}`: {:?} is not purchase, refund, refunded, partial or void",
                        kind.get_ref()
                    ),
                )
            })?;
            statuses.insert(fold(&status), k);
        }
        let mut orders = Orders {
            statuses,
            reporting: None,
            rates: BTreeMap::new(),
            dated: Vec::new(),
        };
        let Some(cur) = raw.currency else {
            return Ok(orders);
        };
        let code = |c: &str| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
        if !cur.reporting.is_empty() && !code(&cur.reporting) {
            return Err(err(
                0,
                format!(
                    "field `currency.reporting`: {:?} is not an ISO 4217 code (e.g. \"EUR\", \"USD\")",
                    cur.reporting
                ),
            ));
        }
        orders.reporting = (!cur.reporting.is_empty()).then_some(cur.reporting);
        for (c, rate) in cur.rates {
            if !code(&c) || *rate.get_ref() <= 0.0 {
                return Err(err(
                    rate.span().start,
                    format!(
                        "field `currency.rates.{c}`: a rate is a positive number per ISO 4217 code"
                    ),
                ));
            }
            orders.rates.insert(c, rate.into_inner());
        }
        for table in cur.dated {
            let Some(from) = table.get("from") else {
                return Err(err(
                    0,
                    "field `currency.dated`: every entry needs `from = \"YYYY-MM-DD\"`".into(),
                ));
            };
            let date = from
                .get_ref()
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or_else(|| {
                    err(
                        from.span().start,
                        "field `currency.dated.from`: expected \"YYYY-MM-DD\"".into(),
                    )
                })?;
            let mut rates = BTreeMap::new();
            for (c, v) in table.iter().filter(|(k, _)| k.as_str() != "from") {
                let rate = v
                    .get_ref()
                    .as_float()
                    .or_else(|| v.get_ref().as_integer().map(|i| i as f64));
                match rate {
                    Some(r) if code(c) && r > 0.0 => {
                        rates.insert(c.clone(), r);
                    }
                    _ => {
                        return Err(err(
                            v.span().start,
                            format!(
                                "field `currency.dated.{c}`: a rate is a positive number per ISO 4217 code"
                            ),
                        ));
                    }
                }
            }
            orders.dated.push((date, rates));
        }
        orders.dated.sort_by_key(|(d, _)| *d);
        Ok(orders)
    }

    /// (folded status, kind), (currency, rate) and (from date, currency,
    /// rate): the warehouse seeds.
    #[allow(clippy::type_complexity)]
    pub fn entries(
        &self,
    ) -> (
        Vec<(String, &'static str)>,
        Vec<(String, f64)>,
        Vec<(String, String, f64)>,
    ) {
        let statuses = self
            .statuses
            .iter()
            .map(|(k, v)| (k.clone(), v.name()))
            .collect();
        let rates = self.rates.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let dated = self
            .dated
            .iter()
            .flat_map(|(day, rates)| {
                rates
                    .iter()
                    .map(move |(c, r)| (day.format("%Y-%m-%d").to_string(), c.clone(), *r))
            })
            .collect();
        (statuses, rates, dated)
    }

    /// The kind of an order row by its status, and whether a rule named
    /// the status (no status: a purchase, known).
    pub fn kind(&self, status: Option<&str>) -> (OrderKind, bool) {
        match status.map(fold).filter(|s| !s.is_empty()) {
            None => (OrderKind::Purchase, true),
            Some(s) => match self.statuses.get(&s) {
                Some(k) => (*k, true),
                None => (OrderKind::Purchase, false),
            },
        }
    }

    /// Units of the reporting currency per unit of `currency` on `date`
    /// (`YYYY-MM-DD…`): 1 for the reporting currency itself; None when no
    /// rate is known.
    pub fn rate(&self, currency: &str, date: &str) -> Option<f64> {
        let reporting = self.reporting.as_deref()?;
        if currency == reporting {
            return Some(1.0);
        }
        let day = date
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let dated = day.and_then(|day| {
            self.dated
                .iter()
                .rev()
                .find(|(from, rates)| *from <= day && rates.contains_key(currency))
                .and_then(|(_, rates)| rates.get(currency))
        });
        dated.or_else(|| self.rates.get(currency)).copied()
    }
}

/// The reporting currency of a workspace's `rules/orders.toml` (EUR when
/// the file is missing, unreadable or names none).
pub fn reporting_currency(rules_dir: &std::path::Path) -> String {
    std::fs::read_to_string(rules_dir.join("orders.toml"))
        .ok()
        .and_then(|t| Orders::parse(&t, "orders.toml").ok())
        .and_then(|o| o.reporting)
        .unwrap_or_else(|| "EUR".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
[statuses]
paid = "purchase"
refunded = "refunded"
"partially refunded" = "partial"
voided = "void"
Refund = "refund"

[currency]
reporting = "EUR"
[currency.rates]
USD = 0.9
[[currency.dated]]
from = "2024-06-01"
USD = 0.95
"#;

    #[test]
    fn statuses_fold_and_unknown_ones_are_purchases() {
        let o = Orders::parse(RULES, "orders.toml").unwrap();
        assert_eq!(
            o.kind(Some("Partially Refunded")),
            (OrderKind::Partial, true)
        );
        assert_eq!(
            o.kind(Some("partially_refunded")),
            (OrderKind::Partial, true)
        );
        assert_eq!(o.kind(Some("REFUND")), (OrderKind::Refund, true));
        assert_eq!(o.kind(None), (OrderKind::Purchase, true));
        assert_eq!(o.kind(Some("on hold")), (OrderKind::Purchase, false));
        assert_eq!(OrderKind::Void.transaction_type(), "void");
    }

    #[test]
    fn rates_by_date_then_fixed() {
        let o = Orders::parse(RULES, "orders.toml").unwrap();
        assert_eq!(o.rate("EUR", "2024-01-01"), Some(1.0));
        assert_eq!(o.rate("USD", "2024-05-31T23:00:00.000Z"), Some(0.9));
        assert_eq!(o.rate("USD", "2024-06-01T00:00:00.000Z"), Some(0.95));
        assert_eq!(o.rate("GBP", "2024-06-01"), None);
    }

    #[test]
    fn bad_rules_name_the_line() {
        let e = Orders::parse("[statuses]\npaid = \"money\"\n", "orders.toml").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("statuses.paid"), "{e}");
        let e = Orders::parse("[currency]\nreporting = \"euro\"\n", "orders.toml").unwrap_err();
        assert!(e.message.contains("currency.reporting"), "{e}");
    }

    #[test]
    fn the_default_rules_parse() {
        let text = include_str!("../../../rules/orders.toml");
        let o = Orders::parse(text, "orders.toml").unwrap();
        assert_eq!(o.reporting.as_deref(), Some("EUR"));
        assert_eq!(o.kind(Some("paid")), (OrderKind::Purchase, true));
        assert_eq!(o.kind(Some("refunded")), (OrderKind::Refunded, true));
        assert_eq!(o.kind(Some("Payment")), (OrderKind::Purchase, true));
        assert!(o.rate("USD", "2025-01-01").is_some());
    }
}
