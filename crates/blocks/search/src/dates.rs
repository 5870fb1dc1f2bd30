//! Dates as Elasticsearch reads them: `strict_date_optional_time` (`2024-05-01`,
//! `2024-05-01T10:20:30.123Z`, `...+02:00`), `yyyy/MM/dd[ HH:mm:ss]`, epoch milliseconds,
//! and date math (`now-7d/d`, `2024-05-01||+1M`). Hand-written: these formats and the math
//! are Elasticsearch's own, and a general date crate would still need the glue.

/// Milliseconds since the epoch of a civil date and time (UTC).
fn civil_ms(y: i64, m: i64, d: i64, hh: i64, mm: i64, ss: i64, ms: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

/// The civil date (year, month, day) of a day count since the epoch.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parses a date string in the formats above (not epoch numbers, not date math).
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let sep = if date.contains('/') { '/' } else { '-' };
    let mut parts = date.splitn(3, sep);
    let y = digits(parts.next()?)?;
    let m = parts.next().map_or(Some(1), digits)?;
    let d = parts.next().map_or(Some(1), digits)?;
    let Some(time) = time else {
        return civil_ms(y, m, d, 0, 0, 0, 0);
    };
    // Split off the zone: `Z`, `+hh:mm`, `-hhmm`.
    let (clock, offset_min) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let zone = time[i + 1..].replace(':', "");
        let (h, mi) = (
            digits(zone.get(..2)?)?,
            zone.get(2..).map_or(Some(0), |m| if m.is_empty() { Some(0) } else { digits(m) })?,
        );
        let sign = if &time[i..i + 1] == "-" { -1 } else { 1 };
        (&time[..i], sign * (h * 60 + mi))
    } else {
        (time, 0)
    };
    let mut fields = clock.splitn(3, ':');
    let hh = digits(fields.next()?)?;
    let mm = fields.next().map_or(Some(0), digits)?;
    let (ss, ms) = match fields.next() {
        None => (0, 0),
        Some(sec) => match sec.split_once(['.', ',']) {
            Some((s, frac)) => {
                let frac = format!("{frac:0<3}");
                (digits(s)?, digits(&frac[..3])?)
            }
            None => (digits(sec)?, 0),
        },
    };
    Some(civil_ms(y, m, d, hh, mm, ss, ms)? - offset_min * 60_000)
}

fn unit_ms(unit: char) -> Option<i64> {
    Some(match unit {
        's' => 1000,
        'm' => 60_000,
        'h' | 'H' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    })
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Adds calendar months, clamping the day to the month's last (Jan 31 + 1M = Feb 29 in 2024).
pub(crate) fn add_months(ms: i64, months: i64) -> i64 {
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(ms.div_euclid(86_400_000));
    let total = y * 12 + (m - 1) + months;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    civil_ms(ny, nm, d.min(days_in_month(ny, nm)), 0, 0, 0, 0).map_or(ms, |base| base + rem)
}

/// The start of the calendar bucket of `months` months (1: a month, 3: a quarter, 12: a
/// year) that holds `ms`, in UTC; the next bucket starts `add_months(start, months)` later.
pub(crate) fn calendar_floor(ms: i64, months: i64) -> i64 {
    let (y, m, _) = civil_from_days(ms.div_euclid(86_400_000));
    let first = (m - 1) / months * months + 1;
    civil_ms(y, first, 1, 0, 0, 0, 0).expect("the first of a month is a date")
}

/// The start of the week (Monday, 00:00) that holds `ms`.
pub(crate) fn week_floor(ms: i64) -> i64 {
    // The epoch was a Thursday.
    let days = ms.div_euclid(86_400_000);
    (days - (days + 3).rem_euclid(7)) * 86_400_000
}

fn round_down(ms: i64, unit: char) -> Option<i64> {
    match unit {
        'M' => Some(calendar_floor(ms, 1)),
        'y' => Some(calendar_floor(ms, 12)),
        'w' => Some(week_floor(ms)),
        _ => unit_ms(unit).map(|u| ms.div_euclid(u) * u),
    }
}

/// Evaluates a date or date-math expression (`now-1d/d`, `2024-01-01||+1M/M`) at `now_ms`.
/// With `round_up`, rounding goes to the last millisecond of the unit (for `lte`/`gt`).
pub fn eval(expr: &str, now_ms: i64, round_up: bool) -> Option<i64> {
    let (mut value, mut math) = if let Some(rest) = expr.strip_prefix("now") {
        (now_ms, rest)
    } else if let Some((anchor, rest)) = expr.split_once("||") {
        (parse(anchor)?, rest)
    } else {
        return parse(expr).or_else(|| expr.parse().ok());
    };
    while let Some(op) = math.chars().next() {
        let rest = &math[1..];
        if op == '/' {
            let unit = rest.chars().next()?;
            let down = round_down(value, unit)?;
            value = if round_up {
                let next = match unit {
                    'M' => add_months(down, 1),
                    'y' => add_months(down, 12),
                    _ => down + unit_ms(unit)?,
                };
                next - 1
            } else {
                down
            };
            math = &rest[1..];
            continue;
        }
        let sign = match op {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        let n_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = if n_len == 0 { 1 } else { rest[..n_len].parse().ok()? };
        let unit = rest[n_len..].chars().next()?;
        value = match unit {
            'M' => add_months(value, sign * n),
            'y' => add_months(value, sign * n * 12),
            _ => value + sign * n * unit_ms(unit)?,
        };
        math = &rest[n_len + 1..];
    }
    Some(value)
}

/// Whether a string looks like a date to dynamic mapping (`date_detection`).
pub fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && (b[4] == b'-' || b[4] == b'/')
        && b[7] == b[4]
        && parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_forms() {
        assert_eq!(parse("1970-01-02"), Some(86_400_000));
        assert_eq!(parse("2024-05-01T10:20:30.5Z"), parse("2024-05-01T12:20:30.500+02:00"));
        assert_eq!(parse("2024/05/01 10:20:30"), parse("2024-05-01T10:20:30"));
        assert_eq!(parse("2024-02-29T23:59:59.999Z"), Some(civil_ms(2024, 2, 29, 23, 59, 59, 999).unwrap()));
        assert!(parse("not a date").is_none());
        assert!(looks_like_date("2024-05-01") && !looks_like_date("2024-05"));
    }

    #[test]
    fn date_math() {
        let now = parse("2024-05-15T10:00:00Z").unwrap();
        assert_eq!(eval("now-1d/d", now, false), parse("2024-05-14"));
        assert_eq!(eval("now/M", now, true), Some(parse("2024-06-01").unwrap() - 1));
        assert_eq!(eval("2024-01-31||+1M", now, false), parse("2024-02-29"));
    }

    #[test]
    fn calendar_buckets() {
        let t = parse("2024-05-15T10:00:00Z").unwrap();
        assert_eq!(calendar_floor(t, 1), parse("2024-05-01").unwrap());
        assert_eq!(calendar_floor(t, 3), parse("2024-04-01").unwrap());
        assert_eq!(calendar_floor(t, 12), parse("2024-01-01").unwrap());
        assert_eq!(add_months(parse("2024-11-01").unwrap(), 3), parse("2025-02-01").unwrap());
        assert_eq!(calendar_floor(parse("1969-12-31T23:59:59Z").unwrap(), 1), parse("1969-12-01").unwrap());
    }
}
