//! Timestamps in the many layouts real exports use, to UTC.
//!
//! Accepted: ISO 8601 / RFC 3339 with `Z` or an offset (`T` or space
//! separator, optional fractions), RFC 2822, epoch seconds (10 digits) and
//! milliseconds (13 digits), naive `YYYY-MM-DD[ HH:MM[:SS[.f]]]`,
//! `YYYY/MM/DD`, `DD.MM.YYYY` and `NN/NN/YYYY [HH:MM[:SS]]` (day/month order
//! from the source's `date_order` unless one part is over 12). Naive times are
//! read in the source's IANA zone: in the autumn overlap the earlier instant
//! is taken; a time inside the spring gap is moved forward by the gap.
//! Dates and times in words (`Mar 5, 2024 2:22 PM`) are read by [`words`];
//! a source may list explicit formats per field for anything else.

mod words;

use crate::workspace::DateOrder;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Format a UTC instant the way every table stores it: sortable ISO 8601
/// with milliseconds and `Z`.
pub fn format_utc(ts: &DateTime<Utc>) -> String {
    ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The current time as stored in bookkeeping columns (second precision).
pub fn now_utc() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parse `text` to UTC. `tz` and `order` apply only to naive values.
pub fn parse_timestamp(text: &str, tz: Tz, order: DateOrder) -> Option<DateTime<Utc>> {
    parse_timestamp_with(text, tz, order, &[])
}

/// [`parse_timestamp`], trying the `formats` (chrono `strftime` layouts,
/// e.g. `%d.%m.%Y %H.%M`; with `%z` the text carries its offset) first.
pub fn parse_timestamp_with(
    text: &str,
    tz: Tz,
    order: DateOrder,
    formats: &[String],
) -> Option<DateTime<Utc>> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    for fmt in formats {
        if let Some(ts) = with_format(s, fmt, tz) {
            return Some(ts);
        }
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        if s.len() == 8 {
            // 20240305: a compact date.
            return local_to_utc(parse_numeric_date(s, order)?.and_time(NaiveTime::MIN), tz);
        }
        return parse_epoch(s);
    }
    if let Ok(ts) = DateTime::parse_from_rfc3339(s) {
        return Some(ts.with_timezone(&Utc));
    }
    // ISO-like with a space separator or without seconds, plus an offset.
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(ts) = DateTime::parse_from_str(s, fmt) {
            return Some(ts.with_timezone(&Utc));
        }
    }
    if let Some(rest) = s.strip_suffix(" UTC").or_else(|| s.strip_suffix('Z'))
        && let Some(naive) = parse_naive(rest.trim_end(), order)
    {
        return Some(Utc.from_utc_datetime(&naive));
    }
    if let Ok(ts) = DateTime::parse_from_rfc2822(s) {
        return Some(ts.with_timezone(&Utc));
    }
    if let Some(naive) = parse_naive(s, order) {
        return local_to_utc(naive, tz);
    }
    let (naive, offset) = words::parse(s, order)?;
    match offset {
        Some(minutes) => {
            Some(Utc.from_utc_datetime(&(naive - chrono::Duration::minutes(minutes.into()))))
        }
        None => local_to_utc(naive, tz),
    }
}

/// `s` read with one explicit format: with an offset (`%z`, `%:z`), as a
/// date and time, or as a date alone (midnight), naive ones in `tz`.
fn with_format(s: &str, fmt: &str, tz: Tz) -> Option<DateTime<Utc>> {
    if fmt.contains("%z") || fmt.contains("%:z") || fmt.contains("%#z") {
        return DateTime::parse_from_str(s, fmt)
            .ok()
            .map(|t| t.with_timezone(&Utc));
    }
    if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
        return local_to_utc(naive, tz);
    }
    let date = NaiveDate::parse_from_str(s, fmt).ok()?;
    local_to_utc(date.and_time(NaiveTime::MIN), tz)
}

/// A calendar date with one of the explicit `formats` first, then as
/// [`parse_date`] reads it.
pub fn parse_date_with(s: &str, order: DateOrder, formats: &[String]) -> Option<NaiveDate> {
    let s = s.trim();
    formats
        .iter()
        .find_map(|fmt| NaiveDate::parse_from_str(s, fmt).ok())
        .or_else(|| parse_date(s, order))
}

fn parse_epoch(s: &str) -> Option<DateTime<Utc>> {
    let n: i64 = s.parse().ok()?;
    match s.len() {
        9 | 10 => DateTime::from_timestamp(n, 0),
        12 | 13 => DateTime::from_timestamp_millis(n),
        15 | 16 => DateTime::from_timestamp_micros(n),
        _ => None,
    }
}

/// A naive wall-clock time in `tz`, to UTC (daylight-saving aware).
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => {
            // Inside a spring-forward gap: the clock skipped this time. Read
            // it with the offset in force just before the gap, which moves it
            // forward by the gap (02:30 in a skipped hour becomes 03:30).
            let before = tz
                .from_local_datetime(&(naive - chrono::Duration::hours(3)))
                .earliest()?;
            let offset = chrono::Offset::fix(before.offset());
            Some(Utc.from_utc_datetime(&(naive - offset)))
        }
    }
}

fn parse_time(t: &str) -> Option<NaiveTime> {
    let t = t.trim();
    for fmt in ["%H:%M:%S%.f", "%H:%M", "%I:%M:%S %p", "%I:%M %p"] {
        if let Ok(time) = NaiveTime::parse_from_str(t, fmt) {
            return Some(time);
        }
    }
    None
}

/// Date (and optional time) with no zone.
pub fn parse_naive(s: &str, order: DateOrder) -> Option<NaiveDateTime> {
    let s = s.trim();
    let (date_part, time_part) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let date = parse_numeric_date(date_part, order)?;
    let time = match time_part {
        Some(t) if !t.trim().is_empty() => parse_time(t)?,
        _ => NaiveTime::MIN,
    };
    Some(date.and_time(time))
}

/// A calendar date in ISO, slash, dot or compact layouts, or in words
/// (`May 23, 1959`, `20 Sep 1975`; a time after it is ignored).
pub fn parse_date(s: &str, order: DateOrder) -> Option<NaiveDate> {
    parse_numeric_date(s, order).or_else(|| words::parse(s, order).map(|(t, _)| t.date()))
}

/// A calendar date in ISO, slash, dot or compact (`20240305`) layouts.
fn parse_numeric_date(s: &str, order: DateOrder) -> Option<NaiveDate> {
    let s = s.trim();
    for fmt in ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
            return Some(d);
        }
    }
    let sep = if s.contains('/') {
        '/'
    } else if s.contains('.') {
        '.'
    } else if s.contains('-') {
        '-'
    } else {
        return None;
    };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 3 || parts[2].len() != 4 {
        return None;
    }
    let a: u32 = parts[0].parse().ok()?;
    let b: u32 = parts[1].parse().ok()?;
    let y: i32 = parts[2].parse().ok()?;
    // Dots are day-first everywhere they are used; otherwise a part over 12
    // settles the order, and the source's setting decides the rest.
    let day_first = sep == '.' || a > 12 || (b <= 12 && order == DateOrder::Dmy);
    let (day, month) = if day_first { (a, b) } else { (b, a) };
    NaiveDate::from_ymd_opt(y, month, day)
}

/// Milliseconds since the epoch of a UTC ISO timestamp (as the clean tables
/// write them: `YYYY-MM-DDTHH:MM:SS...`).
pub fn iso_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> String {
        format_utc(&parse_timestamp(s, chrono_tz::UTC, DateOrder::Mdy).unwrap())
    }

    #[test]
    fn layouts() {
        let cases = [
            ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01T10:00:00.123Z", "2024-05-01T10:00:00.123Z"),
            ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01 12:00:00+0200", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01 10:00:00", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01 10:00", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01", "2024-05-01T00:00:00.000Z"),
            ("1714557600", "2024-05-01T10:00:00.000Z"),
            ("1714557600123", "2024-05-01T10:00:00.123Z"),
            (
                "Wed, 01 May 2024 10:00:00 +0000",
                "2024-05-01T10:00:00.000Z",
            ),
            ("05/01/2024 10:00", "2024-05-01T10:00:00.000Z"),
            ("25/12/2024", "2024-12-25T00:00:00.000Z"),
            ("01.05.2024 10:00:00", "2024-05-01T10:00:00.000Z"),
            ("2024/05/01 10:00:00", "2024-05-01T10:00:00.000Z"),
            ("2024-05-01 10:00:00 UTC", "2024-05-01T10:00:00.000Z"),
        ];
        for (input, want) in cases {
            assert_eq!(utc(input), want, "input {input:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "not a date",
            "2024-13-45",
            "yesterday",
            "12345",
            "31/31/2024",
        ] {
            assert!(
                parse_timestamp(bad, chrono_tz::UTC, DateOrder::Mdy).is_none(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn ambiguous_day_month_follows_setting() {
        let us = parse_timestamp("03/04/2024", chrono_tz::UTC, DateOrder::Mdy).unwrap();
        let eu = parse_timestamp("03/04/2024", chrono_tz::UTC, DateOrder::Dmy).unwrap();
        assert_eq!(format_utc(&us), "2024-03-04T00:00:00.000Z");
        assert_eq!(format_utc(&eu), "2024-04-03T00:00:00.000Z");
    }

    #[test]
    fn naive_times_use_the_zone_with_daylight_saving() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let winter = parse_timestamp("2024-01-15 09:00:00", ny, DateOrder::Mdy).unwrap();
        let summer = parse_timestamp("2024-07-15 09:00:00", ny, DateOrder::Mdy).unwrap();
        assert_eq!(format_utc(&winter), "2024-01-15T14:00:00.000Z");
        assert_eq!(format_utc(&summer), "2024-07-15T13:00:00.000Z");
        // 2024-11-03 01:30 happens twice in New York: the earlier (EDT) wins.
        let overlap = parse_timestamp("2024-11-03 01:30:00", ny, DateOrder::Mdy).unwrap();
        assert_eq!(format_utc(&overlap), "2024-11-03T05:30:00.000Z");
        // 2024-03-10 02:30 never happens in New York: moved to 03:30 EDT.
        let gap = parse_timestamp("2024-03-10 02:30:00", ny, DateOrder::Mdy).unwrap();
        assert_eq!(format_utc(&gap), "2024-03-10T07:30:00.000Z");
        // An explicit offset ignores the zone.
        let fixed = parse_timestamp("2024-07-15T09:00:00Z", ny, DateOrder::Mdy).unwrap();
        assert_eq!(format_utc(&fixed), "2024-07-15T09:00:00.000Z");
    }
}
