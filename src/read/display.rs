//! How stored values read for people, shared by the workbench and the
//! text views: one time format, identifiers as words.

/// Digits in groups of three: `"1234567"` → `"1,234,567"` (the workbench
/// and the report write counts and amounts with it).
pub fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A stored UTC timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS`, or a date) as
/// local time `2026-11-26 00:48`; a date alone stays a date; anything
/// unreadable is shown as stored.
pub fn time(ts: &str) -> String {
    use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, Utc};
    let t = ts.trim();
    let utc = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            [
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
            .map(|n| n.and_utc())
        });
    match utc {
        Some(d) => d.with_timezone(&Local).format("%Y-%m-%d %H:%M").to_string(),
        None => match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            Ok(d) => d.format("%Y-%m-%d").to_string(),
            Err(_) => t.to_string(),
        },
    }
}

/// The date part of [`time`].
pub fn date(ts: &str) -> String {
    let t = time(ts);
    t.get(..10).map_or(t.clone(), str::to_string)
}

/// The profile's identifiers (stored as JSON `{"email": 2, …}` or a list)
/// as "identifiers: email 2 · phone 1".
pub fn identifiers(stored: &str) -> String {
    let v: serde_json::Value = match serde_json::from_str(stored) {
        Ok(v) => v,
        Err(_) if stored.is_empty() => return "no identifiers".into(),
        Err(_) => return format!("identifiers {}", stored),
    };
    let parts: Vec<String> = match &v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, n)| match n {
                serde_json::Value::Number(n) => format!("{k} {n}"),
                serde_json::Value::Array(a) => format!(
                    "{k} {}",
                    a.iter()
                        .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => format!("{k} {}", other.as_str().unwrap_or_default()),
            })
            .collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
            .collect(),
        serde_json::Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    };
    if parts.is_empty() {
        "no identifiers".into()
    } else {
        format!("identifiers: {}", parts.join(" · "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_read_as_words_not_json() {
        assert_eq!(
            identifiers(r#"{"email":2,"phone":1}"#),
            "identifiers: email 2 · phone 1"
        );
        assert_eq!(
            identifiers(r#"{"email":["a@x.org","b@y.org"]}"#),
            "identifiers: email a@x.org, b@y.org"
        );
        assert_eq!(identifiers(""), "no identifiers");
        assert_eq!(identifiers("{}"), "no identifiers");
    }

    #[test]
    fn one_time_format() {
        // The tests run with any TZ: compare with chrono's own conversion.
        let local = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        };
        assert_eq!(time("2026-11-26T00:56:20Z"), local("2026-11-26T00:56:20Z"));
        assert_eq!(
            time("2026-11-26T00:56:20.000Z"),
            local("2026-11-26T00:56:20Z")
        );
        assert_eq!(time("2026-11-26 00:56:20"), local("2026-11-26T00:56:20Z"));
        assert_eq!(time("2026-11-26"), "2026-11-26");
        assert_eq!(time("soon"), "soon");
    }
}
