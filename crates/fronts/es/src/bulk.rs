//! The NDJSON APIs: `_bulk` (action lines `index`/`create`/`update`/`delete`, each but
//! `delete` followed by its document or update body) and `_msearch` (header and body
//! pairs). A malformed line fails the request, as in Elasticsearch; a failing operation
//! fails only its own item.

use crate::routes::Params;
use crate::{Outcome, Reply};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use strata_search::{BulkOp, Conditions, DocWrite, Search, SearchError, Source};

fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

fn malformed(line: usize, why: impl std::fmt::Display) -> SearchError {
    SearchError::illegal_argument(format!("Malformed action/metadata line [{line}], {why}"))
}

fn unparsable(line: usize, what: &str, err: serde_json::Error) -> SearchError {
    SearchError::new(400, "x_content_parse_exception", format!("[{line}] failed to parse the {what}: {err}"))
}

fn meta_u64(meta: &Value, key: &str, line: usize) -> Result<Option<u64>, SearchError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| malformed(line, format!("[{key}] must be a number"))),
    }
}

fn id_of(meta: &Value) -> Option<String> {
    meta.get("_id")
        .and_then(|v| v.as_str().map(str::to_string).or_else(|| (!v.is_null()).then(|| v.to_string())))
}

fn required_id(meta: &Value) -> Result<String, SearchError> {
    id_of(meta).ok_or_else(|| {
        SearchError::new(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
    })
}

/// Parses a bulk body into operations.
pub(crate) fn parse(body: &[u8], default_index: Option<&str>) -> Result<Vec<BulkOp>, SearchError> {
    let mut ops = Vec::new();
    let mut iter = lines(body);
    while let Some((n, line)) = iter.next() {
        let action: Value = serde_json::from_slice(line)
            .map_err(|e| malformed(n, format!("expected START_OBJECT but could not read it: {e}")))?;
        let obj = action
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| malformed(n, "expected START_OBJECT with one action"))?;
        let (kind, meta) = obj.iter().next().expect("one action");
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .ok_or_else(|| {
                SearchError::new(
                    400,
                    "action_request_validation_exception",
                    format!("Validation Failed: 1: index is missing for the action on line [{n}];"),
                )
            })?
            .to_string();
        let cond = Conditions {
            if_seq_no: meta_u64(meta, "if_seq_no", n)?,
            if_primary_term: meta_u64(meta, "if_primary_term", n)?,
            external_version: if matches!(
                meta.get("version_type").and_then(Value::as_str),
                Some("external") | Some("external_gte")
            ) {
                meta_u64(meta, "version", n)?
            } else {
                None
            },
        };
        let mut next_line = |what: &str| {
            iter.next().ok_or_else(|| SearchError::illegal_argument(format!("The bulk request must be terminated by a newline [\\n]; the {what} after line [{n}] is missing")))
        };
        let op = match kind.as_str() {
            "index" | "create" => {
                let (m, line) = next_line("document")?;
                let source = Source::parse(line).map_err(|e| unparsable(m, "document", e))?;
                BulkOp::Index {
                    index,
                    id: id_of(meta),
                    source,
                    create: kind == "create" || meta.get("op_type").and_then(Value::as_str) == Some("create"),
                    cond,
                }
            }
            "update" => {
                let id = required_id(meta)?;
                let (m, line) = next_line("update body")?;
                let body = serde_json::from_slice(line).map_err(|e| unparsable(m, "update body", e))?;
                BulkOp::Update { index, id, body, cond }
            }
            "delete" => {
                let id = required_id(meta)?;
                BulkOp::Delete { index, id, cond }
            }
            other => {
                return Err(malformed(
                    n,
                    format!("expected one of [create, delete, index, update] but found [{other}]"),
                ));
            }
        };
        ops.push(op);
    }
    Ok(ops)
}

/// `POST /_bulk`.
pub(crate) fn run(search: &Search, default_index: Option<&str>, params: &Params, body: &[u8]) -> Outcome {
    let started = std::time::Instant::now();
    let ops = parse(body, default_index)?;
    if ops.is_empty() {
        return Err(SearchError::new(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ));
    }
    let actions: Vec<(&'static str, String, Option<String>)> = ops
        .iter()
        .map(|op| {
            let (index, id) = match op {
                BulkOp::Index { index, id, .. } => (index.clone(), id.clone()),
                BulkOp::Update { index, id, .. } | BulkOp::Delete { index, id, .. } => {
                    (index.clone(), Some(id.clone()))
                }
            };
            (op.action(), index, id)
        })
        .collect();
    let results = search.bulk(ops, params.refresh()?)?;
    let items: Vec<Item> = results
        .into_iter()
        .zip(actions)
        .map(|(outcome, (action, index, id))| Item { action, index, id, outcome })
        .collect();
    let answer = Answer {
        took: started.elapsed().as_millis() as u64,
        errors: items.iter().any(|item| item.outcome.is_err()),
        items,
    };
    Ok(Reply::Serialized(200, serde_json::to_string(&answer).map_err(SearchError::internal)?))
}

/// A bulk answer, written straight to text: building a `Value` tree for each of a thousand
/// items, then serializing it, was a sixth of a bulk request's CPU under `perf`.
#[derive(Serialize)]
struct Answer {
    took: u64,
    errors: bool,
    items: Vec<Item>,
}

/// `{"<action>": {...}}` for one operation.
struct Item {
    action: &'static str,
    index: String,
    id: Option<String>,
    outcome: Result<DocWrite, SearchError>,
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Members<'a>(&'a Item);
        impl Serialize for Members<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let item = self.0;
                let mut map = serializer.serialize_map(None)?;
                match &item.outcome {
                    Ok(write) => {
                        write.serialize_members(&mut map)?;
                        map.serialize_entry("status", &write.status())?;
                    }
                    Err(err) => {
                        map.serialize_entry("_index", &item.index)?;
                        map.serialize_entry("_id", &item.id)?;
                        map.serialize_entry("status", &err.status)?;
                        map.serialize_entry("error", &err.to_json()["error"])?;
                    }
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.action, &Members(self))?;
        map.end()
    }
}

/// `POST /_msearch`.
pub(crate) fn msearch(search: &Search, default_index: Option<&str>, body: &[u8]) -> Outcome {
    let started = std::time::Instant::now();
    let mut responses = Vec::new();
    let mut iter = lines(body);
    while let Some((n, header)) = iter.next() {
        let header: Value = serde_json::from_slice(header).map_err(|e| malformed(n, e))?;
        let (_, body_line) = iter.next().ok_or_else(|| {
            SearchError::illegal_argument(format!("msearch: the search body after line [{n}] is missing"))
        })?;
        let query: Value = serde_json::from_slice(body_line)
            .map_err(|e| SearchError::new(400, "x_content_parse_exception", e.to_string()))?;
        let index = match header.get("index") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            _ => default_index.unwrap_or("_all").to_string(),
        };
        responses.push(match search.search(&index, &query) {
            Ok(mut r) => {
                r["status"] = json!(200);
                r
            }
            Err(e) => e.to_json(),
        });
    }
    Ok(Reply::Json(200, json!({"took": started.elapsed().as_millis() as u64, "responses": responses})))
}
