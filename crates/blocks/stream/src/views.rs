//! Windowed views: continuous aggregates over a topic by event time.
//!
//! A view reads every partition of its topic from where it left off, takes each record's
//! event time (a JSON field of the value, or the record timestamp) and group-by key (a JSON
//! field), and folds it into the windows it falls in — tumbling, hopping, or per-key
//! sessions. The watermark is the largest event time seen minus the allowed lateness; a
//! window whose end the watermark has passed is final: its result is stored (queryable by
//! key), appended to the output topic if there is one, and handed to the result sink (the
//! binary writes it into a SQL table). Events for windows already final are counted as late
//! and dropped.
//!
//! Each [`Views::step`] commits the read positions, the open windows it changed and the
//! results it closed in one core transaction, so a restart resumes exactly where the last
//! commit left off: no event is counted twice. Output-topic records are appended before that
//! commit, keyed `key@window_start`, so a crash in between may repeat one (a compacted output
//! topic collapses it); the stored results never double.

use crate::records::NewRecord;
use crate::{StreamError, StreamResult, Streams, Until, keys};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Open windows one view may hold; past it the oldest are closed early.
pub const MAX_OPEN_WINDOWS: usize = 100_000;
/// Records one step reads per partition.
const STEP_RECORDS: usize = 10_000;
/// HyperLogLog registers for `count_distinct` (2^8: about 6.5 % standard error).
const HLL_REGISTERS: usize = 256;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Window {
    Tumbling { size_ms: i64 },
    Hopping { size_ms: i64, advance_ms: i64 },
    Session { gap_ms: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateOp {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    /// Approximate count of distinct values (HyperLogLog).
    CountDistinct,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub op: AggregateOp,
    /// The JSON field aggregated (not needed for `count`).
    #[serde(default)]
    pub field: Option<String>,
    /// The result's name; defaults to `op` or `op_field`.
    #[serde(default)]
    pub name: Option<String>,
}

impl Aggregate {
    pub fn output_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let op = serde_json::to_value(self.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match &self.field {
                Some(field) => format!("{op}_{field}"),
                None => op,
            }
        })
    }
}

/// A view's definition, as `POST /v1/streams/views` takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub name: String,
    pub topic: String,
    pub window: Window,
    /// JSON field (dotted path) holding the event time in ms; the record timestamp if unset.
    #[serde(default)]
    pub time_field: Option<String>,
    /// JSON field (dotted path) to group by; one global group if unset.
    #[serde(default)]
    pub key_field: Option<String>,
    pub aggregates: Vec<Aggregate>,
    #[serde(default)]
    pub allowed_lateness_ms: i64,
    /// Topic the final results are appended to (created if missing).
    #[serde(default)]
    pub output_topic: Option<String>,
    /// SQL table the final results are upserted into, by the binary's result sink.
    #[serde(default)]
    pub sql_table: Option<String>,
}

/// One window's running aggregates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Acc {
    count: u64,
    /// Per aggregate: sum, count of numeric values, min, max, HLL registers.
    sums: Vec<f64>,
    counts: Vec<u64>,
    mins: Vec<Option<f64>>,
    maxs: Vec<Option<f64>>,
    hll: Vec<Vec<u8>>,
}

impl Acc {
    fn new(n: usize) -> Acc {
        Acc {
            count: 0,
            sums: vec![0.0; n],
            counts: vec![0; n],
            mins: vec![None; n],
            maxs: vec![None; n],
            hll: vec![Vec::new(); n],
        }
    }

    fn add(&mut self, aggregates: &[Aggregate], value: &serde_json::Value) {
        self.count += 1;
        for (i, agg) in aggregates.iter().enumerate() {
            let Some(field) = &agg.field else { continue };
            let Some(v) = lookup(value, field) else { continue };
            if agg.op == AggregateOp::CountDistinct {
                let regs = &mut self.hll[i];
                regs.resize(HLL_REGISTERS, 0);
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v.to_string().hash(&mut h);
                let hash = h.finish();
                let index = (hash as usize) % HLL_REGISTERS;
                let rank = ((hash >> 8) | (1 << 55)).trailing_zeros() as u8 + 1;
                regs[index] = regs[index].max(rank);
                continue;
            }
            let Some(x) = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) else { continue };
            self.sums[i] += x;
            self.counts[i] += 1;
            self.mins[i] = Some(self.mins[i].map_or(x, |m| m.min(x)));
            self.maxs[i] = Some(self.maxs[i].map_or(x, |m| m.max(x)));
        }
    }

    fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        for i in 0..self.sums.len() {
            self.sums[i] += other.sums[i];
            self.counts[i] += other.counts[i];
            self.mins[i] = match (self.mins[i], other.mins[i]) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.maxs[i] = match (self.maxs[i], other.maxs[i]) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if !other.hll[i].is_empty() {
                self.hll[i].resize(HLL_REGISTERS, 0);
                for (a, b) in self.hll[i].iter_mut().zip(&other.hll[i]) {
                    *a = (*a).max(*b);
                }
            }
        }
    }

    fn result(&self, aggregates: &[Aggregate]) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for (i, agg) in aggregates.iter().enumerate() {
            let value = match agg.op {
                AggregateOp::Count => {
                    serde_json::json!(if agg.field.is_some() { self.counts[i] } else { self.count })
                }
                AggregateOp::Sum => serde_json::json!(self.sums[i]),
                AggregateOp::Avg if self.counts[i] > 0 => {
                    serde_json::json!(self.sums[i] / self.counts[i] as f64)
                }
                AggregateOp::Avg => serde_json::Value::Null,
                AggregateOp::Min => serde_json::json!(self.mins[i]),
                AggregateOp::Max => serde_json::json!(self.maxs[i]),
                AggregateOp::CountDistinct => serde_json::json!(hll_estimate(&self.hll[i]).round() as u64),
            };
            out.insert(agg.output_name(), value);
        }
        out
    }
}

fn hll_estimate(regs: &[u8]) -> f64 {
    if regs.is_empty() {
        return 0.0;
    }
    let m = regs.len() as f64;
    let sum: f64 = regs.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
    let zeros = regs.iter().filter(|r| **r == 0).count();
    if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw }
}

/// A field by dotted path.
fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, part| v.get(part)).filter(|v| !v.is_null())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenWindow {
    end: i64,
    acc: Acc,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ViewState {
    /// Next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    max_event_ms: Option<i64>,
    late_dropped: u64,
}

/// A final window result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    pub view: String,
    pub key: String,
    pub window_start: i64,
    pub window_end: i64,
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// Where final results go besides the view's own store and output topic (a SQL table).
pub trait ResultSink: Send + Sync {
    fn write(&self, view: &ViewDef, results: &[WindowResult]) -> Result<(), String>;
}

/// A view's live state, as `GET /v1/streams/views/{name}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ViewStatus {
    pub definition: ViewDef,
    pub watermark_ms: Option<i64>,
    pub late_dropped: u64,
    pub open_windows: usize,
    pub positions: BTreeMap<i32, i64>,
}

/// The views of one stream block.
#[derive(Clone)]
pub struct Views {
    streams: Streams,
    sink: Arc<Mutex<Option<Arc<dyn ResultSink>>>>,
}

fn core_err(e: impl std::fmt::Display) -> StreamError {
    StreamError::Core(strata_core::errcorrupt!("view state: {e}"))
}

impl Views {
    pub fn new(streams: Streams) -> Views {
        Views { streams, sink: Arc::new(Mutex::new(None)) }
    }

    pub fn set_sink(&self, sink: Arc<dyn ResultSink>) {
        *self.sink.lock().expect("sink") = Some(sink);
    }

    pub fn create(&self, def: ViewDef) -> StreamResult<()> {
        crate::check_topic_name(&def.name).map_err(|_| {
            StreamError::InvalidConfig(format!("view name {:?}: use letters, digits, . _ -", def.name))
        })?;
        self.streams.topic(&def.topic)?;
        let bad = |msg: &str| Err(StreamError::InvalidConfig(msg.to_string()));
        match def.window {
            Window::Tumbling { size_ms } if size_ms <= 0 => return bad("size_ms must be positive"),
            Window::Hopping { size_ms, advance_ms }
                if size_ms <= 0 || advance_ms <= 0 || advance_ms > size_ms =>
            {
                return bad("hopping windows need 0 < advance_ms <= size_ms");
            }
            Window::Hopping { size_ms, advance_ms } if size_ms / advance_ms > 100 => {
                return bad("a hopping window may overlap at most 100 others");
            }
            Window::Session { gap_ms } if gap_ms <= 0 => return bad("gap_ms must be positive"),
            _ => {}
        }
        if def.aggregates.is_empty() || def.aggregates.len() > 32 {
            return bad("a view has 1 to 32 aggregates");
        }
        if def.aggregates.iter().any(|a| a.op != AggregateOp::Count && a.field.is_none()) {
            return bad("every aggregate but count needs a field");
        }
        if def.allowed_lateness_ms < 0 {
            return bad("allowed_lateness_ms must not be negative");
        }
        if let Some(out) = &def.output_topic
            && self.streams.topic(out).is_err()
        {
            self.streams.create_topic(out, Some(1), &[("cleanup.policy".into(), "compact".into())])?;
        }
        let store = self.streams.store();
        let ks = self.streams.keyspace();
        let mut txn = store.begin();
        if txn.get(ks, &keys::view(&def.name))?.is_some() {
            return Err(StreamError::TopicExists(format!("view {}", def.name)));
        }
        txn.set(ks, keys::view(&def.name), serde_json::to_vec(&def).map_err(core_err)?)?;
        txn.commit()?;
        Ok(())
    }

    pub fn list(&self) -> StreamResult<Vec<ViewDef>> {
        let txn = self.streams.store().begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(self.streams.keyspace(), &keys::views()) {
            let (_, value) = item?;
            out.push(serde_json::from_slice(&value).map_err(core_err)?);
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> StreamResult<ViewDef> {
        let txn = self.streams.store().begin_read_only();
        let value = txn
            .get(self.streams.keyspace(), &keys::view(name))?
            .ok_or_else(|| StreamError::UnknownTopic(format!("view {name}")))?;
        serde_json::from_slice(&value).map_err(core_err)
    }

    pub fn delete(&self, name: &str) -> StreamResult<()> {
        self.get(name)?;
        let store = self.streams.store();
        let ks = self.streams.keyspace();
        let mut txn = store.begin();
        let mut doomed = vec![keys::view(name), keys::view_state(name)];
        for prefix in [keys::view_opens(name), keys::view_results(name, None)] {
            for item in txn.scan_prefix(ks, &prefix) {
                doomed.push(item?.0);
            }
        }
        for key in doomed {
            txn.delete(ks, key)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn status(&self, name: &str) -> StreamResult<ViewStatus> {
        let definition = self.get(name)?;
        let txn = self.streams.store().begin_read_only();
        let ks = self.streams.keyspace();
        let state: ViewState = match txn.get(ks, &keys::view_state(name))? {
            Some(v) => serde_json::from_slice(&v).map_err(core_err)?,
            None => ViewState::default(),
        };
        let open_windows = txn.scan_prefix(ks, &keys::view_opens(name)).count();
        Ok(ViewStatus {
            watermark_ms: state.max_event_ms.map(|m| m - definition.allowed_lateness_ms),
            definition,
            late_dropped: state.late_dropped,
            open_windows,
            positions: state.positions,
        })
    }

    /// Final results of a view, for one key or all, oldest window first.
    pub fn results(&self, name: &str, key: Option<&str>, limit: usize) -> StreamResult<Vec<WindowResult>> {
        self.get(name)?;
        let txn = self.streams.store().begin_read_only();
        let mut out = Vec::new();
        for item in txn.scan_prefix(self.streams.keyspace(), &keys::view_results(name, key)).take(limit) {
            let (_, value) = item?;
            out.push(serde_json::from_slice(&value).map_err(core_err)?);
        }
        Ok(out)
    }

    /// Advances every view over the records appended since the last step; returns how many
    /// records were folded in.
    pub async fn step(&self) -> StreamResult<usize> {
        let mut total = 0;
        for def in self.list()? {
            match self.step_view(&def).await {
                Ok(n) => total += n,
                Err(StreamError::UnknownTopic(topic)) => {
                    tracing::warn!(view = %def.name, %topic, "the view's topic is gone");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(total)
    }

    async fn step_view(&self, def: &ViewDef) -> StreamResult<usize> {
        let topic = self.streams.topic(&def.topic)?;
        let store = self.streams.store().clone();
        let ks = self.streams.keyspace().clone();
        let mut txn = store.begin();
        let mut state: ViewState = match txn.get(&ks, &keys::view_state(&def.name))? {
            Some(v) => serde_json::from_slice(&v).map_err(core_err)?,
            None => ViewState::default(),
        };
        // Read what is new in every partition.
        let mut events: Vec<(i64, String, serde_json::Value)> = Vec::new();
        let mut read = 0;
        for part in topic.partitions() {
            let from = state.positions.get(&part.index).copied().unwrap_or(0).max(part.log_start());
            let mut batch = Vec::new();
            let until = Until::Offset(from + STEP_RECORDS as i64);
            let next = self.streams.replay(&def.topic, part.index, from, until, |r| batch.push(r))?;
            read += batch.len();
            for record in batch {
                let Some(value) =
                    record.value.as_ref().and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
                else {
                    continue;
                };
                let time = match &def.time_field {
                    Some(field) => match lookup(&value, field).and_then(serde_json::Value::as_i64) {
                        Some(t) => t,
                        None => continue,
                    },
                    None => record.timestamp,
                };
                let key = match &def.key_field {
                    Some(field) => match lookup(&value, field) {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => continue,
                    },
                    None => String::new(),
                };
                events.push((time, key, value));
            }
            state.positions.insert(part.index, next);
        }
        if read == 0 {
            return Ok(0);
        }
        // Load the open windows, fold the events in, close what the watermark passed.
        let mut open: BTreeMap<(String, i64), OpenWindow> = BTreeMap::new();
        for item in txn.scan_prefix(&ks, &keys::view_opens(&def.name)) {
            let (_, value) = item?;
            let (key, start, window): (String, i64, OpenWindow) =
                serde_json::from_slice(&value).map_err(core_err)?;
            open.insert((key, start), window);
        }
        let before: HashMap<(String, i64), OpenWindow> =
            open.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let n = def.aggregates.len();
        for (time, key, value) in &events {
            let watermark = state.max_event_ms.map(|m| m - def.allowed_lateness_ms);
            match def.window {
                Window::Session { gap_ms } => {
                    if watermark.is_some_and(|w| time + gap_ms <= w) {
                        state.late_dropped += 1;
                    } else {
                        let overlapping: Vec<(String, i64)> = open
                            .range((key.clone(), i64::MIN)..=(key.clone(), i64::MAX))
                            .filter(|((_, start), w)| *start <= time + gap_ms && *time <= w.end)
                            .map(|(k, _)| k.clone())
                            .collect();
                        let mut acc = Acc::new(n);
                        acc.add(&def.aggregates, value);
                        let (mut start, mut end) = (*time, time + gap_ms);
                        for k in overlapping {
                            let w = open.remove(&k).expect("listed");
                            start = start.min(k.1);
                            end = end.max(w.end);
                            acc.merge(&w.acc);
                        }
                        open.insert((key.clone(), start), OpenWindow { end, acc });
                    }
                }
                _ => {
                    let mut placed = false;
                    for (start, end) in windows_for(&def.window, *time) {
                        if watermark.is_some_and(|w| end <= w) {
                            continue;
                        }
                        let w = open
                            .entry((key.clone(), start))
                            .or_insert_with(|| OpenWindow { end, acc: Acc::new(n) });
                        w.acc.add(&def.aggregates, value);
                        placed = true;
                    }
                    if !placed {
                        state.late_dropped += 1;
                    }
                }
            }
            state.max_event_ms = Some(state.max_event_ms.map_or(*time, |m| m.max(*time)));
        }
        let watermark = state.max_event_ms.map_or(i64::MIN, |m| m - def.allowed_lateness_ms);
        let mut closing: Vec<(String, i64)> =
            open.iter().filter(|(_, w)| w.end <= watermark).map(|(k, _)| k.clone()).collect();
        if open.len() - closing.len() > MAX_OPEN_WINDOWS {
            let mut by_end: Vec<_> =
                open.iter().filter(|(_, w)| w.end > watermark).map(|(k, w)| (w.end, k.clone())).collect();
            by_end.sort();
            let excess = open.len() - closing.len() - MAX_OPEN_WINDOWS;
            tracing::warn!(view = %def.name, excess, "too many open windows: closing the oldest early");
            closing.extend(by_end.into_iter().take(excess).map(|(_, k)| k));
        }
        let mut results = Vec::with_capacity(closing.len());
        for k in &closing {
            let w = open.remove(k).expect("listed");
            results.push(WindowResult {
                view: def.name.clone(),
                key: k.0.clone(),
                window_start: k.1,
                window_end: w.end,
                values: w.acc.result(&def.aggregates),
            });
        }
        // Write back: changed open windows, removed ones, results, positions.
        for (k, w) in &before {
            if !open.contains_key(k) {
                txn.delete(&ks, keys::view_open(&def.name, &k.0, k.1))?;
            } else if open[k].acc != w.acc || open[k].end != w.end {
                let value = serde_json::to_vec(&(&k.0, k.1, &open[k])).map_err(core_err)?;
                txn.set(&ks, keys::view_open(&def.name, &k.0, k.1), value)?;
            }
        }
        for (k, w) in &open {
            if !before.contains_key(k) {
                txn.set(
                    &ks,
                    keys::view_open(&def.name, &k.0, k.1),
                    serde_json::to_vec(&(&k.0, k.1, w)).map_err(core_err)?,
                )?;
            }
        }
        for r in &results {
            let value = serde_json::to_vec(r).map_err(core_err)?;
            txn.set(&ks, keys::view_result(&def.name, &r.key, r.window_start), value)?;
        }
        txn.set(&ks, keys::view_state(&def.name), serde_json::to_vec(&state).map_err(core_err)?)?;
        if !results.is_empty() {
            if let Some(out) = &def.output_topic {
                let records: Vec<NewRecord> = results
                    .iter()
                    .map(|r| NewRecord {
                        key: Some(format!("{}@{}", r.key, r.window_start).into_bytes()),
                        value: Some(serde_json::to_vec(r).unwrap_or_default()),
                        headers: Vec::new(),
                        timestamp: Some(r.window_end),
                    })
                    .collect();
                self.streams.append_records(out, 0, &records).await?;
            }
            let sink = self.sink.lock().expect("sink").clone();
            if let (Some(sink), Some(_)) = (sink, &def.sql_table)
                && let Err(err) = sink.write(def, &results)
            {
                tracing::warn!(view = %def.name, %err, "writing view results to SQL failed");
            }
        }
        txn.commit()?;
        for r in &results {
            let labels = [("view", def.name.clone()), ("key", r.key.clone())];
            metrics::counter!("strata_stream_view_windows_closed_total", &labels[..1]).increment(1);
            if let Some(count) = r.values.values().next().and_then(serde_json::Value::as_f64) {
                metrics::gauge!("strata_stream_view_last_result", &labels).set(count);
            }
        }
        metrics::gauge!("strata_stream_view_late_dropped", "view" => def.name.clone())
            .set(state.late_dropped as f64);
        Ok(read)
    }
}

/// The (start, end) of every tumbling or hopping window holding event time `t`.
fn windows_for(window: &Window, t: i64) -> Vec<(i64, i64)> {
    match *window {
        Window::Tumbling { size_ms } => {
            let start = t.div_euclid(size_ms) * size_ms;
            vec![(start, start + size_ms)]
        }
        Window::Hopping { size_ms, advance_ms } => {
            let last = t.div_euclid(advance_ms) * advance_ms;
            let mut out = Vec::new();
            let mut start = last;
            while start > t - size_ms {
                out.push((start, start + size_ms));
                start -= advance_ms;
            }
            out.reverse();
            out
        }
        Window::Session { .. } => Vec::new(),
    }
}
