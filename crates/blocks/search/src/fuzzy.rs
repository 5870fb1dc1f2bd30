//! Fuzzy matching: the terms of a field within an edit distance of a word.
//!
//! tantivy's Levenshtein automaton (with transpositions counted as one edit, as
//! Elasticsearch's default `transpositions: true`) walks each segment's term dictionary,
//! restricted to terms sharing the first `prefix_length` characters. The matches are then
//! ranked by distance and document frequency and cut at `max_expansions`, and the query
//! becomes a disjunction of ordinary term queries — so fuzzy matches are scored by BM25,
//! closer terms weighted higher, as Elasticsearch's top-terms rewrite does.

use crate::error::SearchResult;
use std::collections::HashMap;
use tantivy::query::FuzzyTermQuery;
use tantivy::schema::Field;
use tantivy::{Searcher, Term};

/// `fuzziness: AUTO` — 0 edits for 1–2 characters, 1 for 3–5, 2 beyond.
pub fn auto_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    }
}

/// Reads `fuzziness` (`AUTO`, `AUTO:3,6`, `0`, `1`, `2`).
pub fn parse_fuzziness(v: &serde_json::Value, word: &str) -> Option<u8> {
    let s = match v {
        serde_json::Value::Number(n) => return n.as_u64().map(|n| n.min(2) as u8),
        serde_json::Value::String(s) => s.as_str(),
        _ => return None,
    };
    if let Some(rest) = s.strip_prefix("AUTO").or_else(|| s.strip_prefix("auto")) {
        let (low, high) = rest
            .strip_prefix(':')
            .and_then(|r| r.split_once(','))
            .and_then(|(a, b)| Some((a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?)))
            .unwrap_or((3, 6));
        let len = word.chars().count();
        return Some(if len < low {
            0
        } else if len < high {
            1
        } else {
            2
        });
    }
    s.parse::<f64>().ok().map(|n| (n as u64).min(2) as u8)
}

/// Optimal string alignment distance (Damerau–Levenshtein with adjacent transpositions).
pub fn edit_distance(a: &str, b: &str, transpositions: bool) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if transpositions && i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// A term near the word: its text, its distance, how many documents hold it.
#[derive(Clone, Debug, PartialEq)]
pub struct Expansion {
    pub term: String,
    pub distance: usize,
    pub doc_freq: u64,
}

/// The terms of `field` within `distance` edits of `word` that start with its first
/// `prefix_length` characters; the closest and most frequent `max_expansions`.
pub fn expand(
    searcher: &Searcher,
    field: Field,
    word: &str,
    distance: u8,
    prefix_length: usize,
    transpositions: bool,
    max_expansions: usize,
) -> SearchResult<Vec<Expansion>> {
    let prefix: String = word.chars().take(prefix_length).collect();
    let query = FuzzyTermQuery::new(Term::from_field_text(field, word), distance.min(2), transpositions);
    let mut found: HashMap<String, u64> = HashMap::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field)?;
        let mut builder = inverted.terms().search(query.automaton()?);
        if !prefix.is_empty() {
            builder = builder.ge(prefix.as_bytes());
            if let Some(end) = strata_core::keycode::prefix_end(prefix.as_bytes()) {
                builder = builder.lt(end);
            }
        }
        let mut stream = builder.into_stream()?;
        while stream.advance() {
            if let Ok(text) = std::str::from_utf8(stream.key()) {
                *found.entry(text.to_string()).or_default() += stream.value().doc_freq as u64;
            }
        }
    }
    let mut out: Vec<Expansion> = found
        .into_iter()
        .map(|(term, doc_freq)| Expansion {
            distance: edit_distance(word, &term, transpositions),
            term,
            doc_freq,
        })
        .collect();
    out.sort_by(|a, b| {
        a.distance.cmp(&b.distance).then(b.doc_freq.cmp(&a.doc_freq)).then(a.term.cmp(&b.term))
    });
    out.truncate(max_expansions.max(1));
    Ok(out)
}

/// How much a fuzzy match counts next to an exact one (Lucene's `1 - distance / length`).
pub fn similarity(word: &str, expansion: &Expansion) -> f32 {
    let len = word.chars().count().min(expansion.term.chars().count()).max(1);
    (1.0 - expansion.distance as f32 / len as f32).max(0.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn distances_and_auto() {
        assert_eq!(edit_distance("serch", "search", true), 1);
        assert_eq!(edit_distance("saerch", "search", true), 1);
        assert_eq!(edit_distance("saerch", "search", false), 2);
        assert_eq!(parse_fuzziness(&json!("AUTO"), "ab"), Some(0));
        assert_eq!(parse_fuzziness(&json!("AUTO"), "serch"), Some(1));
        assert_eq!(parse_fuzziness(&json!("AUTO"), "searching"), Some(2));
        assert_eq!(parse_fuzziness(&json!(1), "x"), Some(1));
    }
}
