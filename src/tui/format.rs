//! How the workbench writes numbers, money and times: thousands separators
//! everywhere, the currency with every amount, compact units (`2.8M`) only
//! when the full figure does not fit, an ellipsis whenever text is cut, and
//! one time format (`2026-11-26 00:48`, local time) on every screen.

use crate::read::display::group;

use unicode_width::UnicodeWidthStr;

/// Display width of `s` in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cut `s` to `max` terminal cells, ending in `…` when anything was cut.
pub fn fit(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        out.push(ch);
        used += w;
    }
    out.push('…');
    out
}

/// `1669` → `1,669`.
pub fn count(n: u64) -> String {
    group(&n.to_string())
}

/// Signed counts: `-1,234`, `+12` with `plus`.
pub fn signed(n: i64, plus: bool) -> String {
    let body = count(n.unsigned_abs());
    match (n < 0, plus && n > 0) {
        (true, _) => format!("-{body}"),
        (false, true) => format!("+{body}"),
        _ => body,
    }
}

/// The symbol written before an amount in `currency` (ISO code).
pub fn symbol(currency: &str) -> String {
    match currency.to_ascii_uppercase().as_str() {
        "EUR" => "€".into(),
        "USD" => "$".into(),
        "GBP" => "£".into(),
        "JPY" => "¥".into(),
        "" => String::new(),
        other => format!("{other} "),
    }
}

/// `2180.02` in EUR → `€2,180.02`; negative amounts `-€12.00`.
pub fn money(x: f64, currency: &str) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let cents = (x.abs() * 100.0).round() as u128;
    let whole = group(&(cents / 100).to_string());
    let sign = if x < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{}{whole}.{:02}", symbol(currency), cents % 100)
}

/// `2_800_000` → `2.8M`, `12_345` → `12.3k`, `950` → `950`.
pub fn compact(x: f64) -> String {
    let a = x.abs();
    let sign = if x < 0.0 { "-" } else { "" };
    let (v, unit) = if a >= 1e9 {
        (a / 1e9, "B")
    } else if a >= 1e6 {
        (a / 1e6, "M")
    } else if a >= 1e3 {
        (a / 1e3, "k")
    } else {
        return format!("{sign}{}", a.round() as u64);
    };
    if v >= 100.0 {
        format!("{sign}{v:.0}{unit}")
    } else {
        format!("{sign}{v:.1}{unit}")
    }
}

/// A count in `max` cells: in full when it fits, else compact.
pub fn count_in(n: u64, max: usize) -> String {
    let full = count(n);
    if width(&full) <= max {
        full
    } else {
        fit(&compact(n as f64), max)
    }
}

/// Money in `max` cells: in full, then without cents, then compact.
pub fn money_in(x: f64, currency: &str, max: usize) -> String {
    let full = money(x, currency);
    if width(&full) <= max {
        return full;
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let whole = format!(
        "{sign}{}{}",
        symbol(currency),
        group(&(x.abs().round() as u128).to_string())
    );
    if width(&whole) <= max {
        return whole;
    }
    fit(
        &format!("{sign}{}{}", symbol(currency), compact(x.abs())),
        max,
    )
}

/// A stored UTC timestamp as local time `2026-11-26 00:48` (see
/// [`crate::read::display::time`]).
pub fn time(ts: &str) -> String {
    crate::read::display::time(ts)
}

/// The date part of [`time`].
pub fn date(ts: &str) -> String {
    crate::read::display::date(ts)
}

/// "1 record", "16 records", "1,200 pairs".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", count(n))
    }
}

/// A share 0..1 as `54 %`.
pub fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.01 {
        "<1%".into()
    } else {
        format!("{:.0}%", share * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1669), "1,669");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(signed(-1234, false), "-1,234");
        assert_eq!(signed(12, true), "+12");
    }

    #[test]
    fn money_keeps_cents_and_currency() {
        assert_eq!(money(2180.02, "EUR"), "€2,180.02");
        assert_eq!(money(-12.0, "USD"), "-$12.00");
        assert_eq!(money(1234.5, "CHF"), "CHF 1,234.50");
        assert_eq!(money(0.004, "EUR"), "€0.00");
    }

    #[test]
    fn short_space_gives_whole_then_compact_never_a_cut_figure() {
        assert_eq!(money_in(2180.02, "EUR", 9), "€2,180.02");
        assert_eq!(money_in(2180.02, "EUR", 6), "€2,180");
        assert_eq!(money_in(2_812_345.0, "EUR", 6), "€2.8M");
        assert_eq!(count_in(1669, 5), "1,669");
        assert_eq!(count_in(1669, 4), "1.7k");
        assert_eq!(compact(2_800_000.0), "2.8M");
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(123_456.0), "123k");
    }

    #[test]
    fn fit_uses_an_ellipsis_and_counts_cells() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("日本語です", 5), "日本…");
        assert_eq!(fit("x", 0), "");
    }

    #[test]
    fn words_and_shares() {
        assert_eq!(percent(0.544), "54%");
        assert_eq!(plural(1, "record", "records"), "1 record");
        assert_eq!(plural(1200, "pair", "pairs"), "1,200 pairs");
    }
}
