//! Timestamps and dates in SQL: the layouts of [`crate::pipeline::timeparse`]
//! that a regular expression can take apart, to a naive UTC timestamp.
//!
//! Read: ISO 8601 / RFC 3339 with `Z`, `UTC` or an offset (`T` or a space,
//! optional fractions), naive `YYYY-MM-DD[ HH:MM[:SS[.f]]]`, `YYYY/MM/DD`,
//! `DD.MM.YYYY`, `NN/NN/YYYY [HH:MM[:SS] [AM|PM]]` (day/month order from the
//! source unless a part is over 12), compact `YYYYMMDD`, epoch seconds (9-10
//! digits), milliseconds (12-13) and microseconds (15-16), RFC 2822
//! (`Wed, 01 May 2024 10:00:00 +0000`). Not read: dates in words
//! (`Mar 5, 2024 2:22 PM`) and a source's own `formats`; such values are
//! rejected as `bad_timestamp` where the local step would read them.
//! Naive times are read in the source's zone by the engine's time zone
//! database (DuckDB's ICU, Spark's Java, ...), whose choice inside a
//! daylight-saving gap or overlap may differ from the local step's.

use super::Dialect;
use crate::workspace::DateOrder;

const ISO: &str = r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$";
const YMD_SLASH: &str = r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?$";
const DOTTED: &str = r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?)?$";
const NUMERIC: &str = r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?$";
const COMPACT: &str = r"^(\d{4})(\d{2})(\d{2})$";
const RFC2822: &str = r"^(?:[A-Za-z]{3},\s*)?(\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|GMT|UTC|Z)?$";

/// The pieces of one layout: expressions for year, month, day, hour,
/// minute, second, fraction digits, AM/PM and offset (None: absent).
struct Parts {
    y: String,
    mo: String,
    d: String,
    h: Option<String>,
    mi: Option<String>,
    s: Option<String>,
    frac: Option<String>,
    ampm: Option<String>,
    off: Option<String>,
}

/// A group of `pattern` in `t`, NULL when it did not take part.
fn g(d: Dialect, t: &str, pattern: &str, k: usize) -> String {
    format!("NULLIF({}, '')", d.re_group(t, pattern, k))
}

fn int(d: Dialect, x: &str) -> String {
    format!("CAST({x} AS {})", d.int())
}

/// Month and day of `NN/NN/YYYY` by the source's order: a part over 12
/// settles it.
fn month_day(d: Dialect, a: &str, b: &str, order: DateOrder) -> (String, String) {
    let (ai, bi) = (int(d, a), int(d, b));
    let day_first = match order {
        DateOrder::Dmy => format!("({bi} <= 12 OR {ai} > 12)"),
        DateOrder::Mdy => format!("({ai} > 12)"),
    };
    (
        format!("CASE WHEN {day_first} THEN {b} ELSE {a} END"),
        format!("CASE WHEN {day_first} THEN {a} ELSE {b} END"),
    )
}

fn layout(d: Dialect, t: &str, pattern: &str, ymd: [usize; 3], rest: [usize; 6]) -> Parts {
    let opt = |k: usize| (k > 0).then(|| g(d, t, pattern, k));
    Parts {
        y: g(d, t, pattern, ymd[0]),
        mo: g(d, t, pattern, ymd[1]),
        d: g(d, t, pattern, ymd[2]),
        h: opt(rest[0]),
        mi: opt(rest[1]),
        s: opt(rest[2]),
        frac: opt(rest[3]),
        ampm: opt(rest[4]),
        off: opt(rest[5]),
    }
}

/// The naive timestamp the parts write (NULL if no such date or time).
fn naive(d: Dialect, p: &Parts) -> String {
    let pad = |x: &str, n: usize| format!("lpad({x}, {n}, '0')");
    let hour = match (&p.h, &p.ampm) {
        (Some(h), Some(ap)) => format!(
            "CAST(CASE WHEN upper({ap}) = 'PM' AND {hi} < 12 THEN {hi} + 12 WHEN upper({ap}) = 'AM' AND {hi} = 12 THEN 0 ELSE {hi} END AS {text})",
            hi = int(d, h),
            text = d.text()
        ),
        (Some(h), None) => h.clone(),
        (None, _) => "'0'".into(),
    };
    let or0 = |x: &Option<String>| {
        x.clone()
            .map_or("'00'".into(), |x| format!("COALESCE({x}, '00')"))
    };
    let hour = if p.h.is_some() {
        format!("COALESCE({hour}, '0')")
    } else {
        hour
    };
    let canon = format!(
        "{} || '-' || {} || '-' || {} || ' ' || {} || ':' || {} || ':' || {}",
        pad(&p.y, 4),
        pad(&p.mo, 2),
        pad(&p.d, 2),
        pad(&hour, 2),
        or0(&p.mi),
        or0(&p.s)
    );
    let base = d.try_strptime(&format!("({canon})"), "%Y-%m-%d %H:%M:%S");
    match &p.frac {
        Some(f) => d.add_ms(
            &base,
            &format!(
                "COALESCE({}, 0)",
                int(d, &format!("rpad(substr({f}, 1, 3), 3, '0')"))
            ),
        ),
        None => base,
    }
}

/// Minutes east of UTC of an offset text (`Z`, `+02:00`, `-0500`, `+02`).
fn offset_minutes(d: Dialect, off: &str) -> String {
    let digits = format!("replace({off}, ':', '')");
    format!(
        "CASE WHEN {off} IS NULL THEN NULL WHEN upper({off}) IN ('Z', 'UTC', 'GMT') THEN 0 \
ELSE (CASE WHEN substr({off}, 1, 1) = '-' THEN -1 ELSE 1 END) * ({} * 60 + COALESCE({}, 0)) END",
        int(d, &format!("substr({digits}, 2, 2)")),
        int(d, &format!("NULLIF(substr({digits}, 4, 2), '')"))
    )
}

/// A naive local time with an optional offset, to naive UTC: the offset
/// when written, else the zone (`tz`, an IANA name).
fn to_utc(d: Dialect, naive: &str, off: Option<&str>, tz: &str) -> String {
    let zoned = if tz == "UTC" {
        naive.to_string()
    } else {
        d.zone_to_utc(naive, &d.lit(tz))
    };
    match off {
        Some(o) => {
            let m = offset_minutes(d, o);
            format!(
                "CASE WHEN {o} IS NOT NULL THEN {} ELSE {zoned} END",
                d.add_minutes(naive, &format!("-({m})"))
            )
        }
        None => zoned,
    }
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// `text` (an SQL expression, trimmed) as a naive UTC timestamp, NULL when
/// it is no timestamp in a layout above. `tz`: the zone of naive times.
pub fn timestamp(d: Dialect, t: &str, order: DateOrder, tz: &str) -> String {
    let mut arms: Vec<(String, String)> = Vec::new();
    let iso = layout(d, t, ISO, [1, 2, 3], [4, 5, 6, 7, 0, 8]);
    let off = iso.off.clone();
    arms.push((
        d.re_match(t, ISO),
        to_utc(d, &naive(d, &iso), off.as_deref(), tz),
    ));
    for (pattern, digits, scale) in [(r"^\d{12,13}$", "ms", 1), (r"^\d{9,10}$", "s", 1000)] {
        let _ = digits;
        arms.push((
            d.re_match(t, pattern),
            d.from_epoch_ms(&format!("{} * {scale}", int(d, t))),
        ));
    }
    arms.push((
        d.re_match(t, r"^\d{15,16}$"),
        d.from_epoch_ms(&format!("{} / 1000", int(d, t))),
    ));
    let compact = layout(d, t, COMPACT, [1, 2, 3], [0; 6]);
    arms.push((
        d.re_match(t, COMPACT),
        to_utc(d, &naive(d, &compact), None, tz),
    ));
    let slash = layout(d, t, YMD_SLASH, [1, 2, 3], [4, 5, 6, 0, 0, 0]);
    arms.push((
        d.re_match(t, YMD_SLASH),
        to_utc(d, &naive(d, &slash), None, tz),
    ));
    let dotted = layout(d, t, DOTTED, [3, 2, 1], [4, 5, 6, 0, 0, 0]);
    arms.push((
        d.re_match(t, DOTTED),
        to_utc(d, &naive(d, &dotted), None, tz),
    ));
    let mut numeric = layout(d, t, NUMERIC, [3, 1, 2], [4, 5, 6, 0, 7, 0]);
    let (mo, day) = month_day(d, &g(d, t, NUMERIC, 1), &g(d, t, NUMERIC, 2), order);
    (numeric.mo, numeric.d) = (mo, day);
    arms.push((
        d.re_match(t, NUMERIC),
        to_utc(d, &naive(d, &numeric), None, tz),
    ));
    let mut rfc = layout(d, t, RFC2822, [3, 2, 1], [4, 5, 6, 0, 0, 7]);
    let mon = format!("lower({})", g(d, t, RFC2822, 2));
    rfc.mo = format!(
        "CASE {mon} {} END",
        MONTHS
            .iter()
            .enumerate()
            .map(|(i, m)| format!("WHEN '{m}' THEN '{}'", i + 1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let rfc_off = rfc.off.clone();
    arms.push((
        d.re_match(t, RFC2822),
        to_utc(d, &naive(d, &rfc), rfc_off.as_deref(), tz),
    ));
    let body: Vec<String> = arms
        .into_iter()
        .map(|(cond, value)| format!("WHEN {cond} THEN {value}"))
        .collect();
    format!("(CASE {} END)", body.join("\n  "))
}

/// `text` as an ISO date `YYYY-MM-DD`, NULL when it is none (birth dates:
/// ISO, slash, dot, compact and `NN/NN/YYYY` layouts; a time after an ISO
/// date is ignored).
pub fn date(d: Dialect, t: &str, order: DateOrder) -> String {
    let iso = r"^(\d{4})-(\d{1,2})-(\d{1,2})$";
    let slash = r"^(\d{4})/(\d{1,2})/(\d{1,2})$";
    let dotted = r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$";
    let numeric = r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4})$";
    let mut arms = Vec::new();
    for (pattern, ymd) in [
        (iso, [1, 2, 3]),
        (slash, [1, 2, 3]),
        (COMPACT, [1, 2, 3]),
        (dotted, [3, 2, 1]),
    ] {
        let p = layout(d, t, pattern, ymd, [0; 6]);
        arms.push((d.re_match(t, pattern), naive(d, &p)));
    }
    let mut p = layout(d, t, numeric, [3, 1, 2], [0; 6]);
    (p.mo, p.d) = month_day(d, &g(d, t, numeric, 1), &g(d, t, numeric, 2), order);
    arms.push((d.re_match(t, numeric), naive(d, &p)));
    let body: Vec<String> = arms
        .into_iter()
        .map(|(cond, value)| format!("WHEN {cond} THEN {value}"))
        .collect();
    format!(
        "substr({}, 1, 10)",
        d.iso_utc(&format!("(CASE {} END)", body.join(" ")))
    )
}
