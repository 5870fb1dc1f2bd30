//! Running a search request: hits (scored by BM25 or sorted by fields, paged by
//! `from`/`size` or `search_after`), total counts (`track_total_hits`), `_source`
//! filtering, highlighting, aggregations (tantivy's, translated in [`crate::aggs`]) and the
//! term suggester ("did you mean").
//!
//! A request over several indices runs on each and merges: hits by their sort keys,
//! aggregations through tantivy's intermediate results.

use crate::aggs;
use crate::engine::View;
use crate::error::{SearchError, SearchResult};
use crate::fuzzy;
use crate::mapping::FieldType;
use crate::query::Ctx;
use crate::schema::{Compiled, FieldInfo};
use crate::slice::SliceQuery;
use crate::source::{SourceFilter, glob_match};
use crate::{SearchConfig, analysis, dates};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tantivy::aggregation::AggregationLimitsGuard;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query};
use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};
use tantivy::schema::{Field, OwnedValue, Value as _};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader, TantivyDocument};

/// The keys of a search body this module reads; anything else is refused.
const KNOWN_KEYS: &[&str] = &[
    "query",
    "slice",
    "from",
    "size",
    "sort",
    "search_after",
    "_source",
    "highlight",
    "aggs",
    "aggregations",
    "suggest",
    "track_total_hits",
    "min_score",
    "post_filter",
    "track_scores",
    "timeout",
    "explain",
    "version",
    "seq_no_primary_term",
    "stored_fields",
    "profile",
    "terminate_after",
    "indices_boost",
    "fields",
    "docvalue_fields",
    "pit",
    "runtime_mappings",
];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A value a hit is sorted by.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Key {
    Missing,
    Num(f64),
    Str(String),
}

impl Key {
    fn to_json(&self, ty: Option<FieldType>) -> Value {
        match self {
            Key::Missing => Value::Null,
            Key::Num(n)
                if ty.is_some_and(|t| t.is_integer() || t == FieldType::Date || t == FieldType::Boolean) =>
            {
                json!(*n as i64)
            }
            Key::Num(n) => json!(n),
            Key::Str(s) => json!(s),
        }
    }
}

#[derive(Clone, Debug)]
enum SortBy {
    Score,
    Doc,
    Field { path: String, ty: FieldType },
}

#[derive(Clone, Debug)]
struct SortSpec {
    by: SortBy,
    descending: bool,
    missing_first: bool,
}

fn parse_sort(compiled: &Compiled, v: Option<&Value>) -> SearchResult<Vec<SortSpec>> {
    let items: Vec<Value> = match v {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => s.split(',').map(|p| Value::String(p.trim().to_string())).collect(),
        Some(other) => vec![other.clone()],
    };
    let mut out = Vec::new();
    for item in items {
        let (name, opts) = match &item {
            Value::String(s) => match s.split_once(':') {
                Some((f, o)) => (f.to_string(), json!({"order": o})),
                None => (s.clone(), json!({})),
            },
            Value::Object(o) if o.len() == 1 => {
                let (k, v) = o.iter().next().expect("one");
                (k.clone(), if v.is_string() { json!({"order": v}) } else { v.clone() })
            }
            other => return Err(SearchError::parsing(format!("malformed sort: {other}"))),
        };
        let order = opts.get("order").and_then(Value::as_str);
        let by = match name.as_str() {
            "_score" => SortBy::Score,
            "_doc" | "_shard_doc" => SortBy::Doc,
            path => {
                let info = compiled.field(path).ok_or_else(|| {
                    SearchError::new(
                        400,
                        "query_shard_exception",
                        format!("No mapping found for [{path}] in order to sort on"),
                    )
                })?;
                if info.leaf.ty == FieldType::Text {
                    return Err(SearchError::illegal_argument(format!(
                        "Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{path}] in order to load field data by uninverting the inverted index."
                    )));
                }
                SortBy::Field { path: path.to_string(), ty: info.leaf.ty }
            }
        };
        let descending = match order {
            Some("desc") => true,
            Some("asc") => false,
            Some(other) => return Err(SearchError::illegal_argument(format!("Unknown SortOrder [{other}]"))),
            None => matches!(by, SortBy::Score),
        };
        let missing_first = opts.get("missing").and_then(Value::as_str) == Some("_first");
        out.push(SortSpec { by, descending, missing_first });
    }
    Ok(out)
}

/// Orders two key lists: `Less` means `a` comes first.
fn compare(specs: &[SortSpec], a: &[Key], b: &[Key]) -> Ordering {
    for (spec, (x, y)) in specs.iter().zip(a.iter().zip(b)) {
        let ord = match (x, y) {
            (Key::Missing, Key::Missing) => Ordering::Equal,
            (Key::Missing, _) => {
                if spec.missing_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (_, Key::Missing) => {
                if spec.missing_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            _ => {
                let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
                if spec.descending { o.reverse() } else { o }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// One hit while collecting: its sort keys, score and address (index ordinal first).
#[derive(Clone, Debug)]
struct Hit {
    keys: Vec<Key>,
    score: Score,
    index: usize,
    addr: DocAddress,
}

struct Ranked<'a> {
    hit: Hit,
    specs: &'a [SortSpec],
}

fn order_hits(specs: &[SortSpec], a: &Hit, b: &Hit) -> Ordering {
    compare(specs, &a.keys, &b.keys)
        .then(a.index.cmp(&b.index))
        .then(a.addr.segment_ord.cmp(&b.addr.segment_ord))
        .then(a.addr.doc_id.cmp(&b.addr.doc_id))
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        order_hits(self.specs, &self.hit, &other.hit) == Ordering::Equal
    }
}
impl Eq for Ranked<'_> {}
impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        order_hits(self.specs, &self.hit, &other.hit)
    }
}

/// The best `limit` of a list of hits, in order.
fn top(specs: &[SortSpec], hits: Vec<Hit>, limit: usize) -> Vec<Hit> {
    let mut heap = BinaryHeap::with_capacity(limit + 1);
    for hit in hits {
        heap.push(Ranked { hit, specs });
        if heap.len() > limit {
            heap.pop();
        }
    }
    heap.into_sorted_vec().into_iter().map(|r| r.hit).collect()
}

/// Collects hits sorted by fields (and maybe `_score`), after a `search_after` point.
struct SortCollector {
    specs: Arc<Vec<SortSpec>>,
    after: Option<Vec<Key>>,
    /// Hits scoring under it are not collected.
    min_score: Option<Score>,
    limit: usize,
    scoring: bool,
    index: usize,
}

enum Column {
    Int(tantivy::columnar::Column<i64>),
    Float(tantivy::columnar::Column<f64>),
    Bool(tantivy::columnar::Column<bool>),
    Date(tantivy::columnar::Column<tantivy::DateTime>),
    Str(tantivy::columnar::StrColumn),
    None,
}

struct SortSegment {
    specs: Arc<Vec<SortSpec>>,
    after: Option<Vec<Key>>,
    min_score: Option<Score>,
    limit: usize,
    columns: Vec<Column>,
    segment: SegmentOrdinal,
    index: usize,
    hits: Vec<Hit>,
    buf: String,
}

impl Collector for SortCollector {
    type Fruit = Vec<Hit>;
    type Child = SortSegment;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SortSegment> {
        let fast = reader.fast_fields();
        let mut columns = Vec::new();
        for spec in self.specs.iter() {
            columns.push(match &spec.by {
                SortBy::Field { path, ty } => match ty {
                    FieldType::Keyword => fast.str(path)?.map_or(Column::None, Column::Str),
                    FieldType::Boolean => fast.column_opt::<bool>(path)?.map_or(Column::None, Column::Bool),
                    FieldType::Date => {
                        fast.column_opt::<tantivy::DateTime>(path)?.map_or(Column::None, Column::Date)
                    }
                    t if t.is_float() => fast.column_opt::<f64>(path)?.map_or(Column::None, Column::Float),
                    _ => fast.column_opt::<i64>(path)?.map_or(Column::None, Column::Int),
                },
                _ => Column::None,
            });
        }
        Ok(SortSegment {
            specs: self.specs.clone(),
            after: self.after.clone(),
            min_score: self.min_score,
            limit: self.limit,
            columns,
            segment,
            index: self.index,
            hits: Vec::new(),
            buf: String::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        Ok(top(&self.specs, fruits.into_iter().flatten().collect(), self.limit))
    }
}

impl SegmentCollector for SortSegment {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.min_score.is_some_and(|min| score < min) {
            return;
        }
        let mut keys = Vec::with_capacity(self.specs.len());
        for (spec, column) in self.specs.iter().zip(&self.columns) {
            let descending = spec.descending;
            keys.push(match (&spec.by, column) {
                (SortBy::Score, _) => Key::Num(score as f64),
                (SortBy::Doc, _) => {
                    Key::Num(((self.index as u64) << 40 | (self.segment as u64) << 32 | doc as u64) as f64)
                }
                (_, Column::Int(c)) => pick(c.values_for_doc(doc).map(|v| v as f64), descending),
                (_, Column::Float(c)) => pick(c.values_for_doc(doc), descending),
                (_, Column::Bool(c)) => {
                    pick(c.values_for_doc(doc).map(|b| if b { 1.0 } else { 0.0 }), descending)
                }
                (_, Column::Date(c)) => {
                    pick(c.values_for_doc(doc).map(|d| d.into_timestamp_millis() as f64), descending)
                }
                (_, Column::Str(c)) => {
                    // The smallest (or, descending, largest) of the values.
                    let ord = if descending { c.term_ords(doc).max() } else { c.term_ords(doc).min() };
                    match ord {
                        Some(ord) if c.ord_to_str(ord, &mut self.buf).unwrap_or(false) => {
                            Key::Str(std::mem::take(&mut self.buf))
                        }
                        _ => Key::Missing,
                    }
                }
                (_, Column::None) => Key::Missing,
            });
        }
        if let Some(after) = &self.after
            && compare(&self.specs, &keys, after) != Ordering::Greater
        {
            return;
        }
        self.hits.push(Hit { keys, score, index: self.index, addr: DocAddress::new(self.segment, doc) });
        if self.hits.len() >= self.limit * 4 + 64 {
            let hits = std::mem::take(&mut self.hits);
            self.hits = top(&self.specs, hits, self.limit);
        }
    }

    fn harvest(self) -> Vec<Hit> {
        top(&self.specs, self.hits, self.limit)
    }
}

fn pick(values: impl Iterator<Item = f64>, descending: bool) -> Key {
    let best = values.fold(None, |acc: Option<f64>, v| {
        Some(match acc {
            None => v,
            Some(a) if descending => a.max(v),
            Some(a) => a.min(v),
        })
    });
    best.map_or(Key::Missing, Key::Num)
}

/// `track_total_hits`: `None` to not count, else the count up to which totals are exact.
fn track_total(v: Option<&Value>) -> SearchResult<Option<usize>> {
    match v {
        None => Ok(Some(10_000)),
        Some(Value::Bool(true)) => Ok(Some(usize::MAX)),
        Some(Value::Bool(false)) => Ok(None),
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => Ok(Some(usize::MAX)),
        Some(Value::Number(n)) => Ok(Some(n.as_u64().unwrap_or(10_000) as usize)),
        Some(other) => Err(SearchError::illegal_argument(format!(
            "[track_total_hits] must be a boolean or a number, got {other}"
        ))),
    }
}

fn usize_param(body: &Value, key: &str, default: usize) -> SearchResult<usize> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                SearchError::illegal_argument(format!("[{key}] parameter cannot be negative, found [{v}]"))
            }),
    }
}

struct IndexRun {
    hits: Vec<Hit>,
    total: Option<usize>,
    aggs: Option<IntermediateAggregationResults>,
    query: Box<dyn Query>,
    searcher: Searcher,
}

/// An index a search reads: its name, its view, and the filter of the alias it was named
/// through (see `aliases.rs`).
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub view: Arc<View>,
    pub filter: Option<Value>,
}

/// Runs a search body over views of one or more indices.
pub fn run(targets: &[Target], body: &Value, config: &SearchConfig) -> SearchResult<Value> {
    run_inner(targets, body, config, None).map(|(out, _)| out)
}

/// A scroll between pages: every hit of its search (up to the scroll's cap), collected once
/// over the views it started on (a point in time), handed out `size` at a time.
pub struct ScrollState {
    /// The hits not handed out yet, in order.
    rest: std::collections::VecDeque<Hit>,
    /// Per index: the searcher the hits come from and the query (for highlighting).
    runs: Vec<(Searcher, Box<dyn Query>)>,
    render: Render,
    size: usize,
    /// The first page's `hits.total`.
    total: Value,
}

impl ScrollState {
    /// Hits not handed out yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// Opens a scroll: the first page, and the state for the next ones. `cap` bounds the hits
/// one scroll collects.
pub fn open_scroll(
    targets: &[Target],
    body: &Value,
    config: &SearchConfig,
    cap: usize,
) -> SearchResult<(Value, ScrollState)> {
    let (out, state) = run_inner(targets, body, config, Some(cap))?;
    Ok((out, state.expect("a scroll run keeps its state")))
}

/// The next page of a scroll over the same `targets`.
pub fn next_scroll_page(targets: &[Target], state: &mut ScrollState) -> SearchResult<Value> {
    let started = Instant::now();
    let take = state.size.min(state.rest.len());
    let page: Vec<Hit> = state.rest.drain(..take).collect();
    let sources: Vec<(&Searcher, &dyn Query)> = state.runs.iter().map(|(s, q)| (s, &**q)).collect();
    let (hits_json, max_score) = render(targets, &page, &sources, &state.render)?;
    Ok(json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": {"total": targets.len(), "successful": targets.len(), "skipped": 0, "failed": 0},
        "hits": {"total": state.total, "max_score": max_score, "hits": hits_json},
    }))
}

/// How hits become JSON.
struct Render {
    specs: Vec<SortSpec>,
    sort_given: bool,
    /// Whether hits carry their `_score`.
    scored: bool,
    filter: SourceFilter,
    highlight: Option<Value>,
}

/// Runs a search; with `scroll` (its cap), every hit up to the cap is collected and what is
/// past the first page is kept for the next ones.
fn run_inner(
    targets: &[Target],
    body: &Value,
    config: &SearchConfig,
    scroll: Option<usize>,
) -> SearchResult<(Value, Option<ScrollState>)> {
    let started = Instant::now();
    let body = if body.is_null() { json!({}) } else { body.clone() };
    let obj = body.as_object().ok_or_else(|| SearchError::parsing("request body must be an object"))?;
    for key in obj.keys() {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            return Err(SearchError::parsing(format!("Unknown key for a START_OBJECT in [{key}].")));
        }
    }
    let from = usize_param(&body, "from", 0)?;
    let size = usize_param(&body, "size", 10)?;
    if scroll.is_some() {
        if from > 0 {
            return Err(SearchError::illegal_argument("using [from] is not allowed in a scroll context"));
        }
        if body.get("search_after").is_some() {
            return Err(SearchError::illegal_argument("[search_after] cannot be used in a scroll context"));
        }
    } else if from + size > config.max_result_window {
        return Err(SearchError::illegal_argument(format!(
            "Result window is too large, from + size must be less than or equal to: [{}] but was [{}]. See the scroll api for a more efficient way to request large data sets.",
            config.max_result_window,
            from + size
        )));
    }
    let tracked = track_total(body.get("track_total_hits"))?;
    // One searcher per view for the whole request: calendar aggregations read their bounds
    // from the same segments they then aggregate.
    let searchers: Vec<Searcher> = targets.iter().map(|t| t.view.searcher()).collect();
    let (aggs, calendars) = aggs::parse(&body, &searchers)?;
    let filter = SourceFilter::from_json(body.get("_source"));
    let min_score = body.get("min_score").and_then(Value::as_f64).map(|m| m as f32);
    let track_scores = body.get("track_scores") == Some(&json!(true));
    let now = now_ms();
    let limit = scroll.unwrap_or(from + size);
    let mut runs = Vec::new();
    let mut specs_out = Vec::new();
    // Whether the request sorts by anything (every index reads the same `sort`).
    let mut sort_given = false;
    for (i, (target, searcher)) in targets.iter().zip(searchers).enumerate() {
        let view = &target.view;
        let ctx = Ctx { compiled: &view.compiled, searcher: &searcher, now_ms: now };
        // The body's own query is what highlighting reads; hits, counts and aggregations
        // also stay within the alias filter.
        let highlight_query = body_query(&ctx, &body)?;
        let mut query = within_alias_filter(&ctx, highlight_query.box_clone(), target.filter.as_ref())?;
        if let Some(slice) = body.get("slice") {
            query = narrowed(query, Box::new(SliceQuery::parse(slice, &view.compiled)?));
        }
        let hits_query: Box<dyn Query> = match body.get("post_filter") {
            Some(pf) => narrowed(query.box_clone(), ctx.build(pf)?),
            None => query.box_clone(),
        };
        let specs = parse_sort(&view.compiled, body.get("sort"))?;
        sort_given = !specs.is_empty();
        let specs = if sort_given {
            specs
        } else {
            vec![SortSpec { by: SortBy::Score, descending: true, missing_first: false }]
        };
        let after = match body.get("search_after") {
            Some(Value::Array(values)) => {
                if values.len() != specs.len() {
                    return Err(SearchError::illegal_argument(format!(
                        "search_after has {} value(s) but sort has {}.",
                        values.len(),
                        specs.len()
                    )));
                }
                Some(
                    values
                        .iter()
                        .zip(&specs)
                        .map(|(v, spec)| after_key(v, spec))
                        .collect::<SearchResult<Vec<_>>>()?,
                )
            }
            Some(other) => {
                return Err(SearchError::parsing(format!("[search_after] must be an array, got {other}")));
            }
            None => None,
        };
        let by_score_only = !sort_given && after.is_none() && min_score.is_none();
        let count = tracked.map(|_| Count);
        let agg = aggs::collector(&view.compiled, &aggs);
        let (hits, total, agg_result) = if by_score_only && limit > 0 {
            let collector = TopDocs::with_limit(limit).order_by_score();
            if agg.is_none() {
                // Top hits alone, so that tantivy skips blocks that cannot make the top
                // (block-max WAND); the total is a count without scoring.
                let total = count.map(|_| hits_query.count(&searcher)).transpose()?;
                (searcher.search(&*hits_query, &collector)?, total, None)
            } else if body.get("post_filter").is_some() {
                let top = searcher.search(&*hits_query, &collector)?;
                let (total, agg_result) = searcher.search(&*query, &(count, agg)).map_err(aggs::error)?;
                (top, total, agg_result)
            } else {
                searcher.search(&*hits_query, &(collector, count, agg)).map_err(aggs::error)?
            }
            .into_hits(i)
        } else {
            let scoring =
                specs.iter().any(|s| matches!(s.by, SortBy::Score)) || track_scores || min_score.is_some();
            let collector = SortCollector {
                specs: Arc::new(specs.clone()),
                after,
                min_score,
                limit: limit.max(1),
                scoring,
                index: i,
            };
            let (mut hits, total, agg_result) =
                searcher.search(&*hits_query, &(collector, count, agg)).map_err(aggs::error)?;
            if limit == 0 {
                hits.clear();
            }
            (hits, total, agg_result)
        };
        specs_out = specs;
        runs.push(IndexRun { hits, total, aggs: agg_result, query: highlight_query, searcher });
    }
    let total: usize = runs.iter().filter_map(|r| r.total).sum();
    let mut all_hits: Vec<Hit> = runs.iter_mut().flat_map(|r| std::mem::take(&mut r.hits)).collect();
    all_hits = top(&specs_out, all_hits, limit.max(1));
    let mut rest = std::collections::VecDeque::new();
    let page: Vec<Hit> = if scroll.is_some() {
        rest = all_hits.into();
        rest.drain(..size.min(rest.len())).collect()
    } else {
        all_hits.into_iter().skip(from).take(size).collect()
    };
    let scored = !sort_given || specs_out.iter().any(|s| matches!(s.by, SortBy::Score)) || track_scores;
    let style =
        Render { specs: specs_out, sort_given, scored, filter, highlight: body.get("highlight").cloned() };
    let sources: Vec<(&Searcher, &dyn Query)> = runs.iter().map(|r| (&r.searcher, &*r.query)).collect();
    let (hits_json, max_score) = render(targets, &page, &sources, &style)?;
    let mut out = json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": {"total": targets.len(), "successful": targets.len(), "skipped": 0, "failed": 0},
        "hits": {"max_score": max_score, "hits": hits_json},
    });
    if let Some(limit) = tracked {
        out["hits"]["total"] = if total > limit {
            json!({"value": limit, "relation": "gte"})
        } else {
            json!({"value": total, "relation": "eq"})
        };
    }
    if let Some(aggs) = aggs {
        let mut merged: Option<IntermediateAggregationResults> = None;
        for run in &mut runs {
            if let Some(part) = run.aggs.take() {
                match &mut merged {
                    None => merged = Some(part),
                    Some(m) => m.merge_fruits(part)?,
                }
            }
        }
        if let Some(merged) = merged {
            let result =
                merged.into_final_result(aggs, AggregationLimitsGuard::default()).map_err(aggs::error)?;
            out["aggregations"] = serde_json::to_value(result).map_err(SearchError::internal)?;
            aggs::answer(&mut out["aggregations"], &calendars);
        }
    }
    if let Some(suggest) = body.get("suggest") {
        out["suggest"] = suggestions(targets, suggest)?;
    }
    let state = scroll.map(|_| ScrollState {
        rest,
        runs: runs.into_iter().map(|r| (r.searcher, r.query)).collect(),
        render: style,
        size,
        total: out["hits"].get("total").cloned().unwrap_or(Value::Null),
    });
    Ok((out, state))
}

/// The JSON of a page of hits, and its highest score.
fn render(
    targets: &[Target],
    page: &[Hit],
    sources: &[(&Searcher, &dyn Query)],
    style: &Render,
) -> SearchResult<(Vec<Value>, Option<f32>)> {
    let mut hits_json = Vec::with_capacity(page.len());
    let mut max_score: Option<f32> = None;
    let highlight = style.highlight.as_ref();
    let with_source = !style.filter.disabled || highlight.is_some();
    for hit in page {
        let Target { name, view, .. } = &targets[hit.index];
        let (searcher, query) = sources[hit.index];
        let (id, source_bytes) = stored(searcher, &view.compiled, hit.addr, with_source)?;
        let source: Value = if with_source {
            serde_json::from_slice(&source_bytes).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        let mut h = json!({"_index": name, "_id": id, "_score": if style.scored { json!(hit.score) } else { Value::Null }});
        if style.scored {
            max_score = Some(max_score.map_or(hit.score, |m| m.max(hit.score)));
        }
        if let Some(filtered) = style.filter.apply(&source) {
            h["_source"] = filtered;
        }
        if let Some(hl) = highlight {
            let fragments = highlight_hit(&view.compiled, searcher, query, hl, &source)?;
            if !fragments.is_empty() {
                h["highlight"] = Value::Object(fragments);
            }
        }
        if style.sort_given {
            let types: Vec<Option<FieldType>> = style
                .specs
                .iter()
                .map(|s| if let SortBy::Field { ty, .. } = &s.by { Some(*ty) } else { None })
                .collect();
            h["sort"] = Value::Array(hit.keys.iter().zip(types).map(|(k, t)| k.to_json(t)).collect());
        }
        hits_json.push(h);
    }
    Ok((hits_json, max_score))
}

/// A hit's stored document: its `_id`, and its `_source` when `with_source` (else empty).
/// (Measured: one block of the doc store per hit beats walking the `_id` column's term
/// dictionary.)
fn stored(
    searcher: &Searcher,
    compiled: &Compiled,
    addr: DocAddress,
    with_source: bool,
) -> SearchResult<(String, Vec<u8>)> {
    if !with_source
        && let FirstField(Some((field, OwnedValue::Str(id)))) = searcher.doc(addr)?
        && field == compiled.id
    {
        return Ok((id, Vec::new()));
    }
    let doc: TantivyDocument = searcher.doc(addr)?;
    let id = doc.get_first(compiled.id).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let source =
        doc.get_first(compiled.source).and_then(|v| v.as_bytes().map(<[u8]>::to_vec)).unwrap_or_default();
    Ok((id, source))
}

/// A stored document's first field, which `Compiled::document` makes its `_id`. The rest,
/// `_source` included, is left unread: a hit answered without its source copied it for
/// nothing, a tenth of a term search's CPU under perf.
struct FirstField(Option<(Field, OwnedValue)>);

impl DocumentDeserialize for FirstField {
    fn deserialize<'de, D: DocumentDeserializer<'de>>(mut fields: D) -> Result<Self, DeserializeError> {
        Ok(FirstField(fields.next_field()?))
    }
}

trait IntoHits {
    fn into_hits(self, index: usize) -> (Vec<Hit>, Option<usize>, Option<IntermediateAggregationResults>);
}

impl IntoHits for (Vec<(Score, DocAddress)>, Option<usize>, Option<IntermediateAggregationResults>) {
    fn into_hits(self, index: usize) -> (Vec<Hit>, Option<usize>, Option<IntermediateAggregationResults>) {
        let hits = self
            .0
            .into_iter()
            .map(|(score, addr)| Hit { keys: vec![Key::Num(score as f64)], score, index, addr })
            .collect();
        (hits, self.1, self.2)
    }
}

fn after_key(v: &Value, spec: &SortSpec) -> SearchResult<Key> {
    Ok(match v {
        Value::Null => Key::Missing,
        Value::Number(n) => Key::Num(n.as_f64().unwrap_or(0.0)),
        Value::Bool(b) => Key::Num(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => {
            match &spec.by {
                SortBy::Field { ty: FieldType::Keyword, .. } => Key::Str(s.clone()),
                SortBy::Field { ty: FieldType::Date, .. } => {
                    Key::Num(dates::parse(s).or_else(|| s.parse().ok()).ok_or_else(|| {
                        SearchError::illegal_argument(format!("cannot read [{s}] as a date in search_after"))
                    })? as f64)
                }
                _ => Key::Num(s.parse().map_err(|_| {
                    SearchError::illegal_argument(format!("cannot read [{s}] in search_after"))
                })?),
            }
        }
        other => {
            return Err(SearchError::illegal_argument(format!(
                "search_after values must be scalars, got {other}"
            )));
        }
    })
}

/// `highlight.fields` for one hit: fragments with the query's terms wrapped in tags.
fn highlight_hit(
    compiled: &Compiled,
    searcher: &Searcher,
    query: &dyn Query,
    hl: &Value,
    source: &Value,
) -> SearchResult<Map<String, Value>> {
    let pre = hl.get("pre_tags").and_then(|t| t.get(0)).and_then(Value::as_str).unwrap_or("<em>");
    let post = hl.get("post_tags").and_then(|t| t.get(0)).and_then(Value::as_str).unwrap_or("</em>");
    let mut out = Map::new();
    let requested: Vec<(String, Value)> = match hl.get("fields") {
        Some(Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_object())
            .flat_map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect(),
        _ => return Ok(out),
    };
    let mut infos: Vec<(&FieldInfo, Value)> = Vec::new();
    for (pattern, opts) in requested {
        let mut matched: Vec<&FieldInfo> = compiled
            .fields
            .values()
            .filter(|f| glob_match(&pattern, &f.path) && f.leaf.ty == FieldType::Text)
            .collect();
        matched.sort_by(|a, b| a.path.cmp(&b.path));
        infos.extend(matched.into_iter().map(|f| (f, opts.clone())));
    }
    for (info, opts) in infos {
        let size = opts
            .get("fragment_size")
            .or_else(|| hl.get("fragment_size"))
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize;
        let count = opts
            .get("number_of_fragments")
            .or_else(|| hl.get("number_of_fragments"))
            .and_then(Value::as_u64)
            .unwrap_or(5) as usize;
        let mut generator = SnippetGenerator::create(searcher, query, info.field)?;
        // Fragments cover the whole value when `number_of_fragments` is 0.
        let mut values = Vec::new();
        crate::mapping::values_at(source, &info.source_path, &mut values);
        let mut fragments = Vec::new();
        for value in values {
            let Some(text) = value.as_str() else { continue };
            generator.set_max_num_chars(if count == 0 { text.len().max(1) } else { size.max(1) });
            let mut snippet = generator.snippet(text);
            if snippet.highlighted().is_empty() {
                continue;
            }
            snippet.set_snippet_prefix_postfix(pre, post);
            fragments.push(json!(snippet.to_html()));
            if count > 0 && fragments.len() >= count {
                break;
            }
        }
        if !fragments.is_empty() {
            out.insert(info.path.clone(), Value::Array(fragments));
        }
    }
    Ok(out)
}

/// The term suggester: for each word of `text` missing from (or rare in) the field, the
/// field's terms within two edits, by closeness then frequency.
fn suggestions(targets: &[Target], suggest: &Value) -> SearchResult<Value> {
    let obj = suggest.as_object().ok_or_else(|| SearchError::parsing("suggest must be an object"))?;
    let global_text = obj.get("text").and_then(Value::as_str);
    let mut out = Map::new();
    for (name, def) in obj {
        if name == "text" {
            continue;
        }
        let text = def
            .get("text")
            .and_then(Value::as_str)
            .or(global_text)
            .ok_or_else(|| SearchError::illegal_argument(format!("suggester [{name}] has no text")))?;
        let term = def
            .get("term")
            .or_else(|| def.get("phrase"))
            .ok_or_else(|| SearchError::parsing(format!("suggester [{name}] must be a term suggester")))?;
        let field = term
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| SearchError::parsing("the required field option [field] is missing"))?;
        let size = term.get("size").and_then(Value::as_u64).unwrap_or(5) as usize;
        let max_edits = term.get("max_edits").and_then(Value::as_u64).unwrap_or(2).clamp(1, 2) as u8;
        let prefix_length = term.get("prefix_length").and_then(Value::as_u64).unwrap_or(1) as usize;
        let min_word_length = term.get("min_word_length").and_then(Value::as_u64).unwrap_or(4) as usize;
        let mode = term.get("suggest_mode").and_then(Value::as_str).unwrap_or("missing");
        let mut entries = Vec::new();
        let Some(first) = targets.first().map(|t| &t.view) else { continue };
        let info = first.compiled.field(field);
        let analyzer_name = info.map_or("standard", |i| i.leaf.query_analyzer());
        let mut analyzer =
            first.compiled.analyzer(analyzer_name).or_else(|_| first.compiled.analyzer("standard"))?;
        // Offsets come from the standard tokenizer so they point into the original text.
        let mut plain = first.compiled.analyzer("standard")?;
        let words = analysis::terms(&mut plain, text);
        let mut offsets = Vec::new();
        let mut search_from = 0;
        for (_, w) in &words {
            let lower = text.to_lowercase();
            let at = lower[search_from..].find(w.as_str()).map_or(search_from, |i| i + search_from);
            offsets.push((at, w.chars().count()));
            search_from = at + w.len();
        }
        for ((_, word), (offset, length)) in words.iter().zip(offsets) {
            let analyzed = analysis::terms(&mut analyzer, word)
                .into_iter()
                .next()
                .map(|(_, t)| t)
                .unwrap_or_else(|| word.clone());
            let mut options: Vec<(String, f32, u64)> = Vec::new();
            let mut own_freq = 0u64;
            for Target { view, .. } in targets {
                let Some(info) = view.compiled.field(field) else { continue };
                let searcher = view.searcher();
                own_freq += searcher.doc_freq(&tantivy::Term::from_field_text(info.field, &analyzed))?;
                if word.chars().count() < min_word_length {
                    continue;
                }
                for e in fuzzy::expand(&searcher, info.field, &analyzed, max_edits, prefix_length, true, 50)?
                {
                    if e.term == analyzed {
                        continue;
                    }
                    let score = fuzzy::similarity(&analyzed, &e);
                    match options.iter_mut().find(|o| o.0 == e.term) {
                        Some(o) => o.2 += e.doc_freq,
                        None => options.push((e.term, score, e.doc_freq)),
                    }
                }
            }
            let keep = match mode {
                "always" => true,
                "popular" => true,
                _ => own_freq == 0,
            };
            if mode == "popular" {
                options.retain(|o| o.2 > own_freq);
            }
            if !keep {
                options.clear();
            }
            options.sort_by(|a, b| {
                b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0))
            });
            options.truncate(size);
            entries.push(json!({
                "text": word,
                "offset": offset,
                "length": length,
                "options": options.into_iter().map(|(t, s, f)| json!({"text": t, "score": s, "freq": f})).collect::<Vec<_>>(),
            }));
        }
        out.insert(name.clone(), Value::Array(entries));
    }
    Ok(Value::Object(out))
}

/// The body's `query`, or every document.
fn body_query(ctx: &Ctx, body: &Value) -> SearchResult<Box<dyn Query>> {
    match body.get("query") {
        Some(q) => ctx.build(q),
        None => Ok(Box::new(tantivy::query::AllQuery)),
    }
}

/// The body's query within the alias `filter`, which narrows the hits and adds nothing to
/// their scores.
fn within_alias_filter(
    ctx: &Ctx,
    query: Box<dyn Query>,
    filter: Option<&Value>,
) -> SearchResult<Box<dyn Query>> {
    Ok(match filter {
        None => query,
        Some(filter) => narrowed(query, ctx.build(filter)?),
    })
}

/// The documents of `query` that `by` also matches, scored by `query` alone.
fn narrowed(query: Box<dyn Query>, by: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, query),
        (Occur::Must, Box::new(ConstScoreQuery::new(by, 0.0))),
    ]))
}

/// Whether `filter` is a query the index can run (checked when an alias gets it).
pub fn check_filter(view: &View, filter: &Value) -> SearchResult<()> {
    let searcher = view.searcher();
    let ctx = Ctx { compiled: &view.compiled, searcher: &searcher, now_ms: now_ms() };
    ctx.build(filter).map(drop)
}

/// `_count`: how many documents match the body's query.
pub fn count(target: &Target, body: &Value) -> SearchResult<usize> {
    let searcher = target.view.searcher();
    let ctx = Ctx { compiled: &target.view.compiled, searcher: &searcher, now_ms: now_ms() };
    let query = within_alias_filter(&ctx, body_query(&ctx, body)?, target.filter.as_ref())?;
    Ok(query.count(&searcher)?)
}

/// Ids of every matching document (for the by-query APIs), read from the refreshed index.
pub fn matching_ids(target: &Target, body: &Value) -> SearchResult<Vec<String>> {
    let view = &target.view;
    let searcher = view.searcher();
    let ctx = Ctx { compiled: &view.compiled, searcher: &searcher, now_ms: now_ms() };
    let query = within_alias_filter(&ctx, body_query(&ctx, body)?, target.filter.as_ref())?;
    let limit = body.get("max_docs").and_then(Value::as_u64).map_or(usize::MAX, |n| n as usize);
    let addrs = searcher.search(&*query, &tantivy::collector::DocSetCollector)?;
    addrs
        .into_iter()
        .take(limit)
        .map(|addr| stored(&searcher, &view.compiled, addr, false).map(|(id, _)| id))
        .collect()
}
