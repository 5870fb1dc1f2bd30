//! Aggregations: Elasticsearch's requests and answers, to and from tantivy's aggregation
//! engine, whose JSON follows Elasticsearch's closely. This module rewrites what tantivy
//! reads differently (calendar intervals and time zones of a date_histogram among them),
//! builds the collector, and brings the answer back to Elasticsearch's shapes.

use crate::error::{SearchError, SearchResult};
use crate::schema::Compiled;
use crate::zones::{Step, Zone, fixed_interval_ms};
use serde_json::{Map, Value, json};
use tantivy::Searcher;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector};

/// Most buckets one calendar date_histogram may have: tantivy's bucket limit for a request
/// (Elasticsearch's `search.max_buckets` is 65,536). Seventy years of days fit.
const MAX_CALENDAR_BUCKETS: usize = tantivy::aggregation::DEFAULT_BUCKET_LIMIT as usize;

/// A `date_histogram` whose buckets differ in length: by calendar months, quarters or years,
/// or in a time zone (whose days change length with daylight saving). tantivy's
/// date_histogram has fixed intervals in UTC only, so this one runs as a `range` aggregation
/// over the bucket boundaries between the field's lowest and highest value, and
/// [`answer_calendar`] gives its answer date_histogram's shape.
pub(crate) struct CalendarAgg {
    /// Aggregation names from the top down to this one.
    path: Vec<String>,
    min_doc_count: u64,
    zone: Zone,
}

/// The local step of a calendar interval (`month`, `1d`, ...).
fn calendar_step(interval: &str) -> Option<Step> {
    Some(match interval {
        "month" | "1M" => Step::Months(1),
        "quarter" | "1q" => Step::Months(3),
        "year" | "1y" => Step::Months(12),
        "week" | "1w" => Step::Weeks,
        "day" | "1d" => Step::Fixed(86_400_000),
        "hour" | "1h" => Step::Fixed(3_600_000),
        "minute" | "1m" => Step::Fixed(60_000),
        "second" | "1s" => Step::Fixed(1000),
        _ => return None,
    })
}

/// The interval of date_histogram `dh` (taking its calendar interval out of it) and its step
/// in local time; `None` for a fixed interval in UTC, which tantivy reads as it is.
fn histogram_step(dh: &mut Map<String, Value>, zone: Zone) -> SearchResult<Option<(String, Step)>> {
    let calendar = dh.remove("calendar_interval").or_else(|| dh.remove("interval"));
    if let Some(Value::String(interval)) = calendar {
        let step = calendar_step(&interval).or_else(|| fixed_interval_ms(&interval).map(Step::Fixed)).ok_or_else(|| {
            SearchError::illegal_argument(format!(
                "calendar_interval [{interval}] is not supported here; use a calendar unit (minute, hour, day, week, month, quarter, year) or fixed_interval (e.g. \"30d\")"
            ))
        })?;
        return Ok(Some((interval, step)));
    }
    match dh.get("fixed_interval").and_then(Value::as_str) {
        Some(fixed) if !zone.is_utc() => {
            let ms = fixed_interval_ms(fixed).ok_or_else(|| {
                SearchError::illegal_argument(format!("fixed_interval [{fixed}] is not a fixed length"))
            })?;
            Ok(Some((fixed.to_string(), Step::Fixed(ms))))
        }
        _ => Ok(None),
    }
}

/// The range aggregation that buckets `dh` (a date_histogram by `step` in `zone`) between
/// the bounds (epoch ms) of its field's values; and its min_doc_count.
fn calendar_ranges(
    dh: &Map<String, Value>,
    interval: &str,
    step: Step,
    zone: Zone,
    bounds: &dyn Fn(&str) -> Option<(i64, i64)>,
) -> SearchResult<(Value, u64)> {
    let field = dh
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| SearchError::parsing("[date_histogram] requires a [field]"))?;
    for key in ["offset", "extended_bounds", "hard_bounds"] {
        if dh.contains_key(key) {
            return Err(SearchError::illegal_argument(format!(
                "[{key}] is not supported with interval [{interval}] in a time zone or by calendar months here"
            )));
        }
    }
    let min_doc_count = dh.get("min_doc_count").and_then(Value::as_u64).unwrap_or(0);
    let (low, high) = bounds(field).unwrap_or((0, 0));
    let mut ranges = Vec::new();
    let mut local = step.floor(zone.to_local(low));
    let mut start = zone.to_utc(local);
    while start <= high {
        if ranges.len() == MAX_CALENDAR_BUCKETS {
            return Err(SearchError::illegal_argument(format!(
                "too_many_buckets: a date_histogram by [{interval}] over [{field}] would have more than {MAX_CALENDAR_BUCKETS} buckets"
            )));
        }
        local = step.next(local);
        // Where the clock goes back, two local boundaries can be one instant.
        let end = zone.to_utc(local).max(start + 1);
        // tantivy compares date columns in nanoseconds; millisecond starts are exact as f64.
        ranges.push(json!({"from": start as f64 * 1e6, "to": end as f64 * 1e6}));
        start = end;
    }
    Ok((json!({"field": field, "ranges": ranges, "keyed": false}), min_doc_count))
}

/// Rewrites the parts of an aggregation request tantivy reads differently. `bounds` gives a
/// date field's lowest and highest value (epoch ms); each calendar date_histogram found is
/// recorded in `calendars`, `path` being the names above the aggregations of `v`.
fn adapt_aggs(
    v: &mut Value,
    bounds: &dyn Fn(&str) -> Option<(i64, i64)>,
    path: &[String],
    calendars: &mut Vec<CalendarAgg>,
) -> SearchResult<()> {
    let Some(obj) = v.as_object_mut() else { return Ok(()) };
    for (name, agg) in obj.iter_mut() {
        let Some(agg) = agg.as_object_mut() else { continue };
        let here: Vec<String> = path.iter().cloned().chain([name.clone()]).collect();
        let mut as_range = None;
        if let Some(Value::Object(dh)) = agg.get_mut("date_histogram") {
            let zone = match dh.remove("time_zone") {
                None | Some(Value::Null) => Zone::UTC,
                Some(Value::String(text)) => Zone::parse(&text)?,
                Some(other) => {
                    return Err(SearchError::parsing(format!("[time_zone] must be a string, got {other}")));
                }
            };
            match histogram_step(dh, zone)? {
                // Fixed lengths in UTC are tantivy's own date_histogram (weeks start on Monday,
                // four days after the epoch's Thursday).
                Some((_, Step::Fixed(ms))) if zone.is_utc() => {
                    dh.insert("fixed_interval".into(), json!(format!("{ms}ms")));
                }
                Some((_, Step::Weeks)) if zone.is_utc() && !dh.contains_key("offset") => {
                    dh.insert("fixed_interval".into(), json!("7d"));
                    dh.insert("offset".into(), json!("4d"));
                }
                Some((interval, step)) => {
                    dh.remove("fixed_interval");
                    let (range, min_doc_count) = calendar_ranges(dh, &interval, step, zone, bounds)?;
                    calendars.push(CalendarAgg { path: here.clone(), min_doc_count, zone });
                    as_range = Some(range);
                }
                None => {}
            }
        }
        if let Some(range) = as_range {
            agg.remove("date_histogram");
            agg.insert("range".into(), range);
        }
        for key in ["aggs", "aggregations"] {
            if let Some(sub) = agg.remove(key) {
                let mut sub = sub;
                adapt_aggs(&mut sub, bounds, &here, calendars)?;
                agg.insert("aggs".into(), sub);
            }
        }
    }
    Ok(())
}

/// Gives a calendar aggregation's answer (range buckets) date_histogram's shape: each bucket
/// keyed by its start in epoch ms, with `key_as_string`. Elasticsearch bounds such a
/// histogram by the data it aggregates, so empty buckets before the first and after the last
/// document go (the ranges spanned every value of the field); with a `min_doc_count`, every
/// bucket under it goes.
fn answer_calendar(aggs: &mut Value, path: &[String], min_doc_count: u64, zone: Zone) {
    let Some((name, rest)) = path.split_first() else { return };
    let Some(node) = aggs.get_mut(name) else { return };
    if !rest.is_empty() {
        match node.get_mut("buckets") {
            Some(Value::Array(buckets)) => {
                buckets.iter_mut().for_each(|b| answer_calendar(b, rest, min_doc_count, zone))
            }
            Some(Value::Object(buckets)) => {
                buckets.values_mut().for_each(|b| answer_calendar(b, rest, min_doc_count, zone))
            }
            _ => {}
        }
        return;
    }
    let Some(Value::Array(buckets)) = node.get_mut("buckets") else { return };
    for bucket in buckets.iter_mut() {
        let Some(b) = bucket.as_object_mut() else { continue };
        let from = b.remove("from").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let label = b.remove("from_as_string");
        for gone in ["key", "to", "to_as_string"] {
            b.remove(gone);
        }
        let key = (from / 1e6).round() as i64;
        b.insert("key".into(), json!(key));
        if !zone.is_utc() {
            b.insert("key_as_string".into(), json!(zone.format(key)));
        } else if let Some(label) = label {
            b.insert("key_as_string".into(), label);
        }
    }
    let count = |b: &Value| b.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
    if min_doc_count == 0 {
        while buckets.last().is_some_and(|b| count(b) == 0) {
            buckets.pop();
        }
        let first = buckets.iter().position(|b| count(b) > 0).unwrap_or(buckets.len());
        buckets.drain(..first);
    } else {
        buckets.retain(|b| count(b) >= min_doc_count);
    }
}

/// The lowest and highest value (epoch ms) of date field `field` over `searchers`.
fn date_bounds(searchers: &[Searcher], field: &str) -> Option<(i64, i64)> {
    let mut bounds: Option<(i64, i64)> = None;
    for segment in searchers.iter().flat_map(|s| s.segment_readers()) {
        let Ok(column) = segment.fast_fields().date(field) else { continue };
        if column.values.num_vals() == 0 {
            continue;
        }
        let (low, high) =
            (column.min_value().into_timestamp_millis(), column.max_value().into_timestamp_millis());
        bounds = Some(bounds.map_or((low, high), |(a, b)| (a.min(low), b.max(high))));
    }
    bounds
}

pub(crate) fn parse(
    body: &Value,
    searchers: &[Searcher],
) -> SearchResult<(Option<Aggregations>, Vec<CalendarAgg>)> {
    let Some(raw) = body.get("aggs").or_else(|| body.get("aggregations")) else {
        return Ok((None, Vec::new()));
    };
    let mut raw = raw.clone();
    let mut calendars = Vec::new();
    adapt_aggs(&mut raw, &|field| date_bounds(searchers, field), &[], &mut calendars)?;
    let aggs: Aggregations = serde_json::from_value(raw)
        .map_err(|e| SearchError::parsing(format!("failed to parse aggregations: {e}")))?;
    Ok((Some(aggs), calendars))
}

pub(crate) fn collector(
    compiled: &Compiled,
    aggs: &Option<Aggregations>,
) -> Option<DistributedAggregationCollector> {
    aggs.as_ref().map(|a| {
        DistributedAggregationCollector::from_aggs(
            a.clone(),
            AggContextParams::new(AggregationLimitsGuard::default(), compiled.tokenizers.clone()),
        )
    })
}

pub(crate) fn error(e: tantivy::TantivyError) -> SearchError {
    let msg = e.to_string();
    if msg.contains("not a fast field") || msg.contains("FastFieldNotAvailable") || msg.contains("fast field")
    {
        SearchError::illegal_argument(format!(
            "{msg}: aggregations need keyword, numeric, boolean or date fields (text fields are not aggregatable; use the .keyword sub-field)"
        ))
    } else {
        SearchError::from(e)
    }
}

/// Brings tantivy's final answer to Elasticsearch's shapes, the calendar histograms of the
/// request first.
pub(crate) fn answer(v: &mut Value, calendars: &[CalendarAgg]) {
    for calendar in calendars {
        answer_calendar(v, &calendar.path, calendar.min_doc_count, calendar.zone);
    }
    fix_agg_json(v);
}

/// Elasticsearch answers `doc_count_error_upper_bound` and `sum_other_doc_count` on terms
/// aggregations and integer keys where tantivy has floats; bring the shapes together.
fn fix_agg_json(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::Array(buckets)) = obj.get_mut("buckets") {
                for b in buckets.iter_mut() {
                    if let Some(key) = b.get("key").and_then(Value::as_f64)
                        && key.fract() == 0.0
                        && key.abs() < 9.0e15
                    {
                        b["key"] = json!(key as i64);
                    }
                    fix_agg_json(b);
                }
            }
            for (k, child) in obj.iter_mut() {
                if k != "buckets" {
                    fix_agg_json(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_agg_json),
        _ => {}
    }
}
