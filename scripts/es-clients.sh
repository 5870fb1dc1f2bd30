#!/usr/bin/env bash
# Drives Strata's es front with the official clients from PyPI: elasticsearch 8 (which
# checks the X-Elastic-Product header and sends compatible-with=8 media types) and
# opensearch-py. Covers index creation with a custom analyzer, bulk loading through the
# clients' helpers, match/fuzzy/phrase/bool queries, aggregations, the term suggester,
# search_after paging, scrolling (helpers.scan, reindex, sliced), filtered aliases,
# date_histogram in a time zone, updates with if_seq_no, and
# errors as the clients' exceptions.
#
#   scripts/es-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${STRATA_VENV:-/tmp/strata-es-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import elasticsearch, opensearchpy' 2>/dev/null \
    || "$venv/bin/pip" install -q 'elasticsearch>=8.15,<9' 'opensearch-py>=2.4'

cargo build --release -p strata
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
STRATA_HTTP_LISTEN=127.0.0.1:18092 STRATA_ES_LISTEN=127.0.0.1:19200 STRATA_S3_ENABLED=false \
    STRATA_SQS_ENABLED=false STRATA_PG_ENABLED=false STRATA_RESP_ENABLED=false STRATA_KAFKA_ENABLED=false \
    target/release/strata serve --data-dir "$work/data" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 100); do curl -fs localhost:18092/health >/dev/null && break; sleep 0.1; done

"$venv/bin/python" - http://127.0.0.1:19200 <<'EOF'
import sys
from elasticsearch import Elasticsearch, helpers, NotFoundError, BadRequestError, ConflictError
from opensearchpy import OpenSearch, helpers as os_helpers

URL = sys.argv[1]
def ok(msg): print("ok:", msg)

es = Elasticsearch(URL)
info = es.info()
assert info["version"]["number"].startswith("8."), info
ok(f"elasticsearch-py {info['version']['number']}: info (product header accepted)")

es.indices.create(index="books", settings={
    "analysis": {"analyzer": {"folded": {"tokenizer": "standard", "filter": ["lowercase", "asciifolding", "porter_stem"]}}}
}, mappings={"properties": {
    "title": {"type": "text", "analyzer": "folded", "fields": {"raw": {"type": "keyword"}}},
    "genre": {"type": "keyword"}, "year": {"type": "integer"}, "rating": {"type": "float"},
    "published": {"type": "date"}}})
assert es.indices.exists(index="books")
ok("create an index with a custom analyzer and mappings")

genres = ["fantasy", "science", "history", "poetry"]
words = ["dragon", "searching", "stars", "empire", "river", "garden", "machines", "winter"]
docs = [{"_index": "books", "_id": str(i), "_source": {
    "title": f"The {words[i % 8]} of {words[(i * 3) % 8]} volume {i}",
    "genre": genres[i % 4], "year": 1950 + i % 70, "rating": (i % 50) / 10,
    "published": f"{1950 + i % 70}-{i % 12 + 1:02d}-15"}} for i in range(2000)]
count, errors = helpers.bulk(es, docs, chunk_size=500, refresh="true")
assert count == 2000 and not errors, errors
assert es.count(index="books")["count"] == 2000
ok("helpers.bulk: 2000 documents, count matches")

scanned = [h["_id"] for h in helpers.scan(es, index="books", query={"query": {"term": {"genre": "poetry"}}}, size=128)]
assert len(scanned) == 500 and len(set(scanned)) == 500, len(scanned)
ordered = [h["_source"]["year"] for h in helpers.scan(es, index="books", query={"sort": [{"year": "asc"}]}, preserve_order=True, size=300)]
assert len(ordered) == 2000 and ordered == sorted(ordered)
helpers.reindex(es, "books", "books-copy", query={"query": {"term": {"genre": "fantasy"}}})
es.indices.refresh(index="books-copy")
assert es.count(index="books-copy")["count"] == 500
es.indices.delete(index="books-copy")
ok("helpers.scan (scroll, cleared at the end) and helpers.reindex")

r = es.search(index="books", query={"match": {"title": "search"}}, size=3)
assert r["hits"]["total"]["value"] == 500, r["hits"]["total"]
ok("match 'search' finds the stemmed 'searching' titles (500)")
r = es.search(index="books", query={"match": {"title": {"query": "dragn", "fuzziness": "AUTO"}}})
assert r["hits"]["total"]["value"] > 0 and "dragon" in r["hits"]["hits"][0]["_source"]["title"]
ok("fuzzy match 'dragn' finds dragon")
r = es.search(index="books", query={"match_phrase": {"title": "searching of empire"}})
assert r["hits"]["total"]["value"] == 250 and all("searching of empire" in h["_source"]["title"] for h in r["hits"]["hits"])
r = es.search(index="books", query={"match_phrase": {"title": "empire of dragon"}})
assert r["hits"]["total"]["value"] == 0
ok("match_phrase keeps word order")
r = es.search(index="books", query={"bool": {"must": [{"match": {"title": "river"}}],
                                           "filter": [{"term": {"genre": "science"}}, {"range": {"year": {"gte": 1990}}}]}})
assert all(h["_source"]["genre"] == "science" and h["_source"]["year"] >= 1990 for h in r["hits"]["hits"])
ok("bool with filters")

r = es.search(index="books", size=0, aggs={
    "genres": {"terms": {"field": "genre"}, "aggs": {"avg_rating": {"avg": {"field": "rating"}}}},
    "decades": {"histogram": {"field": "year", "interval": 10}},
    "years": {"cardinality": {"field": "year"}}})
buckets = {b["key"]: b["doc_count"] for b in r["aggregations"]["genres"]["buckets"]}
assert buckets == {g: 500 for g in genres}, buckets
assert sum(b["doc_count"] for b in r["aggregations"]["decades"]["buckets"]) == 2000
assert r["aggregations"]["years"]["value"] == 70
ok("aggregations: terms with avg sub-aggregation, histogram, cardinality — exact counts")
r = es.search(index="books", size=0, aggs={
    "by_year": {"date_histogram": {"field": "published", "calendar_interval": "year"}},
    "by_month": {"date_histogram": {"field": "published", "calendar_interval": "month", "min_doc_count": 1}}})
years = r["aggregations"]["by_year"]["buckets"]
assert len(years) == 70 and sum(b["doc_count"] for b in years) == 2000, len(years)
assert years[0]["key_as_string"].startswith("1950-01-01") and years[-1]["key_as_string"].startswith("2019-01-01")
months = r["aggregations"]["by_month"]["buckets"]
assert sum(b["doc_count"] for b in months) == 2000 and all(b["key_as_string"][8:10] == "01" for b in months)
ok("date_histogram by calendar year and month — 70 years, every document once")
r = es.search(index="books", size=0, aggs={"days": {"date_histogram": {
    "field": "published", "calendar_interval": "day", "time_zone": "America/New_York", "min_doc_count": 1}}})
days = r["aggregations"]["days"]["buckets"]
# Each book is published at UTC midnight on the 15th: the 14th in New York.
assert sum(b["doc_count"] for b in days) == 2000 and all(b["key_as_string"][8:10] == "14" for b in days), days[0]
assert all(b["key_as_string"].endswith(("-05:00", "-04:00")) for b in days)
ok("date_histogram by day in America/New_York — local days, zoned keys")

es.indices.update_aliases(actions=[{"add": {"index": "books", "alias": "poetry", "filter": {"term": {"genre": "poetry"}}}}])
assert es.count(index="poetry")["count"] == 500
assert all(h["_source"]["genre"] == "poetry" for h in es.search(index="poetry", size=50)["hits"]["hits"])
assert "filter" in es.indices.get_alias(name="poetry")["books"]["aliases"]["poetry"]
ok("filtered alias: a genre seen as an index of its own")

sliced = []
for i in range(2):
    page = es.search(index="books", scroll="1m", size=400, slice={"id": i, "max": 2}, source=False)
    while page["hits"]["hits"]:
        sliced.extend(h["_id"] for h in page["hits"]["hits"])
        page = es.scroll(scroll_id=page["_scroll_id"], scroll="1m")
    es.clear_scroll(scroll_id=page["_scroll_id"])
assert len(sliced) == 2000 and len(set(sliced)) == 2000, len(sliced)
ok("sliced scroll: two slices, every document in exactly one")

r = es.search(index="books", size=0, suggest={"fix": {"text": "dragom", "term": {"field": "title"}}})
assert r["suggest"]["fix"][0]["options"][0]["text"] == "dragon", r["suggest"]
ok("term suggester: 'dragom' -> 'dragon'")

seen, after = [], None
while True:
    kw = {"search_after": after} if after else {}
    r = es.search(index="books", size=300, sort=[{"year": "asc"}, {"title.raw": "asc"}], query={"term": {"genre": "poetry"}}, **kw)
    hits = r["hits"]["hits"]
    if not hits: break
    seen += [h["_id"] for h in hits]
    after = hits[-1]["sort"]
assert len(seen) == 500 and len(set(seen)) == 500
ok("search_after pages through 500 documents exactly once")

doc = es.get(index="books", id="7")
es.update(index="books", id="7", doc={"rating": 9.9}, if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])
try:
    es.update(index="books", id="7", doc={"rating": 1.0}, if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"])
    raise SystemExit("stale if_seq_no was accepted")
except ConflictError:
    pass
ok("update with if_seq_no; a stale one is a ConflictError")
try:
    es.search(index="no-such-index", query={"match_all": {}})
    raise SystemExit("missing index answered")
except NotFoundError as e:
    assert e.meta.status == 404
try:
    es.search(index="books", query={"matchh": {}})
    raise SystemExit("bad query answered")
except BadRequestError:
    pass
ok("errors arrive as NotFoundError and BadRequestError")

os_client = OpenSearch(URL)
os_helpers.bulk(os_client, [{"_index": "notes", "_id": str(i), "text": f"note number {i}"} for i in range(100)], refresh=True)
r = os_client.search(index="notes", body={"query": {"match": {"text": "42"}}})
assert [h["_id"] for h in r["hits"]["hits"]] == ["42"]
r = os_client.delete_by_query(index="notes", body={"query": {"match": {"text": "7"}}}, refresh=True)
assert r["deleted"] == 1 and os_client.count(index="notes")["count"] == 99
os_client.indices.delete(index="notes")
assert not os_client.indices.exists(index="notes")
ok("opensearch-py: bulk, search, delete by query, delete index")
print("all es client checks passed")
EOF
