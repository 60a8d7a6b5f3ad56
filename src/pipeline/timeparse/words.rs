//! Dates and times as people write them: `May 23, 1959`, `20 Sep 1975`,
//! `05-Mar-2024`, `Mar 5, 2024 2:22 PM`, `3/5/2024, 2:22 PM`,
//! `Tuesday, March 5th 2024 at 2pm`, `5. März 2024 14:22`, `5 de marzo de
//! 2024`. Month names and abbreviations in English, German, French,
//! Spanish, Italian, Dutch and Portuguese; ordinals and weekdays; 12-hour
//! clocks; a trailing `UTC`, `GMT`, `Z` or numeric offset.
//!
//! The text is cut into words; each word is a month name, a weekday (ignored),
//! a filler (`at`, `de`, `um`…), a clock time, `am` / `pm`, an offset or a
//! number. A date needs a month name with a day and a year, or one numeric
//! date word (`3/5/2024`, read with the source's day/month order).

use super::parse_numeric_date as parse_date;
use crate::pipeline::zones::offset_minutes;
use crate::workspace::DateOrder;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Month names and abbreviations (lower case, accents as written), by month.
const MONTHS: &[(&str, u32)] = &[
    // English
    ("january", 1),
    ("jan", 1),
    ("february", 2),
    ("feb", 2),
    ("march", 3),
    ("mar", 3),
    ("april", 4),
    ("apr", 4),
    ("may", 5),
    ("june", 6),
    ("jun", 6),
    ("july", 7),
    ("jul", 7),
    ("august", 8),
    ("aug", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("october", 10),
    ("oct", 10),
    ("november", 11),
    ("nov", 11),
    ("december", 12),
    ("dec", 12),
    // German
    ("januar", 1),
    ("jänner", 1),
    ("jän", 1),
    ("februar", 2),
    ("märz", 3),
    ("mär", 3),
    ("maerz", 3),
    ("mai", 5),
    ("juni", 6),
    ("juli", 7),
    ("okt", 10),
    ("oktober", 10),
    ("dez", 12),
    ("dezember", 12),
    // French
    ("janvier", 1),
    ("janv", 1),
    ("février", 2),
    ("fevrier", 2),
    ("févr", 2),
    ("fevr", 2),
    ("mars", 3),
    ("avril", 4),
    ("avr", 4),
    ("juin", 6),
    ("juillet", 7),
    ("juil", 7),
    ("août", 8),
    ("aout", 8),
    ("septembre", 9),
    ("octobre", 10),
    ("novembre", 11),
    ("décembre", 12),
    ("decembre", 12),
    ("déc", 12),
    // Spanish
    ("enero", 1),
    ("ene", 1),
    ("febrero", 2),
    ("marzo", 3),
    ("abril", 4),
    ("abr", 4),
    ("mayo", 5),
    ("junio", 6),
    ("julio", 7),
    ("agosto", 8),
    ("ago", 8),
    ("septiembre", 9),
    ("setiembre", 9),
    ("octubre", 10),
    ("noviembre", 11),
    ("diciembre", 12),
    ("dic", 12),
    // Italian
    ("gennaio", 1),
    ("gen", 1),
    ("febbraio", 2),
    ("aprile", 4),
    ("maggio", 5),
    ("mag", 5),
    ("giugno", 6),
    ("giu", 6),
    ("luglio", 7),
    ("lug", 7),
    ("settembre", 9),
    ("set", 9),
    ("ottobre", 10),
    ("ott", 10),
    ("dicembre", 12),
    // Dutch
    ("januari", 1),
    ("februari", 2),
    ("maart", 3),
    ("mrt", 3),
    ("mei", 5),
    ("augustus", 8),
    // Portuguese
    ("janeiro", 1),
    ("fevereiro", 2),
    ("fev", 2),
    ("março", 3),
    ("marco", 3),
    ("maio", 5),
    ("junho", 6),
    ("julho", 7),
    ("setembro", 9),
    ("outubro", 10),
    ("out", 10),
    ("dezembro", 12),
];

/// Weekdays (ignored: the date says which day it is).
const WEEKDAYS: &[&str] = &[
    "monday",
    "mon",
    "tuesday",
    "tue",
    "tues",
    "wednesday",
    "wed",
    "thursday",
    "thu",
    "thur",
    "thurs",
    "friday",
    "fri",
    "saturday",
    "sat",
    "sunday",
    "sun",
    "montag",
    "mo",
    "dienstag",
    "di",
    "mittwoch",
    "mi",
    "donnerstag",
    "do",
    "freitag",
    "fr",
    "samstag",
    "sa",
    "sonntag",
    "so",
    "lundi",
    "lun",
    "mardi",
    "mercredi",
    "mer",
    "jeudi",
    "jeu",
    "vendredi",
    "ven",
    "samedi",
    "sam",
    "dimanche",
    "dim",
    "lunes",
    "martes",
    "miércoles",
    "miercoles",
    "jueves",
    "viernes",
    "sábado",
    "sabado",
    "domingo",
    "lunedì",
    "martedì",
    "mercoledì",
    "giovedì",
    "venerdì",
    "sabato",
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
];

/// Words that join the parts of a date and say nothing.
const FILLERS: &[&str] = &[
    "at", "on", "the", "of", "de", "del", "um", "à", "a", "le", "el", "om", "h",
];

/// One word of a date, classified.
#[derive(Debug, Clone, PartialEq)]
enum Word {
    Month(u32),
    /// A number, and whether it had an ordinal suffix (`5th`, `1er`, `5.`).
    Number(u32, usize),
    Ordinal(u32),
    Clock(NaiveTime),
    Meridiem(bool),
    /// Minutes east of UTC.
    Offset(i32),
    /// A numeric date in one word (`3/5/2024`, `2024-03-05`).
    Date(NaiveDate),
}

/// A date, maybe with a time and an offset (minutes east of UTC).
pub fn parse(s: &str, order: DateOrder) -> Option<(NaiveDateTime, Option<i32>)> {
    let words = words(s, order)?;
    let (date, rest) = date_of(&words)?;
    let (time, offset) = time_of(&rest)?;
    Some((date.and_time(time), offset))
}

fn words(s: &str, order: DateOrder) -> Option<Vec<Word>> {
    let lower = s.trim().to_lowercase().replace([',', '(', ')'], " ");
    let mut out = Vec::new();
    for raw in lower.split_whitespace() {
        let w = raw.trim_end_matches(',');
        if w.is_empty() || FILLERS.contains(&w) || WEEKDAYS.contains(&w.trim_end_matches('.')) {
            continue;
        }
        out.extend(word(w, order)?);
    }
    Some(out)
}

/// One whitespace-separated word as one or more [`Word`]s (`05-mar-2024`
/// is three; `2:22pm` two).
fn word(w: &str, order: DateOrder) -> Option<Vec<Word>> {
    let trimmed = w.trim_end_matches('.');
    if let Some(&(_, m)) = MONTHS.iter().find(|(n, _)| *n == trimmed) {
        return Some(vec![Word::Month(m)]);
    }
    match w {
        "am" | "a.m." | "vorm." => return Some(vec![Word::Meridiem(false)]),
        "pm" | "p.m." | "nachm." => return Some(vec![Word::Meridiem(true)]),
        "utc" | "gmt" | "z" => return Some(vec![Word::Offset(0)]),
        _ => {}
    }
    let signed = w.trim_start_matches("utc").trim_start_matches("gmt");
    if (signed.starts_with('+') || signed.starts_with('-')) && (signed != w || w.len() >= 3) {
        return offset_minutes(w).map(|o| vec![Word::Offset(o)]);
    }
    // A clock, maybe with its meridiem attached (`2:22pm`, `14h30`).
    for (suffix, pm) in [("am", false), ("pm", true)] {
        if let Some(t) = w.strip_suffix(suffix).filter(|t| !t.is_empty()) {
            if let Some(c) = clock(t) {
                return Some(vec![Word::Clock(c), Word::Meridiem(pm)]);
            }
            if let Ok(h) = t.parse::<u32>() {
                return Some(vec![Word::Number(h, t.len()), Word::Meridiem(pm)]);
            }
        }
    }
    if let Some(c) = clock(w) {
        return Some(vec![Word::Clock(c)]);
    }
    // Numeric date words.
    if w.chars().all(|c| c.is_ascii_digit() || "/-.".contains(c))
        && w.chars().filter(|c| "/-.".contains(*c)).count() == 2
        && let Some(d) = parse_date(w, order)
    {
        return Some(vec![Word::Date(d)]);
    }
    if let Some(n) = ordinal(w) {
        return Some(vec![Word::Ordinal(n)]);
    }
    if let Ok(n) = w.parse::<u32>() {
        return Some(vec![Word::Number(n, w.len())]);
    }
    // `05-mar-2024`, `20-sep-75`, `mar-05-2024`: parts joined by - / .
    if w.contains(['-', '/', '.']) {
        let mut parts = Vec::new();
        for p in w.split(['-', '/', '.']).filter(|p| !p.is_empty()) {
            let mut got = word(p, order)?;
            if !matches!(got.as_slice(), [Word::Month(_)] | [Word::Number(..)]) {
                return None;
            }
            parts.append(&mut got);
        }
        return Some(parts);
    }
    None
}

fn ordinal(w: &str) -> Option<u32> {
    let digits = w
        .strip_suffix("st")
        .or_else(|| w.strip_suffix("nd"))
        .or_else(|| w.strip_suffix("rd"))
        .or_else(|| w.strip_suffix("th"))
        .or_else(|| w.strip_suffix("er"))
        .or_else(|| w.strip_suffix('.'))
        .or_else(|| w.strip_suffix('º'))
        .or_else(|| w.strip_suffix('°'))?;
    let n: u32 = digits.parse().ok()?;
    (1..=31).contains(&n).then_some(n)
}

fn clock(w: &str) -> Option<NaiveTime> {
    let w = w.replacen('h', ":", 1);
    for fmt in ["%H:%M:%S%.f", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(&w, fmt) {
            return Some(t);
        }
    }
    None
}

/// The date the words give, and the words left for the time.
fn date_of(words: &[Word]) -> Option<(NaiveDate, Vec<Word>)> {
    if let Some(i) = words.iter().position(|w| matches!(w, Word::Date(_))) {
        let Word::Date(d) = words[i] else {
            unreachable!()
        };
        let mut rest = words.to_vec();
        rest.remove(i);
        return Some((d, rest));
    }
    let mi = words.iter().position(|w| matches!(w, Word::Month(_)))?;
    let Word::Month(month) = words[mi] else {
        unreachable!()
    };
    // The day and the year are the numbers (or ordinal) around the month;
    // a clock time may come before or after them.
    let mut day = None;
    let mut year = None;
    let mut used = vec![mi];
    for (i, w) in words.iter().enumerate() {
        match *w {
            Word::Clock(_) | Word::Meridiem(_) | Word::Offset(_) => continue,
            Word::Ordinal(n) if day.is_none() => day = Some(n),
            Word::Number(n, len) if len == 4 && year.is_none() => year = Some(n as i32),
            Word::Number(n, len) if len <= 2 && day.is_none() && (1..=31).contains(&n) => {
                day = Some(n)
            }
            // `05-Mar-24`: a two-digit year after the day.
            Word::Number(n, 2) if day.is_some() && year.is_none() => {
                year = Some(if n < 70 {
                    2000 + n as i32
                } else {
                    1900 + n as i32
                })
            }
            Word::Month(_) if i == mi => continue,
            _ => break,
        }
        used.push(i);
    }
    let date = NaiveDate::from_ymd_opt(year?, month, day?)?;
    let rest = words
        .iter()
        .enumerate()
        .filter(|(i, _)| !used.contains(i))
        .map(|(_, w)| w.clone())
        .collect();
    Some((date, rest))
}

/// The time of day the remaining words give (midnight when none), and an
/// offset if one was written. Words that are neither fail the parse.
fn time_of(words: &[Word]) -> Option<(NaiveTime, Option<i32>)> {
    let mut time = None;
    let mut meridiem = None;
    let mut offset = None;
    for w in words {
        match *w {
            Word::Clock(t) if time.is_none() => time = Some(t),
            Word::Number(h, len) if time.is_none() && len <= 2 && h <= 24 => {
                time = NaiveTime::from_hms_opt(h % 24, 0, 0)
            }
            Word::Meridiem(pm) if meridiem.is_none() => meridiem = Some(pm),
            Word::Offset(o) if offset.is_none() => offset = Some(o),
            _ => return None,
        }
    }
    let time = match (time, meridiem) {
        (None, None) => NaiveTime::MIN,
        (None, Some(_)) => return None,
        (Some(t), None) => t,
        (Some(t), Some(pm)) => twelve_hour(t, pm)?,
    };
    Some((time, offset))
}

/// A 12-hour clock reading: 12 am is midnight, 12 pm noon; hours over 12
/// with a meridiem are no time.
fn twelve_hour(t: NaiveTime, pm: bool) -> Option<NaiveTime> {
    use chrono::Timelike;
    let h = t.hour();
    if !(1..=12).contains(&h) {
        return None;
    }
    let h24 = match (h, pm) {
        (12, false) => 0,
        (12, true) => 12,
        (h, false) => h,
        (h, true) => h + 12,
    };
    t.with_hour(h24)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<String> {
        parse(s, DateOrder::Mdy).map(|(t, o)| {
            let mut out = t.format("%Y-%m-%d %H:%M:%S").to_string();
            if let Some(o) = o {
                out.push_str(&format!(" {o:+}"));
            }
            out
        })
    }

    #[test]
    fn dates_as_people_write_them() {
        let cases = [
            ("May 23, 1959", "1959-05-23 00:00:00"),
            ("20 Sep 1975", "1975-09-20 00:00:00"),
            ("05-Mar-2024", "2024-03-05 00:00:00"),
            ("05-MAR-24", "2024-03-05 00:00:00"),
            ("Mar 5, 2024 2:22 PM", "2024-03-05 14:22:00"),
            ("3/5/2024, 2:22 PM", "2024-03-05 14:22:00"),
            ("Tuesday, March 5th 2024 at 2pm", "2024-03-05 14:00:00"),
            ("12:05 am, March 5 2024", "2024-03-05 00:05:00"),
            ("5. März 2024 14:22", "2024-03-05 14:22:00"),
            ("5 de marzo de 2024", "2024-03-05 00:00:00"),
            ("1er janvier 2024 à 09h30", "2024-01-01 09:30:00"),
            ("Sept. 3, 2023 11:59:59 p.m.", "2023-09-03 23:59:59"),
            ("Mar 5, 2024 2:22 PM UTC", "2024-03-05 14:22:00 +0"),
            ("Mar 5, 2024 14:22 +0200", "2024-03-05 14:22:00 +120"),
            ("2024 March 5", "2024-03-05 00:00:00"),
        ];
        for (text, want) in cases {
            assert_eq!(at(text).as_deref(), Some(want), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_date() {
        for text in [
            "yesterday",
            "May 2024",
            "Mar 32, 2024",
            "Mar 5, 2024 13:00 PM",
            "Mar 5, 2024 banana",
            "Feb 30 2024",
            "",
        ] {
            assert_eq!(at(text), None, "{text}");
        }
    }
}
