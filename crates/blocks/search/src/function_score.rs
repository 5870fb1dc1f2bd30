//! `function_score`: a query whose scores are reshaped by functions — `weight`,
//! `field_value_factor` (with `factor`, `modifier`, `missing`) and `random_score` — each
//! optionally behind a `filter`, combined by `score_mode` and merged with the query's score
//! by `boost_mode`, capped by `max_boost`, with `min_score` dropping low scorers.
//! tantivy has no such query; this is a wrapper scorer over the inner query's.

use crate::error::{SearchError, SearchResult};
use crate::mapping::FieldType;
use crate::query::Ctx;
use serde_json::Value;
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

#[derive(Clone, Copy, Debug)]
enum Modifier {
    None,
    Log,
    Log1p,
    Log2p,
    Ln,
    Ln1p,
    Ln2p,
    Square,
    Sqrt,
    Reciprocal,
}

#[derive(Clone, Debug)]
enum Kind {
    Weight,
    FieldValue { field: String, integer: bool, factor: f64, modifier: Modifier, missing: Option<f64> },
    Random { seed: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Combine {
    Multiply,
    Sum,
    Avg,
    First,
    Max,
    Min,
    Replace,
}

fn combine_of(v: Option<&Value>, default: Combine, what: &str) -> SearchResult<Combine> {
    Ok(match v.and_then(Value::as_str) {
        None => default,
        Some("multiply") => Combine::Multiply,
        Some("sum") => Combine::Sum,
        Some("avg") => Combine::Avg,
        Some("first") => Combine::First,
        Some("max") => Combine::Max,
        Some("min") => Combine::Min,
        Some("replace") if what == "boost_mode" => Combine::Replace,
        Some(other) => {
            return Err(SearchError::parsing(format!("[function_score] illegal {what} [{other}]")));
        }
    })
}

struct Function {
    filter: Option<Box<dyn Query>>,
    kind: Kind,
    weight: f32,
}

impl Clone for Function {
    fn clone(&self) -> Self {
        Function {
            filter: self.filter.as_ref().map(|q| q.box_clone()),
            kind: self.kind.clone(),
            weight: self.weight,
        }
    }
}

struct FunctionScoreQuery {
    query: Box<dyn Query>,
    functions: Vec<Function>,
    score_mode: Combine,
    boost_mode: Combine,
    max_boost: f32,
    min_score: Option<f32>,
}

impl Clone for FunctionScoreQuery {
    fn clone(&self) -> Self {
        FunctionScoreQuery {
            query: self.query.box_clone(),
            functions: self.functions.clone(),
            score_mode: self.score_mode,
            boost_mode: self.boost_mode,
            max_boost: self.max_boost,
            min_score: self.min_score,
        }
    }
}

impl std::fmt::Debug for FunctionScoreQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionScore({:?}, {} functions)", self.query, self.functions.len())
    }
}

fn parse_function(ctx: &Ctx, def: &Value) -> SearchResult<Function> {
    let filter = def.get("filter").map(|f| ctx.build(f)).transpose()?;
    let weight = def.get("weight").and_then(Value::as_f64).unwrap_or(1.0) as f32;
    let kind = if let Some(fvf) = def.get("field_value_factor") {
        let field = fvf
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| SearchError::parsing("[field_value_factor] requires [field]"))?;
        let integer = match ctx.compiled.field(field).map(|f| f.leaf.ty) {
            Some(ty) if ty.is_integer() || ty == FieldType::Date => true,
            Some(ty) if ty.is_float() => false,
            Some(_) => return Err(SearchError::illegal_argument(format!("field [{field}] is not numeric"))),
            None => true,
        };
        let modifier = match fvf.get("modifier").and_then(Value::as_str).unwrap_or("none") {
            "none" => Modifier::None,
            "log" => Modifier::Log,
            "log1p" => Modifier::Log1p,
            "log2p" => Modifier::Log2p,
            "ln" => Modifier::Ln,
            "ln1p" => Modifier::Ln1p,
            "ln2p" => Modifier::Ln2p,
            "square" => Modifier::Square,
            "sqrt" => Modifier::Sqrt,
            "reciprocal" => Modifier::Reciprocal,
            other => return Err(SearchError::parsing(format!("Illegal modifier: {other}"))),
        };
        Kind::FieldValue {
            field: field.to_string(),
            integer,
            factor: fvf.get("factor").and_then(Value::as_f64).unwrap_or(1.0),
            modifier,
            missing: fvf.get("missing").and_then(Value::as_f64),
        }
    } else if let Some(random) = def.get("random_score") {
        Kind::Random {
            seed: random
                .get("seed")
                .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|s| s.parse().ok())))
                .unwrap_or(0),
        }
    } else if def.get("weight").is_some() {
        Kind::Weight
    } else {
        let keys: Vec<&String> = def.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        return Err(SearchError::parsing(format!(
            "function_score: unsupported function among {keys:?} (weight, field_value_factor, random_score are supported)"
        )));
    };
    Ok(Function { filter, kind, weight })
}

/// Builds the query from its DSL body.
pub fn build(ctx: &Ctx, body: &Value) -> SearchResult<Box<dyn Query>> {
    let query = match body.get("query") {
        Some(q) => ctx.build(q)?,
        None => Box::new(AllQuery),
    };
    let mut functions = Vec::new();
    if let Some(list) = body.get("functions").and_then(Value::as_array) {
        for def in list {
            functions.push(parse_function(ctx, def)?);
        }
    } else if body.get("field_value_factor").is_some()
        || body.get("random_score").is_some()
        || body.get("weight").is_some()
    {
        functions.push(parse_function(ctx, body)?);
    }
    let q = FunctionScoreQuery {
        query,
        functions,
        score_mode: combine_of(body.get("score_mode"), Combine::Multiply, "score_mode")?,
        boost_mode: combine_of(body.get("boost_mode"), Combine::Multiply, "boost_mode")?,
        max_boost: body.get("max_boost").and_then(Value::as_f64).unwrap_or(f32::MAX as f64) as f32,
        min_score: body.get("min_score").and_then(Value::as_f64).map(|m| m as f32),
    };
    let boost = body.get("boost").and_then(Value::as_f64).unwrap_or(1.0) as f32;
    Ok(Box::new(tantivy::query::BoostQuery::new(Box::new(q), boost)))
}

impl Query for FunctionScoreQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let inner = self.query.weight(scoring)?;
        let filters = self
            .functions
            .iter()
            .map(|f| {
                f.filter
                    .as_ref()
                    .map(|q| q.weight(EnableScoring::disabled_from_schema(scoring.schema())))
                    .transpose()
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Box::new(FunctionScoreWeight { inner, filters, spec: self.clone() }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.query.query_terms(visitor);
    }
}

struct FunctionScoreWeight {
    inner: Box<dyn Weight>,
    filters: Vec<Option<Box<dyn Weight>>>,
    spec: FunctionScoreQuery,
}

enum Values {
    Int(Column<i64>),
    Float(Column<f64>),
    None,
}

struct SegmentFunction {
    filter: Option<Box<dyn Scorer>>,
    values: Values,
}

impl Weight for FunctionScoreWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let inner = self.inner.scorer(reader, boost)?;
        let mut functions = Vec::new();
        for (function, filter) in self.spec.functions.iter().zip(&self.filters) {
            let filter = filter.as_ref().map(|w| w.scorer(reader, 1.0)).transpose()?;
            let values = match &function.kind {
                Kind::FieldValue { field, integer: true, .. } => {
                    reader.fast_fields().column_opt::<i64>(field)?.map_or(Values::None, Values::Int)
                }
                Kind::FieldValue { field, integer: false, .. } => {
                    reader.fast_fields().column_opt::<f64>(field)?.map_or(Values::None, Values::Float)
                }
                _ => Values::None,
            };
            functions.push(SegmentFunction { filter, values });
        }
        let mut scorer = FunctionScorer {
            inner,
            functions,
            spec: self.spec.clone(),
            segment: reader.segment_id().uuid_string(),
        };
        scorer.skip_low();
        Ok(Box::new(scorer))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!("document {doc} does not match")));
        }
        Ok(Explanation::new("function score", scorer.score()))
    }
}

struct FunctionScorer {
    inner: Box<dyn Scorer>,
    functions: Vec<SegmentFunction>,
    spec: FunctionScoreQuery,
    segment: String,
}

fn combine(mode: Combine, values: &[f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    Some(match mode {
        Combine::Multiply => values.iter().product(),
        Combine::Sum => values.iter().sum(),
        Combine::Avg => values.iter().sum::<f32>() / values.len() as f32,
        Combine::First | Combine::Replace => values[0],
        Combine::Max => values.iter().cloned().fold(f32::MIN, f32::max),
        Combine::Min => values.iter().cloned().fold(f32::MAX, f32::min),
    })
}

impl FunctionScorer {
    fn compute(&mut self) -> Score {
        let doc = self.inner.doc();
        let query_score = self.inner.score();
        let mut values = Vec::new();
        for (function, seg) in self.spec.functions.iter().zip(self.functions.iter_mut()) {
            if let Some(filter) = seg.filter.as_mut() {
                if filter.doc() < doc {
                    filter.seek(doc);
                }
                if filter.doc() != doc {
                    continue;
                }
            }
            let value = match &function.kind {
                Kind::Weight => 1.0,
                Kind::FieldValue { factor, modifier, missing, .. } => {
                    let raw = match &seg.values {
                        Values::Int(c) => c.first(doc).map(|v| v as f64),
                        Values::Float(c) => c.first(doc),
                        Values::None => None,
                    }
                    .or(*missing)
                    .unwrap_or(1.0);
                    let x = raw * factor;
                    (match modifier {
                        Modifier::None => x,
                        Modifier::Log => x.log10(),
                        Modifier::Log1p => (x + 1.0).log10(),
                        Modifier::Log2p => (x + 2.0).log10(),
                        Modifier::Ln => x.ln(),
                        Modifier::Ln1p => x.ln_1p(),
                        Modifier::Ln2p => (x + 2.0).ln(),
                        Modifier::Square => x * x,
                        Modifier::Sqrt => x.sqrt(),
                        Modifier::Reciprocal => 1.0 / x,
                    }) as f32
                }
                Kind::Random { seed } => {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    (seed, &self.segment, doc).hash(&mut h);
                    (h.finish() >> 40) as f32 / (1u64 << 24) as f32
                }
            };
            values.push(value * function.weight);
        }
        let function_score = combine(self.spec.score_mode, &values).unwrap_or(1.0).min(self.spec.max_boost);
        match self.spec.boost_mode {
            Combine::Multiply => query_score * function_score,
            Combine::Replace => function_score,
            Combine::Sum => query_score + function_score,
            Combine::Avg => (query_score + function_score) / 2.0,
            Combine::Max => query_score.max(function_score),
            Combine::Min => query_score.min(function_score),
            Combine::First => function_score,
        }
    }

    /// Moves past documents under `min_score`.
    fn skip_low(&mut self) -> DocId {
        let Some(min) = self.spec.min_score else { return self.inner.doc() };
        while self.inner.doc() != TERMINATED && self.compute() < min {
            self.inner.advance();
        }
        self.inner.doc()
    }
}

impl DocSet for FunctionScorer {
    fn advance(&mut self) -> DocId {
        self.inner.advance();
        self.skip_low()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.inner.seek(target);
        self.skip_low()
    }

    fn doc(&self) -> DocId {
        self.inner.doc()
    }

    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
}

impl Scorer for FunctionScorer {
    fn score(&mut self) -> Score {
        self.compute()
    }
}
