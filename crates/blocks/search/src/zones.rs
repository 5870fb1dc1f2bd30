//! Time zones of date_histogram buckets: with `time_zone`, a bucket starts at a wall-clock
//! boundary of that zone (local midnight, the local first of the month, a local multiple of a
//! fixed interval), as in Elasticsearch, so a day in Berlin is one bucket even across a
//! daylight-saving change (23 or 25 hours long).
//!
//! Local times are "local milliseconds": the wall clock read as if it were UTC. The calendar
//! arithmetic of `dates.rs` then applies to them unchanged; chrono-tz supplies the offsets of
//! named (IANA) zones.

use crate::dates;
use crate::error::{SearchError, SearchResult};
use chrono::{DateTime, Offset, TimeZone};
use std::str::FromStr;

const DAY_MS: i64 = 86_400_000;

/// A `time_zone`: a fixed offset (`+01:00`, `-0530`, `Z`) or a named zone (`Europe/Berlin`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Zone {
    /// Local minus UTC, in milliseconds.
    Fixed(i64),
    Named(chrono_tz::Tz),
}

/// How far apart bucket starts are, in local time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Calendar months: 1 (month), 3 (quarter), 12 (year).
    Months(i64),
    /// Calendar weeks, starting on Monday.
    Weeks,
    /// A fixed length in milliseconds (a calendar day or hour, or any fixed_interval).
    Fixed(i64),
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed(0);

    pub fn parse(text: &str) -> SearchResult<Zone> {
        if matches!(text, "Z" | "UTC" | "utc" | "GMT") {
            return Ok(Zone::UTC);
        }
        if let Some(sign) = text.strip_prefix(['+', '-']).map(|_| if text.starts_with('-') { -1 } else { 1 })
        {
            let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
            let (hh, mm) = match digits.len() {
                1 | 2 => (digits.parse::<i64>().ok(), Some(0)),
                4 => (digits[..2].parse::<i64>().ok(), digits[2..].parse::<i64>().ok()),
                _ => (None, None),
            };
            if let (Some(hh), Some(mm)) = (hh, mm)
                && hh <= 18
                && mm < 60
            {
                return Ok(Zone::Fixed(sign * (hh * 60 + mm) * 60_000));
            }
        }
        chrono_tz::Tz::from_str(text)
            .map(Zone::Named)
            .map_err(|_| SearchError::illegal_argument(format!("unknown time zone [{text}]")))
    }

    pub fn is_utc(self) -> bool {
        self == Zone::UTC
    }

    /// Local minus UTC at the instant `utc_ms`, in milliseconds.
    fn offset_ms(self, utc_ms: i64) -> i64 {
        match self {
            Zone::Fixed(offset) => offset,
            Zone::Named(tz) => DateTime::from_timestamp_millis(utc_ms).map_or(0, |t| {
                i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc()) * 1000
            }),
        }
    }

    pub fn to_local(self, utc_ms: i64) -> i64 {
        utc_ms + self.offset_ms(utc_ms)
    }

    /// The instant of local time `local_ms`: the earlier one when the clock went back over
    /// it; a time the clock skipped is read with the offset in force before the skip, so a
    /// bucket that would start at the skip (a midnight, in zones that change at midnight)
    /// starts at the instant of the skip.
    pub fn to_utc(self, local_ms: i64) -> i64 {
        let Zone::Named(tz) = self else { return local_ms - self.offset_ms(local_ms) };
        let Some(naive) = DateTime::from_timestamp_millis(local_ms).map(|t| t.naive_utc()) else {
            return local_ms;
        };
        match tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.timestamp_millis(),
            None => local_ms - self.offset_ms(local_ms - DAY_MS),
        }
    }

    /// `2024-03-31T00:00:00.000+01:00`: the instant as a local time with its offset, the way
    /// Elasticsearch writes a zoned bucket's `key_as_string`.
    pub fn format(self, utc_ms: i64) -> String {
        let offset = self.offset_ms(utc_ms);
        let local = DateTime::from_timestamp_millis(utc_ms + offset).unwrap_or_default();
        let minutes = offset.abs() / 60_000;
        let sign = if offset < 0 { '-' } else { '+' };
        format!("{}{sign}{:02}:{:02}", local.format("%Y-%m-%dT%H:%M:%S%.3f"), minutes / 60, minutes % 60)
    }
}

impl Step {
    /// The start of the bucket holding local time `local_ms`.
    pub fn floor(self, local_ms: i64) -> i64 {
        match self {
            Step::Months(months) => dates::calendar_floor(local_ms, months),
            Step::Weeks => dates::week_floor(local_ms),
            Step::Fixed(ms) => local_ms.div_euclid(ms) * ms,
        }
    }

    /// The start of the bucket after the one starting at local time `local_ms`.
    pub fn next(self, local_ms: i64) -> i64 {
        match self {
            Step::Months(months) => dates::add_months(local_ms, months),
            Step::Weeks => local_ms + 7 * DAY_MS,
            Step::Fixed(ms) => local_ms + ms,
        }
    }
}

/// A fixed interval (`90s`, `30m`, `3h`, `1d`, `500ms`) in milliseconds.
pub fn fixed_interval_ms(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = text[..split].parse().ok().filter(|n| *n > 0)?;
    let unit = match &text[split..] {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> i64 {
        dates::parse(text).unwrap()
    }

    #[test]
    fn zones_parse_as_elasticsearch_writes_them() {
        assert_eq!(Zone::parse("+01:00").unwrap(), Zone::Fixed(3_600_000));
        assert_eq!(Zone::parse("-0530").unwrap(), Zone::Fixed(-19_800_000));
        assert_eq!(Zone::parse("+02").unwrap(), Zone::Fixed(7_200_000));
        assert!(Zone::parse("UTC").unwrap().is_utc());
        assert_eq!(Zone::parse("Europe/Berlin").unwrap(), Zone::Named(chrono_tz::Europe::Berlin));
        assert!(Zone::parse("Mars/Olympus").is_err());
        assert!(Zone::parse("+25:00").is_err());
    }

    #[test]
    fn days_in_berlin_follow_its_clock_across_daylight_saving() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        let day = Step::Fixed(DAY_MS);
        // 2024-03-31 is 23 hours long in Berlin; 2024-10-27 is 25.
        let start = berlin.to_utc(day.floor(berlin.to_local(utc("2024-03-31T12:00:00Z"))));
        assert_eq!(start, utc("2024-03-30T23:00:00Z"));
        let end = berlin.to_utc(day.next(day.floor(berlin.to_local(start))));
        assert_eq!(end - start, 23 * 3_600_000);
        let fall = berlin.to_utc(day.floor(berlin.to_local(utc("2024-10-27T12:00:00Z"))));
        assert_eq!(berlin.to_utc(day.next(berlin.to_local(fall))) - fall, 25 * 3_600_000);
        assert_eq!(berlin.format(start), "2024-03-31T00:00:00.000+01:00");
        assert_eq!(berlin.format(end), "2024-04-01T00:00:00.000+02:00");
        // A local time the clock skipped is read with the offset before the skip.
        assert_eq!(berlin.to_utc(utc("2024-03-31T02:30:00Z")), utc("2024-03-31T01:30:00Z"));
    }

    #[test]
    fn months_and_weeks_start_at_local_boundaries() {
        let ny = Zone::parse("America/New_York").unwrap();
        let month = Step::Months(1);
        let start = ny.to_utc(month.floor(ny.to_local(utc("2024-07-01T02:00:00Z"))));
        assert_eq!(start, utc("2024-06-01T04:00:00Z"), "2 am UTC on July 1 is still June in New York");
        let monday = Step::Weeks.floor(utc("2024-05-16T10:00:00Z"));
        assert_eq!(monday, utc("2024-05-13"));
        assert_eq!(fixed_interval_ms("90s"), Some(90_000));
        assert_eq!(fixed_interval_ms("3h"), Some(10_800_000));
        assert_eq!(fixed_interval_ms("1M"), None);
    }
}
