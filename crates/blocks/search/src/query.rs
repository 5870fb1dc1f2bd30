//! The query DSL: Elasticsearch's JSON queries turned into tantivy queries.
//!
//! Full text: `match` (operator, fuzziness, prefix_length, minimum_should_match),
//! `match_phrase` (slop), `match_phrase_prefix`, `multi_match` (best_fields, most_fields,
//! cross_fields, phrase, phrase_prefix; `field^boost`), `query_string` and
//! `simple_query_string` (tantivy's query parser). Term level: `term`, `terms`, `range`
//! (numbers, dates with date math, strings), `exists`, `prefix`, `wildcard`, `regexp`,
//! `fuzzy`, `ids`. Compound: `bool` (must, should, must_not, filter, minimum_should_match),
//! `constant_score`, `dis_max`, `function_score` (`function_score.rs`), `nested` (objects
//! are flattened, so its inner query runs on the flattened fields). Unknown fields match
//! nothing, as in Elasticsearch; malformed queries are a `parsing_exception`.

use crate::analysis;
use crate::dates;
use crate::error::{SearchError, SearchResult};
use crate::function_score;
use crate::fuzzy;
use crate::mapping::FieldType;
use crate::schema::{Compiled, FieldInfo, date_value};
use serde_json::{Map, Value};
use std::ops::Bound;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EmptyQuery, Occur,
    PhrasePrefixQuery, PhraseQuery, Query, QueryParser, RangeQuery, RegexQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DateTime, Searcher, Term};

/// What building a query needs: the mapping, the searcher (for fuzzy and prefix
/// expansion) and the clock (for date math).
pub struct Ctx<'a> {
    pub compiled: &'a Compiled,
    pub searcher: &'a Searcher,
    pub now_ms: i64,
}

fn parsing(msg: impl Into<String>) -> SearchError {
    SearchError::parsing(msg)
}

/// The single `{name: body}` pair of a query object.
fn single(v: &Value, what: &str) -> SearchResult<(String, Value)> {
    let obj = v
        .as_object()
        .ok_or_else(|| parsing(format!("[{what}] query malformed, no start_object after query name")))?;
    let mut iter = obj.iter().filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
    let (k, v) = iter.next().ok_or_else(|| parsing(format!("[{what}] query malformed, no field")))?;
    if iter.next().is_some() {
        return Err(parsing(format!(
            "[{what}] query doesn't support multiple fields, found [{}]",
            obj.keys().cloned().collect::<Vec<_>>().join("] and [")
        )));
    }
    Ok((k.clone(), v.clone()))
}

fn boost_of(v: &Value) -> f32 {
    v.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32
}

fn boosted(q: Box<dyn Query>, boost: f32) -> Box<dyn Query> {
    if (boost - 1.0).abs() < f32::EPSILON { q } else { Box::new(BoostQuery::new(q, boost)) }
}

fn text_of(v: &Value) -> SearchResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(parsing(format!(
            "[match] unknown token [{}] after [query]",
            if other.is_object() { "START_OBJECT" } else { "START_ARRAY" }
        ))),
    }
}

/// `minimum_should_match` for `n` optional clauses: `2`, `-1`, `75%`, `-25%`.
pub fn minimum_should_match(v: &Value, n: usize) -> SearchResult<usize> {
    let s = match v {
        Value::Number(num) => num.to_string(),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(parsing(format!(
                "[minimum_should_match] must be a number or a percentage, got {other}"
            )));
        }
    };
    let bad = || parsing(format!("failed to parse [minimum_should_match] value [{s}]"));
    let wanted: i64 = if let Some(pct) = s.strip_suffix('%') {
        let p: f64 = pct.parse().map_err(|_| bad())?;
        let count = (n as f64 * p.abs() / 100.0).floor() as i64;
        if p < 0.0 { n as i64 - count } else { count }
    } else {
        let k: i64 = s.parse().map_err(|_| bad())?;
        if k < 0 { n as i64 + k } else { k }
    };
    Ok(wanted.clamp(0, n as i64) as usize)
}

impl Ctx<'_> {
    fn field(&self, path: &str) -> Option<&FieldInfo> {
        self.compiled.field(path)
    }

    /// The term a value means in a field, as a term query reads it (no analysis, but a
    /// keyword's normalizer applies).
    fn term(&self, info: &FieldInfo, value: &Value) -> SearchResult<Term> {
        let field = info.field;
        let fail = || {
            SearchError::new(
                400,
                "query_shard_exception",
                format!(
                    "failed to create query: can't parse [{value}] as [{}] for field [{}]",
                    info.leaf.ty.name(),
                    info.path
                ),
            )
        };
        Ok(match info.leaf.ty {
            FieldType::Text => Term::from_field_text(field, &text_of(value)?),
            FieldType::Keyword => {
                let text = text_of(value)?;
                match &info.leaf.analyzer {
                    Some(normalizer) => {
                        let mut analyzer = self.compiled.analyzer(normalizer)?;
                        let normalized = analysis::terms(&mut analyzer, &text)
                            .into_iter()
                            .map(|(_, t)| t)
                            .next()
                            .unwrap_or_default();
                        Term::from_field_text(field, &normalized)
                    }
                    None => Term::from_field_text(field, &text),
                }
            }
            ty if ty.is_integer() => {
                let n = match value {
                    Value::Number(n) => {
                        n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    }
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                Term::from_field_i64(field, n.ok_or_else(fail)?)
            }
            ty if ty.is_float() => {
                let f = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                Term::from_field_f64(field, f.ok_or_else(fail)?)
            }
            FieldType::Boolean => {
                let b = match value {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) if s == "true" => Some(true),
                    Value::String(s) if s == "false" => Some(false),
                    _ => None,
                };
                Term::from_field_bool(field, b.ok_or_else(fail)?)
            }
            _ => {
                let ms = match value {
                    Value::String(s) => dates::eval(s, self.now_ms, false),
                    other => date_value(other),
                };
                Term::from_field_date_for_search(field, DateTime::from_timestamp_millis(ms.ok_or_else(fail)?))
            }
        })
    }

    /// Documents that have a value at `path` (through `_field_names`), unscored.
    fn exists(&self, path: &str, boost: f32) -> Box<dyn Query> {
        let term = Term::from_field_text(self.compiled.field_names, path);
        Box::new(ConstScoreQuery::new(Box::new(TermQuery::new(term, IndexRecordOption::Basic)), boost))
    }

    /// Documents with one of these `_id`s, unscored.
    fn ids(&self, values: &[Value], boost: f32) -> Box<dyn Query> {
        let terms =
            values.iter().map(|v| Term::from_field_text(self.compiled.id, &text_of(v).unwrap_or_default()));
        Box::new(ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), boost))
    }

    fn term_query(&self, info: &FieldInfo, term: Term) -> Box<dyn Query> {
        let option = if info.leaf.ty == FieldType::Text {
            IndexRecordOption::WithFreqs
        } else {
            IndexRecordOption::Basic
        };
        Box::new(TermQuery::new(term, option))
    }

    pub fn build(&self, q: &Value) -> SearchResult<Box<dyn Query>> {
        let obj = q.as_object().ok_or_else(|| parsing("query malformed, must start with start_object"))?;
        if obj.len() != 1 {
            return Err(parsing(format!(
                "[_na] query malformed, {}",
                if obj.is_empty() {
                    "empty clause found".to_string()
                } else {
                    format!("more than one query: [{}]", obj.keys().cloned().collect::<Vec<_>>().join(", "))
                }
            )));
        }
        let (kind, body) = obj.iter().next().expect("one entry");
        match kind.as_str() {
            "match_all" => Ok(boosted(Box::new(AllQuery), boost_of(body))),
            "match_none" => Ok(Box::new(EmptyQuery)),
            "match" => self.match_query(body, false),
            "match_phrase" => self.match_query(body, true),
            "match_phrase_prefix" => self.phrase_prefix(body),
            "match_bool_prefix" => self.match_query(body, false),
            "multi_match" => self.multi_match(body),
            "combined_fields" => self.multi_match(&{
                let mut b = body.clone();
                b["type"] = Value::String("most_fields".into());
                b
            }),
            "query_string" => self.query_string(body, false),
            "simple_query_string" => self.query_string(body, true),
            "term" => self.term_level(body, "term"),
            "terms" => self.terms(body),
            "range" => self.range(body),
            "exists" => {
                let field = body
                    .get("field")
                    .and_then(Value::as_str)
                    .ok_or_else(|| parsing("[exists] must be provided with a [field]"))?;
                Ok(self.exists(field, boost_of(body)))
            }
            "prefix" | "wildcard" | "regexp" => self.pattern(kind, body),
            "fuzzy" => self.fuzzy(body),
            "ids" => {
                let values = body
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| parsing("[ids] requires [values]"))?;
                Ok(self.ids(values, boost_of(body)))
            }
            "bool" => self.bool_query(body),
            "constant_score" => {
                let filter = body
                    .get("filter")
                    .ok_or_else(|| parsing("[constant_score] requires a 'filter' element"))?;
                Ok(Box::new(ConstScoreQuery::new(self.build(filter)?, boost_of(body))))
            }
            "dis_max" => {
                let queries = body
                    .get("queries")
                    .and_then(Value::as_array)
                    .ok_or_else(|| parsing("[dis_max] requires 'queries' field"))?;
                let disjuncts = queries.iter().map(|q| self.build(q)).collect::<SearchResult<Vec<_>>>()?;
                let tie = body.get("tie_breaker").and_then(Value::as_f64).unwrap_or(0.0) as f32;
                Ok(boosted(Box::new(DisjunctionMaxQuery::with_tie_breaker(disjuncts, tie)), boost_of(body)))
            }
            "nested" => {
                let inner = body.get("query").ok_or_else(|| parsing("[nested] requires 'query' field"))?;
                self.build(inner)
            }
            "function_score" => function_score::build(self, body),
            other => Err(parsing(format!("unknown query [{other}]"))),
        }
    }

    /// The bool query: `must` and `filter` required (`filter` without score), `should`
    /// optional unless nothing else is required, `must_not` excluded.
    fn bool_query(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let obj = body.as_object().ok_or_else(|| parsing("[bool] query malformed"))?;
        let clauses = |key: &str| -> SearchResult<Vec<Box<dyn Query>>> {
            match obj.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items.iter().map(|q| self.build(q)).collect(),
                Some(one @ Value::Object(_)) => Ok(vec![self.build(one)?]),
                Some(_) => Err(parsing(format!("[bool] query does not support [{key}]"))),
            }
        };
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "must"
                    | "filter"
                    | "should"
                    | "must_not"
                    | "minimum_should_match"
                    | "boost"
                    | "_name"
                    | "adjust_pure_negative"
            ) {
                return Err(parsing(format!("[bool] query does not support [{key}]")));
            }
        }
        let (must, filter, should, must_not) =
            (clauses("must")?, clauses("filter")?, clauses("should")?, clauses("must_not")?);
        let required = !must.is_empty() || !filter.is_empty();
        let n_should = should.len();
        let msm = match obj.get("minimum_should_match") {
            Some(v) => minimum_should_match(v, n_should)?,
            None if !required && n_should > 0 => 1,
            None => 0,
        };
        let mut subs: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        subs.extend(must.into_iter().map(|q| (Occur::Must, q)));
        subs.extend(
            filter
                .into_iter()
                .map(|q| (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)) as Box<dyn Query>)),
        );
        if msm > 0 && msm == n_should {
            subs.extend(should.into_iter().map(|q| (Occur::Must, q)));
        } else {
            subs.extend(should.into_iter().map(|q| (Occur::Should, q)));
        }
        let positive = subs.iter().any(|(o, _)| *o != Occur::MustNot);
        subs.extend(must_not.into_iter().map(|q| (Occur::MustNot, q)));
        if !positive {
            // Only exclusions (or nothing): everything else matches, unscored.
            subs.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(AllQuery),
                    if n_should == 0 && subs.is_empty() { 1.0 } else { 0.0 },
                )),
            ));
        }
        let query = if msm > 0 && msm < n_should {
            BooleanQuery::with_minimum_required_clauses(subs, msm)
        } else {
            BooleanQuery::new(subs)
        };
        Ok(boosted(Box::new(query), boost_of(body)))
    }

    /// `{"field": "text"}` or `{"field": {"query": ..., options}}`.
    fn field_body(&self, body: &Value, what: &str) -> SearchResult<(String, Map<String, Value>)> {
        let (field, spec) = single(body, what)?;
        let opts = match spec {
            Value::Object(o) => o,
            other => {
                let mut o = Map::new();
                o.insert(
                    if matches!(what, "term" | "prefix" | "wildcard" | "regexp" | "fuzzy") {
                        "value".into()
                    } else {
                        "query".into()
                    },
                    other,
                );
                o
            }
        };
        Ok((field, opts))
    }

    fn match_query(&self, body: &Value, phrase: bool) -> SearchResult<Box<dyn Query>> {
        let what = if phrase { "match_phrase" } else { "match" };
        let (field, opts) = self.field_body(body, what)?;
        let query = opts.get("query").ok_or_else(|| parsing(format!("[{what}] requires query value")))?;
        let text = text_of(query)?;
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        let q = if phrase {
            let slop = opts.get("slop").and_then(Value::as_u64).unwrap_or(0) as u32;
            self.phrase(&field, &text, slop, opts.get("analyzer").and_then(Value::as_str))?
        } else {
            self.match_text(&field, &text, &opts)?
        };
        Ok(boosted(q, boost))
    }

    fn analyzed(
        &self,
        info: &FieldInfo,
        text: &str,
        analyzer: Option<&str>,
    ) -> SearchResult<Vec<(usize, String)>> {
        let name = analyzer.unwrap_or_else(|| info.leaf.query_analyzer());
        let mut analyzer = self.compiled.analyzer(name)?;
        Ok(analysis::terms(&mut analyzer, text))
    }

    /// A `match` on one field: analyzed terms, combined by `operator` and
    /// `minimum_should_match`, each fuzzy when `fuzziness` is set.
    pub fn match_text(
        &self,
        field: &str,
        text: &str,
        opts: &Map<String, Value>,
    ) -> SearchResult<Box<dyn Query>> {
        let Some(info) = self.field(field) else { return Ok(Box::new(EmptyQuery)) };
        if info.leaf.ty != FieldType::Text {
            return match self.term(info, &Value::String(text.to_string())) {
                Ok(term) => Ok(self.term_query(info, term)),
                Err(_) if opts.get("lenient").and_then(Value::as_bool) == Some(true) => {
                    Ok(Box::new(EmptyQuery))
                }
                Err(e) => Err(e),
            };
        }
        let terms = self.analyzed(info, text, opts.get("analyzer").and_then(Value::as_str))?;
        if terms.is_empty() {
            let all = opts.get("zero_terms_query").and_then(Value::as_str) == Some("all");
            return Ok(if all { Box::new(AllQuery) } else { Box::new(EmptyQuery) });
        }
        // Terms at one position (n-grams, stacked tokens) are alternatives.
        let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
        for (pos, term) in terms {
            match groups.last_mut() {
                Some((p, list)) if *p == pos => list.push(term),
                _ => groups.push((pos, vec![term])),
            }
        }
        let fuzziness = opts.get("fuzziness");
        let prefix_length = opts.get("prefix_length").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max_expansions = opts.get("max_expansions").and_then(Value::as_u64).unwrap_or(50) as usize;
        let transpositions = opts.get("fuzzy_transpositions").and_then(Value::as_bool).unwrap_or(true);
        let mut clauses = Vec::new();
        for (_, alternatives) in groups {
            let mut alts = Vec::new();
            for word in alternatives {
                let distance = fuzziness.and_then(|f| fuzzy::parse_fuzziness(f, &word)).unwrap_or(0);
                alts.push(if distance > 0 {
                    self.fuzzy_terms(info, &word, distance, prefix_length, transpositions, max_expansions)?
                } else {
                    self.term_query(info, Term::from_field_text(info.field, &word))
                });
            }
            clauses.push(if alts.len() == 1 {
                alts.pop().expect("one")
            } else {
                Box::new(BooleanQuery::union(alts)) as Box<dyn Query>
            });
        }
        if clauses.len() == 1 {
            return Ok(clauses.pop().expect("one"));
        }
        let and = opts.get("operator").and_then(Value::as_str).is_some_and(|o| o.eq_ignore_ascii_case("and"));
        let n = clauses.len();
        let msm = match opts.get("minimum_should_match") {
            Some(v) if !and => minimum_should_match(v, n)?,
            _ => {
                if and {
                    n
                } else {
                    1
                }
            }
        };
        let occur = if msm == n { Occur::Must } else { Occur::Should };
        let subs: Vec<(Occur, Box<dyn Query>)> = clauses.into_iter().map(|q| (occur, q)).collect();
        Ok(Box::new(if occur == Occur::Should && msm > 1 {
            BooleanQuery::with_minimum_required_clauses(subs, msm)
        } else {
            BooleanQuery::new(subs)
        }))
    }

    /// Terms near `word`, each scored by BM25 and weighted by its closeness.
    fn fuzzy_terms(
        &self,
        info: &FieldInfo,
        word: &str,
        distance: u8,
        prefix_length: usize,
        transpositions: bool,
        max_expansions: usize,
    ) -> SearchResult<Box<dyn Query>> {
        let expansions = fuzzy::expand(
            self.searcher,
            info.field,
            word,
            distance,
            prefix_length,
            transpositions,
            max_expansions,
        )?;
        if expansions.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        let subs: Vec<Box<dyn Query>> = expansions
            .iter()
            .map(|e| {
                boosted(
                    self.term_query(info, Term::from_field_text(info.field, &e.term)),
                    fuzzy::similarity(word, e),
                )
            })
            .collect();
        // A disjunction max, so that a word's many neighbours do not outweigh other words.
        Ok(Box::new(DisjunctionMaxQuery::with_tie_breaker(subs, 0.0)))
    }

    fn phrase(
        &self,
        field: &str,
        text: &str,
        slop: u32,
        analyzer: Option<&str>,
    ) -> SearchResult<Box<dyn Query>> {
        let Some(info) = self.field(field) else { return Ok(Box::new(EmptyQuery)) };
        if info.leaf.ty != FieldType::Text {
            return Ok(self.term_query(info, self.term(info, &Value::String(text.to_string()))?));
        }
        let terms = self.analyzed(info, text, analyzer)?;
        match terms.len() {
            0 => Ok(Box::new(EmptyQuery)),
            1 => Ok(self.term_query(info, Term::from_field_text(info.field, &terms[0].1))),
            _ => {
                let first = terms[0].0;
                let with_offsets = terms
                    .into_iter()
                    .map(|(p, t)| (p - first, Term::from_field_text(info.field, &t)))
                    .collect();
                Ok(Box::new(PhraseQuery::new_with_offset_and_slop(with_offsets, slop)))
            }
        }
    }

    fn phrase_prefix(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let (field, opts) = self.field_body(body, "match_phrase_prefix")?;
        let text =
            text_of(opts.get("query").ok_or_else(|| parsing("[match_phrase_prefix] requires query value"))?)?;
        let max_expansions = opts.get("max_expansions").and_then(Value::as_u64).unwrap_or(50) as usize;
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        Ok(boosted(self.phrase_prefix_text(&field, &text, max_expansions)?, boost))
    }

    fn phrase_prefix_text(
        &self,
        field: &str,
        text: &str,
        max_expansions: usize,
    ) -> SearchResult<Box<dyn Query>> {
        let Some(info) = self.field(field) else { return Ok(Box::new(EmptyQuery)) };
        if info.leaf.ty != FieldType::Text {
            return self.pattern_query(info, &format!("{}.*", regex_escape(text)), 1.0);
        }
        let terms = self.analyzed(info, text, None)?;
        match terms.len() {
            0 => Ok(Box::new(EmptyQuery)),
            1 => {
                let expansions = self.prefix_terms(info, &terms[0].1, max_expansions)?;
                if expansions.is_empty() {
                    return Ok(Box::new(EmptyQuery));
                }
                let subs = expansions
                    .into_iter()
                    .map(|t| self.term_query(info, Term::from_field_text(info.field, &t)))
                    .collect();
                Ok(Box::new(DisjunctionMaxQuery::new(subs)))
            }
            _ => {
                let first = terms[0].0;
                let with_offsets = terms
                    .into_iter()
                    .map(|(p, t)| (p - first, Term::from_field_text(info.field, &t)))
                    .collect();
                let mut q = PhrasePrefixQuery::new_with_offset(with_offsets);
                q.set_max_expansions(max_expansions as u32);
                Ok(Box::new(q))
            }
        }
    }

    /// The most frequent terms of a field starting with `prefix`.
    fn prefix_terms(&self, info: &FieldInfo, prefix: &str, max: usize) -> SearchResult<Vec<String>> {
        let mut found: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for segment in self.searcher.segment_readers() {
            let inverted = segment.inverted_index(info.field)?;
            let mut builder = inverted.terms().range().ge(prefix.as_bytes());
            if let Some(end) = strata_core::keycode::prefix_end(prefix.as_bytes()) {
                builder = builder.lt(end);
            }
            let mut stream = builder.into_stream()?;
            while stream.advance() {
                if let Ok(t) = std::str::from_utf8(stream.key()) {
                    *found.entry(t.to_string()).or_default() += stream.value().doc_freq as u64;
                }
                if found.len() > max * 20 {
                    break;
                }
            }
        }
        let mut terms: Vec<(String, u64)> = found.into_iter().collect();
        terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(terms.into_iter().take(max.max(1)).map(|(t, _)| t).collect())
    }

    /// `fields: ["title^3", "body", "*_name"]` resolved to mapped fields and boosts.
    fn fields_of(&self, v: Option<&Value>, text_only: bool) -> Vec<(String, f32)> {
        let patterns: Vec<String> = match v {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec!["*".to_string()],
        };
        let mut out = Vec::new();
        for pattern in patterns {
            let (name, boost) = match pattern.split_once('^') {
                Some((n, b)) => (n.to_string(), b.parse().unwrap_or(1.0)),
                None => (pattern.clone(), 1.0),
            };
            if name.contains('*') {
                let mut matched: Vec<&FieldInfo> = self
                    .compiled
                    .fields
                    .values()
                    // A bare `*` means the full-text fields (and keywords, for query_string);
                    // a narrower pattern takes whatever it names.
                    .filter(|f| {
                        crate::source::glob_match(&name, &f.path)
                            && (name != "*"
                                || f.leaf.ty == FieldType::Text
                                || (!text_only && f.leaf.ty == FieldType::Keyword))
                    })
                    .collect();
                matched.sort_by(|a, b| a.path.cmp(&b.path));
                out.extend(matched.into_iter().map(|f| (f.path.clone(), boost)));
            } else {
                out.push((name, boost));
            }
        }
        out
    }

    fn multi_match(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let opts = body.as_object().ok_or_else(|| parsing("[multi_match] query malformed"))?;
        let text =
            text_of(opts.get("query").ok_or_else(|| parsing("No text specified for multi_match query"))?)?;
        let kind = opts.get("type").and_then(Value::as_str).unwrap_or("best_fields");
        let fields = self.fields_of(opts.get("fields"), true);
        let mut per_field = Vec::new();
        for (field, boost) in fields {
            let q = match kind {
                "phrase" => self.phrase(
                    &field,
                    &text,
                    opts.get("slop").and_then(Value::as_u64).unwrap_or(0) as u32,
                    None,
                )?,
                "phrase_prefix" | "bool_prefix" => self.phrase_prefix_text(&field, &text, 50)?,
                "best_fields" | "most_fields" | "cross_fields" => {
                    let mut field_opts = opts.clone();
                    field_opts.remove("lenient");
                    field_opts.insert("lenient".into(), Value::Bool(true));
                    self.match_text(&field, &text, &field_opts)?
                }
                other => {
                    return Err(parsing(format!(
                        "failed to parse [multi_match] query type [{other}]. unknown type."
                    )));
                }
            };
            per_field.push(boosted(q, boost));
        }
        let boost = boost_of(body);
        let combined: Box<dyn Query> = match kind {
            "most_fields" | "cross_fields" => Box::new(BooleanQuery::union(per_field)),
            _ => {
                let tie = opts.get("tie_breaker").and_then(Value::as_f64).unwrap_or(0.0) as f32;
                Box::new(DisjunctionMaxQuery::with_tie_breaker(per_field, tie))
            }
        };
        Ok(boosted(combined, boost))
    }

    fn query_string(&self, body: &Value, simple: bool) -> SearchResult<Box<dyn Query>> {
        let opts = body.as_object().ok_or_else(|| parsing("[query_string] query malformed"))?;
        let mut text = opts
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| parsing("[query_string] must be provided with a [query]"))?
            .to_string();
        let fields_value = opts.get("fields").cloned().or_else(|| opts.get("default_field").cloned());
        let fields = self.fields_of(fields_value.as_ref(), false);
        let mut tantivy_fields = Vec::new();
        let mut boosts = Vec::new();
        for (name, boost) in &fields {
            if let Some(info) = self.field(name)
                && matches!(info.leaf.ty, FieldType::Text | FieldType::Keyword)
            {
                tantivy_fields.push(info.field);
                boosts.push((info.field, *boost));
            }
        }
        let mut parser =
            QueryParser::new(self.compiled.schema.clone(), tantivy_fields, self.compiled.tokenizers.clone());
        for (field, boost) in boosts {
            if (boost - 1.0).abs() > f32::EPSILON {
                parser.set_field_boost(field, boost);
            }
        }
        if opts.get("default_operator").and_then(Value::as_str).is_some_and(|o| o.eq_ignore_ascii_case("and"))
        {
            parser.set_conjunction_by_default();
        }
        if simple {
            // simple_query_string: `|` is OR, `+` AND; it never fails on syntax.
            text = text.replace(" | ", " OR ").replace('|', " OR ");
            let (q, _errors) = parser.parse_query_lenient(&text);
            return Ok(boosted(q, boost_of(body)));
        }
        let q = parser.parse_query(&text).map_err(|e| {
            SearchError::new(400, "query_shard_exception", format!("Failed to parse query [{text}]: {e}"))
        })?;
        Ok(boosted(q, boost_of(body)))
    }

    fn term_level(&self, body: &Value, what: &str) -> SearchResult<Box<dyn Query>> {
        let (field, opts) = self.field_body(body, what)?;
        let value = opts.get("value").ok_or_else(|| parsing(format!("[{what}] query requires a value")))?;
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        if field == "_id" {
            let term = Term::from_field_text(self.compiled.id, &text_of(value)?);
            return Ok(boosted(Box::new(TermQuery::new(term, IndexRecordOption::Basic)), boost));
        }
        let Some(info) = self.field(&field) else { return Ok(Box::new(EmptyQuery)) };
        if opts.get("case_insensitive").and_then(Value::as_bool) == Some(true)
            && matches!(info.leaf.ty, FieldType::Text | FieldType::Keyword)
        {
            return self.pattern_query(info, &format!("(?i){}", regex_escape(&text_of(value)?)), boost);
        }
        let term = self.term(info, value)?;
        Ok(boosted(self.term_query(info, term), boost))
    }

    fn terms(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let (field, values) = single(body, "terms")?;
        let values =
            values.as_array().ok_or_else(|| parsing(format!("[terms] query does not support [{field}]")))?;
        let boost = boost_of(body);
        if field == "_id" {
            return Ok(self.ids(values, boost));
        }
        let Some(info) = self.field(&field) else { return Ok(Box::new(EmptyQuery)) };
        let terms = values.iter().map(|v| self.term(info, v)).collect::<SearchResult<Vec<_>>>()?;
        Ok(Box::new(ConstScoreQuery::new(Box::new(TermSetQuery::new(terms)), boost)))
    }

    fn range(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let (field, opts) = single(body, "range")?;
        let opts = opts
            .as_object()
            .ok_or_else(|| parsing("[range] query malformed, no start_object after query name"))?;
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        let Some(info) = self.field(&field) else { return Ok(Box::new(EmptyQuery)) };
        for key in opts.keys() {
            if !matches!(
                key.as_str(),
                "gt" | "gte"
                    | "lt"
                    | "lte"
                    | "from"
                    | "to"
                    | "include_lower"
                    | "include_upper"
                    | "format"
                    | "time_zone"
                    | "boost"
                    | "relation"
                    | "_name"
            ) {
                return Err(parsing(format!("[range] query does not support [{key}]")));
            }
        }
        let bound = |keys: [&str; 2], upper: bool| -> SearchResult<Bound<Term>> {
            for (i, key) in keys.iter().enumerate() {
                if let Some(v) = opts.get(*key).filter(|v| !v.is_null()) {
                    let exclusive = i == 0;
                    let term = if info.leaf.ty == FieldType::Date {
                        let ms = match v {
                            Value::String(s) => dates::eval(s, self.now_ms, upper != exclusive),
                            other => date_value(other),
                        }
                        .ok_or_else(|| parsing(format!("failed to parse date field [{v}]")))?;
                        Term::from_field_date_for_search(info.field, DateTime::from_timestamp_millis(ms))
                    } else {
                        self.term(info, v)?
                    };
                    return Ok(if exclusive { Bound::Excluded(term) } else { Bound::Included(term) });
                }
            }
            Ok(Bound::Unbounded)
        };
        let lower = bound(["gt", "gte"], false)?;
        let upper = bound(["lt", "lte"], true)?;
        // The older `from`/`to` with `include_lower`/`include_upper`, when gt/gte/lt/lte are absent.
        let legacy = |bound: Bound<Term>, key: &str, include: &str| -> SearchResult<Bound<Term>> {
            match (bound, opts.get(key)) {
                (Bound::Unbounded, Some(v)) if !v.is_null() => {
                    let t = self.term(info, v)?;
                    Ok(if opts.get(include).and_then(Value::as_bool) == Some(false) {
                        Bound::Excluded(t)
                    } else {
                        Bound::Included(t)
                    })
                }
                (b, _) => Ok(b),
            }
        };
        let lower = legacy(lower, "from", "include_lower")?;
        let upper = legacy(upper, "to", "include_upper")?;
        if matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
            // Only an existence check remains.
            return Ok(self.exists(&info.path, boost));
        }
        Ok(Box::new(ConstScoreQuery::new(Box::new(RangeQuery::new(lower, upper)), boost)))
    }

    fn pattern_query(&self, info: &FieldInfo, regex: &str, boost: f32) -> SearchResult<Box<dyn Query>> {
        let q = RegexQuery::from_pattern(regex, info.field)
            .map_err(|e| parsing(format!("invalid pattern [{regex}]: {e}")))?;
        Ok(Box::new(ConstScoreQuery::new(Box::new(q), boost)))
    }

    fn pattern(&self, kind: &str, body: &Value) -> SearchResult<Box<dyn Query>> {
        let (field, opts) = self.field_body(body, kind)?;
        let value = opts
            .get("value")
            .or_else(|| opts.get(kind))
            .and_then(Value::as_str)
            .ok_or_else(|| parsing(format!("[{kind}] query requires a value")))?;
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        let insensitive = opts.get("case_insensitive").and_then(Value::as_bool) == Some(true);
        let field_info = if field == "_id" { None } else { self.field(&field) };
        let Some(info) = field_info else { return Ok(Box::new(EmptyQuery)) };
        if !matches!(info.leaf.ty, FieldType::Text | FieldType::Keyword) {
            return Err(SearchError::new(
                400,
                "query_shard_exception",
                format!(
                    "Can only use {kind} queries on keyword and text fields - not on [{field}] which is of type [{}]",
                    info.leaf.ty.name()
                ),
            ));
        }
        let mut regex = match kind {
            "prefix" => format!("{}.*", regex_escape(value)),
            "wildcard" => value
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_string(),
                    '?' => ".".to_string(),
                    c => regex_escape(&c.to_string()),
                })
                .collect(),
            _ => value.to_string(),
        };
        if insensitive {
            regex = format!("(?i){regex}");
        }
        self.pattern_query(info, &regex, boost)
    }

    fn fuzzy(&self, body: &Value) -> SearchResult<Box<dyn Query>> {
        let (field, opts) = self.field_body(body, "fuzzy")?;
        let value = text_of(opts.get("value").ok_or_else(|| parsing("[fuzzy] query requires a value"))?)?;
        let Some(info) = self.field(&field) else { return Ok(Box::new(EmptyQuery)) };
        let distance = opts
            .get("fuzziness")
            .map_or(Some(fuzzy::auto_distance(&value)), |f| fuzzy::parse_fuzziness(f, &value))
            .ok_or_else(|| parsing("[fuzzy] invalid fuzziness"))?;
        let prefix_length = opts.get("prefix_length").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max_expansions = opts.get("max_expansions").and_then(Value::as_u64).unwrap_or(50) as usize;
        let transpositions = opts.get("transpositions").and_then(Value::as_bool).unwrap_or(true);
        let boost = opts.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
        Ok(boosted(
            self.fuzzy_terms(info, &value, distance, prefix_length, transpositions, max_expansions)?,
            boost,
        ))
    }
}

/// Escapes the characters tantivy's regex syntax gives meaning to.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~\"@<>".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
