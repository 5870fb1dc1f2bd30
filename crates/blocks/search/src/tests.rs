//! Block-level tests: the known-answer corpus through the plain Rust API, no sockets.

use super::*;

fn block() -> Search {
    Search::open(Store::memory(), None, SearchConfig::default()).unwrap()
}

fn put(search: &Search, index: &str, id: &str, doc: Value) {
    let op = BulkOp::Index {
        index: index.into(),
        id: Some(id.into()),
        source: Source::from_value(doc),
        create: false,
        cond: Conditions::default(),
    };
    search.write(op, Refresh::No).unwrap();
}

fn ids(answer: &Value) -> Vec<String> {
    answer["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stemming_fuzziness_bm25_and_phrases() {
    let search = block();
    search.create_index("docs", &json!({"mappings": {"properties": {"body": {"type": "text", "analyzer": "english"}, "tag": {"type": "keyword"}}}})).unwrap();
    put(&search, "docs", "run", json!({"body": "I run every day", "tag": "a"}));
    put(&search, "docs", "runs", json!({"body": "she runs fast", "tag": "a"}));
    put(&search, "docs", "search", json!({"body": "full text search engines", "tag": "b"}));
    put(&search, "docs", "short", json!({"body": "quick fox", "tag": "b"}));
    put(
        &search,
        "docs",
        "long",
        json!({"body": "the quick brown dog jumps over a lazy sleeping fox in the yard", "tag": "b"}),
    );
    search.refresh("docs").unwrap();

    let mut found = ids(&search.search("docs", &json!({"query": {"match": {"body": "running"}}})).unwrap());
    found.sort();
    assert_eq!(found, ["run", "runs"]);
    let fuzzy = search
        .search("docs", &json!({"query": {"match": {"body": {"query": "serch", "fuzziness": 1}}}}))
        .unwrap();
    assert_eq!(ids(&fuzzy), ["search"]);
    let exact = search.search("docs", &json!({"query": {"match": {"body": "serch"}}})).unwrap();
    assert!(ids(&exact).is_empty());
    let ranked = search.search("docs", &json!({"query": {"match": {"body": "fox"}}})).unwrap();
    assert_eq!(ids(&ranked), ["short", "long"]);
    let phrase = search.search("docs", &json!({"query": {"match_phrase": {"body": "quick fox"}}})).unwrap();
    assert_eq!(ids(&phrase), ["short"]);
    let slop = search
        .search("docs", &json!({"query": {"match_phrase": {"body": {"query": "quick dog", "slop": 1}}}}))
        .unwrap();
    assert_eq!(ids(&slop), ["long"]);
    let aggs =
        search.search("docs", &json!({"size": 0, "aggs": {"tags": {"terms": {"field": "tag"}}}})).unwrap();
    assert_eq!(
        aggs["aggregations"]["tags"]["buckets"],
        json!([{"key": "b", "doc_count": 3}, {"key": "a", "doc_count": 2}])
    );
    assert_eq!(aggs["hits"]["total"], json!({"value": 5, "relation": "eq"}));
}

#[test]
fn versions_conditions_and_realtime_get() {
    let search = block();
    put(&search, "auto", "1", json!({"n": 1}));
    let (seq, version, doc) = search.get("auto", "1").unwrap().unwrap();
    assert_eq!((version, doc), (1, json!({"n": 1})));
    let stale = Conditions { if_seq_no: Some(seq + 5), ..Default::default() };
    let op = BulkOp::Index {
        index: "auto".into(),
        id: Some("1".into()),
        source: Source::from_value(json!({"n": 2})),
        create: false,
        cond: stale,
    };
    assert_eq!(search.write(op, Refresh::No).unwrap_err().status, 409);
    let update = BulkOp::Update {
        index: "auto".into(),
        id: "1".into(),
        body: json!({"doc": {"m": 3}}),
        cond: Conditions { if_seq_no: Some(seq), ..Default::default() },
    };
    let w = search.write(update, Refresh::Now).unwrap();
    assert_eq!((w.result, w.version), ("updated", 2));
    assert_eq!(search.get("auto", "1").unwrap().unwrap().2, json!({"n": 1, "m": 3}));
    let create = BulkOp::Index {
        index: "auto".into(),
        id: Some("1".into()),
        source: Source::from_value(json!({})),
        create: true,
        cond: Conditions::default(),
    };
    assert_eq!(search.write(create, Refresh::No).unwrap_err().kind, "version_conflict_engine_exception");
    let bad = BulkOp::Index {
        index: "auto".into(),
        id: Some("2".into()),
        source: Source::from_value(json!({"n": "not a number"})),
        create: false,
        cond: Conditions::default(),
    };
    assert_eq!(search.write(bad, Refresh::No).unwrap_err().kind, "mapper_parsing_exception");
    let del = search
        .by_query("auto", &json!({"query": {"range": {"n": {"gte": 1}}}}), false, false, Refresh::Now)
        .unwrap();
    assert_eq!(del["deleted"], 1);
    assert!(search.get("auto", "1").unwrap().is_none());
}

#[test]
fn a_document_is_found_once_however_it_was_rewritten() {
    let search = block();
    let hits = |search: &Search| {
        search.refresh("docs").unwrap();
        let answer =
            search.search("docs", &json!({"query": {"match": {"t": "apple"}}, "_source": false})).unwrap();
        assert!(answer["hits"]["hits"].as_array().unwrap().iter().all(|h| h.get("_source").is_none()));
        ids(&answer)
    };
    let index = |id: &str, t: &str| BulkOp::Index {
        index: "docs".into(),
        id: Some(id.into()),
        source: Source::from_value(json!({ "t": t })),
        create: false,
        cond: Conditions::default(),
    };
    let delete =
        |id: &str| BulkOp::Delete { index: "docs".into(), id: id.into(), cond: Conditions::default() };
    // Written twice in one request: the second replaces the first.
    search.bulk(vec![index("1", "apple"), index("1", "apple pie")], Refresh::No).unwrap();
    assert_eq!(hits(&search), ["1"]);
    // Rewritten after a refresh.
    search.write(index("1", "apple tart"), Refresh::No).unwrap();
    assert_eq!(hits(&search), ["1"]);
    // Deleted, then written again, in one request and across refreshes.
    search.bulk(vec![delete("1"), index("1", "apple crumble")], Refresh::No).unwrap();
    assert_eq!(hits(&search), ["1"]);
    search.write(delete("1"), Refresh::No).unwrap();
    assert!(hits(&search).is_empty());
    search.write(index("1", "apple cake"), Refresh::No).unwrap();
    search.write(index("2", "apple"), Refresh::No).unwrap();
    let mut found = hits(&search);
    found.sort();
    assert_eq!(found, ["1", "2"]);
    let answer = search.search("docs", &json!({"query": {"ids": {"values": ["1"]}}})).unwrap();
    assert_eq!(answer["hits"]["hits"][0]["_source"], json!({"t": "apple cake"}));
}

#[test]
fn reopening_replays_what_no_refresh_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core"), Default::default()).unwrap();
    {
        let search =
            Search::open(store.clone(), Some(dir.path().join("search")), SearchConfig::default()).unwrap();
        search.create_index("logs", &json!({"settings": {"refresh_interval": "-1"}})).unwrap();
        for i in 0..50 {
            put(&search, "logs", &i.to_string(), json!({"msg": format!("event number {i}")}));
        }
        assert_eq!(search.count("logs", &json!({})).unwrap()["count"], 0);
    }
    let search = Search::open(store, Some(dir.path().join("search")), SearchConfig::default()).unwrap();
    assert_eq!(search.count("logs", &json!({})).unwrap()["count"], 50);
    let hits = search.search("logs", &json!({"query": {"match": {"msg": "42"}}})).unwrap();
    assert_eq!(ids(&hits), ["42"]);
}

#[test]
fn min_score_applies_before_the_page_is_cut() {
    let search = block();
    put(&search, "m", "short", json!({"body": "fox", "views": 1}));
    put(&search, "m", "long", json!({"body": "a fox among many other words in a long sentence", "views": 9}));
    search.refresh("m").unwrap();
    let scored = search.search("m", &json!({"query": {"match": {"body": "fox"}}})).unwrap();
    let (high, low) = (
        scored["hits"]["hits"][0]["_score"].as_f64().unwrap(),
        scored["hits"]["hits"][1]["_score"].as_f64().unwrap(),
    );
    assert_eq!(ids(&scored), ["short", "long"]);
    let body = json!({"query": {"match": {"body": "fox"}}, "sort": [{"views": "desc"}], "size": 1, "min_score": (high + low) / 2.0});
    assert_eq!(
        ids(&search.search("m", &body).unwrap()),
        ["short"],
        "the best-sorted hit under min_score does not hide the next one"
    );
}

#[test]
fn fields_added_by_dynamic_mapping_are_searchable_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core"), Default::default()).unwrap();
    let open =
        || Search::open(store.clone(), Some(dir.path().join("search")), SearchConfig::default()).unwrap();
    {
        let search = open();
        put(&search, "p", "1", json!({"name": "running shoes"}));
        put(&search, "p", "2", json!({"title": "running socks"}));
        search.refresh("p").unwrap();
        let hits = search.search("p", &json!({"query": {"match": {"title": "running"}}})).unwrap();
        assert_eq!(ids(&hits), ["2"]);
    }
    let search = open();
    let hits = search.search("p", &json!({"query": {"match": {"title": "running"}}})).unwrap();
    assert_eq!(ids(&hits), ["2"]);
    let hits = search.search("p", &json!({"query": {"match": {"name": "running"}}})).unwrap();
    assert_eq!(ids(&hits), ["1"]);
}

#[test]
fn aliases_survive_reopening_and_leave_with_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::memory();
    let open =
        || Search::open(store.clone(), Some(dir.path().join("search")), SearchConfig::default()).unwrap();
    let search = open();
    search.create_index("a", &json!({"aliases": {"both": {}, "one": {"is_write_index": true}}})).unwrap();
    search.create_index("b", &json!({})).unwrap();
    search.put_alias("b", "both", &json!({})).unwrap();
    put(&search, "b", "red", json!({"colour": "red"}));
    put(&search, "b", "blue", json!({"colour": "blue"}));
    search.put_alias("b", "reds", &json!({"filter": {"term": {"colour": "red"}}})).unwrap();
    drop(search);
    // A record as written before aliases had filters: index → is_write_index.
    let ks = store.keyspace("search").unwrap();
    let mut txn = store.begin();
    txn.set(&ks, keys::alias("legacy"), br#"{"b": true}"#.to_vec()).unwrap();
    txn.commit().unwrap();
    let search = open();
    assert_eq!(search.resolve("both").unwrap(), ["a", "b"]);
    assert_eq!(search.resolve("one").unwrap(), ["a"]);
    assert_eq!(
        search.get_aliases(Some("a"), None).unwrap(),
        json!({"a": {"aliases": {"both": {}, "one": {"is_write_index": true}}}})
    );
    assert_eq!(
        search.get_aliases(Some("b"), Some("reds,legacy")).unwrap(),
        json!({"b": {"aliases": {"legacy": {"is_write_index": true}, "reds": {"filter": {"term": {"colour": "red"}}}}}})
    );
    search.refresh("b").unwrap();
    assert_eq!(ids(&search.search("reds", &json!({})).unwrap()), ["red"]);
    search.delete_index("a").unwrap();
    drop(search);
    let search = open();
    assert_eq!(search.resolve("both").unwrap(), ["b"]);
    assert!(search.resolve("one").is_err(), "an alias leaves with its last index");
}
