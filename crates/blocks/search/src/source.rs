//! A document's `_source` as stored ([`Source`]), `_source` filtering (`_source: false`, `"_source": ["title", "author.*"]`,
//! `{"includes": [...], "excludes": [...]}`), the wildcard matching it and index patterns
//! use, and the URL-safe base64 of generated ids.

use serde_json::{Map, Value};

/// A document's `_source`: the JSON object, and the text stored for it.
///
/// A client's document keeps the text it was sent in, as Elasticsearch keeps `_source`;
/// that also spares serializing every document a second time on its way to core.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    value: Value,
    text: Vec<u8>,
}

impl Source {
    /// Parses a document as a client sent it; the text is kept, trimmed of whitespace.
    pub fn parse(text: &[u8]) -> serde_json::Result<Source> {
        let text = text.trim_ascii();
        Ok(Source { value: serde_json::from_slice(text)?, text: text.to_vec() })
    }

    /// A document built in the server (an update's result, a collection's row).
    pub fn from_value(value: Value) -> Source {
        let text = serde_json::to_vec(&value).expect("a JSON value always serializes");
        Source { value, text }
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn text(&self) -> &[u8] {
        &self.text
    }

    pub fn into_parts(self) -> (Value, Vec<u8>) {
        (self.value, self.text)
    }
}

/// Which parts of `_source` an answer carries.
#[derive(Clone, Debug, Default)]
pub struct SourceFilter {
    pub disabled: bool,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

impl SourceFilter {
    /// Reads the `_source` part of a search body (or of `?_source=`).
    pub fn from_json(v: Option<&Value>) -> SourceFilter {
        match v {
            None => SourceFilter::default(),
            Some(Value::Bool(b)) => SourceFilter { disabled: !b, ..Default::default() },
            Some(Value::String(s)) if s == "false" => SourceFilter { disabled: true, ..Default::default() },
            Some(Value::String(s)) if s == "true" => SourceFilter::default(),
            Some(Value::Object(o)) => SourceFilter {
                disabled: false,
                includes: o.get("includes").or_else(|| o.get("include")).map(list).unwrap_or_default(),
                excludes: o.get("excludes").or_else(|| o.get("exclude")).map(list).unwrap_or_default(),
            },
            Some(other) => SourceFilter { disabled: false, includes: list(other), excludes: Vec::new() },
        }
    }

    /// Query-string form: `_source`, `_source_includes`, `_source_excludes`.
    pub fn from_params(source: Option<&str>, includes: Option<&str>, excludes: Option<&str>) -> SourceFilter {
        let mut filter = match source {
            Some(s) => SourceFilter::from_json(Some(&Value::String(s.to_string()))),
            None => SourceFilter::default(),
        };
        if let Some(i) = includes {
            filter.includes = list(&Value::String(i.to_string()));
        }
        if let Some(e) = excludes {
            filter.excludes = list(&Value::String(e.to_string()));
        }
        filter
    }

    /// The filtered source, or `None` when `_source` is off.
    pub fn apply(&self, doc: &Value) -> Option<Value> {
        if self.disabled {
            return None;
        }
        if self.includes.is_empty() && self.excludes.is_empty() {
            return Some(doc.clone());
        }
        Some(self.filter(doc, ""))
    }

    fn included(&self, path: &str) -> bool {
        self.includes.is_empty() || self.includes.iter().any(|p| glob_match(p, path))
    }

    /// Whether an include pattern may match something below `path`.
    fn reaches_inside(&self, path: &str) -> bool {
        let prefix = format!("{path}.");
        self.includes
            .iter()
            .any(|p| p.starts_with(&prefix) || p.starts_with('*') || glob_match(&format!("{p}.*"), &prefix))
    }

    /// Keeps an object's wanted members; `inside` is set below an included object.
    fn filter(&self, value: &Value, prefix: &str) -> Value {
        self.filter_inner(value, prefix, false).unwrap_or_else(|| Value::Object(Map::new()))
    }

    fn filter_inner(&self, value: &Value, prefix: &str, inside: bool) -> Option<Value> {
        let Value::Object(obj) = value else { return Some(value.clone()) };
        let mut out = Map::new();
        for (k, v) in obj {
            let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            if self.excludes.iter().any(|p| glob_match(p, &path)) {
                continue;
            }
            let kept = if inside || self.included(&path) {
                if v.is_object() { self.filter_inner(v, &path, true) } else { Some(v.clone()) }
            } else if v.is_object() && self.reaches_inside(&path) {
                self.filter_inner(v, &path, false).filter(|o| o.as_object().is_some_and(|o| !o.is_empty()))
            } else {
                None
            };
            if let Some(kept) = kept {
                out.insert(k.clone(), kept);
            }
        }
        Some(Value::Object(out))
    }
}

/// Wildcard matching: `*` is any run of characters, `?` one character.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// URL-safe base64 without padding.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_by_includes_and_excludes() {
        let doc = json!({"title": "t", "author": {"name": "n", "email": "e"}, "body": "b"});
        let f = SourceFilter::from_json(Some(&json!(["title", "author.name"])));
        assert_eq!(f.apply(&doc), Some(json!({"title": "t", "author": {"name": "n"}})));
        let f = SourceFilter::from_json(Some(&json!({"excludes": ["author.email", "body"]})));
        assert_eq!(f.apply(&doc), Some(json!({"title": "t", "author": {"name": "n"}})));
        assert_eq!(SourceFilter::from_json(Some(&json!(false))).apply(&doc), None);
    }

    #[test]
    fn a_parsed_source_keeps_its_text() {
        let sent = b" {\"b\": 1.50, \"a\": [1, 2]}\r\n";
        let source = Source::parse(sent).unwrap();
        assert_eq!(source.text(), &sent[1..sent.len() - 2]);
        assert_eq!(source.value(), &json!({"a": [1, 2], "b": 1.5}));
        let built = Source::from_value(json!({"b": 1, "a": "x"}));
        assert_eq!(serde_json::from_slice::<Value>(built.text()).unwrap(), *built.value());
        assert!(Source::parse(b"{\"a\": ").is_err());
    }

    #[test]
    fn globs_and_base64() {
        assert!(glob_match("logs-*", "logs-2024") && !glob_match("logs-*", "log"));
        assert!(glob_match("a?c*", "abcdef"));
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0u8; 15]).len(), 20);
    }
}
