//! Amounts of money as exports write them: `$1,234.50`, `1.234,50 €`,
//! `USD 12.00`, `(12.00)`, `-€5`, `12,50`, `CHF 1'234.50`, `1 234,50 zł`.
//!
//! The currency, when the text names one (an ISO 4217 code or a symbol),
//! comes with the number. Separators: with both `.` and `,` the last one is
//! the decimal mark; with one of them alone, a group of exactly three
//! digits after it (`1,234`, `1.234`) is thousands, anything else
//! (`12,5`, `12.50`) decimals. Parentheses and a trailing minus are
//! negative, as accounting exports write refunds.

/// Symbols and the currency each stands for (longest first, so `US$` is
/// not read as `$`). `$` alone is read as USD.
const SYMBOLS: &[(&str, &str)] = &[
    ("US$", "USD"),
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("AU$", "AUD"),
    ("A$", "AUD"),
    ("NZ$", "NZD"),
    ("R$", "BRL"),
    ("MX$", "MXN"),
    ("HK$", "HKD"),
    ("S$", "SGD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("₽", "RUB"),
    ("₺", "TRY"),
    ("₪", "ILS"),
    ("₫", "VND"),
    ("₱", "PHP"),
    ("zł", "PLN"),
    ("Kč", "CZK"),
    ("Fr.", "CHF"),
];

/// The number and the currency the text names, if any.
pub fn parse_money(text: &str) -> Option<(f64, Option<String>)> {
    let mut s = text.trim();
    let mut negative = false;
    if let Some(inner) = s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        negative = true;
        s = inner.trim();
    }
    let (rest, currency) = take_currency(s);
    let mut num = rest.trim();
    // A sign may sit before or after the currency: `-€5`, `€-5`, `5-`.
    if let Some(r) = num.strip_prefix('-') {
        negative = !negative;
        num = r.trim_start();
    } else if let Some(r) = num.strip_prefix('+') {
        num = r.trim_start();
    }
    let (num, currency) = match (currency, take_currency(num)) {
        (None, (r, Some(c))) => (r.trim(), Some(c)),
        (c, _) => (num, c),
    };
    let num = match num.strip_suffix('-') {
        Some(r) => {
            negative = !negative;
            r.trim_end()
        }
        None => num,
    };
    let value = plain_number(num)?;
    Some((if negative { -value } else { value }, currency))
}

/// Split a currency code or symbol off either end of `s`.
fn take_currency(s: &str) -> (&str, Option<String>) {
    let code = |w: &str| w.len() == 3 && w.bytes().all(|b| b.is_ascii_uppercase());
    if let Some((head, tail)) = s.split_once(char::is_whitespace)
        && code(head)
    {
        return (tail, Some(head.to_string()));
    }
    if let Some((head, tail)) = s.rsplit_once(char::is_whitespace)
        && code(tail)
    {
        return (head, Some(tail.to_string()));
    }
    for (sym, cur) in SYMBOLS {
        if let Some(r) = s.strip_prefix(sym) {
            return (r, Some(cur.to_string()));
        }
        if let Some(r) = s.strip_suffix(sym) {
            return (r, Some(cur.to_string()));
        }
    }
    // `12.00USD`, `USD12.00`.
    if s.len() > 3 && s.is_char_boundary(3) && code(&s[..3]) {
        return (&s[3..], Some(s[..3].to_string()));
    }
    if s.len() > 3 && s.is_char_boundary(s.len() - 3) && code(&s[s.len() - 3..]) {
        return (&s[..s.len() - 3], Some(s[s.len() - 3..].to_string()));
    }
    (s, None)
}

/// Digits with grouping and a decimal mark, no sign or currency.
fn plain_number(s: &str) -> Option<f64> {
    // Group separators that are never decimal marks: spaces, apostrophes.
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\'' | '’'))
        .collect();
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return None;
    }
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let decimal = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(if d > c { '.' } else { ',' }),
        (Some(_), None) => single_mark(&s, '.'),
        (None, Some(_)) => single_mark(&s, ','),
        (None, None) => None,
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            d if d.is_ascii_digit() => out.push(d),
            m if Some(m) == decimal => out.push('.'),
            _ => {}
        }
    }
    // Grouping must be in threes: `1,23,4` is no number.
    let group = match decimal {
        Some('.') => ',',
        Some(',') => '.',
        _ => {
            if s.contains(',') {
                ','
            } else {
                '.'
            }
        }
    };
    let int_part = match decimal {
        Some(m) => &s[..s.rfind(m)?],
        None => &s[..],
    };
    if int_part.contains(group) {
        let groups: Vec<&str> = int_part.split(group).collect();
        if groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3) {
            return None;
        }
    }
    out.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// With only one kind of mark: is it the decimal mark? Not when it occurs
/// more than once, nor when exactly three digits follow it (thousands).
fn single_mark(s: &str, mark: char) -> Option<char> {
    if s.matches(mark).count() > 1 {
        return None;
    }
    let after = &s[s.rfind(mark)? + 1..];
    (after.len() != 3).then_some(mark)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Option<(f64, Option<String>)> {
        parse_money(s)
    }

    #[test]
    fn amounts_as_exports_write_them() {
        let usd = Some("USD".to_string());
        let eur = Some("EUR".to_string());
        assert_eq!(m("$1,234.50"), Some((1234.5, usd.clone())));
        assert_eq!(m("1.234,50 €"), Some((1234.5, eur.clone())));
        assert_eq!(m("USD 12.00"), Some((12.0, usd.clone())));
        assert_eq!(m("12.00 USD"), Some((12.0, usd.clone())));
        assert_eq!(m("(12.00)"), Some((-12.0, None)));
        assert_eq!(m("-€5"), Some((-5.0, eur.clone())));
        assert_eq!(m("€-5"), Some((-5.0, eur.clone())));
        assert_eq!(m("12,50"), Some((12.5, None)));
        assert_eq!(m("1,234"), Some((1234.0, None)));
        assert_eq!(m("1.234.567,89"), Some((1234567.89, None)));
        assert_eq!(m("CHF 1'234.50"), Some((1234.5, Some("CHF".into()))));
        assert_eq!(m("1 234,50 zł"), Some((1234.5, Some("PLN".into()))));
        assert_eq!(m("£0.99"), Some((0.99, Some("GBP".into()))));
        assert_eq!(m("5.00-"), Some((-5.0, None)));
        assert_eq!(m("($3.10)"), Some((-3.1, usd)));
        assert_eq!(m("12.5EUR"), Some((12.5, eur)));
        assert_eq!(m("42"), Some((42.0, None)));
    }

    #[test]
    fn what_is_not_money() {
        for s in ["", "abc", "1,23,4", "12..5", "$", "1.2.3,4,5", "N/A", "--5"] {
            assert_eq!(m(s), None, "{s}");
        }
    }
}
