//! Numbers, money, shares and months as the report writes them, and where
//! axis labels go when there are more periods than fit.

use crate::read::display::group;

/// Text for HTML (element content and attribute values).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators: `-1234567` → `-1,234,567`.
pub fn count(n: i64) -> String {
    let body = group(&n.unsigned_abs().to_string());
    if n < 0 { format!("-{body}") } else { body }
}

/// A number rounded to whole units, with thousands separators.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    count(x.round() as i64)
}

/// `12_345` → `12.3k`, `2_800_000` → `2.8M`, `950` → `950`.
pub fn compact(x: f64) -> String {
    let a = x.abs();
    let sign = if x < 0.0 { "-" } else { "" };
    let (v, unit) = if a >= 1e9 {
        (a / 1e9, "B")
    } else if a >= 1e6 {
        (a / 1e6, "M")
    } else if a >= 1e4 {
        (a / 1e3, "k")
    } else {
        return number(x);
    };
    if v >= 100.0 {
        format!("{sign}{v:.0}{unit}")
    } else {
        format!("{sign}{v:.1}{unit}")
    }
}

/// A share as a percentage: `0.8182` → `81.8%`, `1.0` → `100%`, `0.0004`
/// → `0.04%` (small shares keep two significant digits, so a real share is
/// never written as 0.0%).
pub fn percent(share: f64) -> String {
    if !share.is_finite() {
        return "–".into();
    }
    let p = share * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p.abs() >= 99.95 && p.abs() < 100.05 {
        "100%".into()
    } else if p.abs() < 0.1 {
        format!("{p:.2}%")
    } else {
        format!("{p:.1}%")
    }
}

/// `part / whole` as a percentage, `–` when the whole is zero.
pub fn share(part: f64, whole: f64) -> String {
    if whole == 0.0 {
        "–".into()
    } else {
        percent(part / whole)
    }
}

/// The currency the report's money is in: the reporting currency of the
/// transactions when they hold one, else none (amounts are plain numbers
/// and the text says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Currency {
    Code(String),
    /// Transactions in several currencies (no conversion configured).
    Mixed(Vec<String>),
    None,
}

impl Currency {
    /// What goes before an amount: `€`, `$`, `£`, `¥`, else the code and a
    /// space; nothing when the currency is not known.
    fn prefix(&self) -> String {
        match self {
            Currency::Code(c) => match c.to_ascii_uppercase().as_str() {
                "EUR" => "€".into(),
                "USD" => "$".into(),
                "GBP" => "£".into(),
                "JPY" => "¥".into(),
                other => format!("{other}\u{a0}"),
            },
            _ => String::new(),
        }
    }

    fn signed(&self, x: f64, body: String) -> String {
        let sign = if x < 0.0 && body.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            "-"
        } else {
            ""
        };
        format!("{sign}{}{body}", self.prefix())
    }

    /// Whole units: `€24,784`, `-€2,196`, `CHF 1,200`, `24,784`.
    pub fn whole(&self, x: f64) -> String {
        if !x.is_finite() {
            return "–".into();
        }
        self.signed(x, group(&(x.abs().round() as u128).to_string()))
    }

    /// With cents: `€202,110.96`.
    pub fn cents(&self, x: f64) -> String {
        if !x.is_finite() {
            return "–".into();
        }
        let c = (x.abs() * 100.0).round() as u128;
        self.signed(
            x,
            format!("{}.{:02}", group(&(c / 100).to_string()), c % 100),
        )
    }

    /// Short, for bar labels: `€24.8k`, `-€2,196`.
    pub fn short(&self, x: f64) -> String {
        if !x.is_finite() {
            return "–".into();
        }
        self.signed(x, compact(x.abs()))
    }

    /// How the unit is named in titles and axes: `EUR`, or what is missing.
    pub fn unit(&self) -> String {
        match self {
            Currency::Code(c) => c.clone(),
            Currency::Mixed(cs) => format!("mixed currencies: {}, not converted", cs.join(", ")),
            Currency::None => "no currency recorded".into(),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `"2024-01"` → (2024, 1).
pub fn parse_month(period: &str) -> Option<(i32, u32)> {
    let (y, m) = period.split_once('-')?;
    let (y, m) = (y.parse().ok()?, m.get(..2)?.parse().ok()?);
    (1..=12).contains(&m).then_some((y, m))
}

/// Months since year 0 (for ranges and gaps).
pub fn month_index((y, m): (i32, u32)) -> i64 {
    y as i64 * 12 + m as i64 - 1
}

/// The `YYYY-MM` of a month index.
pub fn month_period(i: i64) -> String {
    format!("{:04}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1)
}

/// `"2024-01"` → `Jan`.
pub fn month_short(period: &str) -> String {
    parse_month(period).map_or_else(
        || period.to_string(),
        |(_, m)| MONTHS[m as usize - 1].into(),
    )
}

/// `"2024-01"` → `Jan 2024`.
pub fn month_long(period: &str) -> String {
    parse_month(period).map_or_else(
        || period.to_string(),
        |(y, m)| format!("{} {y}", MONTHS[m as usize - 1]),
    )
}

/// An ISO 8601 time as `20 Jul 2025, 20:17 UTC`.
pub fn date_time(ts: &str) -> String {
    let day = ts.get(8..10).and_then(|d| d.parse::<u32>().ok());
    match (ts.get(..7).and_then(parse_month), day, ts.get(11..16)) {
        (Some((y, m)), Some(d), Some(hm)) => {
            format!("{d} {} {y}, {hm} UTC", MONTHS[m as usize - 1])
        }
        _ => ts.to_string(),
    }
}

/// How many periods apart axis labels must be so that labels about
/// `label_px` wide, one every `slot_px`, do not touch: 1, 2, 3, 4, 6, 12,
/// then whole years (steps that divide a year keep labels on the same
/// months every year).
pub fn label_step(slot_px: f64, label_px: f64) -> usize {
    const GAP: f64 = 6.0;
    for step in [1, 2, 3, 4, 6, 12] {
        if step as f64 * slot_px >= label_px + GAP {
            return step;
        }
    }
    let years = ((label_px + GAP) / (12.0 * slot_px.max(0.01))).ceil() as usize;
    12 * years.max(1)
}

/// The periods (indices 0..n) that get a label every `step`, counted from
/// `phase` (the first period's month number minus one for months, so the
/// labels fall on January, April, … whatever the first month).
pub fn thinned(n: usize, step: usize, phase: usize) -> Vec<usize> {
    let step = step.max(1);
    (0..n)
        .filter(|i| (i + phase).is_multiple_of(step))
        .collect()
}

/// A tick step of 1, 2, 2.5 or 5 times a power of ten, near `span / ticks`.
pub fn nice_step(span: f64, ticks: usize) -> f64 {
    let raw = span.abs() / ticks.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// The axis range and its ticks for values from `lo` to `hi`, zero
/// included, with `headroom` (a share of the span) above the highest and
/// below the lowest value for their labels. The top is a tick; so is the
/// bottom, unless the values go less than one tick step below zero: then
/// the axis stops just under them instead of wasting a whole step.
pub fn axis(lo: f64, hi: f64, ticks: usize, headroom: f64) -> (f64, f64, Vec<f64>) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, vec![0.0, 1.0]);
    }
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = if hi - lo > 0.0 { hi - lo } else { 1.0 };
    let (lo, hi) = (
        if lo < 0.0 {
            lo - span * headroom.max(0.04)
        } else {
            0.0
        },
        hi + span * headroom,
    );
    let step = nice_step(hi - lo, ticks);
    let b = (hi / step).ceil();
    let (bottom, a) = if lo < 0.0 && -lo < step {
        (lo, 0.0)
    } else {
        let a = (lo / step).floor();
        (a * step, a)
    };
    let ticks = (a as i64..=b as i64).map(|k| k as f64 * step).collect();
    (bottom, b * step, ticks)
}

/// The estimated width in pixels of `text` at `font_px` (sans-serif: about
/// 0.55 em a character: digits and lower case).
pub fn text_px(text: &str, font_px: f64) -> f64 {
    text.chars().count() as f64 * font_px * 0.55
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_money_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-15307), "-15,307");
        let eur = Currency::Code("EUR".into());
        assert_eq!(eur.whole(24783.87), "€24,784");
        assert_eq!(eur.whole(-2196.5), "-€2,197");
        assert_eq!(eur.whole(-0.2), "€0");
        assert_eq!(eur.cents(202110.956), "€202,110.96");
        assert_eq!(eur.short(24783.87), "€24.8k");
        assert_eq!(eur.short(-2196.5), "-€2,197");
        assert_eq!(Currency::Code("CHF".into()).whole(1200.0), "CHF\u{a0}1,200");
        assert_eq!(Currency::None.whole(1234.0), "1,234");
        assert!(Currency::None.unit().contains("no currency"));
    }

    #[test]
    fn compact_and_percent() {
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(9_999.0), "9,999");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(512_000.0), "512k");
        assert_eq!(compact(2_800_000.0), "2.8M");
        assert_eq!(percent(0.8182), "81.8%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.0004), "0.04%");
        assert_eq!(share(1.0, 0.0), "–");
        assert_eq!(share(250.0, 1000.0), "25.0%");
    }

    #[test]
    fn months() {
        assert_eq!(parse_month("2024-01"), Some((2024, 1)));
        assert_eq!(parse_month("2024-13"), None);
        assert_eq!(parse_month("current"), None);
        assert_eq!(month_short("2025-07"), "Jul");
        assert_eq!(month_long("2025-07"), "Jul 2025");
        let i = month_index((2024, 12));
        assert_eq!(month_period(i + 1), "2025-01");
        assert_eq!(
            date_time("2025-07-20T20:17:40.000Z"),
            "20 Jul 2025, 20:17 UTC"
        );
    }

    #[test]
    fn labels_are_thinned_to_fit_and_stay_on_the_same_months() {
        // 20 months of 52 px: "Jan" fits every month.
        assert_eq!(label_step(52.0, 25.0), 1);
        // 60 months of 17 px: every other month.
        assert_eq!(label_step(17.0, 25.0), 2);
        // 240 months of 4 px: "Jan" every 12; a wide label every 2 years.
        assert_eq!(label_step(4.0, 25.0), 12);
        assert_eq!(label_step(2.0, 60.0), 36);
        // From March 2024 (phase 2) every 3 months: Apr, Jul, Oct, Jan.
        assert_eq!(thinned(8, 3, 2), vec![1, 4, 7]);
        assert_eq!(thinned(3, 1, 5), vec![0, 1, 2]);
        assert_eq!(thinned(0, 4, 0), Vec::<usize>::new());
    }

    #[test]
    fn an_axis_over_values_that_are_not_finite_is_a_small_default() {
        assert_eq!(axis(0.0, f64::INFINITY, 5, 0.1), (0.0, 1.0, vec![0.0, 1.0]));
        assert_eq!(axis(f64::NAN, 3.0, 5, 0.1).2.len(), 2);
    }

    #[test]
    fn axis_ticks_are_round_and_include_zero() {
        assert_eq!(nice_step(30_000.0, 5), 10_000.0);
        assert_eq!(nice_step(12.0, 5), 2.5);
        assert_eq!(nice_step(0.0, 5), 1.0);
        // A little below zero: the axis stops under the lowest value.
        let (lo, hi, ticks) = axis(-2196.0, 30351.0, 5, 0.1);
        assert!(lo < -2196.0 && lo > -6_000.0, "{lo}");
        assert!(hi >= 30351.0 * 1.05, "{hi}");
        assert_eq!(ticks, [0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0]);
        assert_eq!(ticks.last(), Some(&hi));
        // Far below zero: the bottom is a tick too.
        let (lo, _, ticks) = axis(-25_000.0, 30_000.0, 5, 0.1);
        assert_eq!(ticks.first(), Some(&lo));
        assert!(ticks.contains(&0.0) && lo <= -25_000.0, "{ticks:?}");
        let (lo, _, _) = axis(5.0, 10.0, 5, 0.1);
        assert_eq!(lo, 0.0);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }
}
