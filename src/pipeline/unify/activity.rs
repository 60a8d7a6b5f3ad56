//! Phase "activity": one pass over a customer's events gathers what the
//! profile's behaviour figures need.

use super::rules::{Metric, UnifyRules};
use crate::pipeline::timeparse::iso_ms;
use anyhow::Result;
use rusqlite::Connection;
use rustc_hash::FxHashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

pub(super) const DAY_MS: i64 = 86_400_000;

/// Identifier kinds counted on a profile.
pub(super) const KINDS: [&str; 6] = [
    "customer_id",
    "email",
    "phone",
    "device_id",
    "cookie_id",
    "order_id",
];

/// What one pass over the events gathers for one customer.
#[derive(Default)]
pub(super) struct Activity {
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub last_activity: Option<i64>,
    pub first_order: Option<i64>,
    pub last_order: Option<i64>,
    pub web: u32,
    pub transactions: u32,
    /// Session hashes seen in the last 90 days, and whether within 30.
    pub sessions: Vec<(u64, bool)>,
    pub page_views_30: u32,
    pub page_views_90: u32,
    pub key_30: u32,
    pub key_90: u32,
    pub events_30: u32,
    pub events_31_90: u32,
    pub orders: u32,
    pub refunds: u32,
    /// Net revenue and gross order revenue in millionths: sums of integers,
    /// so the same whatever order the events are read in.
    pub revenue: i64,
    pub gross: i64,
    /// (category, revenue); categories interned.
    pub categories: Vec<(u32, i64)>,
    /// (kind index, value hash), distinct.
    pub ids: Vec<(u8, u64)>,
    pub known: bool,
}

/// An amount in millionths (money needs no more).
fn micros(x: f64) -> i64 {
    if x.is_finite() {
        (x * 1e6).round() as i64
    } else {
        0
    }
}

/// Millionths back to an amount.
pub(super) fn amount(micros: i64) -> f64 {
    micros as f64 / 1e6
}

pub(super) fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

pub(super) fn earlier(slot: &mut Option<i64>, ms: i64) {
    if slot.is_none_or(|t| ms < t) {
        *slot = Some(ms);
    }
}

pub(super) fn later(slot: &mut Option<i64>, ms: i64) {
    if slot.is_none_or(|t| ms > t) {
        *slot = Some(ms);
    }
}

/// UTC ISO 8601 with milliseconds, the form every time of a profile takes.
pub(super) fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

impl Activity {
    pub(super) fn add_id(&mut self, kind: usize, value: &str) {
        let e = (kind as u8, hash_str(value));
        if !self.ids.contains(&e) {
            self.ids.push(e);
        }
    }
}

pub(super) fn metric_value(
    m: &Metric,
    a: &Activity,
    days_active: Option<i64>,
    now: i64,
) -> Option<f64> {
    match m {
        Metric::DaysSinceLastActivity => days_active.map(|d| d as f64),
        Metric::DaysSinceLastOrder => a.last_order.as_ref().map(|t| ((now - t) / DAY_MS) as f64),
        Metric::ActivityDrop => (a.events_31_90 > 0).then(|| {
            let before = a.events_31_90 as f64 / 2.0;
            (1.0 - a.events_30 as f64 / before).clamp(0.0, 1.0)
        }),
        Metric::RefundShare => (a.orders > 0).then(|| a.refunds as f64 / a.orders as f64),
        Metric::Sessions30d => Some(a.sessions.iter().filter(|s| s.1).count() as f64),
        Metric::Orders => Some(a.orders as f64),
        // Days since the last order over the customer's own average gap
        // between orders: 2 = twice as long as they usually wait.
        Metric::OrderGapRatio => match (a.first_order, a.last_order) {
            (Some(first), Some(last)) if a.orders >= 2 && last > first => {
                let gap = (last - first) as f64 / (a.orders - 1) as f64;
                Some((now - last) as f64 / gap)
            }
            _ => None,
        },
    }
}

/// The activity of every customer of `index`, and the category names the
/// activities' category numbers stand for.
pub(super) struct Gathered {
    pub acts: Vec<Activity>,
    pub category_names: Vec<String>,
}

const EVENT_COLUMNS: &str = "customer360_id, event_time, event_name, system, session_id,
    device_id, cookie_id, user_id, order_id, category, revenue";

/// One pass over the events: all of them, or (with `only`) those of the
/// given customers, read through the customer index.
pub(super) fn gather(
    tx: &Connection,
    index: &FxHashMap<&str, u32>,
    only: Option<&[String]>,
    rules: &UnifyRules,
    now: i64,
) -> Result<Gathered> {
    let mut g = Gatherer {
        index,
        rules,
        now,
        out: Gathered {
            acts: (0..index.len()).map(|_| Activity::default()).collect(),
            category_names: Vec::new(),
        },
        category_ids: FxHashMap::default(),
        kinds: ["customer_id", "device_id", "cookie_id", "order_id"]
            .map(|k| KINDS.iter().position(|x| *x == k).unwrap_or(0)),
    };
    super::each_row(
        tx,
        &format!("SELECT {EVENT_COLUMNS} FROM customer360_events"),
        &format!("SELECT {EVENT_COLUMNS} FROM customer360_events WHERE customer360_id = ?1"),
        only,
        |r| g.add(r),
    )?;
    Ok(g.out)
}

struct Gatherer<'a> {
    index: &'a FxHashMap<&'a str, u32>,
    rules: &'a UnifyRules,
    now: i64,
    out: Gathered,
    category_ids: FxHashMap<String, u32>,
    /// KINDS positions of customer_id, device_id, cookie_id, order_id.
    kinds: [usize; 4],
}

impl Gatherer<'_> {
    fn add(&mut self, r: &rusqlite::Row<'_>) -> Result<()> {
        let Some(&ci) = self.index.get(r.get_ref(0)?.as_str()?) else {
            return Ok(());
        };
        let Some(ms) = iso_ms(r.get_ref(1)?.as_str()?) else {
            return Ok(());
        };
        let name = r.get_ref(2)?.as_str()?;
        let system = r.get_ref(3)?.as_str()?;
        let [k_customer, k_device, k_cookie, k_order] = self.kinds;
        let a = &mut self.out.acts[ci as usize];
        earlier(&mut a.first, ms);
        later(&mut a.last, ms);
        if let Some(u) = r.get_ref(7)?.as_str_or_null()? {
            a.known = true;
            a.add_id(k_customer, u);
        }
        if system == "crm" {
            return Ok(());
        }
        later(&mut a.last_activity, ms);
        let age = self.now - ms;
        let in30 = (0..=30 * DAY_MS).contains(&age);
        let in90 = (0..=90 * DAY_MS).contains(&age);
        if in30 {
            a.events_30 += 1;
        } else if in90 {
            a.events_31_90 += 1;
        }
        if system != "web" {
            return self.add_transaction(ci as usize, r, name, ms, in30, in90, k_order);
        }
        a.web += 1;
        if let Some(d) = r.get_ref(5)?.as_str_or_null()? {
            a.add_id(k_device, d);
        }
        if let Some(c) = r.get_ref(6)?.as_str_or_null()? {
            a.add_id(k_cookie, c);
        }
        if in90 {
            if let Some(s) = r.get_ref(4)?.as_str_or_null()? {
                let h = hash_str(s);
                match a.sessions.iter_mut().find(|x| x.0 == h) {
                    Some(x) => x.1 |= in30,
                    None => a.sessions.push((h, in30)),
                }
            }
            if self.rules.page_views.iter().any(|p| p == name) {
                a.page_views_90 += 1;
                a.page_views_30 += u32::from(in30);
            }
            if self.rules.key_events.iter().any(|p| p == name) {
                a.key_90 += 1;
                a.key_30 += u32::from(in30);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn add_transaction(
        &mut self,
        ci: usize,
        r: &rusqlite::Row<'_>,
        name: &str,
        ms: i64,
        in30: bool,
        in90: bool,
        k_order: usize,
    ) -> Result<()> {
        let category = match r.get_ref(9)?.as_str_or_null()? {
            Some(c) => Some(match self.category_ids.get(c) {
                Some(&id) => id,
                None => {
                    let id = self.out.category_names.len() as u32;
                    self.out.category_names.push(c.to_string());
                    self.category_ids.insert(c.to_string(), id);
                    id
                }
            }),
            None => None,
        };
        let a = &mut self.out.acts[ci];
        a.transactions += 1;
        if let Some(o) = r.get_ref(8)?.as_str_or_null()? {
            a.add_id(k_order, o);
        }
        let revenue = match r.get_ref(10)? {
            rusqlite::types::ValueRef::Real(x) => micros(x),
            rusqlite::types::ValueRef::Integer(i) => i.saturating_mul(1_000_000),
            _ => 0,
        };
        // A voided, pending or cancelled order is no sale.
        if name == "void" {
            return Ok(());
        }
        a.revenue = a.revenue.saturating_add(revenue);
        if name == "refund" {
            a.refunds += 1;
            return Ok(());
        }
        a.orders += 1;
        a.gross = a.gross.saturating_add(revenue);
        earlier(&mut a.first_order, ms);
        later(&mut a.last_order, ms);
        if in90 {
            a.key_90 += 1;
            a.key_30 += u32::from(in30);
        }
        if let Some(c) = category {
            match a.categories.iter_mut().find(|x| x.0 == c) {
                Some(x) => x.1 = x.1.saturating_add(revenue),
                None => a.categories.push((c, revenue)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::profile::quintiles;
    use super::*;

    #[test]
    fn order_gap_ratio_compares_with_the_customers_own_rhythm() {
        let a = Activity {
            orders: 3,
            first_order: Some(0),
            last_order: Some(20 * DAY_MS),
            ..Default::default()
        };
        // Usual gap 10 days; last order 40 days before now: 4x overdue.
        let r = metric_value(&Metric::OrderGapRatio, &a, None, 60 * DAY_MS).unwrap();
        assert!((r - 4.0).abs() < 1e-9, "{r}");
        let one = Activity {
            orders: 1,
            first_order: Some(0),
            last_order: Some(0),
            ..Default::default()
        };
        assert_eq!(
            metric_value(&Metric::OrderGapRatio, &one, None, DAY_MS),
            None
        );
    }

    #[test]
    fn quintiles_score_one_to_five_with_ties_equal() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quintiles(&v), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        assert_eq!(quintiles(&[7.0, 7.0, 7.0]), vec![1, 1, 1]);
        assert_eq!(quintiles(&[1.0, 2.0]), vec![1, 3]);
    }
}
