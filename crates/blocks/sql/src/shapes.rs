//! Statement shapes: the cache of simple-protocol statements, shared by every session.
//!
//! Clients of the simple query protocol (psql scripts, `pgbench -M simple`, drivers that
//! inline values) send the same statement again and again with only its numbers changed.
//! The cache keeps, per *shape* (the text with each numeric literal cut out), the
//! statement parsed once with those literals turned into parameters `$1..$n`, and the plan
//! bound for it (valid across sessions, as a prepared statement's plan is, while the
//! catalog does not change). A hit skips parsing (and, for a SELECT, binding): the literals become
//! parameter values of exactly the type the literal has ([`crate::plan::number_literal`]),
//! and a typed parameter keeps its type when bound, so the statement means what its text
//! says. PostgreSQL parses and plans every simple query; here that is about a third of a
//! point SELECT's cost.
//!
//! The literal scanner is written by hand (sqlparser's tokenizer is most of the cost being
//! saved) and deliberately narrow: only plain `123` and `1.5` outside quotes, comments and
//! identifiers count, and a text with `$`, `?` or an `E'...'` string is not cached. A shape
//! is cached the second time it is seen, and only after checking, with unique sentinel
//! numbers in place of its literals, that each literal is a value in an expression (not a
//! type modifier such as `VARCHAR(10)`, nor a column position as in `ORDER BY 1`) and that
//! putting the literals back gives the very statement sqlparser parses from the text.

use crate::error::SqlResult;
use crate::plan::number_literal;
use crate::types::Value;
use sqlparser::ast::{self, Visit, Visitor};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// Most shapes remembered (cached, seen once, or not cacheable); the least recently used
/// goes first.
const MAX_SHAPES: usize = 512;

/// Longest text considered for the cache, in bytes.
const MAX_SHAPE_TEXT: usize = 4 * 1024;

/// Stands for a literal in a shape's key; a text containing it is never cached.
const MARK: char = '\u{1}';

/// Sentinel `i` is `SENTINEL_BASE + i`: digits no real statement of a cached shape holds,
/// since the scanner lifts every plain number out of the text.
const SENTINEL_BASE: u64 = 7_310_000_000_000_000_000;

/// Most literals in a cached text.
const MAX_LITERALS: usize = 256;

/// A text split into its shape and its numeric literals. Equal literals are one parameter,
/// so that `x % 3` in a select list still matches `GROUP BY x % 3`.
pub(crate) struct Lifted<'a> {
    /// The text with each literal replaced by [`MARK`], then, if some literal repeats,
    /// `MARK` and the parameter of each literal (texts of one shape repeat alike).
    key: String,
    /// The parameter of each literal in the text, in text order (0 is `$1`).
    slots: Vec<usize>,
    /// The distinct literals, `$1` first.
    literals: Vec<&'a str>,
}

impl Lifted<'_> {
    /// The literals as parameter values, `$1` first.
    pub(crate) fn params(&self) -> SqlResult<Vec<Value>> {
        self.literals.iter().map(|l| number_literal(l)).collect()
    }

    /// The text again, with the literal of parameter `p` written as `literal(p)`.
    fn text_with(&self, literal: impl Fn(usize) -> String) -> String {
        let mut out = String::with_capacity(self.key.len() + 20 * self.slots.len());
        for (i, part) in self.key.split(MARK).take(self.slots.len() + 1).enumerate() {
            if i > 0 {
                out.push_str(&literal(self.slots[i - 1]));
            }
            out.push_str(part);
        }
        out
    }
}

/// A cached statement: parameters `$1..$n` where the text had literals.
pub(crate) struct Shape {
    pub statement: ast::Statement,
    pub plan: crate::session::PlanSlot,
}

enum State {
    /// Seen once; cached if it comes again.
    Seen,
    Uncacheable,
    Cached(Arc<Shape>),
}

struct Entry {
    state: State,
    /// When it was last looked up, in lookups.
    used: u64,
}

/// What [`Shapes::lookup`] found for a text.
pub(crate) enum Lookup<'a> {
    /// A cached shape and the text's literals.
    Hit(Arc<Shape>, Lifted<'a>),
    /// Parse the text as usual.
    Miss,
}

#[derive(Default)]
pub(crate) struct Shapes {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    lookups: u64,
}

impl Shapes {
    /// The cached shape of `text`, building it if `text`'s shape was seen before.
    pub(crate) fn lookup<'a>(&self, text: &'a str) -> Lookup<'a> {
        let Some(lifted) = lift(text) else { return Lookup::Miss };
        let mut entries = self.entries.lock().expect("shapes lock poisoned");
        entries.lookups += 1;
        let now = entries.lookups;
        match entries.map.get_mut(&lifted.key) {
            Some(entry) => {
                entry.used = now;
                match &entry.state {
                    State::Cached(shape) => return Lookup::Hit(shape.clone(), lifted),
                    State::Uncacheable => return Lookup::Miss,
                    State::Seen => {}
                }
            }
            None => {
                entries.insert(lifted.key, State::Seen);
                return Lookup::Miss;
            }
        }
        // Built under the lock, once per shape: two parses of a short text.
        match template(text, &lifted) {
            Some(statement) => {
                let shape = Arc::new(Shape { statement, plan: Default::default() });
                entries.insert(lifted.key.clone(), State::Cached(shape.clone()));
                Lookup::Hit(shape, lifted)
            }
            None => {
                entries.insert(lifted.key, State::Uncacheable);
                Lookup::Miss
            }
        }
    }
}

impl Entries {
    fn insert(&mut self, key: String, state: State) {
        if self.map.len() >= MAX_SHAPES
            && !self.map.contains_key(&key)
            && let Some(oldest) = self.map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        self.map.insert(key, Entry { state, used: self.lookups });
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Splits `text` into its shape and literals, or `None` if it is not a candidate.
fn lift(text: &str) -> Option<Lifted<'_>> {
    if text.len() > MAX_SHAPE_TEXT || text.contains(MARK) {
        return None;
    }
    let b = text.as_bytes();
    let mut key = String::with_capacity(text.len());
    let (mut slots, mut literals) = (Vec::new(), Vec::new());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            quote @ (b'\'' | b'"') => {
                // An escape string (E'...') may hide a quote behind a backslash.
                if quote == b'\''
                    && i > 0
                    && b[i - 1].eq_ignore_ascii_case(&b'e')
                    && (i == 1 || !is_ident_byte(b[i - 2]))
                {
                    return None;
                }
                // A doubled quote inside reads as a closed string and a new one.
                i += 1 + b[i + 1..].iter().position(|&c| c == quote)? + 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i += b[i..].iter().position(|&c| c == b'\n').unwrap_or(b.len() - i);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let len = text[i + 2..].find("*/")?;
                // PostgreSQL nests block comments; leave those to the parser.
                if text[i + 2..i + 2 + len].contains("/*") {
                    return None;
                }
                i += 2 + len + 2;
            }
            b'$' | b'?' => return None,
            b'0'..=b'9' if i == 0 || !(is_ident_byte(b[i - 1]) || b[i - 1] == b'.') => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // `1e5`, `1.` and `12abc` stay in the shape as they are.
                if b.get(i).is_some_and(|&c| is_ident_byte(c) || c == b'.') {
                    continue;
                }
                key.push_str(&text[copied..start]);
                key.push(MARK);
                copied = i;
                let literal = &text[start..i];
                let slot = literals.iter().position(|l| *l == literal).unwrap_or_else(|| {
                    literals.push(literal);
                    literals.len() - 1
                });
                if literals.len() > MAX_LITERALS {
                    return None;
                }
                slots.push(slot);
            }
            c if is_ident_byte(c) || c == b'.' => {
                while i < b.len() && (is_ident_byte(b[i]) || b[i] == b'.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    key.push_str(&text[copied..]);
    if slots.len() > literals.len() {
        key.push(MARK);
        for slot in &slots {
            key.push_str(&slot.to_string());
            key.push(',');
        }
    }
    Some(Lifted { key, slots, literals })
}

/// The statement of `text` with its literals as parameters, if the shape may be cached.
fn template(text: &str, lifted: &Lifted) -> Option<ast::Statement> {
    let original = single(text)?;
    if !matches!(
        original,
        ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
            | ast::Statement::StartTransaction { .. }
            | ast::Statement::Commit { .. }
            | ast::Statement::Rollback { .. }
    ) {
        return None;
    }
    let mut statement = single(&lifted.text_with(|i| (SENTINEL_BASE + i as u64).to_string()))?;
    if statement.visit(&mut Ordinals).is_break() {
        return None;
    }
    // Each sentinel must be found as a value in an expression.
    let mut found = vec![false; lifted.literals.len()];
    let flow = ast::visit_expressions_mut(&mut statement, |e| {
        let ast::Expr::Value(v) = e else { return ControlFlow::Continue(()) };
        match &v.value {
            ast::Value::Placeholder(_) => return ControlFlow::Break(()),
            ast::Value::Number(n, false) => {
                let Some(i) = n.parse::<u64>().ok().and_then(|n| n.checked_sub(SENTINEL_BASE)) else {
                    return ControlFlow::Continue(());
                };
                let i = i as usize;
                if i >= found.len() {
                    return ControlFlow::Break(());
                }
                found[i] = true;
                v.value = ast::Value::Placeholder(format!("${}", i + 1));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    if flow.is_break() || found.contains(&false) {
        return None;
    }
    let mut check = statement.clone();
    let _ = ast::visit_expressions_mut(&mut check, |e| {
        if let ast::Expr::Value(v) = e
            && let ast::Value::Placeholder(p) = &v.value
            && let Some(literal) = p[1..].parse::<usize>().ok().and_then(|n| lifted.literals.get(n - 1))
        {
            v.value = ast::Value::Number(literal.to_string(), false);
        }
        ControlFlow::<()>::Continue(())
    });
    (check == original).then_some(statement)
}

/// The one statement of `text`, if it parses to exactly one.
fn single(text: &str) -> Option<ast::Statement> {
    let mut statements = crate::session::parse(text).ok()?;
    (statements.len() == 1).then(|| statements.pop()).flatten()
}

/// Breaks on a number used as a column position (`ORDER BY 1`, `GROUP BY 1`), which a
/// parameter cannot stand for.
struct Ordinals;

impl Visitor for Ordinals {
    type Break = ();

    fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
        let number =
            |e: &ast::Expr| matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)));
        if let Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(items), .. }) = &query.order_by
            && items.iter().any(|o| number(&o.expr))
        {
            return ControlFlow::Break(());
        }
        fn grouped_by_number(body: &ast::SetExpr, number: &dyn Fn(&ast::Expr) -> bool) -> bool {
            match body {
                ast::SetExpr::Select(select) => {
                    matches!(&select.group_by, ast::GroupByExpr::Expressions(exprs, _) if exprs.iter().any(number))
                }
                ast::SetExpr::SetOperation { left, right, .. } => {
                    grouped_by_number(left, number) || grouped_by_number(right, number)
                }
                _ => false,
            }
        }
        if grouped_by_number(&query.body, &number) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Option<(String, Vec<&str>)> {
        lift(text).map(|l| (l.key.replace(MARK, "#"), l.literals))
    }

    #[test]
    fn lifts_plain_numbers_outside_quotes_comments_and_names() {
        assert_eq!(
            shape("SELECT a1, \"x 2\", '3', 4, 5.5 FROM t2 WHERE b = -6 -- 7\n AND c = 8 /* 9 */").unwrap(),
            (
                "SELECT a1, \"x 2\", '3', #, # FROM t2 WHERE b = -# -- 7\n AND c = # /* 9 */".into(),
                vec!["4", "5.5", "6", "8"]
            )
        );
        assert_eq!(shape("SELECT 'it''s 1', 2").unwrap().1, vec!["2"]);
        assert_eq!(
            shape("SELECT x % 3 FROM t GROUP BY x % 3").unwrap().0,
            "SELECT x % # FROM t GROUP BY x % ##0,0,"
        );
        assert_eq!(shape("SELECT 1e5, 2., t.3, x::numeric(10,2)").unwrap().1, vec!["10", "2"]);
    }

    #[test]
    fn declines_placeholders_escape_strings_and_unclosed_quotes() {
        for text in ["SELECT $1", "SELECT $$a$$", "SELECT E'\\' 1'", "SELECT 'open", "SELECT /* /* */ */ 1"] {
            assert!(lift(text).is_none(), "{text}");
        }
    }

    fn cached(text: &str) -> bool {
        let lifted = lift(text).unwrap();
        template(text, &lifted).is_some()
    }

    #[test]
    fn caches_values_in_expressions_only() {
        assert!(cached("SELECT abalance FROM accounts WHERE aid = 42"));
        assert!(cached("UPDATE t SET a = a + 5 WHERE id = 7"));
        assert!(cached("INSERT INTO t VALUES (1, 2.5, 'x')"));
        assert!(cached("SELECT * FROM t ORDER BY a LIMIT 10"));
        assert!(cached("BEGIN"));
        assert!(cached("SELECT x % 3, count(*) FROM t GROUP BY x % 3"));
        assert!(!cached("SELECT a FROM t ORDER BY 1"));
        assert!(!cached("SELECT a, count(*) FROM t GROUP BY 1"));
        assert!(!cached("SELECT CAST(a AS VARCHAR(10)) FROM t"));
        assert!(!cached("CREATE TABLE t (a INT DEFAULT 5)"));
        assert!(!cached("SELECT 1; SELECT 2"));
    }

    #[test]
    fn the_least_recently_used_shape_goes_first() {
        let shapes = Shapes::default();
        let hot = "SELECT a FROM t WHERE b = 1";
        for _ in 0..2 {
            shapes.lookup(hot);
        }
        for i in 0..MAX_SHAPES + 10 {
            shapes.lookup(&format!("SELECT c{i} FROM t WHERE b = 1"));
            assert!(matches!(shapes.lookup(hot), Lookup::Hit(..)));
        }
        let entries = shapes.entries.lock().unwrap();
        assert_eq!(entries.map.len(), MAX_SHAPES);
        assert!(!entries.map.contains_key("SELECT c0 FROM t WHERE b = \u{1}"));
    }

    #[test]
    fn a_template_runs_with_the_literals_as_params() {
        let text = "SELECT a FROM t WHERE b = 3 AND c < 4.25";
        let lifted = lift(text).unwrap();
        let statement = template(text, &lifted).unwrap();
        assert_eq!(statement.to_string(), "SELECT a FROM t WHERE b = $1 AND c < $2");
        assert!(matches!(lifted.params().unwrap()[..], [Value::Int(3), Value::Numeric(_)]));
    }
}
