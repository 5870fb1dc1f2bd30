//! Aggregations: Elasticsearch's requests and answers, to and from tantivy's aggregation
//! engine, whose JSON follows Elasticsearch's closely. This module rewrites what tantivy
//! reads differently (calendar intervals of a date_histogram among them), builds the
//! collector, and brings the answer back to Elasticsearch's shapes.

use crate::dates;
use crate::error::{SearchError, SearchResult};
use crate::schema::Compiled;
use serde_json::{Map, Value, json};
use tantivy::Searcher;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector};

/// Most buckets one calendar date_histogram may have (Elasticsearch's `search.max_buckets`
/// is 65,536 over a whole request).
const MAX_CALENDAR_BUCKETS: usize = 10_000;

/// A `date_histogram` by calendar months, quarters or years, whose buckets differ in length.
/// tantivy's date_histogram has fixed intervals only, so this one runs as a `range`
/// aggregation over the bucket boundaries between the field's lowest and highest value, and
/// [`answer_calendar`] gives its answer date_histogram's shape.
pub(crate) struct CalendarAgg {
    /// Aggregation names from the top down to this one.
    path: Vec<String>,
    min_doc_count: u64,
}

/// Months per bucket of a calendar interval longer than a week.
fn calendar_months(interval: &str) -> Option<i64> {
    match interval {
        "month" | "1M" => Some(1),
        "quarter" | "1q" => Some(3),
        "year" | "1y" => Some(12),
        _ => None,
    }
}

/// The range aggregation that buckets `dh` (a date_histogram by `months` months) between the
/// bounds (epoch ms) of its field's values; and its min_doc_count.
fn calendar_ranges(
    dh: &Map<String, Value>,
    interval: &str,
    months: i64,
    bounds: &dyn Fn(&str) -> Option<(i64, i64)>,
) -> SearchResult<(Value, u64)> {
    let field = dh
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| SearchError::parsing("[date_histogram] requires a [field]"))?;
    for key in ["offset", "extended_bounds", "hard_bounds"] {
        if dh.contains_key(key) {
            return Err(SearchError::illegal_argument(format!(
                "[{key}] is not supported with calendar_interval [{interval}] here"
            )));
        }
    }
    if let Some(zone) = dh.get("time_zone").and_then(Value::as_str)
        && !matches!(zone, "UTC" | "Z" | "+00:00" | "Etc/UTC")
    {
        return Err(SearchError::illegal_argument(format!(
            "time_zone [{zone}] is not supported with calendar_interval [{interval}] here; buckets are in UTC"
        )));
    }
    let min_doc_count = dh.get("min_doc_count").and_then(Value::as_u64).unwrap_or(0);
    let (low, high) = bounds(field).unwrap_or((0, 0));
    let mut ranges = Vec::new();
    let mut start = dates::calendar_floor(low, months);
    while start <= high {
        if ranges.len() == MAX_CALENDAR_BUCKETS {
            return Err(SearchError::illegal_argument(format!(
                "too_many_buckets: a date_histogram by [{interval}] over [{field}] would have more than {MAX_CALENDAR_BUCKETS} buckets"
            )));
        }
        let end = dates::add_months(start, months);
        // tantivy compares date columns in nanoseconds; month starts are exact as f64.
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
            let calendar = dh.remove("calendar_interval").or_else(|| dh.remove("interval"));
            if let Some(Value::String(interval)) = calendar {
                if let Some(months) = calendar_months(&interval) {
                    let (range, min_doc_count) = calendar_ranges(dh, &interval, months, bounds)?;
                    calendars.push(CalendarAgg { path: here.clone(), min_doc_count });
                    as_range = Some(range);
                } else {
                    let fixed = match interval.as_str() {
                        "second" | "1s" => "1s",
                        "minute" | "1m" => "1m",
                        "hour" | "1h" => "1h",
                        "day" | "1d" => "1d",
                        "week" | "1w" => "7d",
                        other
                            if other.ends_with(['s', 'm', 'h', 'd'])
                                && other[..other.len() - 1].parse::<u64>().is_ok() =>
                        {
                            other
                        }
                        other => {
                            return Err(SearchError::illegal_argument(format!(
                                "calendar_interval [{other}] is not supported here; use fixed_interval (e.g. \"30d\") or month, quarter, year"
                            )));
                        }
                    };
                    dh.insert("fixed_interval".into(), json!(fixed));
                }
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
fn answer_calendar(aggs: &mut Value, path: &[String], min_doc_count: u64) {
    let Some((name, rest)) = path.split_first() else { return };
    let Some(node) = aggs.get_mut(name) else { return };
    if !rest.is_empty() {
        match node.get_mut("buckets") {
            Some(Value::Array(buckets)) => {
                buckets.iter_mut().for_each(|b| answer_calendar(b, rest, min_doc_count))
            }
            Some(Value::Object(buckets)) => {
                buckets.values_mut().for_each(|b| answer_calendar(b, rest, min_doc_count))
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
        b.insert("key".into(), json!((from / 1e6).round() as i64));
        if let Some(label) = label {
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
        answer_calendar(v, &calendar.path, calendar.min_doc_count);
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
