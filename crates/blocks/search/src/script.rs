//! The script subset updates accept: statements on `ctx._source`, separated by `;`.
//!
//! ```text
//!   ctx._source.views += 1; ctx._source.tags.add(params.tag); ctx._source.title = 'New'
//!   ctx._source.remove('draft'); ctx._source.price -= params.discount
//! ```
//!
//! Values are literals (numbers, quoted strings, `true`, `false`, `null`), `params.<name>`
//! or `ctx._source.<path>`. Anything else is an error naming the statement: this is not
//! Painless, and it says so rather than guessing.

use crate::error::{SearchError, SearchResult};
use serde_json::{Map, Value};

fn fail(stmt: &str, why: &str) -> SearchError {
    SearchError::new(
        400,
        "script_exception",
        format!(
            "compile error: {why} in [{stmt}] (supported: assignments, +=, -=, .add(), .remove() on ctx._source)"
        ),
    )
}

/// Runs a script (`"source"` string or `{"source": ..., "params": {...}}`) on a document.
pub fn run(script: &Value, doc: &mut Value) -> SearchResult<()> {
    let (source, params) = match script {
        Value::String(s) => (s.as_str(), Value::Object(Map::new())),
        Value::Object(o) => (
            o.get("source")
                .or_else(|| o.get("inline"))
                .and_then(Value::as_str)
                .ok_or_else(|| fail("", "missing source"))?,
            o.get("params").cloned().unwrap_or(Value::Object(Map::new())),
        ),
        _ => return Err(fail("", "a script must be a string or an object")),
    };
    for stmt in split_statements(source) {
        let stmt = stmt.trim();
        if !stmt.is_empty() {
            statement(stmt, doc, &params)?;
        }
    }
    Ok(())
}

fn split_statements(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quote) = (0, None);
    for (i, c) in source.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                out.push(&source[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&source[start..]);
    out
}

fn path_of<'a>(stmt: &str, target: &'a str) -> SearchResult<Vec<&'a str>> {
    let rest = target
        .trim()
        .strip_prefix("ctx._source")
        .ok_or_else(|| fail(stmt, "the target must be ctx._source"))?;
    Ok(rest.split('.').filter(|p| !p.is_empty()).collect())
}

fn get<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, p| v.get(*p))
}

fn get_mut<'a>(stmt: &str, doc: &'a mut Value, path: &[&str]) -> SearchResult<&'a mut Value> {
    let mut node = doc;
    for part in path {
        let obj = node
            .as_object_mut()
            .ok_or_else(|| fail(stmt, "the path goes through a value that is not an object"))?;
        node = obj.entry(part.to_string()).or_insert(Value::Null);
    }
    Ok(node)
}

fn value(stmt: &str, expr: &str, doc: &Value, params: &Value) -> SearchResult<Value> {
    let expr = expr.trim();
    if let Some(name) = expr.strip_prefix("params.") {
        return params.get(name).cloned().ok_or_else(|| fail(stmt, &format!("no param [{name}]")));
    }
    if expr.starts_with("ctx._source") {
        return Ok(get(doc, &path_of(stmt, expr)?).cloned().unwrap_or(Value::Null));
    }
    if expr.len() >= 2 && expr.starts_with('\'') && expr.ends_with('\'') {
        return Ok(Value::String(expr[1..expr.len() - 1].to_string()));
    }
    serde_json::from_str(expr).map_err(|_| fail(stmt, &format!("cannot read the value [{expr}]")))
}

fn arith(stmt: &str, a: &Value, b: &Value, sign: f64) -> SearchResult<Value> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Ok(Value::from(x + sign as i64 * y));
            }
            let sum = x.as_f64().unwrap_or(0.0) + sign * y.as_f64().unwrap_or(0.0);
            Ok(serde_json::Number::from_f64(sum).map(Value::Number).unwrap_or(Value::Null))
        }
        (Value::String(x), y) if sign > 0.0 => Ok(Value::String(format!(
            "{x}{}",
            y.as_str().map(str::to_string).unwrap_or_else(|| y.to_string())
        ))),
        (Value::Null, y) => Ok(y.clone()),
        _ => Err(fail(stmt, "+= and -= need numbers")),
    }
}

fn statement(stmt: &str, doc: &mut Value, params: &Value) -> SearchResult<()> {
    for (op, sign) in [("+=", 1.0), ("-=", -1.0)] {
        if let Some((target, expr)) = stmt.split_once(op) {
            let path = path_of(stmt, target)?;
            let rhs = value(stmt, expr, doc, params)?;
            let current = get(doc, &path).cloned().unwrap_or(Value::Null);
            *get_mut(stmt, doc, &path)? = arith(stmt, &current, &rhs, sign)?;
            return Ok(());
        }
    }
    if let Some((call, arg)) = stmt.strip_suffix(')').and_then(|s| s.split_once('(')) {
        let (target, method) = call.rsplit_once('.').ok_or_else(|| fail(stmt, "unknown call"))?;
        let path = path_of(stmt, target)?;
        let arg = value(stmt, arg, doc, params)?;
        match method {
            "add" => {
                let node = get_mut(stmt, doc, &path)?;
                if node.is_null() {
                    *node = Value::Array(Vec::new());
                }
                node.as_array_mut().ok_or_else(|| fail(stmt, "add() needs a list"))?.push(arg);
            }
            "remove" => {
                let node = get_mut(stmt, doc, &path)?;
                match (node, arg) {
                    (Value::Object(o), Value::String(key)) => {
                        o.remove(&key);
                    }
                    (Value::Array(items), Value::Number(i)) => {
                        let i = i.as_u64().unwrap_or(u64::MAX) as usize;
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                    _ => return Err(fail(stmt, "remove() needs a field name or a list index")),
                }
            }
            _ => return Err(fail(stmt, &format!("unknown method [{method}]"))),
        }
        return Ok(());
    }
    if let Some((target, expr)) = stmt.split_once('=') {
        let path = path_of(stmt, target)?;
        if path.is_empty() {
            return Err(fail(stmt, "cannot replace ctx._source"));
        }
        let rhs = value(stmt, expr, doc, params)?;
        *get_mut(stmt, doc, &path)? = rhs;
        return Ok(());
    }
    Err(fail(stmt, "unsupported statement"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_the_supported_statements() {
        let mut doc = json!({"views": 1, "tags": ["a"], "draft": true, "price": 10.5});
        let script = json!({"source": "ctx._source.views += 2; ctx._source.tags.add(params.t); ctx._source.remove('draft'); ctx._source.title = 'x;y'; ctx._source.price -= 0.5", "params": {"t": "b"}});
        run(&script, &mut doc).unwrap();
        assert_eq!(doc, json!({"views": 3, "tags": ["a", "b"], "price": 10.0, "title": "x;y"}));
        assert_eq!(run(&json!("ctx.op = 'delete'"), &mut doc).unwrap_err().kind, "script_exception");
    }
}
