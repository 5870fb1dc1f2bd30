//! Sliced scrolls: `"slice": {"id": i, "max": n}` on a scroll or point-in-time search splits
//! its documents into `n` disjoint parts by a hash of `_id`, so that `n` workers can each
//! page through one part (as reindexing and export tools do). Every document is in exactly
//! one slice, whichever view (segments) the slice's search reads, because only its `_id`
//! decides.
//!
//! `"field": <numeric field>` slices by a hash of that field's value instead, as
//! Elasticsearch does with doc values: a document without a value is in no slice, and one
//! with several goes by its first.
//!
//! tantivy has no query for "documents whose term hashes to k", so [`SliceQuery`] builds it:
//! per segment it walks the `_id` term dictionary, or the field's fast-field column, and
//! marks the documents in its slice.

use crate::error::{SearchError, SearchResult};
use crate::mapping::FieldType;
use crate::schema::Compiled;
use serde_json::Value;
use tantivy::query::{BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TERMINATED};

/// Documents whose `_id` (or value of a numeric field) falls in slice `id` of `max`.
#[derive(Clone, Debug)]
pub struct SliceQuery {
    by: SliceBy,
    id: u64,
    max: u64,
}

/// What decides a document's slice.
#[derive(Clone, Debug)]
enum SliceBy {
    Id(Field),
    /// A fast-field column: integers and dates as `i64`, floats as `f64`.
    Integer(String),
    Float(String),
}

impl SliceQuery {
    /// The body's `slice` (`{"id", "max", "field"}`), read as Elasticsearch checks it.
    pub fn parse(slice: &Value, compiled: &Compiled) -> SearchResult<SliceQuery> {
        let number = |key: &str| -> SearchResult<i64> {
            slice
                .get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| SearchError::parsing(format!("[slice] needs an integer [{key}]")))
        };
        let (id, max) = (number("id")?, number("max")?);
        let by = match slice.get("field").and_then(Value::as_str).filter(|f| *f != "_id") {
            None => SliceBy::Id(compiled.id),
            Some(field) => match compiled.field(field).map(|f| f.leaf.ty) {
                Some(ty) if ty.is_integer() || ty == FieldType::Date => SliceBy::Integer(field.to_owned()),
                Some(ty) if ty.is_float() => SliceBy::Float(field.to_owned()),
                _ => {
                    return Err(SearchError::illegal_argument(format!(
                        "cannot slice by [{field}]: a slice field must be a numeric or date field"
                    )));
                }
            },
        };
        if max <= 1 {
            return Err(SearchError::illegal_argument("max must be greater than 1"));
        }
        if id < 0 {
            return Err(SearchError::illegal_argument("id must be greater than or equal to 0"));
        }
        if id >= max {
            return Err(SearchError::illegal_argument("max must be greater than id"));
        }
        Ok(SliceQuery { by, id: id as u64, max: max as u64 })
    }
}

/// FNV-1a, 64 bits: a fixed hash, so a document's slice never changes.
fn slice_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

impl Query for SliceQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for SliceQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut docs = BitSet::with_max_value(reader.max_doc());
        let in_slice = |value: u64| slice_hash(&value.to_le_bytes()) % self.max == self.id;
        let id_field = match &self.by {
            SliceBy::Id(field) => *field,
            SliceBy::Integer(name) => {
                if let Some(column) = reader.fast_fields().column_opt::<i64>(name)? {
                    (0..reader.max_doc())
                        .filter(|doc| column.first(*doc).is_some_and(|v| in_slice(v as u64)))
                        .for_each(|doc| {
                            docs.insert(doc);
                        });
                }
                return Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)));
            }
            SliceBy::Float(name) => {
                if let Some(column) = reader.fast_fields().column_opt::<f64>(name)? {
                    (0..reader.max_doc())
                        .filter(|doc| column.first(*doc).is_some_and(|v| in_slice(v.to_bits())))
                        .for_each(|doc| {
                            docs.insert(doc);
                        });
                }
                return Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)));
            }
        };
        let inverted = reader.inverted_index(id_field)?;
        let mut terms = inverted.terms().stream()?;
        while terms.advance() {
            if slice_hash(terms.key()) % self.max != self.id {
                continue;
            }
            let mut postings =
                inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                docs.insert(doc);
                doc = postings.advance();
            }
        }
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} is in another slice"
            )));
        }
        Ok(Explanation::new("slice", 0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_evenly_over_the_slices() {
        let max = 4;
        let mut sizes = [0usize; 4];
        for i in 0..4000 {
            sizes[(slice_hash(format!("doc-{i}").as_bytes()) % max) as usize] += 1;
        }
        assert!(sizes.iter().all(|n| (800..1200).contains(n)), "{sizes:?}");
    }

    #[test]
    fn bad_slices_are_refused_as_elasticsearch_does() {
        let mapping = serde_json::json!({"properties": {"n": {"type": "long"}, "t": {"type": "text"}}});
        let compiled = Compiled::new(crate::mapping::Mapping::parse(&mapping).unwrap(), None).unwrap();
        let reason =
            |v: Value| SliceQuery::parse(&v, &compiled).unwrap_err().to_json()["error"]["reason"].clone();
        assert_eq!(reason(serde_json::json!({"id": 0, "max": 1})), "max must be greater than 1");
        assert_eq!(reason(serde_json::json!({"id": 2, "max": 2})), "max must be greater than id");
        assert_eq!(reason(serde_json::json!({"id": -1, "max": 2})), "id must be greater than or equal to 0");
        assert_eq!(
            reason(serde_json::json!({"id": 0, "max": 2, "field": "t"})),
            "cannot slice by [t]: a slice field must be a numeric or date field"
        );
        assert!(SliceQuery::parse(&serde_json::json!({"id": 1, "max": 2}), &compiled).is_ok());
        assert!(SliceQuery::parse(&serde_json::json!({"id": 1, "max": 2, "field": "n"}), &compiled).is_ok());
    }
}
