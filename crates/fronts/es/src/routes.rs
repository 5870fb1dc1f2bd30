//! Routing: Elasticsearch's paths and methods to search-block calls, with the query-string
//! parameters each API reads (`refresh`, `op_type`, `if_seq_no`, `_source`, `q`, `size`,
//! `pretty`, ...).

use crate::bulk;
use crate::{EsConfig, Outcome, Reply, info};
use axum::http::{Method, Uri};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use strata_search::{BulkOp, Conditions, Refresh, Search, SearchError, Source, SourceFilter};

pub(crate) struct Params(HashMap<String, String>);

impl Params {
    fn parse(uri: &Uri) -> Params {
        Params(form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, SearchError> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    SearchError::illegal_argument(format!(
                        "Failed to parse value [{v}] for parameter [{key}]"
                    ))
                })
            })
            .transpose()
    }

    pub(crate) fn refresh(&self) -> Result<Refresh, SearchError> {
        Refresh::parse(self.get("refresh"))
    }

    fn conditions(&self) -> Result<Conditions, SearchError> {
        let external = matches!(self.get("version_type"), Some("external") | Some("external_gte"));
        Ok(Conditions {
            if_seq_no: self.u64("if_seq_no")?,
            if_primary_term: self.u64("if_primary_term")?,
            external_version: if external { self.u64("version")? } else { None },
        })
    }

    fn source_filter(&self) -> SourceFilter {
        SourceFilter::from_params(
            self.get("_source"),
            self.get("_source_includes"),
            self.get("_source_excludes"),
        )
    }
}

fn decode(segment: &str) -> String {
    // Path segments are percent-encoded; `+` stays a plus in paths.
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) =
                std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_body(body: &[u8]) -> Result<Value, SearchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(unparsable_body)
}

fn unparsable_body(err: serde_json::Error) -> SearchError {
    SearchError::new(400, "x_content_parse_exception", format!("Failed to parse request body: {err}"))
}

fn object_body(body: &[u8]) -> Result<Value, SearchError> {
    let v = json_body(body)?;
    if v.is_null() {
        return Ok(json!({}));
    }
    if !v.is_object() {
        return Err(SearchError::parsing("request body is required to be an object"));
    }
    Ok(v)
}

fn not_allowed(method: &Method, path: &str, allowed: &str) -> SearchError {
    SearchError::new(
        405,
        "method_not_allowed",
        format!("Incorrect HTTP method for uri [{path}] and method [{method}], allowed: [{allowed}]"),
    )
}

/// Answers one request.
pub(crate) fn dispatch(
    search: &Search,
    config: &EsConfig,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> Outcome {
    let params = Params::parse(uri);
    let reply = route(search, config, method, uri, &params, body)?;
    Ok(match reply {
        Reply::Json(status, v) if params.has("pretty") => {
            Reply::Text(status, serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        Reply::Serialized(status, text) if params.has("pretty") => {
            let v: Value = serde_json::from_str(&text).map_err(SearchError::internal)?;
            Reply::Text(status, serde_json::to_string_pretty(&v).unwrap_or_default() + "\n")
        }
        other => other,
    })
}

fn route(
    search: &Search,
    config: &EsConfig,
    method: &Method,
    uri: &Uri,
    params: &Params,
    body: &[u8],
) -> Outcome {
    let path = uri.path();
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = *method == Method::GET || *method == Method::POST;
    let m = method.clone();
    match segs.as_slice() {
        [] => match m {
            Method::GET | Method::HEAD => Ok(Reply::Json(200, info(config))),
            _ => Err(not_allowed(method, path, "GET, HEAD")),
        },
        ["_cluster", "health", ..] => Ok(Reply::Json(200, health(search, config))),
        ["_cat", "indices"] => cat_indices(search, None, params),
        ["_cat", "indices", pattern] => cat_indices(search, Some(pattern), params),
        ["_cat", "health"] => {
            Ok(Reply::Text(200, format!("{} {} green 1 1\n", now_secs(), config.cluster_name)))
        }
        ["_bulk"] if m == Method::POST || m == Method::PUT => bulk::run(search, None, params, body),
        ["_mget"] if get => {
            Ok(Reply::Json(200, search.mget(None, &object_body(body)?, &params.source_filter())?))
        }
        ["_search"] if get => run_search(search, "_all", params, body),
        ["_search", "scroll"] if get => next_scroll(search, None, params, body),
        ["_search", "scroll", id] if get => next_scroll(search, Some(id), params, body),
        ["_search", "scroll"] if m == Method::DELETE => clear_scroll(search, None, body),
        ["_pit"] if m == Method::DELETE => {
            let body = object_body(body)?;
            let id = body.get("id").and_then(Value::as_str).ok_or_else(|| {
                SearchError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [id] is missing;",
                )
            })?;
            let freed = usize::from(search.close_pit(id));
            Ok(Reply::Json(
                if freed == 1 { 200 } else { 404 },
                json!({"succeeded": true, "num_freed": freed}),
            ))
        }
        ["_search", "scroll", ids] if m == Method::DELETE => clear_scroll(search, Some(ids), body),
        ["_msearch"] if get => bulk::msearch(search, None, body),
        ["_count"] if get => Ok(Reply::Json(200, search.count("_all", &object_body(body)?)?)),
        ["_analyze"] if get => Ok(Reply::Json(200, search.analyze(None, &object_body(body)?)?)),
        ["_refresh"] | ["_flush"] => Ok(Reply::Json(200, search.refresh("_all")?)),
        ["_mapping"] | ["_mappings"] => Ok(Reply::Json(200, search.get_mapping("_all")?)),
        ["_settings"] => Ok(Reply::Json(200, search.get_settings("_all")?)),
        ["_aliases"] if m == Method::POST => {
            Ok(Reply::Json(200, search.update_aliases(&object_body(body)?)?))
        }
        ["_alias"] | ["_aliases"] if m == Method::GET => {
            Ok(Reply::Json(200, search.get_aliases(None, None)?))
        }
        ["_alias", names] if m == Method::GET => Ok(Reply::Json(200, search.get_aliases(None, Some(names))?)),
        ["_alias", names] if m == Method::HEAD => {
            Ok(Reply::Empty(if search.get_aliases(None, Some(names)).is_ok() { 200 } else { 404 }))
        }
        ["_cat", "aliases"] => cat_aliases(search, params),
        // No data streams here: asking for one is asking for a missing index, as in
        // Elasticsearch (clients' reindex helpers probe the target this way).
        ["_data_stream"] if m == Method::GET => Ok(Reply::Json(200, json!({"data_streams": []}))),
        ["_data_stream", name] if m == Method::GET => {
            Err(SearchError::new(404, "index_not_found_exception", format!("no such index [{name}]"))
                .with_index(name))
        }
        [name, ..] if name.starts_with('_') => Err(SearchError::new(
            400,
            "illegal_argument_exception",
            format!("no handler found for uri [{path}] and method [{method}]"),
        )),
        [index] => match m {
            Method::PUT => Ok(Reply::Json(200, search.create_index(index, &object_body(body)?)?)),
            Method::DELETE => Ok(Reply::Json(200, search.delete_index(index)?)),
            Method::HEAD => Ok(Reply::Empty(if search.exists(index) { 200 } else { 404 })),
            Method::GET => Ok(Reply::Json(200, search.get_indices(index)?)),
            _ => Err(not_allowed(method, path, "PUT, DELETE, HEAD, GET")),
        },
        [index, "_alias" | "_aliases"] if m == Method::GET => {
            Ok(Reply::Json(200, search.get_aliases(Some(index), None)?))
        }
        [index, "_alias" | "_aliases", names] => match m {
            Method::PUT | Method::POST => {
                Ok(Reply::Json(200, search.put_alias(index, names, &object_body(body)?)?))
            }
            Method::DELETE => Ok(Reply::Json(200, search.delete_alias(index, names)?)),
            Method::GET => Ok(Reply::Json(200, search.get_aliases(Some(index), Some(names))?)),
            Method::HEAD => {
                Ok(Reply::Empty(if search.get_aliases(Some(index), Some(names)).is_ok() { 200 } else { 404 }))
            }
            _ => Err(not_allowed(method, path, "PUT, POST, DELETE, GET, HEAD")),
        },
        [index, "_doc"] if m == Method::POST => index_doc(search, index, None, false, params, body),
        [index, "_doc", id] => match m {
            Method::PUT | Method::POST => {
                let create = params.get("op_type") == Some("create");
                index_doc(search, index, Some(id), create, params, body)
            }
            Method::GET | Method::HEAD => {
                let doc = search.get_json(index, id, &params.source_filter())?;
                let status = if doc["found"] == json!(true) { 200 } else { 404 };
                Ok(if m == Method::HEAD { Reply::Empty(status) } else { Reply::Json(status, doc) })
            }
            Method::DELETE => {
                let op = BulkOp::Delete {
                    index: index.to_string(),
                    id: id.to_string(),
                    cond: params.conditions()?,
                };
                let w = search.write(op, params.refresh()?)?;
                Ok(Reply::Json(w.status(), w.to_json()))
            }
            _ => Err(not_allowed(method, path, "PUT, POST, GET, HEAD, DELETE")),
        },
        [index, "_create", id] if m == Method::PUT || m == Method::POST => {
            index_doc(search, index, Some(id), true, params, body)
        }
        [index, "_update", id] if m == Method::POST => {
            let body = object_body(body)?;
            let op = BulkOp::Update {
                index: index.to_string(),
                id: id.to_string(),
                body,
                cond: params.conditions()?,
            };
            let w = search.write(op, params.refresh()?)?;
            Ok(Reply::Json(w.status(), w.to_json()))
        }
        [index, "_source", id] if m == Method::GET || m == Method::HEAD => match search.get(index, id)? {
            Some((_, _, doc)) => Ok(if m == Method::HEAD {
                Reply::Empty(200)
            } else {
                Reply::Json(200, params.source_filter().apply(&doc).unwrap_or(Value::Null))
            }),
            None => Err(SearchError::new(
                404,
                "resource_not_found_exception",
                format!("Document not found [{index}]/[{id}]"),
            )
            .with_index(index)),
        },
        [index, "_bulk"] if m == Method::POST || m == Method::PUT => {
            bulk::run(search, Some(index), params, body)
        }
        [index, "_mget"] if get => {
            Ok(Reply::Json(200, search.mget(Some(index), &object_body(body)?, &params.source_filter())?))
        }
        [index, "_search"] if get => run_search(search, index, params, body),
        [index, "_pit"] if m == Method::POST => {
            let keep_alive = params.get("keep_alive").ok_or_else(|| {
                SearchError::new(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [keep_alive] is missing;",
                )
            })?;
            Ok(Reply::Json(200, search.open_pit(index, strata_search::parse_time_value(keep_alive)?)?))
        }
        [index, "_msearch"] if get => bulk::msearch(search, Some(index), body),
        [index, "_count"] if get => {
            let mut body = object_body(body)?;
            if let Some(q) = params.get("q") {
                body["query"] = uri_query(q, params);
            }
            Ok(Reply::Json(200, search.count(index, &body)?))
        }
        [index, op @ ("_delete_by_query" | "_update_by_query")] if m == Method::POST => {
            let mut body = object_body(body)?;
            if let Some(q) = params.get("q") {
                body["query"] = uri_query(q, params);
            }
            let proceed = params.get("conflicts") == Some("proceed")
                || body.get("conflicts").and_then(Value::as_str) == Some("proceed");
            if let Some(max) = params.u64("max_docs")? {
                body["max_docs"] = json!(max);
            }
            let refresh = if params.has("refresh") { Refresh::Now } else { Refresh::No };
            Ok(Reply::Json(200, search.by_query(index, &body, *op == "_update_by_query", proceed, refresh)?))
        }
        [index, "_analyze"] if get => Ok(Reply::Json(200, search.analyze(Some(index), &object_body(body)?)?)),
        [index, "_refresh" | "_flush"] => Ok(Reply::Json(200, search.refresh(index)?)),
        [index, "_mapping" | "_mappings"] => match m {
            Method::GET => Ok(Reply::Json(200, search.get_mapping(index)?)),
            Method::PUT | Method::POST => {
                Ok(Reply::Json(200, search.put_mapping(index, &object_body(body)?)?))
            }
            _ => Err(not_allowed(method, path, "GET, PUT, POST")),
        },
        [index, "_settings"] => match m {
            Method::GET => Ok(Reply::Json(200, search.get_settings(index)?)),
            Method::PUT => Ok(Reply::Json(200, search.put_settings(index, &object_body(body)?)?)),
            _ => Err(not_allowed(method, path, "GET, PUT")),
        },
        [index, "_stats"] => {
            let mut indices = Map::new();
            for s in search.stats(Some(index))? {
                indices.insert(s.name.clone(), json!({"uuid": s.uuid, "primaries": {"docs": {"count": s.docs, "deleted": s.deleted}, "store": {"size_in_bytes": s.bytes}}, "total": {"docs": {"count": s.docs, "deleted": s.deleted}, "store": {"size_in_bytes": s.bytes}}}));
            }
            Ok(Reply::Json(
                200,
                json!({"_shards": {"total": indices.len(), "successful": indices.len(), "failed": 0}, "indices": indices}),
            ))
        }
        _ => Err(SearchError::new(
            400,
            "illegal_argument_exception",
            format!("no handler found for uri [{path}] and method [{method}]"),
        )),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn index_doc(
    search: &Search,
    index: &str,
    id: Option<&str>,
    create: bool,
    params: &Params,
    body: &[u8],
) -> Outcome {
    let not_an_object = || SearchError::mapper_parsing("failed to parse, document is empty or not an object");
    if body.trim_ascii().is_empty() {
        return Err(not_an_object());
    }
    let source = Source::parse(body).map_err(unparsable_body)?;
    if !source.value().is_object() {
        return Err(not_an_object());
    }
    let op = BulkOp::Index {
        index: index.to_string(),
        id: id.map(str::to_string),
        source,
        create,
        cond: params.conditions()?,
    };
    let w = search.write(op, params.refresh()?)?;
    Ok(Reply::Json(w.status(), w.to_json()))
}

/// `?q=` as a `query_string` query.
fn uri_query(q: &str, params: &Params) -> Value {
    let mut qs = json!({"query": q});
    if let Some(df) = params.get("df") {
        qs["default_field"] = json!(df);
    }
    if let Some(op) = params.get("default_operator") {
        qs["default_operator"] = json!(op);
    }
    json!({"query_string": qs})
}

fn run_search(search: &Search, index: &str, params: &Params, body: &[u8]) -> Outcome {
    let mut body = object_body(body)?;
    if let Some(q) = params.get("q") {
        body["query"] = uri_query(q, params);
    }
    for key in ["size", "from"] {
        if let Some(n) = params.u64(key)? {
            body[key] = json!(n);
        }
    }
    if let Some(sort) = params.get("sort") {
        body["sort"] = json!(sort);
    }
    if let Some(t) = params.get("track_total_hits") {
        body["track_total_hits"] = t.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(t == "true"));
    }
    if params.has("_source") || params.has("_source_includes") || params.has("_source_excludes") {
        let f = params.source_filter();
        body["_source"] =
            if f.disabled { json!(false) } else { json!({"includes": f.includes, "excludes": f.excludes}) };
    }
    match params.get("scroll") {
        Some(keep_alive) => Ok(Reply::Json(
            200,
            search.open_scroll(index, &body, strata_search::parse_time_value(keep_alive)?)?,
        )),
        None if body.get("pit").is_some() => {
            if index != "_all" {
                return Err(SearchError::illegal_argument(
                    "[indices] cannot be used with point in time. Do not specify any index with point in time.",
                ));
            }
            Ok(Reply::Json(200, search.search_pit(&body)?))
        }
        None => Ok(Reply::Json(200, search.search(index, &body)?)),
    }
}

/// `_search/scroll[/{id}]`: the id from the path, the body (`scroll_id`) or the query string;
/// the keep-alive likewise (`scroll`).
fn next_scroll(search: &Search, id: Option<&str>, params: &Params, body: &[u8]) -> Outcome {
    let body = object_body(body)?;
    let id = id
        .map(String::from)
        .or_else(|| body.get("scroll_id").and_then(Value::as_str).map(String::from))
        .or_else(|| params.get("scroll_id").map(String::from))
        .ok_or_else(|| {
            SearchError::new(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: scrollId is missing;",
            )
        })?;
    let keep_alive = match body.get("scroll").and_then(Value::as_str).or_else(|| params.get("scroll")) {
        Some(text) => Some(strata_search::parse_time_value(text)?),
        None => None,
    };
    Ok(Reply::Json(200, search.scroll(&id, keep_alive)?))
}

/// `DELETE _search/scroll[/{ids}]`: ids comma-separated in the path (`_all` for every one)
/// or in the body's `scroll_id` (a string or an array).
fn clear_scroll(search: &Search, ids: Option<&str>, body: &[u8]) -> Outcome {
    let body = object_body(body)?;
    let listed: Vec<String> = match (ids, body.get("scroll_id")) {
        (Some(path), _) => path.split(',').map(String::from).collect(),
        (None, Some(Value::String(id))) => vec![id.clone()],
        (None, Some(Value::Array(ids))) => ids.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    };
    let freed = if listed.iter().any(|id| id == "_all") {
        search.clear_scrolls(None)
    } else if listed.is_empty() {
        return Err(SearchError::new(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no scroll ids specified;",
        ));
    } else {
        search.clear_scrolls(Some(&listed))
    };
    let status = if freed == 0 { 404 } else { 200 };
    Ok(Reply::Json(status, json!({"succeeded": true, "num_freed": freed})))
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1}gb", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1}mb", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1}kb", n as f64 / 1024.0),
        n => format!("{n}b"),
    }
}

/// `_cat/aliases`: `alias index filter routing.index routing.search is_write_index` lines
/// (`?v` for headers), or `?format=json`.
fn cat_aliases(search: &Search, params: &Params) -> Outcome {
    let per_index = search.get_aliases(None, None)?;
    let mut rows = Vec::new();
    for (index, entry) in per_index.as_object().into_iter().flatten() {
        for (alias, opts) in entry["aliases"].as_object().into_iter().flatten() {
            let write = opts.get("is_write_index").map_or("-".to_string(), |w| w.to_string());
            // `*` marks a filtered alias, as in Elasticsearch.
            let filter = if opts.get("filter").is_some() { "*" } else { "-" };
            rows.push((alias.clone(), index.clone(), filter, write));
        }
    }
    rows.sort();
    if params.get("format") == Some("json") {
        let list: Vec<Value> = rows
            .iter()
            .map(|(a, i, f, w)| json!({"alias": a, "index": i, "filter": f, "routing.index": "-", "routing.search": "-", "is_write_index": w}))
            .collect();
        return Ok(Reply::Json(200, Value::Array(list)));
    }
    let mut text = String::new();
    if params.has("v") {
        text.push_str("alias index filter routing.index routing.search is_write_index\n");
    }
    for (a, i, f, w) in rows {
        text.push_str(&format!("{a} {i} {f} - - {w}\n"));
    }
    Ok(Reply::Text(200, text))
}

/// `_cat/indices`: a text table (`?v` for headers, `?h=` to pick columns) or `?format=json`.
fn cat_indices(search: &Search, pattern: Option<&str>, params: &Params) -> Outcome {
    let columns = [
        "health",
        "status",
        "index",
        "uuid",
        "pri",
        "rep",
        "docs.count",
        "docs.deleted",
        "store.size",
        "pri.store.size",
    ];
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut stats = search.stats(pattern)?;
    stats.sort_by(|a, b| a.name.cmp(&b.name));
    for s in stats {
        let size = if params.get("bytes") == Some("b") { s.bytes.to_string() } else { human_bytes(s.bytes) };
        let values = [
            "green".to_string(),
            "open".into(),
            s.name,
            s.uuid,
            "1".into(),
            "0".into(),
            s.docs.to_string(),
            s.deleted.to_string(),
            size.clone(),
            size,
        ];
        rows.push(columns.iter().map(|c| c.to_string()).zip(values.into_iter().map(Value::String)).collect());
    }
    let wanted: Vec<&str> = match params.get("h") {
        Some(h) => h.split(',').map(str::trim).filter(|c| columns.contains(c)).collect(),
        None => columns.to_vec(),
    };
    if params.get("format") == Some("json") {
        let list: Vec<Value> = rows
            .into_iter()
            .map(|r| Value::Object(wanted.iter().map(|c| (c.to_string(), r[*c].clone())).collect()))
            .collect();
        return Ok(Reply::Json(200, Value::Array(list)));
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    if params.has("v") {
        table.push(wanted.iter().map(|c| c.to_string()).collect());
    }
    for r in &rows {
        table.push(wanted.iter().map(|c| r[*c].as_str().unwrap_or("").to_string()).collect());
    }
    let widths: Vec<usize> =
        (0..wanted.len()).map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in table {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join(" ").trim_end());
        out.push('\n');
    }
    Ok(Reply::Text(200, out))
}

fn health(search: &Search, config: &EsConfig) -> Value {
    let n = search.index_count();
    json!({
        "cluster_name": config.cluster_name,
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": n,
        "active_shards": n,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0
    })
}
