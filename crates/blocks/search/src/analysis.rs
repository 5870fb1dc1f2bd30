//! Analyzers: the text → tokens pipelines of an index, named as Elasticsearch names them.
//!
//! Built in: `standard`, `simple`, `whitespace`, `keyword`, `stop`, and one analyzer per
//! Snowball language (`english`, `french`, `german`, ... — lowercase, the language's stop
//! words, its stemmer). Custom analyzers come from an index's `settings.analysis`: a
//! tokenizer (`standard`, `whitespace`, `keyword`, `letter`, `lowercase`, `ngram`,
//! `edge_ngram`, or one declared under `analysis.tokenizer`) followed by token filters
//! (`lowercase`, `asciifolding`, `stop`, `stemmer`/`snowball`/`porter_stem`/`kstem`,
//! `ngram`, `edge_ngram`, `length`, or ones declared under `analysis.filter`).
//!
//! Each analyzer becomes a tantivy [`TextAnalyzer`] registered under its name in the index's
//! tokenizer manager, so indexing and querying share one definition. Two filters are written
//! here: n-grams (tantivy has an n-gram tokenizer but no filter) and stemming with a cache of
//! recent stems (words repeat; under perf, stemming was a quarter of indexing time).
//!
//! ## Limitations
//!
//! - The `standard` tokenizer splits on characters that are not letters or digits, which is
//!   close to, not the same as, Unicode word segmentation (`it's` gives `it`, `s`).
//! - Character filters are not supported.

use crate::error::{SearchError, SearchResult};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value, json};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, NgramTokenizer, RawTokenizer, RemoveLongFilter,
    SimpleTokenizer, StopWordFilter, TextAnalyzer, TextAnalyzerBuilder, Token, TokenFilter, TokenStream,
    Tokenizer, TokenizerManager, WhitespaceTokenizer,
};

/// Longest token kept, in bytes (Lucene's standard tokenizer default).
const MAX_TOKEN_BYTES: usize = 255;
/// Widest n-gram span allowed (`max_gram - min_gram`), as Elasticsearch's `max_ngram_diff`
/// default is 1 but search-as-you-type edge n-grams routinely span 20.
const MAX_NGRAM_SPAN: usize = 32;

/// Analyzer names every index has.
pub const BUILTIN: &[&str] = &["standard", "simple", "whitespace", "keyword", "stop"];

fn language(name: &str) -> Option<Language> {
    Some(match name.trim_start_matches('_').trim_end_matches('_') {
        "arabic" => Language::Arabic,
        "danish" => Language::Danish,
        "dutch" => Language::Dutch,
        "english" | "porter" | "light_english" | "minimal_english" | "kstem" => Language::English,
        "finnish" => Language::Finnish,
        "french" | "light_french" => Language::French,
        "german" | "light_german" | "german2" => Language::German,
        "greek" => Language::Greek,
        "hungarian" => Language::Hungarian,
        "italian" | "light_italian" => Language::Italian,
        "norwegian" => Language::Norwegian,
        "portuguese" | "light_portuguese" => Language::Portuguese,
        "romanian" => Language::Romanian,
        "russian" | "light_russian" => Language::Russian,
        "spanish" | "light_spanish" => Language::Spanish,
        "swedish" | "light_swedish" => Language::Swedish,
        "tamil" => Language::Tamil,
        "turkish" => Language::Turkish,
        _ => return None,
    })
}

/// The Snowball algorithm of a language (same names as [`language`]).
fn algorithm(language: Language) -> frostem::Algorithm {
    let name = match language {
        Language::Arabic => "arabic",
        Language::Danish => "danish",
        Language::Dutch => "dutch",
        Language::English => "english",
        Language::Finnish => "finnish",
        Language::French => "french",
        Language::German => "german",
        Language::Greek => "greek",
        Language::Hungarian => "hungarian",
        Language::Italian => "italian",
        Language::Norwegian => "norwegian",
        Language::Portuguese => "portuguese",
        Language::Romanian => "romanian",
        Language::Russian => "russian",
        Language::Spanish => "spanish",
        Language::Swedish => "swedish",
        Language::Tamil => "tamil",
        Language::Turkish => "turkish",
    };
    frostem::Algorithm::from_name(name).expect("tantivy's stemmer languages are built in")
}

fn bad(msg: impl Into<String>) -> SearchError {
    SearchError::illegal_argument(msg)
}

/// Builds every analyzer an index's settings declare, plus the built-in ones, into a
/// tokenizer manager. Fails on an unknown tokenizer, filter or language.
pub fn build(analysis: Option<&Value>) -> SearchResult<TokenizerManager> {
    let manager = TokenizerManager::new();
    for name in BUILTIN {
        manager.register(name, builtin(name).expect("built-in analyzer"));
    }
    for lang in [
        "arabic",
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "greek",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "tamil",
        "turkish",
    ] {
        manager.register(lang, language_analyzer(lang));
    }
    let empty = Map::new();
    let section = |key: &str| -> &Map<String, Value> {
        analysis.and_then(|a| a.get(key)).and_then(Value::as_object).unwrap_or(&empty)
    };
    let (tokenizers, filters) = (section("tokenizer"), section("filter"));
    for (name, def) in section("analyzer") {
        manager.register(name, custom(name, def, tokenizers, filters)?);
    }
    Ok(manager)
}

/// Checks that an analyzer name exists in the settings or is built in.
pub fn exists(manager: &TokenizerManager, name: &str) -> bool {
    manager.get(name).is_some()
}

fn builtin(name: &str) -> Option<TextAnalyzer> {
    Some(match name {
        "standard" => standard().build(),
        "simple" => TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).build(),
        "whitespace" => TextAnalyzer::builder(WhitespaceTokenizer::default()).build(),
        "keyword" => TextAnalyzer::builder(RawTokenizer::default()).build(),
        "stop" => standard().filter_dynamic(StopWordFilter::new(Language::English)?).build(),
        _ => return None,
    })
}

fn standard() -> TextAnalyzerBuilder {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .dynamic()
}

fn language_analyzer(lang: &str) -> TextAnalyzer {
    let language = language(lang).expect("known language");
    let mut builder = standard();
    if let Some(stop) = StopWordFilter::new(language) {
        builder = builder.filter_dynamic(stop);
    }
    builder.filter_dynamic(CachedStemmer::new(language)).build()
}

fn custom(
    name: &str,
    def: &Value,
    tokenizers: &Map<String, Value>,
    filters: &Map<String, Value>,
) -> SearchResult<TextAnalyzer> {
    let kind = def.get("type").and_then(Value::as_str).unwrap_or("custom");
    if kind != "custom" {
        // `{"type": "english"}` and friends: a built-in analyzer under another name, with
        // optional `stopwords`.
        if let Some(stop) = def.get("stopwords") {
            let mut builder = standard().filter_dynamic(stop_filter(stop, language(kind))?);
            if let Some(lang) = language(kind) {
                builder = builder.filter_dynamic(CachedStemmer::new(lang));
            }
            return Ok(builder.build());
        }
        if let Some(builtin) = builtin(kind) {
            return Ok(builtin);
        }
        if language(kind).is_some() {
            return Ok(language_analyzer(kind));
        }
        return Err(bad(format!("Unknown analyzer type [{kind}] for [{name}]")));
    }
    let tokenizer_name = def.get("tokenizer").and_then(Value::as_str).ok_or_else(|| {
        bad(format!("analyzer [{name}] must specify either an analyzer type, or a tokenizer"))
    })?;
    let mut builder = tokenizer(tokenizer_name, tokenizers)?;
    let names: Vec<&str> = match def.get("filter") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for filter_name in names {
        builder = filter(builder, filter_name, filters)?;
    }
    Ok(builder.build())
}

fn usize_of(def: &Value, key: &str, default: usize) -> SearchResult<usize> {
    match def.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(|n| n as usize)
            .ok_or_else(|| bad(format!("[{key}] must be a non-negative integer"))),
    }
}

fn grams(def: &Value, default_min: usize, default_max: usize) -> SearchResult<(usize, usize)> {
    let min = usize_of(def, "min_gram", default_min)?.max(1);
    let max = usize_of(def, "max_gram", default_max)?;
    if max < min || max - min > MAX_NGRAM_SPAN {
        return Err(bad(format!(
            "min_gram [{min}] and max_gram [{max}] must satisfy min_gram <= max_gram <= min_gram + {MAX_NGRAM_SPAN}"
        )));
    }
    Ok((min, max))
}

fn tokenizer(name: &str, declared: &Map<String, Value>) -> SearchResult<TextAnalyzerBuilder> {
    let (kind, def) = match declared.get(name) {
        Some(def) => (def.get("type").and_then(Value::as_str).unwrap_or(name), def.clone()),
        None => (name, json!({})),
    };
    let ngram = |min: usize, max: usize, edge: bool| -> SearchResult<TextAnalyzerBuilder> {
        let tokenizer = NgramTokenizer::new(min, max, edge).map_err(|e| bad(e.to_string()))?;
        Ok(TextAnalyzer::builder(tokenizer).dynamic())
    };
    match kind {
        "standard" | "classic" | "uax_url_email" => Ok(TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(usize_of(&def, "max_token_length", MAX_TOKEN_BYTES)?))
            .dynamic()),
        "letter" => Ok(TextAnalyzer::builder(SimpleTokenizer::default()).dynamic()),
        "lowercase" => Ok(TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).dynamic()),
        "whitespace" => Ok(TextAnalyzer::builder(WhitespaceTokenizer::default()).dynamic()),
        "keyword" => Ok(TextAnalyzer::builder(RawTokenizer::default()).dynamic()),
        "ngram" => {
            let (min, max) = grams(&def, 1, 2)?;
            ngram(min, max, false)
        }
        "edge_ngram" => {
            let (min, max) = grams(&def, 1, 2)?;
            ngram(min, max, true)
        }
        other => Err(bad(format!("failed to find tokenizer under name [{other}]"))),
    }
}

fn stop_filter(words: &Value, default: Option<Language>) -> SearchResult<StopWordFilter> {
    match words {
        Value::String(list) if list == "_none_" => Ok(StopWordFilter::remove(Vec::new())),
        Value::String(list) => language(list)
            .and_then(StopWordFilter::new)
            .ok_or_else(|| bad(format!("no stop word list named [{list}]"))),
        Value::Array(words) => {
            Ok(StopWordFilter::remove(words.iter().filter_map(Value::as_str).map(str::to_lowercase)))
        }
        _ => default
            .and_then(StopWordFilter::new)
            .ok_or_else(|| bad("[stopwords] must be a list name or an array")),
    }
}

fn filter(
    builder: TextAnalyzerBuilder,
    name: &str,
    declared: &Map<String, Value>,
) -> SearchResult<TextAnalyzerBuilder> {
    let (kind, def) = match declared.get(name) {
        Some(def) => (def.get("type").and_then(Value::as_str).unwrap_or(name), def.clone()),
        None => (name, json!({})),
    };
    Ok(match kind {
        "lowercase" => builder.filter_dynamic(LowerCaser),
        "asciifolding" => builder.filter_dynamic(AsciiFoldingFilter),
        "stop" => {
            let words = def.get("stopwords").cloned().unwrap_or(json!("_english_"));
            builder.filter_dynamic(stop_filter(&words, Some(Language::English))?)
        }
        "stemmer" | "snowball" => {
            let lang =
                def.get("language").or_else(|| def.get("name")).and_then(Value::as_str).unwrap_or("english");
            let lang = language(&lang.to_lowercase())
                .ok_or_else(|| bad(format!("unknown stemmer language [{lang}]")))?;
            builder.filter_dynamic(CachedStemmer::new(lang))
        }
        "porter_stem" | "kstem" => builder.filter_dynamic(CachedStemmer::new(Language::English)),
        "length" => builder.filter_dynamic(LengthFilter {
            min: usize_of(&def, "min", 0)?,
            max: usize_of(&def, "max", usize::MAX)?,
        }),
        "ngram" => {
            let (min, max) = grams(&def, 1, 2)?;
            builder.filter_dynamic(NgramFilter { min, max, edge: false })
        }
        "edge_ngram" | "edgeNGram" => {
            let (min, max) = grams(&def, 1, 2)?;
            builder.filter_dynamic(NgramFilter { min, max, edge: true })
        }
        other => return Err(bad(format!("failed to find filter under name [{other}]"))),
    })
}

/// The `_analyze` answer: each token with its offsets and position.
pub fn analyze(analyzer: &mut TextAnalyzer, texts: &[&str]) -> Value {
    let mut tokens = Vec::new();
    let mut base_offset = 0;
    let mut base_position = 0;
    for text in texts {
        let mut last_position = None;
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            last_position = Some(token.position);
            tokens.push(json!({
                "token": token.text,
                "start_offset": base_offset + token.offset_from,
                "end_offset": base_offset + token.offset_to,
                "type": if token.text.chars().all(|c| c.is_ascii_digit()) { "<NUM>" } else { "<ALPHANUM>" },
                "position": base_position + token.position,
            }));
        }
        // Elasticsearch puts a gap of 100 positions between the values of an array.
        base_position += last_position.map_or(0, |p| p + 1) + 100;
        base_offset += text.len() + 1;
    }
    json!({ "tokens": tokens })
}

/// The terms a query string analyzes to, with their positions (for phrases).
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        out.push((token.position, token.text.clone()));
    }
    out
}

/// Most stems a stemming filter remembers; past it the cache starts over.
const STEM_CACHE_ENTRIES: usize = 50_000;

/// Snowball stemming with a cache of recent stems, per tokenizer (each indexing thread has
/// its own copy, so there is no lock).
#[derive(Clone)]
struct CachedStemmer {
    algorithm: frostem::Algorithm,
}

impl CachedStemmer {
    fn new(language: Language) -> CachedStemmer {
        CachedStemmer { algorithm: algorithm(language) }
    }
}

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemTokenizer<T>;
    fn transform<T: Tokenizer>(self, tokenizer: T) -> CachedStemTokenizer<T> {
        CachedStemTokenizer { inner: tokenizer, algorithm: self.algorithm, cache: FxHashMap::default() }
    }
}

#[derive(Clone)]
struct CachedStemTokenizer<T> {
    inner: T,
    algorithm: frostem::Algorithm,
    cache: FxHashMap<String, String>,
}

impl<T: Tokenizer> Tokenizer for CachedStemTokenizer<T> {
    type TokenStream<'a> = CachedStemStream<'a, T::TokenStream<'a>>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemStream {
            tail: self.inner.token_stream(text),
            stemmer: frostem::Stemmer::new(self.algorithm),
            cache: &mut self.cache,
        }
    }
}

struct CachedStemStream<'a, S> {
    tail: S,
    stemmer: frostem::Stemmer,
    cache: &'a mut FxHashMap<String, String>,
}

impl<S: TokenStream> TokenStream for CachedStemStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.cache.get(&token.text) {
            token.text.clear();
            token.text.push_str(stem);
            return true;
        }
        let stem = self.stemmer.stem(&token.text).into_owned();
        if self.cache.len() >= STEM_CACHE_ENTRIES {
            self.cache.clear();
        }
        self.cache.insert(std::mem::replace(&mut token.text, stem.clone()), stem);
        true
    }
    fn token(&self) -> &Token {
        self.tail.token()
    }
    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// Drops tokens shorter than `min` or longer than `max` characters.
#[derive(Clone)]
struct LengthFilter {
    min: usize,
    max: usize,
}

impl TokenFilter for LengthFilter {
    type Tokenizer<T: Tokenizer> = LengthTokenizer<T>;
    fn transform<T: Tokenizer>(self, tokenizer: T) -> LengthTokenizer<T> {
        LengthTokenizer { inner: tokenizer, min: self.min, max: self.max }
    }
}

#[derive(Clone)]
struct LengthTokenizer<T> {
    inner: T,
    min: usize,
    max: usize,
}

impl<T: Tokenizer> Tokenizer for LengthTokenizer<T> {
    type TokenStream<'a> = LengthStream<T::TokenStream<'a>>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        LengthStream { tail: self.inner.token_stream(text), min: self.min, max: self.max }
    }
}

struct LengthStream<S> {
    tail: S,
    min: usize,
    max: usize,
}

impl<S: TokenStream> TokenStream for LengthStream<S> {
    fn advance(&mut self) -> bool {
        while self.tail.advance() {
            let len = self.tail.token().text.chars().count();
            if len >= self.min && len <= self.max {
                return true;
            }
        }
        false
    }
    fn token(&self) -> &Token {
        self.tail.token()
    }
    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// Replaces each token with its n-grams (or, with `edge`, its prefixes) of `min..=max`
/// characters, all at the token's position and offsets, as Elasticsearch's filters do.
#[derive(Clone)]
struct NgramFilter {
    min: usize,
    max: usize,
    edge: bool,
}

impl TokenFilter for NgramFilter {
    type Tokenizer<T: Tokenizer> = NgramFilterTokenizer<T>;
    fn transform<T: Tokenizer>(self, tokenizer: T) -> NgramFilterTokenizer<T> {
        NgramFilterTokenizer { inner: tokenizer, spec: self }
    }
}

#[derive(Clone)]
struct NgramFilterTokenizer<T> {
    inner: T,
    spec: NgramFilter,
}

impl<T: Tokenizer> Tokenizer for NgramFilterTokenizer<T> {
    type TokenStream<'a> = NgramStream<T::TokenStream<'a>>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        NgramStream {
            tail: self.inner.token_stream(text),
            spec: self.spec.clone(),
            pending: Vec::new(),
            current: Token::default(),
        }
    }
}

struct NgramStream<S> {
    tail: S,
    spec: NgramFilter,
    /// Grams of the current source token still to hand out, last first.
    pending: Vec<String>,
    current: Token,
}

impl<S: TokenStream> TokenStream for NgramStream<S> {
    fn advance(&mut self) -> bool {
        loop {
            if let Some(text) = self.pending.pop() {
                self.current.text = text;
                return true;
            }
            if !self.tail.advance() {
                return false;
            }
            let source = self.tail.token();
            let chars: Vec<(usize, char)> = source.text.char_indices().collect();
            let byte_at = |i: usize| chars.get(i).map_or(source.text.len(), |(b, _)| *b);
            let mut grams = Vec::new();
            let starts = if self.spec.edge { 0..1 } else { 0..chars.len() };
            for start in starts {
                for len in self.spec.min..=self.spec.max {
                    if start + len > chars.len() {
                        break;
                    }
                    grams.push(source.text[byte_at(start)..byte_at(start + len)].to_string());
                }
            }
            grams.reverse();
            self.pending = grams;
            self.current = source.clone();
        }
    }
    fn token(&self) -> &Token {
        &self.current
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(manager: &TokenizerManager, analyzer: &str, text: &str) -> Vec<String> {
        let mut analyzer = manager.get(analyzer).unwrap();
        terms(&mut analyzer, text).into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn english_stems_and_drops_stop_words() {
        let manager = build(None).unwrap();
        assert_eq!(tokens(&manager, "english", "The Runners were running"), ["runner", "were", "run"]);
        assert_eq!(tokens(&manager, "standard", "The Café"), ["the", "café"]);
    }

    #[test]
    fn custom_analyzer_with_folding_and_edge_ngrams() {
        let analysis = json!({
            "analyzer": {"autocomplete": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding", "prefixes"]}},
            "filter": {"prefixes": {"type": "edge_ngram", "min_gram": 2, "max_gram": 4}}
        });
        let manager = build(Some(&analysis)).unwrap();
        assert_eq!(tokens(&manager, "autocomplete", "Café Ok"), ["ca", "caf", "cafe", "ok"]);
        let bad = json!({"analyzer": {"x": {"tokenizer": "nope"}}});
        assert!(build(Some(&bad)).is_err());
    }

    #[test]
    fn analyze_reports_offsets_and_positions() {
        let manager = build(None).unwrap();
        let out = analyze(&mut manager.get("standard").unwrap(), &["Quick fox"]);
        assert_eq!(
            out["tokens"][1],
            json!({"token": "fox", "start_offset": 6, "end_offset": 9, "type": "<ALPHANUM>", "position": 1})
        );
    }
}
