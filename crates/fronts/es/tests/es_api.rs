//! The Elasticsearch API driven by reqwest against a server on port 0: a corpus with known
//! answers, the document and index APIs, and bad input.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use strata_core::Store;
use strata_search::{Search, SearchConfig};

struct Server {
    base: String,
    http: Client,
}

async fn server(config: strata_es::EsConfig) -> Server {
    let search = Search::open(Store::memory(), None, SearchConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(strata_es::serve(listener, search, config, std::future::pending()));
    Server { base, http: Client::new() }
}

impl Server {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.headers()["x-elastic-product"], "Elasticsearch");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            },
        )
    }

    async fn bulk(&self, path: &str, lines: &[Value]) -> (StatusCode, Value) {
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn search(&self, index: &str, body: Value) -> Value {
        let (status, answer) = self.call(Method::POST, &format!("/{index}/_search"), Some(body)).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["hits"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap()).collect()
}

async fn corpus() -> Server {
    let s = server(Default::default()).await;
    let (status, _) = s
        .call(Method::PUT, "/articles", Some(json!({
            "settings": {"number_of_shards": 1, "analysis": {
                "analyzer": {"autocomplete": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding", "prefixes"]}},
                "filter": {"prefixes": {"type": "edge_ngram", "min_gram": 2, "max_gram": 10}}}},
            "mappings": {"properties": {
                "title": {"type": "text", "analyzer": "english", "fields": {"raw": {"type": "keyword"}, "suggest": {"type": "text", "analyzer": "autocomplete", "search_analyzer": "standard"}}},
                "category": {"type": "keyword"},
                "views": {"type": "integer"},
                "published": {"type": "date"},
                "author": {"properties": {"name": {"type": "text"}}}}}
        })))
        .await;
    assert_eq!(status, 200);
    let docs = [
        ("1", "I run every morning", "sport", 10, "2024-01-05"),
        ("2", "She runs the city marathon", "sport", 30, "2024-01-20"),
        ("3", "Full text search with inverted indexes", "tech", 50, "2024-02-02"),
        ("4", "quick fox", "nature", 5, "2024-02-10"),
        (
            "5",
            "the quick brown dog leaps over a lazy sleeping fox near the old barn",
            "nature",
            7,
            "2024-03-01",
        ),
        ("6", "Café crème recipes", "food", 20, "2024-03-15"),
    ];
    let mut lines = Vec::new();
    for (id, title, category, views, published) in docs {
        lines.push(json!({"index": {"_id": id}}));
        lines.push(json!({"title": title, "category": category, "views": views, "published": published, "author": {"name": format!("author {id}")}}));
    }
    let (status, answer) = s.bulk("/articles/_bulk?refresh=true", &lines).await;
    assert_eq!(status, 200);
    assert_eq!(answer["errors"], false, "{answer}");
    s
}

#[tokio::test]
async fn known_answers_for_stemming_fuzziness_ranking_and_phrases() {
    let s = corpus().await;
    let mut running = ids(&s.search("articles", json!({"query": {"match": {"title": "running"}}})).await)
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    running.sort();
    assert_eq!(running, ["1", "2"]);
    let fuzzy = s
        .search("articles", json!({"query": {"match": {"title": {"query": "serch", "fuzziness": 1}}}}))
        .await;
    assert_eq!(ids(&fuzzy), ["3"]);
    let fuzzy_term = s
        .search("articles", json!({"query": {"fuzzy": {"category": {"value": "tehc", "fuzziness": "AUTO"}}}}))
        .await;
    assert_eq!(ids(&fuzzy_term), ["3"]);
    let kept_prefix = s
        .search(
            "articles",
            json!({"query": {"match": {"title": {"query": "serch", "fuzziness": 1, "prefix_length": 2}}}}),
        )
        .await;
    assert_eq!(ids(&kept_prefix), ["3"], "'se' is shared");
    let prefix_blocks = s
        .search(
            "articles",
            json!({"query": {"match": {"title": {"query": "serch", "fuzziness": 1, "prefix_length": 3}}}}),
        )
        .await;
    assert!(ids(&prefix_blocks).is_empty(), "'ser' is not a prefix of 'search': {prefix_blocks}");
    let ranked = s.search("articles", json!({"query": {"match": {"title": "fox"}}})).await;
    assert_eq!(ids(&ranked), ["4", "5"], "the shorter document ranks first under BM25");
    assert!(ranked["hits"]["hits"][0]["_score"].as_f64() > ranked["hits"]["hits"][1]["_score"].as_f64());
    let phrase = s.search("articles", json!({"query": {"match_phrase": {"title": "quick fox"}}})).await;
    assert_eq!(ids(&phrase), ["4"]);
    let reversed = s.search("articles", json!({"query": {"match_phrase": {"title": "fox quick"}}})).await;
    assert!(ids(&reversed).is_empty());
    let folded = s.search("articles", json!({"query": {"match": {"title.suggest": "cafe"}}})).await;
    assert_eq!(ids(&folded), ["6"]);
    let as_you_type = s.search("articles", json!({"query": {"match": {"title.suggest": "marat"}}})).await;
    assert_eq!(ids(&as_you_type), ["2"]);
    let prefix = s.search("articles", json!({"query": {"match_phrase_prefix": {"title": "quick br"}}})).await;
    assert_eq!(ids(&prefix), ["5"]);
}

#[tokio::test]
async fn aggregations_give_exact_counts() {
    let s = corpus().await;
    let answer = s
        .search("articles", json!({
            "size": 0,
            "aggs": {
                "by_category": {"terms": {"field": "category"}, "aggs": {"views": {"sum": {"field": "views"}}}},
                "views_ranges": {"range": {"field": "views", "ranges": [{"to": 10}, {"from": 10, "to": 40}, {"from": 40}]}},
                "histogram": {"histogram": {"field": "views", "interval": 25}},
                "monthly": {"date_histogram": {"field": "published", "fixed_interval": "30d"}},
                "avg_views": {"avg": {"field": "views"}},
                "max_views": {"max": {"field": "views"}},
                "min_views": {"min": {"field": "views"}},
                "categories": {"cardinality": {"field": "category"}}
            }
        }))
        .await;
    let aggs = &answer["aggregations"];
    assert_eq!(answer["hits"]["total"]["value"], 6);
    let buckets: Vec<(String, u64, f64)> = aggs["by_category"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["key"].as_str().unwrap().to_string(),
                b["doc_count"].as_u64().unwrap(),
                b["views"]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(buckets[0], ("nature".to_string(), 2, 12.0));
    assert_eq!(buckets[1], ("sport".to_string(), 2, 40.0));
    assert_eq!(buckets.len(), 4);
    let ranges: Vec<u64> = aggs["views_ranges"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["doc_count"].as_u64().unwrap())
        .collect();
    assert_eq!(ranges, [2, 3, 1]);
    let histogram: Vec<(i64, u64)> = aggs["histogram"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_i64().unwrap(), b["doc_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(histogram, [(0, 4), (25, 1), (50, 1)]);
    let monthly: u64 =
        aggs["monthly"]["buckets"].as_array().unwrap().iter().map(|b| b["doc_count"].as_u64().unwrap()).sum();
    assert_eq!(monthly, 6);
    assert_eq!(aggs["avg_views"]["value"].as_f64().unwrap(), 122.0 / 6.0);
    assert_eq!(
        (aggs["max_views"]["value"].as_f64(), aggs["min_views"]["value"].as_f64()),
        (Some(50.0), Some(5.0))
    );
    assert_eq!(aggs["categories"]["value"].as_f64(), Some(4.0));
}

/// `(key, key_as_string, doc_count)` of a date_histogram's buckets.
fn date_buckets(agg: &Value) -> Vec<(i64, String, u64)> {
    agg["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {agg}"))
        .iter()
        .map(|b| {
            let label = b["key_as_string"].as_str().unwrap_or_default();
            (b["key"].as_i64().unwrap(), label[..10].to_string(), b["doc_count"].as_u64().unwrap())
        })
        .collect()
}

/// Calendar months, quarters and years bucket by the calendar (months differ in length), fill
/// gaps between the first and last document with empty buckets, honour `min_doc_count`, hold
/// sub-aggregations and nest under other buckets; what they cannot do is refused.
#[tokio::test]
async fn date_histograms_by_calendar_month_quarter_and_year() {
    let s = corpus().await;
    let month = |query: Value, extra: Value| {
        let mut dh = json!({"field": "published", "calendar_interval": "month"});
        dh.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"size": 0, "query": query, "aggs": {"m": {"date_histogram": dh, "aggs": {"views": {"sum": {"field": "views"}}}}}})
    };
    let (jan, feb, mar) = (1_704_067_200_000_i64, 1_706_745_600_000_i64, 1_709_251_200_000_i64);
    let all = s.search("articles", month(json!({"match_all": {}}), json!({}))).await;
    let m = &all["aggregations"]["m"];
    assert_eq!(
        date_buckets(m),
        [(jan, "2024-01-01".into(), 2), (feb, "2024-02-01".into(), 2), (mar, "2024-03-01".into(), 2)]
    );
    let sums: Vec<f64> =
        m["buckets"].as_array().unwrap().iter().map(|b| b["views"]["value"].as_f64().unwrap()).collect();
    assert_eq!(sums, [40.0, 55.0, 27.0]);

    // Buckets follow the matching documents: none before the first, empty ones in a gap.
    let nature = s.search("articles", month(json!({"term": {"category": "nature"}}), json!({}))).await;
    assert_eq!(
        date_buckets(&nature["aggregations"]["m"]),
        [(feb, "2024-02-01".into(), 1), (mar, "2024-03-01".into(), 1)]
    );
    let gap = json!({"terms": {"category": ["sport", "food"]}});
    let with_gap = s.search("articles", month(gap.clone(), json!({}))).await;
    let counts: Vec<u64> = date_buckets(&with_gap["aggregations"]["m"]).into_iter().map(|b| b.2).collect();
    assert_eq!(counts, [2, 0, 1]);
    let dense = s.search("articles", month(gap, json!({"min_doc_count": 1}))).await;
    let keys: Vec<i64> = date_buckets(&dense["aggregations"]["m"]).into_iter().map(|b| b.0).collect();
    assert_eq!(keys, [jan, mar]);

    // Quarters and years, and a calendar histogram inside terms buckets.
    let answer = s
        .search(
            "articles",
            json!({"size": 0, "aggs": {
                "q": {"date_histogram": {"field": "published", "calendar_interval": "quarter"}},
                "y": {"date_histogram": {"field": "published", "calendar_interval": "1y"}},
                "by_category": {"terms": {"field": "category"}, "aggs": {
                    "m": {"date_histogram": {"field": "published", "calendar_interval": "1M"}}}}
            }}),
        )
        .await;
    let aggs = &answer["aggregations"];
    assert_eq!(date_buckets(&aggs["q"]), [(jan, "2024-01-01".into(), 6)]);
    assert_eq!(date_buckets(&aggs["y"]), [(jan, "2024-01-01".into(), 6)]);
    let nature =
        aggs["by_category"]["buckets"].as_array().unwrap().iter().find(|b| b["key"] == "nature").unwrap();
    assert_eq!(date_buckets(&nature["m"]), [(feb, "2024-02-01".into(), 1), (mar, "2024-03-01".into(), 1)]);

    // What is not supported is a clear 400, and the server goes on.
    for dh in [
        json!({"field": "published", "calendar_interval": "fortnight"}),
        json!({"field": "published", "calendar_interval": "month", "time_zone": "Europe/Atlantis"}),
        json!({"field": "published", "calendar_interval": "month", "offset": "+1d"}),
    ] {
        let body = json!({"size": 0, "aggs": {"m": {"date_histogram": dh}}});
        let (status, answer) = s.call(Method::POST, "/articles/_search", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["type"], "illegal_argument_exception", "{answer}");
    }
    assert_eq!(s.search("articles", json!({"size": 0})).await["hits"]["total"]["value"], 6);
}

/// With `time_zone`, buckets start at the zone's local boundaries: a Berlin day is 23 hours
/// long on the day clocks go forward, and keys say their offset; weeks start on Monday.
#[tokio::test]
async fn date_histograms_in_a_time_zone() {
    let s = server(strata_es::EsConfig::default()).await;
    let (status, _) = s
        .call(Method::PUT, "/clicks", Some(json!({"mappings": {"properties": {"at": {"type": "date"}}}})))
        .await;
    assert_eq!(status, 200);
    // In Berlin: Feb 1 00:30, Mar 31 00:30 (CET), Mar 31 23:30 (CEST), Apr 1 00:30 (CEST).
    let times =
        ["2024-01-31T23:30:00Z", "2024-03-30T23:30:00Z", "2024-03-31T21:30:00Z", "2024-03-31T22:30:00Z"];
    let lines: Vec<Value> = times
        .iter()
        .enumerate()
        .flat_map(|(i, at)| [json!({"index": {"_index": "clicks", "_id": i.to_string()}}), json!({"at": at})])
        .collect();
    s.bulk("/_bulk?refresh=true", &lines).await;
    let s = &s;
    let histogram = |dh: Value| async move {
        let answer = s.search("clicks", json!({"size": 0, "aggs": {"h": {"date_histogram": dh}}})).await;
        answer["aggregations"]["h"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["key_as_string"].as_str().unwrap().to_string(), b["doc_count"].as_u64().unwrap()))
            .collect::<Vec<_>>()
    };
    let berlin_days = histogram(
        json!({"field": "at", "calendar_interval": "day", "time_zone": "Europe/Berlin", "min_doc_count": 1}),
    )
    .await;
    assert_eq!(
        berlin_days,
        [
            ("2024-02-01T00:00:00.000+01:00".to_string(), 1),
            ("2024-03-31T00:00:00.000+01:00".to_string(), 2),
            ("2024-04-01T00:00:00.000+02:00".to_string(), 1)
        ]
    );
    let berlin_months =
        histogram(json!({"field": "at", "calendar_interval": "month", "time_zone": "Europe/Berlin"})).await;
    let counts: Vec<u64> = berlin_months.iter().map(|b| b.1).collect();
    assert_eq!(counts, [1, 2, 1], "{berlin_months:?}");
    assert_eq!(berlin_months[0].0, "2024-02-01T00:00:00.000+01:00");
    let utc_months: Vec<u64> =
        histogram(json!({"field": "at", "calendar_interval": "month"})).await.iter().map(|b| b.1).collect();
    assert_eq!(utc_months, [1, 0, 3]);
    // A fixed offset shifts fixed intervals too: hours in India start at half past UTC.
    let key = |dh: Value| async move {
        let answer = s.search("clicks", json!({"size": 0, "aggs": {"h": {"date_histogram": dh}}})).await;
        answer["aggregations"]["h"]["buckets"][0]["key"].as_i64().unwrap()
    };
    let first = 1_706_743_800_000_i64; // 2024-01-31T23:30:00Z
    assert_eq!(key(json!({"field": "at", "fixed_interval": "1h", "time_zone": "+05:30"})).await, first);
    assert_eq!(key(json!({"field": "at", "fixed_interval": "1h"})).await, first - 1_800_000);
    // Weeks start on Monday: Wednesday Jan 31 is in the week of Monday Jan 29.
    assert_eq!(key(json!({"field": "at", "calendar_interval": "week"})).await, 1_706_486_400_000);
}

#[tokio::test]
async fn bool_sort_paging_source_highlight_and_suggest() {
    let s = corpus().await;
    let answer = s
        .search(
            "articles",
            json!({
                "query": {"bool": {
                    "must": [{"match": {"title": "quick"}}],
                    "filter": [{"range": {"views": {"gte": 5, "lt": 8}}}],
                    "must_not": [{"term": {"category": "food"}}],
                    "should": [{"match": {"title": "dog"}}]}},
                "_source": ["title"],
                "highlight": {"fields": {"title": {}}}
            }),
        )
        .await;
    assert_eq!(ids(&answer), ["5", "4"], "should boosts the dog document");
    assert_eq!(
        answer["hits"]["hits"][0]["_source"],
        json!({"title": "the quick brown dog leaps over a lazy sleeping fox near the old barn"})
    );
    assert!(answer["hits"]["hits"][0]["highlight"]["title"][0].as_str().unwrap().contains("<em>quick</em>"));

    let page1 =
        s.search("articles", json!({"size": 2, "sort": [{"views": "desc"}, {"category": "asc"}]})).await;
    assert_eq!(ids(&page1), ["3", "2"]);
    let after = page1["hits"]["hits"][1]["sort"].clone();
    assert_eq!(after, json!([30, "sport"]));
    let page2 = s
        .search(
            "articles",
            json!({"size": 2, "sort": [{"views": "desc"}, {"category": "asc"}], "search_after": after}),
        )
        .await;
    assert_eq!(ids(&page2), ["6", "1"]);
    let from = s.search("articles", json!({"from": 2, "size": 2, "sort": [{"views": "desc"}]})).await;
    assert_eq!(ids(&from), ["6", "1"]);

    let multi = s.search("articles", json!({"query": {"multi_match": {"query": "author 4 fox", "fields": ["title^3", "author.name"]}}})).await;
    assert_eq!(ids(&multi)[0], "4");
    let qs = s
        .search("articles", json!({"query": {"query_string": {"query": "title:marathon OR category:tech"}}}))
        .await;
    let mut qs_ids = ids(&qs);
    qs_ids.sort();
    assert_eq!(qs_ids, ["2", "3"]);
    let uri = s.call(Method::GET, "/articles/_search?q=category:nature&size=1", None).await.1;
    assert_eq!(uri["hits"]["total"]["value"], 2);
    assert_eq!(uri["hits"]["hits"].as_array().unwrap().len(), 1);

    let exists = s.search("articles", json!({"query": {"exists": {"field": "author.name"}}})).await;
    assert_eq!(exists["hits"]["total"]["value"], 6);
    let wildcard =
        s.search("articles", json!({"query": {"wildcard": {"category": {"value": "n*re"}}}})).await;
    assert_eq!(wildcard["hits"]["total"]["value"], 2);
    let terms = s.search("articles", json!({"query": {"terms": {"category": ["food", "tech"]}}})).await;
    assert_eq!(terms["hits"]["total"]["value"], 2);
    let ids_q = s.search("articles", json!({"query": {"ids": {"values": ["1", "6", "99"]}}})).await;
    assert_eq!(ids_q["hits"]["total"]["value"], 2);
    let dates = s
        .search(
            "articles",
            json!({"query": {"range": {"published": {"gte": "2024-02-01", "lt": "2024-03-01"}}}}),
        )
        .await;
    assert_eq!(dates["hits"]["total"]["value"], 2);
    let boosted = s
        .search("articles", json!({"query": {"function_score": {"query": {"match": {"title": "fox"}}, "field_value_factor": {"field": "views"}, "boost_mode": "replace"}}}))
        .await;
    assert_eq!(ids(&boosted), ["5", "4"], "views 7 beats views 5 once the score is replaced");

    let suggest = s
        .search(
            "articles",
            json!({"size": 0, "suggest": {"fix": {"text": "quik marathn", "term": {"field": "title"}}}}),
        )
        .await;
    let fix = &suggest["suggest"]["fix"];
    assert_eq!(fix[0]["options"][0]["text"], "quick");
    assert_eq!(fix[1]["options"][0]["text"], "marathon");
    let count = s
        .call(Method::POST, "/articles/_count", Some(json!({"query": {"term": {"category": "sport"}}})))
        .await
        .1;
    assert_eq!(count["count"], 2);
}

#[tokio::test]
async fn documents_versions_updates_and_by_query() {
    let s = server(Default::default()).await;
    let (status, created) =
        s.call(Method::PUT, "/notes/_doc/a", Some(json!({"text": "hello world", "n": 1}))).await;
    assert_eq!(status, 201);
    assert_eq!((created["result"].as_str(), created["_version"].as_u64()), (Some("created"), Some(1)));
    let seq = created["_seq_no"].as_u64().unwrap();
    let (status, doc) = s.call(Method::GET, "/notes/_doc/a", None).await;
    assert_eq!(
        (status, &doc["_source"]),
        (StatusCode::OK, &json!({"text": "hello world", "n": 1})),
        "GET is realtime, before any refresh"
    );
    let (status, conflict) = s
        .call(
            Method::PUT,
            &format!("/notes/_doc/a?if_seq_no={}&if_primary_term=1", seq + 10),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(conflict["error"]["type"], "version_conflict_engine_exception");
    let (status, updated) = s
        .call(
            Method::PUT,
            &format!("/notes/_doc/a?if_seq_no={seq}&if_primary_term=1"),
            Some(json!({"text": "hello again", "n": 1})),
        )
        .await;
    assert_eq!((status, updated["_version"].as_u64()), (StatusCode::OK, Some(2)));
    let (status, _) = s.call(Method::PUT, "/notes/_create/a", Some(json!({"text": "dup"}))).await;
    assert_eq!(status, 409);
    let (status, partial) =
        s.call(Method::POST, "/notes/_update/a", Some(json!({"doc": {"tag": "x"}}))).await;
    assert_eq!((status, partial["result"].as_str()), (StatusCode::OK, Some("updated")));
    let (_, noop) = s.call(Method::POST, "/notes/_update/a", Some(json!({"doc": {"tag": "x"}}))).await;
    assert_eq!(noop["result"], "noop");
    let (_, scripted) = s
        .call(
            Method::POST,
            "/notes/_update/a?refresh=true",
            Some(json!({"script": {"source": "ctx._source.n += params.by", "params": {"by": 4}}})),
        )
        .await;
    assert_eq!(scripted["_version"], 4);
    let (status, _) = s.call(Method::POST, "/notes/_update/missing", Some(json!({"doc": {"a": 1}}))).await;
    assert_eq!(status, 404);
    let (status, upserted) = s
        .call(
            Method::POST,
            "/notes/_update/b?refresh=true",
            Some(json!({"doc": {"text": "from upsert", "n": 7}, "doc_as_upsert": true})),
        )
        .await;
    assert_eq!((status, upserted["result"].as_str()), (StatusCode::CREATED, Some("created")));
    let (_, auto) =
        s.call(Method::POST, "/notes/_doc?refresh=true", Some(json!({"text": "auto id", "n": 0}))).await;
    let auto_id = auto["_id"].as_str().unwrap().to_string();
    assert_eq!(auto_id.len(), 20);

    let (_, mget) = s.call(Method::POST, "/notes/_mget", Some(json!({"ids": ["a", "nope", auto_id]}))).await;
    let found: Vec<bool> =
        mget["docs"].as_array().unwrap().iter().map(|d| d["found"].as_bool().unwrap()).collect();
    assert_eq!(found, [true, false, true]);
    assert_eq!(mget["docs"][0]["_source"]["n"], 5);

    let (_, by_query) = s.call(Method::POST, "/notes/_update_by_query?refresh=true", Some(json!({"query": {"range": {"n": {"gte": 5}}}, "script": {"source": "ctx._source.big = true"}}))).await;
    assert_eq!(by_query["updated"], 2);
    let big = s.search("notes", json!({"query": {"term": {"big": true}}})).await;
    assert_eq!(big["hits"]["total"]["value"], 2);
    let (_, deleted) = s
        .call(
            Method::POST,
            "/notes/_delete_by_query?refresh=true",
            Some(json!({"query": {"match": {"text": "hello"}}})),
        )
        .await;
    assert_eq!(deleted["deleted"], 1);
    let (status, gone) = s.call(Method::DELETE, "/notes/_doc/a", None).await;
    assert_eq!((status, gone["result"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, deleted) =
        s.call(Method::DELETE, &format!("/notes/_doc/{auto_id}?refresh=true"), None).await;
    assert_eq!((status, deleted["result"].as_str()), (StatusCode::OK, Some("deleted")));
    assert_eq!(s.call(Method::POST, "/notes/_count", None).await.1["count"], 1);

    let (_, mapping) = s.call(Method::GET, "/notes/_mapping", None).await;
    assert_eq!(
        mapping["notes"]["mappings"]["properties"]["text"]["fields"]["keyword"]["type"], "keyword",
        "dynamic mapping adds .keyword"
    );
    let (status, _) = s
        .call(Method::PUT, "/notes/_mapping", Some(json!({"properties": {"extra": {"type": "date"}}})))
        .await;
    assert_eq!(status, 200);
    let (_, mapping) = s.call(Method::GET, "/notes/_mapping", None).await;
    assert_eq!(mapping["notes"]["mappings"]["properties"]["extra"]["type"], "date");
    assert_eq!(
        s.search("notes", json!({"query": {"match": {"text": "upsert"}}})).await["hits"]["total"]["value"],
        1,
        "documents survive a mapping change"
    );

    let (_, tokens) = s
        .call(Method::POST, "/_analyze", Some(json!({"analyzer": "english", "text": "The Running Foxes"})))
        .await;
    let words: Vec<&str> =
        tokens["tokens"].as_array().unwrap().iter().map(|t| t["token"].as_str().unwrap()).collect();
    assert_eq!(words, ["run", "fox"]);
    let (status, _) = s.call(Method::HEAD, "/notes", None).await;
    assert_eq!(status, 200);
    let cat = s
        .http
        .get(format!("{}/_cat/indices?format=json", s.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(cat[0]["index"], "notes");
    assert_eq!(cat[0]["docs.count"], "1");
    let (status, _) = s.call(Method::DELETE, "/notes", None).await;
    assert_eq!(status, 200);
    let (status, _) = s.call(Method::HEAD, "/notes", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_input_gets_elasticsearch_errors_and_the_server_keeps_serving() {
    let s = server(strata_es::EsConfig { max_body_bytes: 64 * 1024, ..Default::default() }).await;
    s.call(Method::PUT, "/good", Some(json!({"mappings": {"properties": {"n": {"type": "long"}}}}))).await;

    let (status, err) =
        s.call(Method::POST, "/good/_search", Some(json!({"query": {"no_such_query": {}}}))).await;
    assert_eq!((status, err["error"]["type"].as_str()), (StatusCode::BAD_REQUEST, Some("parsing_exception")));
    assert_eq!(err["status"], 400);
    assert!(err["error"]["root_cause"][0]["reason"].as_str().unwrap().contains("no_such_query"));
    let (status, err) = s
        .call(Method::POST, "/good/_search", Some(json!({"query": {"match": {"a": 1}, "term": {"b": 2}}})))
        .await;
    assert_eq!((status, err["error"]["type"].as_str()), (StatusCode::BAD_REQUEST, Some("parsing_exception")));
    let resp = s
        .http
        .post(format!("{}/good/_search", s.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "x_content_parse_exception");

    let (status, err) = s.call(Method::GET, "/missing/_search", None).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::NOT_FOUND, Some("index_not_found_exception"))
    );
    assert_eq!(err["error"]["index"], "missing");
    let (status, err) = s.call(Method::GET, "/missing/_doc/1", None).await;
    assert_eq!(status, 404, "{err}");

    let (status, err) = s
        .call(Method::PUT, "/bad", Some(json!({"mappings": {"properties": {"x": {"type": "no_such_type"}}}})))
        .await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mapper_parsing_exception"))
    );
    let (status, err) = s.call(Method::PUT, "/Bad-Name", None).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_index_name_exception"))
    );
    let (status, err) = s.call(Method::PUT, "/good", None).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("resource_already_exists_exception"))
    );
    let (status, err) = s.call(Method::PUT, "/good/_doc/1", Some(json!({"n": "not a number"}))).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mapper_parsing_exception"))
    );
    let (status, err) =
        s.call(Method::PUT, "/good/_mapping", Some(json!({"properties": {"n": {"type": "text"}}}))).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_argument_exception"))
    );
    let (status, _) = s.call(Method::POST, "/good/_search", Some(json!({"size": 20000}))).await;
    assert_eq!(status, 400);
    let (status, err) = s
        .call(
            Method::POST,
            "/good/_search",
            Some(json!({"aggs": {"x": {"no_such_aggregation": {"field": "n"}}}})),
        )
        .await;
    assert_eq!(status, 400, "{err}");

    let big_line = json!({"n": 1, "pad": "x".repeat(1000)});
    let lines: Vec<Value> = (0..100)
        .flat_map(|i| [json!({"index": {"_index": "good", "_id": i.to_string()}}), big_line.clone()])
        .collect();
    let (status, err) = s.bulk("/_bulk", &lines).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("content_too_long_exception"))
    );
    let (status, err) = s.bulk("/_bulk", &[json!("not an action")]).await;
    assert_eq!(
        (status, err["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("illegal_argument_exception"))
    );
    let resp = s
        .http
        .post(format!("{}/good/_search", s.base))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 406);

    // The versioned media type current clients send is accepted and answered in kind.
    let resp = s
        .http
        .post(format!("{}/good/_doc/1?refresh=true", s.base))
        .header("content-type", "application/vnd.elasticsearch+json; compatible-with=8")
        .header("accept", "application/vnd.elasticsearch+json; compatible-with=8")
        .body(json!({"n": 5}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        resp.headers()["content-type"].to_str().unwrap().starts_with("application/vnd.elasticsearch+json")
    );
    let (_, hits) = s.call(Method::POST, "/good/_search", Some(json!({"query": {"term": {"n": 5}}}))).await;
    assert_eq!(hits["hits"]["total"]["value"], 1, "still serving after every error above");
}

#[tokio::test]
async fn basic_auth_when_a_password_is_set() {
    let s = server(strata_es::EsConfig { password: Some("s3cret".into()), ..Default::default() }).await;
    let resp = s.http.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["type"], "security_exception");
    let resp = s.http.get(format!("{}/", s.base)).basic_auth("elastic", Some("s3cret")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["version"]["number"], strata_es::VERSION);
    let resp = s.http.get(format!("{}/", s.base)).basic_auth("elastic", Some("wrong")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn scroll_pages_through_a_point_in_time_and_clears() {
    let s = server(strata_es::EsConfig::default()).await;
    let lines: Vec<Value> = (0..25)
        .flat_map(|i| {
            [json!({"index": {"_index": "logs", "_id": format!("d{i:02}")}}), json!({"n": i, "msg": "hello"})]
        })
        .collect();
    let (status, _) = s.bulk("/_bulk?refresh=true", &lines).await;
    assert_eq!(status, 200);
    // The first page opens the scroll; sorted by n, 10 at a time.
    let (status, first) = s
        .call(
            Method::POST,
            "/logs/_search?scroll=1m",
            Some(json!({"size": 10, "query": {"match": {"msg": "hello"}}, "sort": [{"n": "asc"}]})),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["hits"]["total"]["value"], 25);
    let id = first["_scroll_id"].as_str().unwrap().to_string();
    let mut seen: Vec<String> = ids(&first).into_iter().map(String::from).collect();
    // A document written after the scroll opened is not in it (a point in time).
    let (status, _) =
        s.call(Method::PUT, "/logs/_doc/late?refresh=true", Some(json!({"n": 3, "msg": "hello"}))).await;
    assert_eq!(status, 201);
    let mut sizes = vec![seen.len()];
    loop {
        let (status, page) =
            s.call(Method::POST, "/_search/scroll", Some(json!({"scroll": "30s", "scroll_id": id}))).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["_scroll_id"], id.as_str());
        assert_eq!(page["hits"]["total"]["value"], 25);
        let page_ids = ids(&page);
        sizes.push(page_ids.len());
        if page_ids.is_empty() {
            break;
        }
        seen.extend(page_ids.into_iter().map(String::from));
    }
    assert_eq!(sizes, [10, 10, 5, 0]);
    let expected: Vec<String> = (0..25).map(|i| format!("d{i:02}")).collect();
    assert_eq!(seen, expected, "every document once, in sort order, and not the late one");
    // Cleared, the scroll is gone; clearing it again frees nothing.
    let (status, cleared) = s.call(Method::DELETE, "/_search/scroll", Some(json!({"scroll_id": [id]}))).await;
    assert_eq!((status, cleared["num_freed"].clone()), (StatusCode::OK, json!(1)));
    let (status, gone) = s.call(Method::GET, &format!("/_search/scroll/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["type"], "search_context_missing_exception");
    let (status, _) = s.call(Method::DELETE, &format!("/_search/scroll/{id}"), None).await;
    assert_eq!(status, 404);
    // Bad scroll requests.
    let (status, bad) = s.call(Method::POST, "/logs/_search?scroll=forever", Some(json!({}))).await;
    assert_eq!((status, bad["error"]["type"].clone()), (StatusCode::BAD_REQUEST, json!("parse_exception")));
    let (status, _) = s.call(Method::POST, "/logs/_search?scroll=1m", Some(json!({"from": 5}))).await;
    assert_eq!(status, 400);
    let (status, _) = s.call(Method::POST, "/_search/scroll", Some(json!({"scroll": "1m"}))).await;
    assert_eq!(status, 400);
    // `_all` clears every open scroll.
    for _ in 0..2 {
        let (status, _) = s.call(Method::POST, "/logs/_search?scroll=1m", Some(json!({"size": 1}))).await;
        assert_eq!(status, 200);
    }
    let (status, cleared) = s.call(Method::DELETE, "/_search/scroll/_all", None).await;
    assert_eq!((status, cleared["num_freed"].clone()), (StatusCode::OK, json!(2)));
    // No data streams: reindex helpers probe the target and take a 404 as "an index".
    let (status, missing) = s.call(Method::GET, "/_data_stream/logs-copy", None).await;
    assert_eq!(
        (status, missing["error"]["type"].clone()),
        (StatusCode::NOT_FOUND, json!("index_not_found_exception"))
    );
}

#[tokio::test]
async fn sliced_scrolls_split_the_documents_between_workers() {
    let s = server(strata_es::EsConfig::default()).await;
    // Two batches, refreshed apart, so that slices cut across segments.
    for batch in [0..120, 120..200] {
        let lines: Vec<Value> = batch
            .flat_map(|i| [json!({"index": {"_index": "big", "_id": format!("d{i}")}}), json!({"n": i})])
            .collect();
        let (status, _) = s.bulk("/_bulk?refresh=true", &lines).await;
        assert_eq!(status, 200);
    }
    let mut seen = std::collections::BTreeSet::new();
    for slice in 0..3 {
        let body =
            json!({"size": 30, "slice": {"id": slice, "max": 3}, "query": {"range": {"n": {"gte": 0}}}});
        let (status, first) = s.call(Method::POST, "/big/_search?scroll=1m", Some(body)).await;
        assert_eq!(status, 200, "{first}");
        let total = first["hits"]["total"]["value"].as_u64().unwrap();
        assert!((30..110).contains(&total), "slice {slice} holds {total} of 200");
        let id = first["_scroll_id"].as_str().unwrap().to_string();
        let mut mine: Vec<String> = ids(&first).into_iter().map(String::from).collect();
        loop {
            let (_, page) =
                s.call(Method::POST, "/_search/scroll", Some(json!({"scroll": "1m", "scroll_id": id}))).await;
            if ids(&page).is_empty() {
                break;
            }
            mine.extend(ids(&page).into_iter().map(String::from));
        }
        assert_eq!(mine.len() as u64, total);
        for doc in mine {
            assert!(seen.insert(doc.clone()), "{doc} is in two slices");
        }
    }
    assert_eq!(seen.len(), 200, "every document is in a slice");
    // A point in time slices the same way.
    let (_, pit) = s.call(Method::POST, "/big/_pit?keep_alive=1m", None).await;
    let pit_id = pit["id"].as_str().unwrap();
    let mut from_pit = 0;
    for slice in 0..2 {
        let body = json!({"size": 200, "pit": {"id": pit_id}, "slice": {"id": slice, "max": 2}});
        let (status, page) = s.call(Method::POST, "/_search", Some(body)).await;
        assert_eq!(status, 200, "{page}");
        from_pit += ids(&page).len();
    }
    assert_eq!(from_pit, 200);
    // Slicing by a numeric field splits by its values instead, across the same segments.
    let mut by_n = std::collections::BTreeSet::new();
    for slice in 0..3 {
        let body = json!({"size": 200, "slice": {"field": "n", "id": slice, "max": 3}, "_source": ["n"]});
        let (status, page) = s.call(Method::POST, "/big/_search?scroll=1m", Some(body)).await;
        assert_eq!(status, 200, "{page}");
        let mine = ids(&page);
        assert!((30..110).contains(&mine.len()), "slice {slice} by n holds {} of 200", mine.len());
        for doc in mine {
            assert!(by_n.insert(doc.to_string()), "{doc} is in two slices by n");
        }
    }
    assert_eq!(by_n.len(), 200, "every document is in a slice by n");
    let (status, err) = s
        .call(
            Method::POST,
            "/big/_search?scroll=1m",
            Some(json!({"slice": {"field": "nope", "id": 0, "max": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    // A slice outside a scroll or point in time, and bad slices, are refused.
    let (status, err) =
        s.call(Method::POST, "/big/_search", Some(json!({"slice": {"id": 0, "max": 2}}))).await;
    assert_eq!(
        (status, err["error"]["type"].clone()),
        (StatusCode::BAD_REQUEST, json!("action_request_validation_exception"))
    );
    let (status, err) =
        s.call(Method::POST, "/big/_search?scroll=1m", Some(json!({"slice": {"id": 3, "max": 3}}))).await;
    assert_eq!(
        (status, err["error"]["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("max must be greater than id"))
    );
}

#[tokio::test]
async fn aliases_read_all_their_indices_and_write_to_one() {
    let s = server(strata_es::EsConfig::default()).await;
    for (index, n) in [("logs-1", 3), ("logs-2", 2)] {
        let lines: Vec<Value> = (0..n)
            .flat_map(|i| {
                [json!({"index": {"_index": index, "_id": format!("{index}-{i}")}}), json!({"msg": "hello"})]
            })
            .collect();
        s.bulk("/_bulk?refresh=true", &lines).await;
    }
    let (status, _) = s
        .call(
            Method::POST,
            "/_aliases",
            Some(json!({"actions": [
                {"add": {"index": "logs-1", "alias": "logs"}},
                {"add": {"index": "logs-2", "alias": "logs", "is_write_index": true}},
                {"add": {"indices": ["logs-1"], "aliases": ["old"]}}
            ]})),
        )
        .await;
    assert_eq!(status, 200);
    // A search through the alias reads both indices; a write goes to the write index.
    let all = s.search("logs", json!({"size": 10, "query": {"match": {"msg": "hello"}}})).await;
    assert_eq!(all["hits"]["total"]["value"], 5);
    let (status, written) =
        s.call(Method::PUT, "/logs/_doc/new?refresh=true", Some(json!({"msg": "hello"}))).await;
    assert_eq!((status, written["_index"].clone()), (StatusCode::CREATED, json!("logs-2")));
    // A single-index alias serves document reads; a two-index one refuses them.
    let (status, doc) = s.call(Method::GET, "/old/_doc/logs-1-0", None).await;
    assert_eq!((status, doc["_index"].clone()), (StatusCode::OK, json!("logs-1")));
    let (status, _) = s.call(Method::GET, "/logs/_doc/new", None).await;
    assert_eq!(status, 400);
    // Listing.
    let (_, listed) = s.call(Method::GET, "/_alias/logs", None).await;
    assert_eq!(
        listed,
        json!({"logs-1": {"aliases": {"logs": {}}}, "logs-2": {"aliases": {"logs": {"is_write_index": true}}}})
    );
    let (_, of_index) = s.call(Method::GET, "/logs-1/_alias", None).await;
    assert_eq!(of_index, json!({"logs-1": {"aliases": {"logs": {}, "old": {}}}}));
    let (_, index) = s.call(Method::GET, "/logs-2", None).await;
    assert_eq!(index["logs-2"]["aliases"], json!({"logs": {"is_write_index": true}}));
    // Swap atomically: old leaves logs-1 and joins logs-2 in one request.
    let (status, _) = s
        .call(
            Method::POST,
            "/_aliases",
            Some(json!({"actions": [
                {"remove": {"index": "logs-1", "alias": "old"}},
                {"add": {"index": "logs-2", "alias": "old"}}
            ]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.search("old", json!({})).await["hits"]["total"]["value"], 3);
    // All or nothing: a failing action leaves everything as it was.
    let (status, _) = s
        .call(
            Method::POST,
            "/_aliases",
            Some(json!({"actions": [{"add": {"index": "logs-1", "alias": "x"}}, {"add": {"index": "nope", "alias": "x"}}]})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.call(Method::GET, "/_alias/x", None).await;
    assert_eq!(status, 404);
    // Names: an alias may not take an index's name, nor an index an alias's.
    let (status, _) = s.call(Method::PUT, "/logs-1/_alias/logs-2", None).await;
    assert_eq!(status, 400);
    let (status, err) = s.call(Method::PUT, "/logs", Some(json!({}))).await;
    assert_eq!(
        (status, err["error"]["type"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_index_name_exception"))
    );
    // Removing, and deleting an index, drop the alias with its last index.
    let (status, _) = s.call(Method::DELETE, "/logs-2/_alias/old", None).await;
    assert_eq!(status, 200);
    let (status, _) = s.call(Method::DELETE, "/logs-2", None).await;
    assert_eq!(status, 200);
    let (_, listed) = s.call(Method::GET, "/_alias", None).await;
    assert_eq!(listed, json!({"logs-1": {"aliases": {"logs": {}}}}));
    // Aliases given when an index is created; _cat/aliases.
    let (status, _) = s
        .call(Method::PUT, "/metrics-1", Some(json!({"aliases": {"metrics": {"is_write_index": true}}})))
        .await;
    assert_eq!(status, 200);
    let resp = s.http.get(format!("{}/_cat/aliases?v", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(resp.contains("logs logs-1 - - - -") && resp.contains("metrics metrics-1 - - - true"), "{resp}");
}

#[tokio::test]
async fn filtered_aliases_show_one_index_as_several() {
    let s = server(strata_es::EsConfig::default()).await;
    let lines: Vec<Value> = [
        ("1", "acme", "red shoe"),
        ("2", "acme", "red hat"),
        ("3", "globex", "red car"),
        ("4", "globex", "blue car"),
    ]
    .into_iter()
    .flat_map(|(id, tenant, text)| {
        [json!({"index": {"_index": "shop", "_id": id}}), json!({"tenant": tenant, "text": text})]
    })
    .collect();
    s.bulk("/_bulk?refresh=true", &lines).await;
    let (status, answer) = s
        .call(
            Method::POST,
            "/_aliases",
            Some(json!({"actions": [
                {"add": {"index": "shop", "alias": "acme", "filter": {"term": {"tenant.keyword": "acme"}}}},
                {"add": {"index": "shop", "alias": "globex", "filter": {"term": {"tenant.keyword": "globex"}}}},
                {"add": {"index": "shop", "alias": "everyone"}}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // Searches, counts and aggregations through a filtered alias see only its documents,
    // with the scores the query alone gives them.
    let red =
        json!({"query": {"match": {"text": "red"}}, "aggs": {"t": {"terms": {"field": "tenant.keyword"}}}});
    let acme = s.search("acme", red.clone()).await;
    let mut got = ids(&acme);
    got.sort();
    assert_eq!(got, ["1", "2"]);
    assert_eq!(acme["aggregations"]["t"]["buckets"], json!([{"key": "acme", "doc_count": 2}]));
    let (_, count) =
        s.call(Method::POST, "/globex/_count", Some(json!({"query": {"match": {"text": "car"}}}))).await;
    assert_eq!(count["count"], 2);
    let unfiltered = s.search("shop", red.clone()).await;
    let score = |answer: &Value, id: &str| {
        answer["hits"]["hits"].as_array().unwrap().iter().find(|h| h["_id"] == id).unwrap()["_score"].as_f64()
    };
    assert_eq!(score(&acme, "1"), score(&unfiltered, "1"));
    // Two filtered aliases of one index match either filter; naming the index, or an
    // alias without a filter, lifts them.
    assert_eq!(s.search("acme,globex", red.clone()).await["hits"]["total"]["value"], 3);
    assert_eq!(s.search("acme,shop", json!({})).await["hits"]["total"]["value"], 4);
    assert_eq!(s.search("acme,everyone", json!({})).await["hits"]["total"]["value"], 4);
    // Deleting by query through the alias deletes only within it.
    let (status, deleted) = s
        .call(
            Method::POST,
            "/globex/_delete_by_query?refresh=true",
            Some(json!({"query": {"match_all": {}}})),
        )
        .await;
    assert_eq!((status, deleted["deleted"].clone()), (StatusCode::OK, json!(2)));
    assert_eq!(s.search("shop", json!({})).await["hits"]["total"]["value"], 2);
    // The filter is listed, and marked in _cat/aliases.
    let (_, listed) = s.call(Method::GET, "/_alias/acme", None).await;
    assert_eq!(
        listed,
        json!({"shop": {"aliases": {"acme": {"filter": {"term": {"tenant.keyword": "acme"}}}}}})
    );
    let cat = s.http.get(format!("{}/_cat/aliases", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(cat.contains("acme shop * - - -") && cat.contains("everyone shop - - - -"), "{cat}");
    // PUT with a filter, and a filter that is not a query is refused.
    let (status, _) =
        s.call(Method::PUT, "/shop/_alias/hats", Some(json!({"filter": {"match": {"text": "hat"}}}))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&s.search("hats", json!({})).await), ["2"]);
    let (status, err) =
        s.call(Method::PUT, "/shop/_alias/bad", Some(json!({"filter": {"no_such_query": {}}}))).await;
    assert_eq!((status, err["error"]["type"].clone()), (StatusCode::BAD_REQUEST, json!("parsing_exception")));
    let (status, _) = s.call(Method::GET, "/_alias/bad", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_point_in_time_pages_with_search_after_over_a_frozen_view() {
    let s = server(strata_es::EsConfig::default()).await;
    let lines: Vec<Value> = (0..12)
        .flat_map(|i| [json!({"index": {"_index": "events", "_id": format!("e{i:02}")}}), json!({"n": i})])
        .collect();
    s.bulk("/_bulk?refresh=true", &lines).await;
    let (status, opened) = s.call(Method::POST, "/events/_pit?keep_alive=1m", None).await;
    assert_eq!(status, 200, "{opened}");
    let pit = opened["id"].as_str().unwrap().to_string();
    // Written after the point in time: not seen through it.
    let (status, _) = s.call(Method::PUT, "/events/_doc/late?refresh=true", Some(json!({"n": 100}))).await;
    assert_eq!(status, 201);
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({"size": 5, "pit": {"id": pit, "keep_alive": "1m"}, "sort": [{"n": "asc"}]});
        if let Some(a) = &after {
            body["search_after"] = a.clone();
        }
        let (status, page) = s.call(Method::POST, "/_search", Some(body)).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["pit_id"], pit.as_str());
        let hits = page["hits"]["hits"].as_array().unwrap().clone();
        if hits.is_empty() {
            break;
        }
        after = Some(hits.last().unwrap()["sort"].clone());
        seen.extend(hits.iter().map(|h| h["_id"].as_str().unwrap().to_string()));
    }
    let expected: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
    assert_eq!(seen, expected);
    // A point in time does not take an index in the path; closed, it is gone.
    let (status, _) = s.call(Method::POST, "/events/_search", Some(json!({"pit": {"id": pit}}))).await;
    assert_eq!(status, 400);
    let (status, closed) = s.call(Method::DELETE, "/_pit", Some(json!({"id": pit}))).await;
    assert_eq!((status, closed["num_freed"].clone()), (StatusCode::OK, json!(1)));
    let (status, gone) = s.call(Method::POST, "/_search", Some(json!({"pit": {"id": pit}}))).await;
    assert_eq!(
        (status, gone["error"]["type"].clone()),
        (StatusCode::NOT_FOUND, json!("search_context_missing_exception"))
    );
    let (status, _) = s.call(Method::POST, "/events/_pit", None).await;
    assert_eq!(status, 400, "keep_alive is required");
}
