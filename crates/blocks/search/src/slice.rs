//! Sliced scrolls: `"slice": {"id": i, "max": n}` on a scroll or point-in-time search splits
//! its documents into `n` disjoint parts by a hash of `_id`, so that `n` workers can each
//! page through one part (as reindexing and export tools do). Every document is in exactly
//! one slice, whichever view (segments) the slice's search reads, because only its `_id`
//! decides.
//!
//! tantivy has no query for "documents whose term hashes to k", so [`SliceQuery`] builds it:
//! per segment it walks the `_id` term dictionary and marks the documents of the terms in
//! its slice.

use crate::error::{SearchError, SearchResult};
use serde_json::Value;
use tantivy::query::{BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TERMINATED};

/// Documents whose `_id` falls in slice `id` of `max`.
#[derive(Clone, Debug)]
pub struct SliceQuery {
    id_field: Field,
    id: u64,
    max: u64,
}

impl SliceQuery {
    /// The body's `slice` (`{"id", "max", "field"}`), read as Elasticsearch checks it.
    pub fn parse(slice: &Value, id_field: Field) -> SearchResult<SliceQuery> {
        let number = |key: &str| -> SearchResult<i64> {
            slice
                .get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| SearchError::parsing(format!("[slice] needs an integer [{key}]")))
        };
        let (id, max) = (number("id")?, number("max")?);
        if let Some(field) = slice.get("field").and_then(Value::as_str).filter(|f| *f != "_id") {
            return Err(SearchError::illegal_argument(format!(
                "cannot slice by [{field}] here: slices split documents by [_id]"
            )));
        }
        if max <= 1 {
            return Err(SearchError::illegal_argument("max must be greater than 1"));
        }
        if id < 0 {
            return Err(SearchError::illegal_argument("id must be greater than or equal to 0"));
        }
        if id >= max {
            return Err(SearchError::illegal_argument("max must be greater than id"));
        }
        Ok(SliceQuery { id_field, id: id as u64, max: max as u64 })
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
        let inverted = reader.inverted_index(self.id_field)?;
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
        let field = Field::from_field_id(0);
        let reason =
            |v: Value| SliceQuery::parse(&v, field).unwrap_err().to_json()["error"]["reason"].clone();
        assert_eq!(reason(serde_json::json!({"id": 0, "max": 1})), "max must be greater than 1");
        assert_eq!(reason(serde_json::json!({"id": 2, "max": 2})), "max must be greater than id");
        assert_eq!(reason(serde_json::json!({"id": -1, "max": 2})), "id must be greater than or equal to 0");
        assert!(SliceQuery::parse(&serde_json::json!({"id": 1, "max": 2}), field).is_ok());
    }
}
