//! The tantivy side of a mapping: one tantivy field per mapped path, plus `_id` (raw,
//! stored), `_source` (the document's JSON, stored) and `_field_names` (the paths a
//! document has, for `exists`), and the conversion of a JSON document into a tantivy one.
//!
//! | mapping type | tantivy field |
//! | --- | --- |
//! | text | text, the field's analyzer, frequencies and positions |
//! | keyword | text, raw (or its normalizer), fast (for sorting and terms aggregations) |
//! | long, integer, short, byte | i64, indexed, fast |
//! | double, float | f64, indexed, fast |
//! | boolean | bool, indexed, fast |
//! | date | date (milliseconds), indexed, fast |

use crate::analysis;
use crate::dates;
use crate::error::{SearchError, SearchResult};
use crate::mapping::{FieldType, Leaf, Mapping, values_at};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{RawTokenizer, TextAnalyzer, TokenizerManager};
use tantivy::{DateTime, TantivyDocument};

pub const ID: &str = "_id";
pub const SOURCE: &str = "_source";
pub const FIELD_NAMES: &str = "_field_names";

/// One mapped path and its tantivy field.
#[derive(Clone, Debug)]
pub struct FieldInfo {
    pub path: String,
    /// Where the values come from in `_source` (a multi-field's parent).
    pub source_path: String,
    pub leaf: Leaf,
    pub field: Field,
}

/// A mapping compiled for one tantivy index.
pub struct Compiled {
    pub mapping: Mapping,
    pub schema: Schema,
    pub fields: HashMap<String, FieldInfo>,
    pub id: Field,
    pub source: Field,
    pub field_names: Field,
    pub tokenizers: TokenizerManager,
}

impl Compiled {
    pub fn new(mapping: Mapping, analysis: Option<&Value>) -> SearchResult<Compiled> {
        let tokenizers = analysis::build(analysis)?;
        tokenizers.register("raw", RawTokenizer::default());
        // tantivy asks every field for a tokenizer, `default` for non-text ones.
        tokenizers.register("default", RawTokenizer::default());
        let mut builder = Schema::builder();
        let id = builder.add_text_field(ID, STRING | STORED);
        let source = builder.add_bytes_field(SOURCE, STORED);
        let field_names = builder.add_text_field(FIELD_NAMES, STRING);
        let mut fields = HashMap::new();
        for (path, source_path, leaf) in mapping.leaves() {
            let check = |name: &str| -> SearchResult<()> {
                if analysis::exists(&tokenizers, name) {
                    Ok(())
                } else {
                    Err(SearchError::mapper_parsing(format!(
                        "analyzer [{name}] has not been configured in mappings"
                    )))
                }
            };
            let field = match leaf.ty {
                FieldType::Text => {
                    check(leaf.index_analyzer())?;
                    check(leaf.query_analyzer())?;
                    let indexing = TextFieldIndexing::default()
                        .set_tokenizer(leaf.index_analyzer())
                        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
                    builder.add_text_field(&path, TextOptions::default().set_indexing_options(indexing))
                }
                FieldType::Keyword => {
                    let tokenizer = leaf.analyzer.as_deref().unwrap_or("raw");
                    check(tokenizer)?;
                    let indexing = TextFieldIndexing::default()
                        .set_tokenizer(tokenizer)
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false);
                    builder.add_text_field(
                        &path,
                        TextOptions::default().set_indexing_options(indexing).set_fast(tokenizer),
                    )
                }
                ty if ty.is_integer() => {
                    builder.add_i64_field(&path, NumericOptions::default().set_indexed().set_fast())
                }
                ty if ty.is_float() => {
                    builder.add_f64_field(&path, NumericOptions::default().set_indexed().set_fast())
                }
                FieldType::Boolean => {
                    builder.add_bool_field(&path, NumericOptions::default().set_indexed().set_fast())
                }
                _ => builder.add_date_field(
                    &path,
                    DateOptions::default()
                        .set_indexed()
                        .set_fast()
                        .set_precision(DateTimePrecision::Milliseconds),
                ),
            };
            fields.insert(path.clone(), FieldInfo { path, source_path, leaf: leaf.clone(), field });
        }
        Ok(Compiled { mapping, schema: builder.build(), fields, id, source, field_names, tokenizers })
    }

    pub fn field(&self, path: &str) -> Option<&FieldInfo> {
        self.fields.get(path)
    }

    pub fn analyzer(&self, name: &str) -> SearchResult<TextAnalyzer> {
        self.tokenizers
            .get(name)
            .ok_or_else(|| SearchError::illegal_argument(format!("failed to find analyzer [{name}]")))
    }

    /// The tantivy document for a JSON document. Values that do not fit their field's type
    /// are a `mapper_parsing_exception`, as in Elasticsearch.
    pub fn document(&self, id: &str, source: &Value, source_bytes: &[u8]) -> SearchResult<TantivyDocument> {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.id, id);
        doc.add_bytes(self.source, source_bytes);
        let mut present = BTreeSet::new();
        let mut values = Vec::new();
        for info in self.fields.values() {
            values.clear();
            values_at(source, &info.source_path, &mut values);
            if values.is_empty() || !info.leaf.index {
                continue;
            }
            present.insert(info.path.as_str());
            for value in &values {
                add_value(&mut doc, info, value)?;
            }
        }
        for path in present {
            // `a.b.c` also makes `a` and `a.b` exist.
            let mut end = 0;
            while let Some(i) = path[end..].find('.') {
                end += i;
                doc.add_text(self.field_names, &path[..end]);
                end += 1;
            }
            doc.add_text(self.field_names, path);
        }
        Ok(doc)
    }
}

fn wrong(info: &FieldInfo, value: &Value) -> SearchError {
    SearchError::mapper_parsing(format!(
        "failed to parse field [{}] of type [{}]: cannot parse [{value}]",
        info.path,
        info.leaf.ty.name()
    ))
}

fn add_value(doc: &mut TantivyDocument, info: &FieldInfo, value: &Value) -> SearchResult<()> {
    let field = info.field;
    match info.leaf.ty {
        FieldType::Text | FieldType::Keyword => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                // Objects under a keyword (`flattened`) index their JSON.
                other if info.leaf.ty == FieldType::Keyword => other.to_string(),
                other => return Err(wrong(info, other)),
            };
            if info.leaf.ignore_above.is_some_and(|limit| text.chars().count() > limit) {
                return Ok(());
            }
            doc.add_text(field, text);
        }
        ty if ty.is_integer() => {
            let n = match value {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .or_else(|| s.trim().parse::<f64>().ok().map(|f| f.trunc() as i64)),
                _ => None,
            }
            .ok_or_else(|| wrong(info, value))?;
            let (lo, hi) = match ty {
                FieldType::Integer => (i32::MIN as i64, i32::MAX as i64),
                FieldType::Short => (i16::MIN as i64, i16::MAX as i64),
                FieldType::Byte => (i8::MIN as i64, i8::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if n < lo || n > hi {
                return Err(SearchError::mapper_parsing(format!(
                    "failed to parse field [{}] of type [{}]: Value [{n}] is out of range",
                    info.path,
                    ty.name()
                )));
            }
            doc.add_i64(field, n);
        }
        ty if ty.is_float() => {
            let f = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
                _ => None,
            }
            .ok_or_else(|| wrong(info, value))?;
            doc.add_f64(field, f);
        }
        FieldType::Boolean => {
            let b = match value {
                Value::Bool(b) => *b,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" || s.is_empty() => false,
                other => return Err(wrong(info, other)),
            };
            doc.add_bool(field, b);
        }
        _ => {
            let ms = date_value(value).ok_or_else(|| wrong(info, value))?;
            doc.add_date(field, DateTime::from_timestamp_millis(ms));
        }
    }
    Ok(())
}

/// A date as a JSON value holds it: a string in a known format or epoch milliseconds.
pub fn date_value(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => dates::parse(s).or_else(|| s.parse().ok()),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}
