//! # strata-search: full-text search indices
//!
//! What users get, over the es front (curl, the elasticsearch and opensearch clients):
//!
//! - **Indices** with settings and **mappings** (text, keyword, numbers, boolean, date;
//!   objects flattened by path; dynamic mapping of unknown fields) — `mapping.rs`.
//! - **Analyzers**: standard, language analyzers with stop words and Snowball stemming,
//!   ASCII folding, n-grams and edge n-grams, custom analyzers from settings, `_analyze` —
//!   `analysis.rs`.
//! - **Documents** with versions and sequence numbers, optimistic concurrency
//!   (`if_seq_no`), create/index/update/delete, `_bulk`, `_mget`, by-query updates and
//!   deletes.
//! - **Search**: the query DSL (`query.rs`) over an inverted index with positions and
//!   BM25, fuzzy matching by Levenshtein distance with transpositions (`fuzzy.rs`),
//!   sorting, paging, `search_after`, highlighting, aggregations and suggestions
//!   (`search.rs`).
//!
//! - **Fed indices**: an index with `index.strata.source` follows another block's
//!   collection (a SQL table) through the core change feed (`indexer.rs`).
//!
//! The inverted index is tantivy's. Documents live in core, written and fsynced before a
//! request is acknowledged; the tantivy index follows (`engine.rs`): near-real-time,
//! refreshed every `refresh_interval`, caught up from core after a crash.
//!
//! ```text
//!   bulk ─► mapping (dynamic fields → new generation) ─► core txn (docs + op log)
//!        ─► commit visible: tantivy writer, index lock released ─► fsync ─► acknowledged
//!   refresh ─► wait for core's fsync ─► tantivy commit + reload ─► searchable
//! ```
//!
//! ## Limitations
//!
//! - One shard per index; `number_of_shards` and `number_of_replicas` are recorded only.
//! - `nested` fields are flattened objects (no per-object matching); no `join` fields.
//! - Scripts (`update`, `_update_by_query`) support assignments, `+=`/`-=`, `.add()` and
//!   `.remove()` on `ctx._source` with `params` (`script.rs`), not Painless.

mod aggs;
mod aliases;
mod analysis;
mod dates;
mod engine;
mod error;
mod function_score;
mod fuzzy;
mod indexer;
mod keys;
mod mapping;
mod query;
mod schema;
mod script;
mod search;
mod slice;
mod source;
mod store;
mod zones;

pub use error::{SearchError, SearchResult};
pub use indexer::{CollectionChange, Collections};
pub use mapping::Mapping;

use engine::{Change, IndexHandle, Storage, WriterConfig};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{DocRecord, IndexMeta};
use strata_core::{Keyspace, Store};

/// Limits and sizes of the search block.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// Indexing threads per tantivy writer.
    pub writer_threads: usize,
    /// Memory a writer buffers before it writes a segment (split among its threads).
    pub writer_memory_bytes: usize,
    /// Largest `from + size` a search may ask (Elasticsearch's `index.max_result_window`).
    pub max_result_window: usize,
    /// Most indices.
    pub max_indices: usize,
    /// Largest document source, in bytes.
    pub max_doc_bytes: usize,
    /// Whether writing to a missing index creates it (`action.auto_create_index`).
    pub auto_create_index: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            writer_threads: 2,
            writer_memory_bytes: 64 * 1024 * 1024,
            max_result_window: 10_000,
            max_indices: 1000,
            max_doc_bytes: 10 * 1024 * 1024,
            auto_create_index: true,
        }
    }
}

/// When a write becomes searchable (`?refresh=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refresh {
    #[default]
    No,
    /// Refresh before answering.
    Now,
    /// Answer once a periodic refresh has made the write searchable.
    WaitFor,
}

impl Refresh {
    pub fn parse(v: Option<&str>) -> SearchResult<Refresh> {
        match v {
            None | Some("false") => Ok(Refresh::No),
            Some("") | Some("true") => Ok(Refresh::Now),
            Some("wait_for") => Ok(Refresh::WaitFor),
            Some(other) => {
                Err(SearchError::illegal_argument(format!("Unknown value for refresh: [{other}].")))
            }
        }
    }
}

/// Optimistic concurrency conditions of a write.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    pub if_seq_no: Option<u64>,
    pub if_primary_term: Option<u64>,
    /// An external version (`version_type=external`): the write must carry a higher one.
    pub external_version: Option<u64>,
}

/// One operation of a bulk request (or a single-document request).
#[derive(Clone, Debug)]
pub enum BulkOp {
    Index { index: String, id: Option<String>, source: Source, create: bool, cond: Conditions },
    Update { index: String, id: String, body: Value, cond: Conditions },
    Delete { index: String, id: String, cond: Conditions },
}

impl BulkOp {
    fn index(&self) -> &str {
        match self {
            BulkOp::Index { index, .. } | BulkOp::Update { index, .. } | BulkOp::Delete { index, .. } => {
                index
            }
        }
    }

    fn index_mut(&mut self) -> &mut String {
        match self {
            BulkOp::Index { index, .. } | BulkOp::Update { index, .. } | BulkOp::Delete { index, .. } => {
                index
            }
        }
    }

    /// The action name bulk answers use.
    pub fn action(&self) -> &'static str {
        match self {
            BulkOp::Index { create: true, .. } => "create",
            BulkOp::Index { .. } => "index",
            BulkOp::Update { .. } => "update",
            BulkOp::Delete { .. } => "delete",
        }
    }
}

/// A write's outcome, as Elasticsearch reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct DocWrite {
    pub index: String,
    pub id: String,
    pub version: u64,
    /// `created`, `updated`, `deleted`, `not_found` or `noop`.
    pub result: &'static str,
    pub seq_no: u64,
    /// For updates with `_source` asked back.
    pub source: Option<Value>,
}

impl DocWrite {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a write's answer always serializes")
    }

    /// Writes the answer's members into `map`, which the caller may extend (a bulk item
    /// adds its `status`).
    pub fn serialize_members<M: serde::ser::SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        #[derive(serde::Serialize)]
        struct Shards {
            total: u8,
            successful: u8,
            failed: u8,
        }
        map.serialize_entry("_index", &self.index)?;
        map.serialize_entry("_id", &self.id)?;
        map.serialize_entry("_version", &self.version)?;
        map.serialize_entry("result", self.result)?;
        let successful = if self.result == "noop" { 0 } else { 1 };
        map.serialize_entry("_shards", &Shards { total: 1, successful, failed: 0 })?;
        map.serialize_entry("_seq_no", &self.seq_no)?;
        map.serialize_entry("_primary_term", &1)?;
        if let Some(source) = &self.source {
            let get = json!({"found": true, "_source": source, "_seq_no": self.seq_no, "_primary_term": 1});
            map.serialize_entry("get", &get)?;
        }
        Ok(())
    }

    /// 201 for a creation, 404 for a delete that found nothing, else 200.
    pub fn status(&self) -> u16 {
        match self.result {
            "created" => 201,
            "not_found" => 404,
            _ => 200,
        }
    }
}

impl serde::Serialize for DocWrite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.serialize_members(&mut map)?;
        map.end()
    }
}

/// A row of `_cat/indices`.
#[derive(Clone, Debug)]
pub struct IndexStats {
    pub name: String,
    pub uuid: String,
    pub docs: u64,
    pub deleted: u64,
    pub bytes: u64,
}

struct Inner {
    store: Store,
    ks: Keyspace,
    root: Option<PathBuf>,
    config: SearchConfig,
    writer_config: WriterConfig,
    indices: RwLock<HashMap<String, Arc<IndexHandle>>>,
    /// Index creation and deletion, one at a time.
    admin: Mutex<()>,
    id_counter: AtomicU64,
    /// Blocks whose collections can feed indices (`indexer.rs`).
    collections: RwLock<Vec<Arc<dyn Collections>>>,
    /// Open scrolls by id.
    scrolls: Mutex<HashMap<String, Scroll>>,
    /// Open points in time by id: the views they pinned, until when.
    pits: Mutex<HashMap<String, (PinnedViews, std::time::Instant)>>,
    /// Taken after `indices` when both are.
    aliases: RwLock<aliases::Aliases>,
}

/// Most scrolls open at once (Elasticsearch's `search.max_open_scroll_context`).
const MAX_OPEN_SCROLLS: usize = 500;
/// Most hits one scroll hands out; what matches past it is not returned.
pub const MAX_SCROLL_HITS: usize = 1_000_000;
/// Most hits all open scrolls keep (tens of bytes each); a new scroll waits for room.
const MAX_KEPT_SCROLL_HITS: usize = 10_000_000;
/// Longest keep-alive of a scroll (Elasticsearch's `search.max_keep_alive`).
pub const MAX_SCROLL_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Views of indices, by name, each frozen at one searcher.
type PinnedViews = Vec<search::Target>;

/// An open scroll: the views it searches (a point in time) and its remaining hits.
struct Scroll {
    views: PinnedViews,
    state: search::ScrollState,
    expires: std::time::Instant,
}

/// The search block. Cheap to clone; all methods block (call them off async workers).
#[derive(Clone)]
pub struct Search {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// An Elasticsearch time value: a number and a unit (`d`, `h`, `m`, `s`, `ms`, `micros`,
/// `nanos`), as `1m` or `500ms`.
pub fn parse_time_value(text: &str) -> SearchResult<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "d" => 86_400.0,
        "h" => 3_600.0,
        "m" => 60.0,
        "s" => 1.0,
        "ms" => 1e-3,
        "micros" => 1e-6,
        "nanos" => 1e-9,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if scale.is_finite() && n >= 0.0 && n * scale < 1e9 => {
            Ok(std::time::Duration::from_secs_f64(n * scale))
        }
        _ => Err(SearchError::new(
            400,
            "parse_exception",
            format!("failed to parse [{text}] as a time value: unit is missing or unrecognized"),
        )),
    }
}

fn check_keep_alive(keep_alive: std::time::Duration) -> SearchResult<()> {
    if keep_alive.is_zero() || keep_alive > MAX_SCROLL_KEEP_ALIVE {
        return Err(SearchError::illegal_argument(format!(
            "Keep alive for request ({}ms) is out of range: it must be above 0 and at most {}ms (search.max_keep_alive)",
            keep_alive.as_millis(),
            MAX_SCROLL_KEEP_ALIVE.as_millis()
        )));
    }
    Ok(())
}

/// Index names as Elasticsearch allows them.
pub(crate) fn check_index_name(name: &str) -> SearchResult<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name != name.to_lowercase()
        || name.starts_with(['-', '_', '+'])
        || name == "."
        || name == ".."
        || name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']);
    if bad {
        return Err(SearchError::new(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}], must be lowercase, and not contain \\, /, *, ?, \", <, >, |, space, comma, #, :"),
        )
        .with_index(name));
    }
    Ok(())
}

/// Settings as `{"index": {...}}`, whether given flat (`number_of_shards`), prefixed
/// (`index.number_of_shards`) or nested.
fn normalize_settings(settings: Option<&Value>) -> SearchResult<Value> {
    let mut index = Map::new();
    let Some(settings) = settings else { return Ok(json!({"index": index})) };
    let obj =
        settings.as_object().ok_or_else(|| SearchError::illegal_argument("settings must be an object"))?;
    fn put(index: &mut Map<String, Value>, key: &str, value: &Value) {
        match key.split_once('.') {
            Some(("index", rest)) => put(index, rest, value),
            _ if key == "index" && value.is_object() => {
                for (k, v) in value.as_object().expect("object") {
                    put(index, k, v);
                }
            }
            Some(("analysis", rest)) => {
                let entry = index.entry("analysis").or_insert_with(|| json!({}));
                let mut node = entry;
                let parts: Vec<&str> = rest.split('.').collect();
                for part in &parts[..parts.len() - 1] {
                    node = node.as_object_mut().expect("object").entry(*part).or_insert_with(|| json!({}));
                }
                node[parts[parts.len() - 1]] = value.clone();
            }
            _ => {
                let v = match value {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other.clone(),
                };
                index.insert(key.to_string(), v);
            }
        }
    }
    for (k, v) in obj {
        put(&mut index, k, v);
    }
    Ok(json!({"index": index}))
}

fn parse_source(bytes: &[u8]) -> SearchResult<Value> {
    serde_json::from_slice(bytes).map_err(|e| SearchError::internal(format!("corrupt document source: {e}")))
}

/// Merges `patch` into `target` as a partial update does: objects recursively, everything
/// else replaced.
fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl Search {
    /// Opens the block: loads every index's manifest from core and opens (or rebuilds) its
    /// tantivy files under `data_dir` (`None`: in memory, for tests).
    pub fn open(store: Store, data_dir: Option<PathBuf>, config: SearchConfig) -> SearchResult<Search> {
        let ks = store.keyspace("search")?;
        if let Some(dir) = &data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| SearchError::internal(format!("{}: {e}", dir.display())))?;
        }
        let writer_config = WriterConfig {
            threads: config.writer_threads.clamp(1, 8),
            memory_bytes: config
                .writer_memory_bytes
                .max(config.writer_threads.clamp(1, 8) * 16 * 1024 * 1024),
        };
        let mut indices = HashMap::new();
        let mut uuids = Vec::new();
        let aliases = aliases::Aliases::load(&store.begin_read_only(), &ks)?;
        {
            let txn = store.begin_read_only();
            for pair in txn.scan_prefix(&ks, &keys::index_prefix()) {
                let (_, value) = pair?;
                let meta = IndexMeta::decode(&value)?;
                let compiled =
                    schema::Compiled::new(Mapping::parse(&meta.mappings)?, meta.setting("analysis"))?;
                uuids.push(meta.uuid);
                let name = meta.name.clone();
                let handle = IndexHandle::open(
                    &Storage { store: &store, ks: &ks, root: data_dir.as_deref(), config: &writer_config },
                    meta,
                    compiled,
                )?;
                indices.insert(name, Arc::new(handle));
            }
        }
        if let Some(dir) = &data_dir {
            // Directories of deleted indices whose removal a crash interrupted.
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let keep = entry
                        .file_name()
                        .to_str()
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|u| uuids.contains(&u));
                    if !keep {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        let search = Search {
            inner: Arc::new(Inner {
                store,
                ks,
                root: data_dir,
                config,
                writer_config,
                indices: RwLock::new(indices),
                admin: Mutex::new(()),
                id_counter: AtomicU64::new(0),
                collections: RwLock::default(),
                scrolls: Mutex::default(),
                pits: Mutex::default(),
                aliases: RwLock::new(aliases),
            }),
        };
        search.start_refresher();
        Ok(search)
    }

    /// The periodic refresher: makes writes searchable every `refresh_interval`. It stops
    /// when the block is dropped.
    fn start_refresher(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        std::thread::Builder::new()
            .name("search-refresh".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let Some(inner) = weak.upgrade() else { return };
                    for handle in inner.handles() {
                        let Ok(mut writer) = handle.writer.try_lock() else { continue };
                        if handle.refresh_due(&writer)
                            && let Err(err) = refresh_and_prune(&inner, &handle, &mut writer)
                        {
                            tracing::warn!(%err, "search refresh failed");
                        }
                    }
                }
            })
            .expect("spawn the search refresher");
    }

    /// The index `name`, or the one index of the alias `name`.
    fn handle(&self, name: &str) -> SearchResult<Arc<IndexHandle>> {
        let indices = self.inner.indices.read().expect("indices lock");
        if let Some(handle) = indices.get(name) {
            return Ok(handle.clone());
        }
        let aliases = self.inner.aliases.read().expect("aliases lock");
        if !aliases.contains(name) {
            return Err(SearchError::index_not_found(name));
        }
        let index = aliases.single_index(name)?;
        indices.get(&index).cloned().ok_or_else(|| SearchError::index_not_found(&index))
    }

    /// Resolves `a,b`, `logs-*`, `_all` and `*` to existing index names.
    /// Aliases stand for their indices.
    pub fn resolve(&self, pattern: &str) -> SearchResult<Vec<String>> {
        Ok(self.resolve_filtered(pattern)?.into_iter().map(|(name, _)| name).collect())
    }

    /// [`Search::resolve`], with the filter each index is searched through: an index named
    /// itself, or through an alias without a filter for it, has none; one reached only
    /// through filtered aliases matches any of their filters, as in Elasticsearch.
    fn resolve_filtered(&self, pattern: &str) -> SearchResult<Vec<(String, Option<Value>)>> {
        let indices = self.inner.indices.read().expect("indices lock");
        let aliases = self.inner.aliases.read().expect("aliases lock");
        // Each index in the order first reached, with the filters of the ways it was reached.
        let mut out: Vec<(String, Vec<Option<Value>>)> = Vec::new();
        let mut reach = |index: &str, filter: Option<&Value>| match out.iter_mut().find(|(n, _)| n == index) {
            Some((_, ways)) => ways.push(filter.cloned()),
            None => out.push((index.to_string(), vec![filter.cloned()])),
        };
        for part in pattern.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "_all" || part.contains('*') {
                let glob = if part == "_all" { "*" } else { part };
                let mut matched: Vec<(String, Option<&Value>)> = indices
                    .keys()
                    .filter(|n| source::glob_match(glob, n))
                    .map(|n| (n.clone(), None))
                    .collect();
                if part != "_all" {
                    for alias in aliases.matching(glob) {
                        matched.extend(
                            aliases.members(alias).into_iter().flatten().map(|(i, f)| (i.clone(), f)),
                        );
                    }
                }
                matched.sort_by(|a, b| a.0.cmp(&b.0));
                for (index, filter) in matched {
                    reach(&index, filter);
                }
            } else if indices.contains_key(part) {
                reach(part, None);
            } else if let Some(members) = aliases.members(part) {
                for (index, filter) in members {
                    reach(index, filter);
                }
            } else {
                return Err(SearchError::index_not_found(part));
            }
        }
        Ok(out
            .into_iter()
            .map(|(index, ways)| {
                let filter = if ways.iter().any(Option::is_none) {
                    None
                } else {
                    let mut filters: Vec<Value> = ways.into_iter().flatten().collect();
                    filters.dedup();
                    match filters.len() {
                        1 => filters.pop(),
                        _ => Some(json!({"bool": {"should": filters, "minimum_should_match": 1}})),
                    }
                };
                (index, filter)
            })
            .collect())
    }

    /// The indices `pattern` names as search targets, at their current views.
    fn targets(&self, pattern: &str) -> SearchResult<Vec<search::Target>> {
        self.resolve_filtered(pattern)?
            .into_iter()
            .map(|(name, filter)| self.handle(&name).map(|h| search::Target { name, view: h.view(), filter }))
            .collect()
    }

    /// `POST /_aliases`: adds and removes aliases, all or none.
    pub fn update_aliases(&self, body: &Value) -> SearchResult<Value> {
        let actions = aliases::parse_actions(body)?;
        self.apply_alias_actions(&actions)
    }

    /// `PUT /<index>/_alias/<name>` (with an optional `{"is_write_index": b, "filter": q}`).
    pub fn put_alias(&self, index: &str, alias: &str, body: &Value) -> SearchResult<Value> {
        let member = aliases::member(body)?;
        let mut actions = Vec::new();
        for index in self.resolve(index)? {
            actions.push(aliases::Action::Add { index, alias: alias.to_string(), member: member.clone() });
        }
        self.apply_alias_actions(&actions)
    }

    /// `DELETE /<index>/_alias/<name>`.
    pub fn delete_alias(&self, index: &str, alias: &str) -> SearchResult<Value> {
        let actions: Vec<aliases::Action> = self
            .resolve(index)?
            .into_iter()
            .map(|index| aliases::Action::Remove { index, alias: alias.to_string() })
            .collect();
        self.apply_alias_actions(&actions)
    }

    fn apply_alias_actions(&self, actions: &[aliases::Action]) -> SearchResult<Value> {
        let _admin = self.inner.admin.lock().expect("admin lock");
        let indices = self.inner.indices.read().expect("indices lock");
        let mut aliases = self.inner.aliases.write().expect("aliases lock");
        let mut txn = self.inner.store.begin();
        let check_filter = |index: &str, filter: &Value| match indices.get(index) {
            Some(handle) => search::check_filter(&handle.view(), filter),
            None => Err(SearchError::index_not_found(index)),
        };
        let next = aliases.applied(
            actions,
            &|name| indices.contains_key(name),
            &check_filter,
            &mut txn,
            &self.inner.ks,
        )?;
        txn.commit()?;
        *aliases = next;
        Ok(json!({"acknowledged": true, "errors": false}))
    }

    /// `GET /_alias[/<names>]`, `GET /<index>/_alias[/<names>]`: per index, its aliases.
    /// Naming aliases that none has is a 404.
    pub fn get_aliases(&self, pattern: Option<&str>, names: Option<&str>) -> SearchResult<Value> {
        let concrete = match pattern {
            Some(p) => self.resolve(p)?,
            None => {
                let mut all: Vec<String> =
                    self.inner.indices.read().expect("indices lock").keys().cloned().collect();
                all.sort();
                all
            }
        };
        let aliases = self.inner.aliases.read().expect("aliases lock");
        let mut out = Map::new();
        for index in concrete {
            let of = aliases.of_index(&index, names);
            if names.is_none() || !of.is_empty() {
                out.insert(index, json!({"aliases": of}));
            }
        }
        if names.is_some() && out.is_empty() {
            return Err(SearchError::new(
                404,
                "aliases_not_found_exception",
                format!("alias [{}] missing", names.unwrap_or_default()),
            ));
        }
        Ok(Value::Object(out))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.resolve(name).is_ok_and(|v| !v.is_empty())
    }

    /// Creates an index from `{"settings": ..., "mappings": ...}`.
    pub fn create_index(&self, name: &str, body: &Value) -> SearchResult<Value> {
        check_index_name(name)?;
        if !body.is_null() && !body.is_object() {
            return Err(SearchError::parsing("request body must be an object"));
        }
        for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
            if !matches!(key.as_str(), "settings" | "mappings" | "aliases") {
                return Err(SearchError::parsing(format!("unknown key [{key}] for create index")));
            }
        }
        let _admin = self.inner.admin.lock().expect("admin lock");
        if self.inner.aliases.read().expect("aliases lock").contains(name) {
            return Err(SearchError::new(
                400,
                "invalid_index_name_exception",
                format!("Invalid index name [{name}], already exists as alias"),
            )
            .with_index(name));
        }
        if self.inner.indices.read().expect("indices lock").contains_key(name) {
            return Err(SearchError::new(
                400,
                "resource_already_exists_exception",
                format!("index [{name}] already exists"),
            )
            .with_index(name));
        }
        if self.index_count() >= self.inner.config.max_indices {
            return Err(SearchError::illegal_argument(format!(
                "this node holds the most indices allowed ({})",
                self.inner.config.max_indices
            )));
        }
        let settings = normalize_settings(body.get("settings"))?;
        let mapping = match body.get("mappings") {
            Some(m) => Mapping::parse(m)?,
            None => Mapping::default(),
        };
        let compiled = schema::Compiled::new(mapping.clone(), settings["index"].get("analysis"))
            .map_err(|e| e.with_index(name))?;
        if let Some(v) = settings["index"].get("refresh_interval") {
            engine::parse_interval(v)?;
        }
        self.inner.check_source(&settings)?;
        let mut txn = self.inner.store.begin();
        let uuid = txn.get(&self.inner.ks, &keys::next_uuid())?.map_or(1, |b| store::u64_value(&b));
        txn.set(&self.inner.ks, keys::next_uuid(), (uuid + 1).to_be_bytes().to_vec())?;
        let meta = IndexMeta {
            name: name.to_string(),
            uuid,
            settings,
            mappings: mapping.to_json(),
            created_ms: now_ms(),
            generation: 1,
        };
        let actions: Vec<aliases::Action> = match body.get("aliases") {
            None => Vec::new(),
            Some(Value::Object(list)) => list
                .iter()
                .map(|(alias, opts)| {
                    Ok(aliases::Action::Add {
                        index: name.to_string(),
                        alias: alias.clone(),
                        member: aliases::member(opts)?,
                    })
                })
                .collect::<SearchResult<_>>()?,
            Some(_) => return Err(SearchError::parsing("[aliases] must be an object")),
        };
        let handle = IndexHandle::open(&self.inner.storage(), meta.clone(), compiled)?;
        txn.set(&self.inner.ks, keys::index(name), meta.encode())?;
        let mut aliases = self.inner.aliases.write().expect("aliases lock");
        let next = {
            let indices = self.inner.indices.read().expect("indices lock");
            let is_index = |n: &str| n == name || indices.contains_key(n);
            let check_filter = |_: &str, filter: &Value| search::check_filter(&handle.view(), filter);
            aliases.applied(&actions, &is_index, &check_filter, &mut txn, &self.inner.ks)?
        };
        txn.commit()?;
        *aliases = next;
        drop(aliases);
        self.inner.indices.write().expect("indices lock").insert(name.to_string(), Arc::new(handle));
        tracing::info!(index = name, uuid, "search index created");
        Ok(json!({"acknowledged": true, "shards_acknowledged": true, "index": name}))
    }

    /// Deletes indices (names, lists or patterns) with their documents.
    pub fn delete_index(&self, pattern: &str) -> SearchResult<Value> {
        let names = self.resolve(pattern)?;
        let _admin = self.inner.admin.lock().expect("admin lock");
        for name in names {
            let Some(handle) = self.inner.indices.write().expect("indices lock").remove(&name) else {
                continue;
            };
            let uuid = handle.meta.read().expect("meta lock").uuid;
            let _writer = handle.writer.lock().expect("writer lock");
            let mut txn = self.inner.store.begin();
            txn.delete(&self.inner.ks, keys::index(&name))?;
            txn.delete(&self.inner.ks, keys::seq(uuid))?;
            txn.delete(&self.inner.ks, keys::feed_cursor(uuid))?;
            let mut aliases = self.inner.aliases.write().expect("aliases lock");
            let next = aliases.without_index(&name, &mut txn, &self.inner.ks)?;
            txn.commit()?;
            *aliases = next;
            drop(aliases);
            // Documents and the op log go in batches after the manifest. A crash midway
            // leaves keys no manifest reaches; uuids are never reused, so they stay unseen.
            for prefix in [keys::doc_prefix(uuid), keys::op_prefix(uuid)] {
                loop {
                    let mut txn = self.inner.store.begin();
                    let batch: Vec<Vec<u8>> = txn
                        .scan_prefix(&self.inner.ks, &prefix)
                        .take(10_000)
                        .map(|p| p.map(|(k, _)| k))
                        .collect::<Result<_, _>>()?;
                    if batch.is_empty() {
                        break;
                    }
                    for key in batch {
                        txn.delete(&self.inner.ks, key)?;
                    }
                    txn.commit()?;
                }
            }
            if let Some(root) = &self.inner.root {
                let _ = std::fs::remove_dir_all(root.join(uuid.to_string()));
            }
            tracing::info!(index = %name, "search index deleted");
        }
        Ok(json!({"acknowledged": true}))
    }

    /// `GET /<index>`: aliases, mappings and settings of each index.
    pub fn get_indices(&self, pattern: &str) -> SearchResult<Value> {
        let mut out = Map::new();
        for name in self.resolve(pattern)? {
            let handle = self.handle(&name)?;
            let meta = handle.meta.read().expect("meta lock").clone();
            out.insert(
                name,
                json!({
                    "aliases": self.inner.aliases.read().expect("aliases lock").of_index(&meta.name, None),
                    "mappings": meta.mappings,
                    "settings": self.settings_json(&meta),
                }),
            );
        }
        Ok(Value::Object(out))
    }

    fn settings_json(&self, meta: &IndexMeta) -> Value {
        let mut index = meta.settings["index"].clone();
        let defaults = [("number_of_shards", "1"), ("number_of_replicas", "0")];
        for (k, v) in defaults {
            if index.get(k).is_none() {
                index[k] = json!(v);
            }
        }
        index["uuid"] = json!(meta.uuid.to_string());
        index["provided_name"] = json!(meta.name);
        index["creation_date"] = json!(meta.created_ms.to_string());
        index["version"] = json!({"created": "8000099"});
        json!({"index": index})
    }

    pub fn get_mapping(&self, pattern: &str) -> SearchResult<Value> {
        let mut out = Map::new();
        for name in self.resolve(pattern)? {
            let meta = self.handle(&name)?.meta.read().expect("meta lock").clone();
            out.insert(name, json!({"mappings": meta.mappings}));
        }
        Ok(Value::Object(out))
    }

    pub fn get_settings(&self, pattern: &str) -> SearchResult<Value> {
        let mut out = Map::new();
        for name in self.resolve(pattern)? {
            let meta = self.handle(&name)?.meta.read().expect("meta lock").clone();
            out.insert(name, json!({"settings": self.settings_json(&meta)}));
        }
        Ok(Value::Object(out))
    }

    /// Adds fields to a mapping (`PUT /<index>/_mapping`).
    pub fn put_mapping(&self, pattern: &str, body: &Value) -> SearchResult<Value> {
        let update = Mapping::parse(body)?;
        for name in self.resolve(pattern)? {
            let handle = self.handle(&name)?;
            let mut writer = handle.writer.lock().expect("writer lock");
            let mut mapping = writer.compiled.mapping.clone();
            mapping.merge(&update, body.get("dynamic").is_some())?;
            self.switch_mapping(&handle, &mut writer, mapping)?;
        }
        Ok(json!({"acknowledged": true}))
    }

    /// Changes dynamic settings (`refresh_interval` is read at open; others are recorded).
    pub fn put_settings(&self, pattern: &str, body: &Value) -> SearchResult<Value> {
        let update = normalize_settings(Some(body.get("settings").unwrap_or(body)))?;
        for key in update["index"].as_object().into_iter().flat_map(|o| o.keys()) {
            if matches!(key.as_str(), "number_of_shards" | "analysis" | "strata" | "strata.source") {
                return Err(SearchError::illegal_argument(format!(
                    "Can't update non dynamic settings [[index.{key}]] for open indices"
                )));
            }
        }
        for name in self.resolve(pattern)? {
            let handle = self.handle(&name)?;
            let _writer = handle.writer.lock().expect("writer lock");
            let mut meta = handle.meta.read().expect("meta lock").clone();
            for (k, v) in update["index"].as_object().expect("object") {
                meta.settings["index"][k] = v.clone();
            }
            let mut txn = self.inner.store.begin();
            txn.set(&self.inner.ks, keys::index(&name), meta.encode())?;
            txn.commit()?;
            *handle.meta.write().expect("meta lock") = meta;
        }
        Ok(json!({"acknowledged": true}))
    }

    /// Moves an index to a new mapping: a new generation built from core, then the manifest.
    fn switch_mapping(
        &self,
        handle: &IndexHandle,
        writer: &mut engine::Writer,
        mapping: Mapping,
    ) -> SearchResult<()> {
        if mapping == writer.compiled.mapping {
            return Ok(());
        }
        let mut meta = handle.meta.read().expect("meta lock").clone();
        let compiled = schema::Compiled::new(mapping.clone(), meta.setting("analysis"))
            .map_err(|e| e.with_index(&meta.name))?;
        meta.generation += 1;
        meta.mappings = mapping.to_json();
        handle.rebuild(writer, &self.inner.storage(), &meta, compiled)?;
        let mut txn = self.inner.store.begin();
        txn.set(&self.inner.ks, keys::index(&meta.name), meta.encode())?;
        txn.commit()?;
        if let Some(root) = &self.inner.root {
            let _ = std::fs::remove_dir_all(
                root.join(meta.uuid.to_string()).join((meta.generation - 1).to_string()),
            );
        }
        *handle.meta.write().expect("meta lock") = meta;
        Ok(())
    }

    /// Every index with its document count and size, for `_cat/indices`.
    pub fn stats(&self, pattern: Option<&str>) -> SearchResult<Vec<IndexStats>> {
        let names = match pattern {
            Some(p) => self.resolve(p)?,
            None => self.resolve("*")?,
        };
        let mut out = Vec::new();
        for name in names {
            let handle = self.handle(&name)?;
            let view = handle.view();
            let searcher = view.searcher();
            let docs = searcher.num_docs();
            let total: u64 = searcher.segment_readers().iter().map(|r| r.max_doc() as u64).sum();
            let bytes = searcher.space_usage().map(|u| u.total().get_bytes()).unwrap_or(0);
            let uuid = handle.meta.read().expect("meta lock").uuid.to_string();
            out.push(IndexStats { name, uuid, docs, deleted: total - docs, bytes });
        }
        Ok(out)
    }

    /// Makes every write so far searchable (`POST /<index>/_refresh`).
    pub fn refresh(&self, pattern: &str) -> SearchResult<Value> {
        let names = self.resolve(pattern)?;
        for name in &names {
            let handle = self.handle(name)?;
            let mut writer = handle.writer.lock().expect("writer lock");
            refresh_and_prune(&self.inner, &handle, &mut writer)?;
        }
        Ok(json!({"_shards": {"total": names.len(), "successful": names.len(), "failed": 0}}))
    }

    /// Runs a bulk request: each operation succeeds or fails on its own; the successful
    /// ones are committed to core together, with one fsync, before this returns.
    pub fn bulk(
        &self,
        ops: Vec<BulkOp>,
        refresh: Refresh,
    ) -> SearchResult<Vec<Result<DocWrite, SearchError>>> {
        let mut ops = ops;
        let mut results: Vec<Option<Result<DocWrite, SearchError>>> = vec![None; ops.len()];
        // A write through an alias goes to its write index.
        {
            let indices = self.inner.indices.read().expect("indices lock");
            let aliases = self.inner.aliases.read().expect("aliases lock");
            for (i, op) in ops.iter_mut().enumerate() {
                let name = op.index_mut();
                if !indices.contains_key(name.as_str()) && aliases.contains(name) {
                    match aliases.write_index(name) {
                        Ok(target) => *name = target,
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
            }
        }
        // Create missing indices that writes name.
        for (i, op) in ops.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let name = op.index();
            if self.inner.indices.read().expect("indices lock").contains_key(name) {
                continue;
            }
            let creates = !matches!(op, BulkOp::Delete { .. });
            let outcome = if creates && self.inner.config.auto_create_index {
                match self.create_index(name, &Value::Null) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind == "resource_already_exists_exception" => Ok(()),
                    Err(e) => Err(e),
                }
            } else {
                Err(SearchError::index_not_found(name))
            };
            if let Err(e) = outcome {
                results[i] = Some(Err(e));
            }
        }
        // Lock every index written, in name order.
        let mut names: Vec<&str> =
            ops.iter().enumerate().filter(|(i, _)| results[*i].is_none()).map(|(_, op)| op.index()).collect();
        names.sort_unstable();
        names.dedup();
        let mut handles = BTreeMap::new();
        for name in &names {
            match self.handle(name) {
                Ok(h) => {
                    handles.insert(name.to_string(), h);
                }
                Err(e) => {
                    for (i, op) in ops.iter().enumerate() {
                        if op.index() == *name {
                            results[i] = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
        let mut writers: BTreeMap<String, MutexGuard<'_, engine::Writer>> = BTreeMap::new();
        for (name, handle) in &handles {
            writers.insert(name.clone(), handle.writer.lock().expect("writer lock"));
        }
        // Dynamic mapping: fields new to an index move it to a new generation first.
        for (name, handle) in &handles {
            let writer = writers.get_mut(name).expect("locked");
            let mut mapping = writer.compiled.mapping.clone();
            for (i, op) in ops.iter().enumerate() {
                if op.index() != name || results[i].is_some() {
                    continue;
                }
                let mut candidates: Vec<Cow<'_, Value>> = match op {
                    BulkOp::Index { source, .. } => vec![Cow::Borrowed(source.value())],
                    BulkOp::Update { body, .. } => {
                        ["doc", "upsert"].iter().filter_map(|k| body.get(*k)).map(Cow::Borrowed).collect()
                    }
                    BulkOp::Delete { .. } => vec![],
                };
                if let BulkOp::Update { id, body, .. } = op {
                    // A script's fields are known only once it has run on the document.
                    if let Some(script) = body.get("script") {
                        let uuid = handle.meta.read().expect("meta lock").uuid;
                        let txn = self.inner.store.begin_read_only();
                        if let Some(record) = self.inner.record(&txn, uuid, id)? {
                            let mut doc = parse_source(&record.source)?;
                            if script::run(script, &mut doc).is_ok() {
                                candidates.push(Cow::Owned(doc));
                            }
                        }
                    }
                }
                for candidate in &candidates {
                    let candidate = candidate.as_ref();
                    if !mapping.has_unmapped(candidate) {
                        continue;
                    }
                    match mapping.with_dynamic_fields(candidate) {
                        Ok(Some(next)) => mapping = next,
                        Ok(None) => {}
                        Err(e) => {
                            results[i] = Some(Err(e.with_index(name)));
                            break;
                        }
                    }
                }
            }
            self.switch_mapping(handle, writer, mapping)?;
        }
        // One core transaction for everything.
        let mut txn = self.inner.store.begin();
        let mut changes: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        // Per index written: its uuid and the first and last sequence numbers used.
        let mut touched: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        let mut written: Vec<usize> = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let name = op.index().to_string();
            let handle = &handles[&name];
            let writer = writers.get_mut(&name).expect("locked");
            let uuid = handle.meta.read().expect("meta lock").uuid;
            let start_seq = writer.next_seq;
            let outcome = self.prepare(&mut txn, uuid, writer, op);
            match outcome {
                Ok((write, change)) => {
                    if let Some(change) = change {
                        changes.entry(name.clone()).or_default().push(change);
                        touched.entry(name.clone()).or_insert((uuid, start_seq, 0)).2 = write.seq_no;
                        written.push(i);
                    }
                    results[i] = Some(Ok(write));
                }
                Err(e) => {
                    writer.next_seq = start_seq;
                    results[i] = Some(Err(e.with_index(&name)));
                }
            }
        }
        for (uuid, _, last) in touched.values() {
            txn.set(&self.inner.ks, keys::seq(*uuid), last.to_be_bytes().to_vec())?;
        }
        // The changes go to tantivy, and the index locks are released, once the commit is
        // visible and before its fsync: the next bulk prepares and commits while this one's
        // fsync runs, where it used to wait for it (a quarter of a 1,000-document bulk).
        // A refresh that commits tantivy first waits for that fsync (`refresh_and_prune`).
        let mut locked = Some(writers);
        let mut applied = Ok(());
        let committed = txn.commit_visible(|| {
            let mut writers = locked.take().expect("locked until the commit is visible");
            applied = changes.into_iter().try_for_each(|(name, list)| {
                let writer = writers.get_mut(&name).expect("locked");
                handles[&name].apply(writer, list, touched[&name].2)
            });
        });
        if let Err(err) = committed {
            if let Some(mut writers) = locked {
                // Nothing was written: hand the sequence numbers back.
                for (name, (_, first, _)) in &touched {
                    writers.get_mut(name).expect("locked").next_seq = *first;
                }
            }
            return Err(err.into());
        }
        applied?;
        for (name, (_, _, last)) in &touched {
            let handle = &handles[name];
            match refresh {
                // A periodic refresh will make it searchable; without one, refresh here.
                Refresh::WaitFor if handle.refresh_interval.is_some() => {
                    handle.wait_refreshed(*last, Duration::from_secs(30))
                }
                Refresh::Now | Refresh::WaitFor => {
                    let mut writer = handle.writer.lock().expect("writer lock");
                    refresh_and_prune(&self.inner, handle, &mut writer)?;
                }
                Refresh::No => {}
            }
        }
        metrics::counter!("strata_search_docs_written_total").increment(written.len() as u64);
        Ok(results.into_iter().map(|r| r.expect("every operation has a result")).collect())
    }

    /// Checks one operation against the document's current state and writes it into the
    /// transaction; returns the outcome and the change for tantivy (none for a no-op).
    fn prepare(
        &self,
        txn: &mut strata_core::Txn,
        uuid: u64,
        writer: &mut engine::Writer,
        op: BulkOp,
    ) -> SearchResult<(DocWrite, Option<Change>)> {
        let ks = &self.inner.ks;
        let (index, id, cond) = match &op {
            BulkOp::Index { index, id, cond, .. } => {
                let id = match id {
                    Some(id) => id.clone(),
                    None => self.generate_id(),
                };
                (index.clone(), id, cond.clone())
            }
            BulkOp::Update { index, id, cond, .. } | BulkOp::Delete { index, id, cond, .. } => {
                (index.clone(), id.clone(), cond.clone())
            }
        };
        if id.is_empty() || id.len() > 512 {
            return Err(SearchError::illegal_argument(format!(
                "id [{id}] is too long, must be no longer than 512 bytes but was: {}",
                id.len()
            )));
        }
        let current = self.inner.record(txn, uuid, &id)?;
        if let Some(want) = cond.if_seq_no {
            let have = current.as_ref().map(|r| r.seq);
            if have != Some(want) || cond.if_primary_term.is_some_and(|t| t != 1) {
                let detail = match have {
                    Some(seq) => format!(
                        "required seqNo [{want}], primary term [{}]. current document has seqNo [{seq}] and primary term [1]",
                        cond.if_primary_term.unwrap_or(1)
                    ),
                    None => format!(
                        "required seqNo [{want}], primary term [{}] but no document was found",
                        cond.if_primary_term.unwrap_or(1)
                    ),
                };
                return Err(SearchError::version_conflict(&index, &id, detail));
            }
        }
        if let (Some(want), Some(cur)) = (cond.external_version, &current)
            && want <= cur.version
        {
            return Err(SearchError::version_conflict(
                &index,
                &id,
                format!("current version [{}] is higher or equal to the one provided [{want}]", cur.version),
            ));
        }
        let version_after = |current: &Option<DocRecord>| {
            cond.external_version.unwrap_or_else(|| current.as_ref().map_or(1, |r| r.version + 1))
        };
        let (source, result, return_source) = match op {
            BulkOp::Delete { .. } => {
                let Some(cur) = current else {
                    return Ok((
                        DocWrite {
                            index,
                            id,
                            version: 1,
                            result: "not_found",
                            seq_no: writer.next_seq.saturating_sub(1),
                            source: None,
                        },
                        None,
                    ));
                };
                let seq = writer.next_seq;
                writer.next_seq += 1;
                txn.delete(ks, keys::doc(uuid, &id))?;
                txn.set(ks, keys::op(uuid, seq), store::encode_op(store::OP_DELETED, &id))?;
                let write = DocWrite {
                    index,
                    id: id.clone(),
                    version: cur.version + 1,
                    result: "deleted",
                    seq_no: seq,
                    source: None,
                };
                return Ok((write, Some(Change::Delete { id })));
            }
            BulkOp::Index { source, create, .. } => {
                if create && current.is_some() {
                    return Err(SearchError::version_conflict(
                        &index,
                        &id,
                        "document already exists (current version [1])"
                            .replace("[1]", &format!("[{}]", current.as_ref().map_or(1, |r| r.version))),
                    ));
                }
                let result = if current.is_some() { "updated" } else { "created" };
                (source, result, false)
            }
            BulkOp::Update { body, .. } => {
                let wants_source = body
                    .get("_source")
                    .is_some_and(|v| v.as_bool() == Some(true) || v.is_array() || v.is_string());
                match current {
                    Some(ref cur) => {
                        let mut doc = parse_source(&cur.source)?;
                        let before = doc.clone();
                        if let Some(script) = body.get("script") {
                            script::run(script, &mut doc)?;
                        } else if let Some(patch) = body.get("doc") {
                            deep_merge(&mut doc, patch);
                        } else {
                            return Err(SearchError::new(
                                400,
                                "action_request_validation_exception",
                                "Validation Failed: 1: script or doc is missing;",
                            ));
                        }
                        let noop =
                            body.get("detect_noop").and_then(Value::as_bool).unwrap_or(true) && doc == before;
                        if noop {
                            let write = DocWrite {
                                index,
                                id,
                                version: cur.version,
                                result: "noop",
                                seq_no: cur.seq,
                                source: wants_source.then_some(doc),
                            };
                            return Ok((write, None));
                        }
                        (Source::from_value(doc), "updated", wants_source)
                    }
                    None => {
                        let upsert = if body.get("doc_as_upsert").and_then(Value::as_bool) == Some(true) {
                            body.get("doc").cloned()
                        } else {
                            body.get("upsert").cloned()
                        };
                        let Some(mut doc) = upsert else {
                            return Err(SearchError::new(
                                404,
                                "document_missing_exception",
                                format!("[{id}]: document missing"),
                            )
                            .with_index(&index));
                        };
                        if body.get("scripted_upsert").and_then(Value::as_bool) == Some(true)
                            && let Some(script) = body.get("script")
                        {
                            script::run(script, &mut doc)?;
                        }
                        (Source::from_value(doc), "created", wants_source)
                    }
                }
            }
        };
        if !source.value().is_object() {
            return Err(SearchError::mapper_parsing("failed to parse: the document must be a JSON object"));
        }
        if source.text().len() > self.inner.config.max_doc_bytes {
            return Err(SearchError::illegal_argument(format!(
                "document of {} bytes is over the limit of {} bytes",
                source.text().len(),
                self.inner.config.max_doc_bytes
            )));
        }
        let doc = writer.compiled.document(&id, source.value(), source.text())?;
        let (source, bytes) = source.into_parts();
        let seq = writer.next_seq;
        writer.next_seq += 1;
        let version = version_after(&current);
        txn.set(ks, keys::doc(uuid, &id), DocRecord { seq, version, source: bytes }.encode())?;
        txn.set(ks, keys::op(uuid, seq), store::encode_op(store::OP_INDEXED, &id))?;
        let write = DocWrite {
            index,
            id: id.clone(),
            version,
            result,
            seq_no: seq,
            source: return_source.then_some(source),
        };
        Ok((write, Some(Change::Upsert { id, doc, replaces: current.is_some() })))
    }

    /// A 20-character id, unique within this process and, through the clock, across runs.
    fn generate_id(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        let n = self.inner.id_counter.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let mut bytes = [0u8; 15];
        bytes[..8].copy_from_slice(&((nanos as u64) ^ n.rotate_left(40)).to_be_bytes());
        bytes[8..].copy_from_slice(&h.finish().to_be_bytes()[..7]);
        source::base64url(&bytes)
    }

    /// One write through the bulk path; its error, if any, is the request's error.
    pub fn write(&self, op: BulkOp, refresh: Refresh) -> SearchResult<DocWrite> {
        self.bulk(vec![op], refresh)?.pop().expect("one result")
    }

    /// A document by id, realtime (from core, not from the last refresh).
    pub fn get(&self, index: &str, id: &str) -> SearchResult<Option<(u64, u64, Value)>> {
        let uuid = self.handle(index)?.meta.read().expect("meta lock").uuid;
        let txn = self.inner.store.begin_read_only();
        let Some(record) = self.inner.record(&txn, uuid, id)? else { return Ok(None) };
        Ok(Some((record.seq, record.version, parse_source(&record.source)?)))
    }

    /// The `GET /<index>/_doc/<id>` answer.
    pub fn get_json(&self, index: &str, id: &str, filter: &source::SourceFilter) -> SearchResult<Value> {
        // The index itself when `index` is an alias.
        let concrete = self.handle(index)?.meta.read().expect("meta lock").name.clone();
        let index = concrete.as_str();
        Ok(match self.get(index, id)? {
            Some((seq, version, doc)) => {
                let mut out = json!({"_index": index, "_id": id, "_version": version, "_seq_no": seq, "_primary_term": 1, "found": true});
                if let Some(filtered) = filter.apply(&doc) {
                    out["_source"] = filtered;
                }
                out
            }
            None => json!({"_index": index, "_id": id, "found": false}),
        })
    }

    /// `_mget`: `{"docs": [{"_index", "_id"}]}` or `{"ids": [...]}` against a default index.
    pub fn mget(
        &self,
        default_index: Option<&str>,
        body: &Value,
        filter: &source::SourceFilter,
    ) -> SearchResult<Value> {
        let mut docs = Vec::new();
        let wanted: Vec<(Option<String>, String)> =
            if let Some(ids) = body.get("ids").and_then(Value::as_array) {
                ids.iter()
                    .map(|id| (None, id.as_str().map(str::to_string).unwrap_or_else(|| id.to_string())))
                    .collect()
            } else if let Some(list) = body.get("docs").and_then(Value::as_array) {
                list.iter()
                    .map(|d| {
                        let id = d
                            .get("_id")
                            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                            .unwrap_or_default();
                        (d.get("_index").and_then(Value::as_str).map(str::to_string), id)
                    })
                    .collect()
            } else {
                return Err(SearchError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: no documents to get;",
                ));
            };
        for (index, id) in wanted {
            let Some(index) = index.or_else(|| default_index.map(str::to_string)) else {
                return Err(SearchError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing for doc 0;",
                ));
            };
            docs.push(match self.get_json(&index, &id, filter) {
                Ok(doc) => doc,
                Err(e) => json!({"_index": index, "_id": id, "error": e.to_json()["error"]}),
            });
        }
        Ok(json!({ "docs": docs }))
    }

    /// `_search` over one or more indices.
    pub fn search(&self, pattern: &str, body: &Value) -> SearchResult<Value> {
        if body.get("slice").is_some() {
            return Err(SearchError::new(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: [slice] can only be used with [scroll] or [point-in-time] requests;",
            ));
        }
        search::run(&self.targets(pattern)?, body, &self.inner.config)
    }

    /// `_search?scroll=<keep_alive>`: the first page with a `_scroll_id`; the next pages come
    /// from [`Search::scroll`] over the same point-in-time view of the indices.
    pub fn open_scroll(
        &self,
        pattern: &str,
        body: &Value,
        keep_alive: std::time::Duration,
    ) -> SearchResult<Value> {
        check_keep_alive(keep_alive)?;
        let views = self.pinned_views(pattern)?;
        let mut scrolls = self.inner.scrolls.lock().expect("scrolls lock");
        let now = std::time::Instant::now();
        scrolls.retain(|_, s| s.expires > now);
        let kept: usize = scrolls.values().map(|s| s.state.remaining()).sum();
        if scrolls.len() >= MAX_OPEN_SCROLLS || kept >= MAX_KEPT_SCROLL_HITS {
            return Err(SearchError::new(
                429,
                "exception",
                format!(
                    "Trying to create too many scroll contexts. Must be less than or equal to: [{MAX_OPEN_SCROLLS}]. This limit can be set by changing the [search.max_open_scroll_context] setting."
                ),
            ));
        }
        drop(scrolls);
        let (mut out, state) = search::open_scroll(&views, body, &self.inner.config, MAX_SCROLL_HITS)?;
        let id = format!("strata-scroll-{}", self.generate_id());
        out["_scroll_id"] = json!(id);
        let scroll = Scroll { views, state, expires: now + keep_alive };
        self.inner.scrolls.lock().expect("scrolls lock").insert(id, scroll);
        Ok(out)
    }

    /// `_search/scroll`: the next page of an open scroll, which then lives `keep_alive` more
    /// (its previous keep-alive when `None`).
    pub fn scroll(&self, id: &str, keep_alive: Option<std::time::Duration>) -> SearchResult<Value> {
        if let Some(k) = keep_alive {
            check_keep_alive(k)?;
        }
        let missing = || {
            SearchError::new(
                404,
                "search_context_missing_exception",
                format!("No search context found for id [{id}]"),
            )
        };
        let mut scroll = {
            let mut scrolls = self.inner.scrolls.lock().expect("scrolls lock");
            let now = std::time::Instant::now();
            scrolls.retain(|_, s| s.expires > now);
            scrolls.remove(id).ok_or_else(missing)?
        };
        // The page is rendered outside the lock; the scroll goes back after it.
        let page = search::next_scroll_page(&scroll.views, &mut scroll.state);
        let now = std::time::Instant::now();
        if let Some(k) = keep_alive {
            scroll.expires = now + k;
        }
        let mut out = page?;
        out["_scroll_id"] = json!(id);
        self.inner.scrolls.lock().expect("scrolls lock").insert(id.to_string(), scroll);
        Ok(out)
    }

    /// `DELETE _search/scroll`: closes the named scrolls (every one with `None`); returns how
    /// many were open.
    pub fn clear_scrolls(&self, ids: Option<&[String]>) -> usize {
        let mut scrolls = self.inner.scrolls.lock().expect("scrolls lock");
        let now = std::time::Instant::now();
        scrolls.retain(|_, s| s.expires > now);
        match ids {
            None => std::mem::take(&mut *scrolls).len(),
            Some(ids) => ids.iter().filter(|id| scrolls.remove(id.as_str()).is_some()).count(),
        }
    }

    /// The indices `pattern` names, each frozen at its current searcher.
    fn pinned_views(&self, pattern: &str) -> SearchResult<PinnedViews> {
        let mut targets = self.targets(pattern)?;
        for target in &mut targets {
            target.view = Arc::new(target.view.pinned());
        }
        Ok(targets)
    }

    /// `POST /<index>/_pit?keep_alive=`: pins the indices as they are now; searches naming
    /// the returned id (`"pit": {"id": ...}`) see them so until it is closed or expires.
    pub fn open_pit(&self, pattern: &str, keep_alive: std::time::Duration) -> SearchResult<Value> {
        check_keep_alive(keep_alive)?;
        let views = self.pinned_views(pattern)?;
        let mut pits = self.inner.pits.lock().expect("pits lock");
        let now = std::time::Instant::now();
        pits.retain(|_, (_, expires)| *expires > now);
        if pits.len() >= MAX_OPEN_SCROLLS {
            return Err(SearchError::new(
                429,
                "exception",
                format!(
                    "Trying to create too many point in time contexts. Must be less than or equal to: [{MAX_OPEN_SCROLLS}]."
                ),
            ));
        }
        let id = format!("strata-pit-{}", self.generate_id());
        let n = views.len();
        pits.insert(id.clone(), (views, now + keep_alive));
        Ok(json!({"id": id, "_shards": {"total": n, "successful": n, "skipped": 0, "failed": 0}}))
    }

    /// `_search` with `"pit": {"id", "keep_alive"}`: the body run over the pinned views.
    pub fn search_pit(&self, body: &Value) -> SearchResult<Value> {
        let pit = &body["pit"];
        let id = pit
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| SearchError::parsing("[pit] needs an [id]"))?;
        let keep_alive = match pit.get("keep_alive") {
            None => None,
            Some(v) => {
                let text =
                    v.as_str().ok_or_else(|| SearchError::parsing("[keep_alive] must be a time value"))?;
                let k = parse_time_value(text)?;
                check_keep_alive(k)?;
                Some(k)
            }
        };
        let views = {
            let mut pits = self.inner.pits.lock().expect("pits lock");
            let now = std::time::Instant::now();
            pits.retain(|_, (_, expires)| *expires > now);
            let (views, expires) = pits.get_mut(id).ok_or_else(|| {
                SearchError::new(
                    404,
                    "search_context_missing_exception",
                    format!("No search context found for id [{id}]"),
                )
            })?;
            if let Some(k) = keep_alive {
                *expires = now + k;
            }
            views.clone()
        };
        let mut body = body.clone();
        body.as_object_mut().expect("a search body is an object").remove("pit");
        let mut out = search::run(&views, &body, &self.inner.config)?;
        out["pit_id"] = json!(id);
        Ok(out)
    }

    /// `DELETE /_pit`: closes a point in time; returns whether it was open.
    pub fn close_pit(&self, id: &str) -> bool {
        self.inner.pits.lock().expect("pits lock").remove(id).is_some()
    }

    /// `_count`.
    pub fn count(&self, pattern: &str, body: &Value) -> SearchResult<Value> {
        let targets = self.targets(pattern)?;
        let mut count = 0;
        for target in &targets {
            count += search::count(target, body)?;
        }
        Ok(
            json!({"count": count, "_shards": {"total": targets.len(), "successful": targets.len(), "skipped": 0, "failed": 0}}),
        )
    }

    /// `_delete_by_query` and `_update_by_query`: finds the matching ids in the refreshed
    /// index, then writes through the bulk path (conflicts are counted, not fatal, with
    /// `conflicts=proceed`).
    pub fn by_query(
        &self,
        pattern: &str,
        body: &Value,
        update: bool,
        proceed_on_conflict: bool,
        refresh: Refresh,
    ) -> SearchResult<Value> {
        let started = std::time::Instant::now();
        let names = self.resolve_filtered(pattern)?;
        let (mut total, mut done, mut conflicts, mut noops) = (0u64, 0u64, 0u64, 0u64);
        let mut failures = Vec::new();
        for (name, filter) in &names {
            let handle = self.handle(name)?;
            {
                let mut writer = handle.writer.lock().expect("writer lock");
                refresh_and_prune(&self.inner, &handle, &mut writer)?;
            }
            let view = handle.view();
            // Each id with the sequence number it had when the query ran: a document
            // changed in between is a version conflict, as in Elasticsearch.
            let uuid = handle.meta.read().expect("meta lock").uuid;
            let txn = self.inner.store.begin_read_only();
            let mut matches = Vec::new();
            let target = search::Target { name: name.clone(), view, filter: filter.clone() };
            for id in search::matching_ids(&target, body)? {
                if let Some(record) = self.inner.record(&txn, uuid, &id)? {
                    matches.push((id, record.seq));
                }
            }
            drop(txn);
            total += matches.len() as u64;
            for chunk in matches.chunks(1000) {
                let ops: Vec<BulkOp> = chunk
                    .iter()
                    .map(|(id, seq)| {
                        let cond = Conditions { if_seq_no: Some(*seq), ..Default::default() };
                        if update {
                            let body = match body.get("script") {
                                Some(script) => json!({"script": script, "detect_noop": true}),
                                None => json!({"doc": {}, "detect_noop": false}),
                            };
                            BulkOp::Update { index: name.clone(), id: id.clone(), body, cond }
                        } else {
                            BulkOp::Delete { index: name.clone(), id: id.clone(), cond }
                        }
                    })
                    .collect();
                for result in self.bulk(ops, Refresh::No)? {
                    match result {
                        Ok(w) if w.result == "noop" => noops += 1,
                        Ok(_) => done += 1,
                        Err(e) if e.kind == "version_conflict_engine_exception" => {
                            conflicts += 1;
                            if !proceed_on_conflict {
                                failures.push(
                                    json!({"index": name, "cause": e.to_json()["error"], "status": 409}),
                                );
                            }
                        }
                        Err(e) => failures
                            .push(json!({"index": name, "cause": e.to_json()["error"], "status": e.status})),
                    }
                }
            }
            if refresh != Refresh::No {
                let mut writer = handle.writer.lock().expect("writer lock");
                refresh_and_prune(&self.inner, &handle, &mut writer)?;
            }
        }
        let mut out = json!({
            "took": started.elapsed().as_millis() as u64,
            "timed_out": false,
            "total": total,
            "version_conflicts": conflicts,
            "noops": noops,
            "batches": total.div_ceil(1000).max(1),
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": failures,
        });
        out[if update { "updated" } else { "deleted" }] = json!(done);
        Ok(out)
    }

    /// `_analyze` with an index's analyzers (or the built-in ones without an index).
    pub fn analyze(&self, index: Option<&str>, body: &Value) -> SearchResult<Value> {
        let texts: Vec<&str> = match body.get("text") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err(SearchError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: text is missing;",
                ));
            }
        };
        let compiled = match index {
            Some(name) => self.handle(name)?.view().compiled.clone(),
            None => Arc::new(schema::Compiled::new(Mapping::default(), None)?),
        };
        let analyzer_name = if let Some(field) = body.get("field").and_then(Value::as_str) {
            let info = compiled
                .field(field)
                .ok_or_else(|| SearchError::illegal_argument(format!("no field [{field}] in the mapping")))?;
            info.leaf.analyzer.clone().unwrap_or_else(|| {
                if info.leaf.ty == mapping::FieldType::Text { "standard".into() } else { "keyword".into() }
            })
        } else if let Some(name) = body.get("analyzer").and_then(Value::as_str) {
            name.to_string()
        } else if body.get("tokenizer").is_some() || body.get("filter").is_some() {
            // An analyzer defined in the request itself.
            let def = json!({"analyzer": {"_request": {"tokenizer": body.get("tokenizer").cloned().unwrap_or(json!("standard")), "filter": body.get("filter").cloned().unwrap_or(json!([]))}}});
            let manager = analysis::build(Some(&def))?;
            let mut analyzer = manager.get("_request").expect("just built");
            return Ok(analysis::analyze(&mut analyzer, &texts));
        } else {
            "standard".to_string()
        };
        let mut analyzer = compiled.analyzer(&analyzer_name)?;
        Ok(analysis::analyze(&mut analyzer, &texts))
    }

    /// Documents per index, for metrics.
    /// (Counts only: [`Search::stats`] also sizes every segment's files.)
    pub fn publish_metrics(&self) {
        let handles = self.inner.handles();
        let docs: u64 = handles.iter().map(|h| h.view().reader.searcher().num_docs()).sum();
        metrics::gauge!("strata_search_indices").set(handles.len() as f64);
        metrics::gauge!("strata_search_docs").set(docs as f64);
    }

    /// How many indices there are.
    pub fn index_count(&self) -> usize {
        self.inner.indices.read().expect("indices lock").len()
    }
}

impl Inner {
    /// A document's stored record, as `txn` sees it.
    fn record(&self, txn: &strata_core::Txn, uuid: u64, id: &str) -> SearchResult<Option<DocRecord>> {
        txn.get(&self.ks, &keys::doc(uuid, id))?.map(|bytes| DocRecord::decode(&bytes)).transpose()
    }

    /// Every open index, for the periodic work that visits them all.
    fn handles(&self) -> Vec<Arc<IndexHandle>> {
        self.indices.read().expect("indices lock").values().cloned().collect()
    }

    fn storage(&self) -> Storage<'_> {
        Storage { store: &self.store, ks: &self.ks, root: self.root.as_deref(), config: &self.writer_config }
    }
}

/// Commits tantivy (making what was applied searchable) and drops the operation log it
/// covers. A bulk applies its changes before their core commit is fsynced, so this first
/// waits for every core commit so far to be durable: a tantivy commit never holds a
/// document that a power loss could take from core.
fn refresh_and_prune(inner: &Inner, handle: &IndexHandle, writer: &mut engine::Writer) -> SearchResult<()> {
    if writer.dirty_since.is_none() {
        return Ok(());
    }
    futures::executor::block_on(inner.store.durable(inner.store.last_seq()))?;
    handle.refresh(writer)?;
    let uuid = handle.meta.read().expect("meta lock").uuid;
    engine::prune_ops(&inner.store, &inner.ks, uuid, writer.applied_seq)
}

pub use source::{Source, SourceFilter};

#[cfg(test)]
mod tests;
