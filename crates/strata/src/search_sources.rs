//! Lets search indices follow SQL tables: the sql block's side of the search indexer's
//! [`Collections`] seam (an index with `index.strata.source: "sql:<table>"`).

use strata_core::{Change, Txn};
use strata_search::{CollectionChange, Collections};
use strata_sql::feed::{FEED_SOURCE, RowChange, RowOp};

pub struct SqlTables(pub strata_sql::Sql);

impl Collections for SqlTables {
    fn kind(&self) -> &str {
        FEED_SOURCE
    }

    fn enable(&self, table: &str) -> Result<u64, String> {
        self.0.enable_feed(table).map_err(|e| e.to_string())
    }

    fn snapshot(
        &self,
        txn: &Txn,
        table: &str,
        visit: &mut dyn FnMut(String, serde_json::Map<String, serde_json::Value>),
    ) -> Result<(), String> {
        self.0.feed_rows(txn, table, visit).map_err(|e| e.to_string())
    }

    fn decode(&self, change: &Change) -> Option<CollectionChange> {
        let RowChange { table, op, id, row } = RowChange::decode(&change.payload)?;
        Some(match op {
            RowOp::Upsert => CollectionChange::Upsert { collection: table, id, doc: row? },
            RowOp::Delete => CollectionChange::Delete { collection: table, id },
            RowOp::Clear => CollectionChange::Clear { collection: table },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use strata_core::Store;
    use strata_search::{Search, SearchConfig};

    fn open_search(store: &Store, sql: &strata_sql::Sql, dir: &std::path::Path) -> Search {
        let search = Search::open(store.clone(), Some(dir.to_path_buf()), SearchConfig::default()).unwrap();
        search.attach(Arc::new(SqlTables(sql.clone())));
        search
    }

    fn run(sql: &strata_sql::Sql, text: &str) {
        sql.session().execute(text).unwrap();
    }

    /// Polls until the index's refreshed answer to `query` satisfies `done`, or fails after
    /// ten seconds; returns the hits.
    fn wait_for(search: &Search, query: Value, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            search.refresh("products").unwrap();
            let answer = search.search("products", &json!({"query": query, "size": 100})).unwrap();
            let hits = answer["hits"]["hits"].as_array().unwrap().clone();
            if done(&hits) {
                return hits;
            }
            assert!(Instant::now() < deadline, "the index did not catch up; last answer: {answer}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ids(hits: &[Value]) -> Vec<&str> {
        let mut ids: Vec<&str> = hits.iter().map(|h| h["_id"].as_str().unwrap()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn an_index_follows_its_table_and_resumes_after_reopening() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let store = Store::memory();
        let sql = strata_sql::Sql::open(store.clone()).unwrap();
        run(&sql, "CREATE TABLE products (id INT PRIMARY KEY, name TEXT, price NUMERIC(8,2), added DATE)");
        run(
            &sql,
            "INSERT INTO products VALUES (1, 'running shoes', 89.90, '2026-01-05'), (2, 'rain jacket', 120, NULL)",
        );

        let dir = tempfile::tempdir().unwrap();
        let search = open_search(&store, &sql, dir.path());
        let settings = json!({"settings": {"index": {"strata.source": "sql:products"}},
            "mappings": {"properties": {"name": {"type": "text", "analyzer": "english"}}}});
        search.create_index("products", &settings).unwrap();
        // The rows that existed before the index, from the snapshot; stemmed by the mapping.
        let hits = wait_for(&search, json!({"match": {"name": "run"}}), |h| h.len() == 1);
        assert_eq!(hits[0]["_id"], "1");
        assert_eq!(
            hits[0]["_source"],
            json!({"id": 1, "name": "running shoes", "price": 89.9, "added": "2026-01-05"})
        );

        // Inserts, updates (also of the key) and deletes, through the feed.
        run(&sql, "INSERT INTO products VALUES (3, 'trail running vest', 45, NULL)");
        run(&sql, "UPDATE products SET name = 'waterproof rain jacket' WHERE id = 2");
        run(&sql, "UPDATE products SET id = 10 WHERE id = 1");
        let hits = wait_for(&search, json!({"match_all": {}}), |h| ids(h) == ["10", "2", "3"]);
        let jacket = hits.iter().find(|h| h["_id"] == "2").unwrap();
        assert_eq!(jacket["_source"]["name"], "waterproof rain jacket");
        run(
            &sql,
            "BEGIN; DELETE FROM products WHERE id = 3; INSERT INTO products VALUES (4, 'running socks', 9, NULL); COMMIT",
        );
        wait_for(&search, json!({"match": {"name": "running"}}), |h| ids(h) == ["10", "4"]);
        // A rolled-back transaction leaves no trace.
        run(&sql, "BEGIN; INSERT INTO products VALUES (5, 'running cap', 15, NULL); ROLLBACK");
        run(&sql, "ALTER TABLE products RENAME COLUMN name TO title");
        let hits = wait_for(&search, json!({"exists": {"field": "title"}}), |h| h.len() == 3);
        assert_eq!(ids(&hits), ["10", "2", "4"]);
        assert!(hits.iter().all(|h| h["_source"].get("name").is_none()));

        // Closed and reopened: the cursor in core resumes where it stopped, so documents the
        // feed did not touch keep their versions (no reload), and missed changes arrive.
        drop(search);
        // The block's threads let go of it within a round (50 ms); give them ample time.
        std::thread::sleep(Duration::from_millis(300));
        run(&sql, "INSERT INTO products VALUES (6, 'running belt', 19, NULL)");
        let search = open_search(&store, &sql, dir.path());
        wait_for(&search, json!({"match": {"title": "running"}}), |h| ids(h) == ["10", "4", "6"]);
        let untouched = search.get("products", "2").unwrap().unwrap();
        let jacket_version = untouched.1;
        assert_eq!(jacket_version, 3, "version of doc 2 after load, update (delete + upsert) and rename");

        // TRUNCATE empties the index; DROP and re-CREATE keep the table a feed.
        run(&sql, "TRUNCATE products");
        wait_for(&search, json!({"match_all": {}}), |h| h.is_empty());
        run(&sql, "DROP TABLE products");
        run(&sql, "CREATE TABLE products (sku TEXT, title TEXT, PRIMARY KEY (sku))");
        run(&sql, "INSERT INTO products VALUES ('A-1', 'running shorts')");
        // `title` came in by dynamic mapping (standard analyzer, no stemming).
        let hits = wait_for(&search, json!({"match": {"title": "running"}}), |h| h.len() == 1);
        assert_eq!(hits[0]["_id"], "A-1");
    }

    #[test]
    fn a_source_of_an_unknown_kind_is_refused() {
        let store = Store::memory();
        let sql = strata_sql::Sql::open(store.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let search = open_search(&store, &sql, dir.path());
        let err = search
            .create_index("x", &json!({"settings": {"index.strata.source": "mongo:things"}}))
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(err.reason.contains("unknown index.strata.source kind [mongo]"), "{}", err.reason);
        let err =
            search.create_index("x", &json!({"settings": {"index.strata.source": "products"}})).unwrap_err();
        assert!(err.reason.contains("\"<kind>:<collection>\""), "{}", err.reason);
    }
}
