#!/usr/bin/env python3
"""Full-text search benchmark: Strata (es front) vs PostgreSQL 15 (tsvector + GIN) vs SQLite
FTS5, on the same corpus and the same queries, run by scripts/search-bench.sh.

Corpus: the sections of this machine's man pages (English first), one document per
section. Every system indexes `body` with English stemming and is asked the same 1,000
queries for the top 10 by relevance: single terms, two terms (AND), two-word phrases and
misspelled words (fuzzy). Prints indexing docs/s and query p50/p99 with ratios.
"""
import gzip, http.client, json, os, random, re, sqlite3, statistics, sys, threading, time

ES_HOST, ES_PORT = sys.argv[1].split(":")
PG_DSN = sys.argv[2]
SQLITE_PATH = sys.argv[3]
N_DOCS = int(sys.argv[4]) if len(sys.argv) > 4 else 100_000
N_QUERIES = 1000

ESC = re.compile(r'\\f[BIRPC]|\\f\(..|\\f\[[^\]]*\]|\\\(..|\\\[[^\]]*\]|\\[-&e|^0%]|\\s[+-]?\d|\\\*\(..|\\\*.|\\"')

def corpus(limit):
    """Man page sections as documents: English pages first, then translations."""
    roots = sorted(os.walk("/usr/share/man"), key=lambda w: ("/man/man" not in w[0] + "/", w[0]))
    out = []
    for root, _, files in roots:
        for f in sorted(files):
            if not f.endswith(".gz"):
                continue
            try:
                text = gzip.open(os.path.join(root, f)).read().decode("utf-8", "replace")
            except Exception:
                continue
            heading, lines = "", []
            def flush():
                body = " ".join(lines).strip()
                if len(body) >= 80:
                    out.append({"title": f"{f[:-3]} {heading}".strip(), "body": body[:8000]})
            for line in text.split("\n"):
                if line.startswith((".SH", ".SS")):
                    flush()
                    heading, lines = line[3:].strip().strip('"'), []
                elif not line.startswith((".", "'")):
                    cleaned = ESC.sub("", line).replace("\\", "").strip()
                    if cleaned:
                        lines.append(cleaned)
            flush()
            if len(out) >= limit:
                return out
    return out

STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with".split())
WORD = re.compile(r"[a-z]{4,12}")

def make_queries(docs):
    rnd = random.Random(42)
    df = {}
    for d in docs:
        for w in set(WORD.findall(d["body"].lower())):
            df[w] = df.get(w, 0) + 1
    mid = [w for w, n in df.items() if 20 <= n <= 3000 and w not in STOP]
    mid.sort()
    midset = set(mid)
    queries = []
    for _ in range(N_QUERIES // 4):
        queries.append(("term", rnd.choice(mid)))
    while len(queries) < N_QUERIES // 2:
        words = [w for w in WORD.findall(rnd.choice(docs)["body"].lower()) if w in midset]
        if len(set(words)) >= 2:
            a, b = rnd.sample(sorted(set(words)), 2)
            queries.append(("two", f"{a} {b}"))
    while len(queries) < 3 * N_QUERIES // 4:
        tokens = rnd.choice(docs)["body"].lower().split()
        pairs = [(x, y) for x, y in zip(tokens, tokens[1:]) if WORD.fullmatch(x) and WORD.fullmatch(y) and x not in STOP and y not in STOP]
        if pairs:
            queries.append(("phrase", " ".join(rnd.choice(pairs))))
    long_mid = [w for w in mid if len(w) >= 6]
    while len(queries) < N_QUERIES:
        w = rnd.choice(long_mid)
        i = rnd.randrange(2, len(w) - 1)
        typo = w[:i] + rnd.choice("aeiourstn".replace(w[i], "")) + w[i + 1:]
        queries.append(("fuzzy", typo))
    rnd.shuffle(queries)
    return queries

# ---- Strata ------------------------------------------------------------------------------

class Es:
    def __init__(self):
        self.conn = http.client.HTTPConnection(ES_HOST, int(ES_PORT), timeout=600)
    def call(self, method, path, body=None, ndjson=False):
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        ctype = "application/x-ndjson" if ndjson else "application/json"
        self.conn.request(method, path, body=data, headers={"content-type": ctype})
        resp = self.conn.getresponse()
        payload = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]}")
        return json.loads(payload)

def strata_index(docs):
    es = Es()
    try:
        es.call("DELETE", "/bench")
    except RuntimeError:
        pass
    es.call("PUT", "/bench", {"settings": {"refresh_interval": "30s"}, "mappings": {"properties": {
        "title": {"type": "text", "index": False}, "body": {"type": "text", "analyzer": "english"}}}})
    batches = []
    for start in range(0, len(docs), 1000):
        lines = []
        for i, d in enumerate(docs[start:start + 1000], start):
            lines.append('{"index":{"_id":"%d"}}' % i)
            lines.append(json.dumps(d))
        batches.append(("\n".join(lines) + "\n").encode())
    errors = []
    def worker(mine):
        conn = Es()
        for b in mine:
            r = conn.call("POST", "/bench/_bulk", b, ndjson=True)
            if r["errors"]:
                errors.append(r)
    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(batches[k::2],)) for k in range(2)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    es.call("POST", "/bench/_refresh")
    elapsed = time.perf_counter() - t
    assert not errors, errors[0]
    assert es.call("GET", "/bench/_count")["count"] == len(docs)
    return elapsed

def strata_query(es, kind, text):
    q = {"term": {"match": {"body": text}},
         "two": {"match": {"body": {"query": text, "operator": "and"}}},
         "phrase": {"match_phrase": {"body": text}},
         "fuzzy": {"match": {"body": {"query": text, "fuzziness": "AUTO"}}}}[kind]
    r = es.call("POST", "/bench/_search", {"query": q, "size": 10, "_source": False, "track_total_hits": False})
    return [h["_id"] for h in r["hits"]["hits"]]

# ---- PostgreSQL ----------------------------------------------------------------------------

def pg_index(docs):
    import psycopg
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS words")
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        t = time.perf_counter()
        c.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, "
                  "tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)")
        with c.cursor() as cur:
            with cur.copy("COPY docs (id, title, body) FROM STDIN") as copy:
                for i, d in enumerate(docs):
                    copy.write_row((i, d["title"], d["body"]))
        c.execute("CREATE INDEX docs_tsv ON docs USING gin (tsv)")
        elapsed = time.perf_counter() - t
        t = time.perf_counter()
        c.execute("CREATE TABLE words AS SELECT word FROM ts_stat('SELECT tsv FROM docs')")
        c.execute("CREATE INDEX words_trgm ON words USING gin (word gin_trgm_ops)")
        c.execute("ANALYZE")
        vocab = time.perf_counter() - t
    return elapsed, vocab

PG_SQL = {
    "term": "SELECT id FROM docs, plainto_tsquery('english', %(t)s) q WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10",
    "two": "SELECT id FROM docs, plainto_tsquery('english', %(t)s) q WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10",
    "phrase": "SELECT id FROM docs, phraseto_tsquery('english', %(t)s) q WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10",
    # No fuzzy matching in PostgreSQL's full-text search: expand the word through a trigram
    # index over the indexed lexemes (pg_trgm), then search for the candidates.
    "fuzzy": "WITH cand AS (SELECT word FROM words WHERE word %% %(t)s ORDER BY word <-> %(t)s LIMIT 5) "
             "SELECT id FROM docs, to_tsquery('english', coalesce((SELECT string_agg(quote_literal(word), ' | ') FROM cand), 'xqzxqzxqz')) q "
             "WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10",
}

# ---- SQLite --------------------------------------------------------------------------------

def levenshtein(a, b):
    if abs(len(a) - len(b)) > 2:
        return 3
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]

def sqlite_index(docs):
    if os.path.exists(SQLITE_PATH):
        os.remove(SQLITE_PATH)
    db = sqlite3.connect(SQLITE_PATH)
    db.execute("PRAGMA journal_mode=WAL")
    t = time.perf_counter()
    db.execute("CREATE VIRTUAL TABLE docs USING fts5(body, title UNINDEXED, tokenize='porter unicode61')")
    with db:
        db.executemany("INSERT INTO docs (rowid, body, title) VALUES (?, ?, ?)", ((i, d["body"], d["title"]) for i, d in enumerate(docs)))
    elapsed = time.perf_counter() - t
    db.execute("CREATE VIRTUAL TABLE vocab USING fts5vocab(docs, 'row')")
    db.create_function("lev", 2, levenshtein, deterministic=True)
    return db, elapsed

def fts_quote(word):
    return '"' + word.replace('"', '""') + '"'

def sqlite_query(db, kind, text):
    if kind == "term":
        match = fts_quote(text)
    elif kind == "two":
        match = " AND ".join(fts_quote(w) for w in text.split())
    elif kind == "phrase":
        match = fts_quote(text)
    else:
        # No fuzzy matching in FTS5: candidates from its vocabulary (same first letter, length
        # within two) by edit distance, a SQL function here, then a search for them.
        cands = [r[0] for r in db.execute(
            "SELECT term FROM vocab WHERE term >= ? AND term < ? AND length(term) BETWEEN ? AND ? AND lev(term, ?) <= ? ORDER BY doc DESC LIMIT 5",
            (text[0], chr(ord(text[0]) + 1), len(text) - 2, len(text) + 2, text, 1 if len(text) < 6 else 2))]
        if not cands:
            return []
        match = " OR ".join(fts_quote(w) for w in cands)
    return [r[0] for r in db.execute("SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY rank LIMIT 10", (match,))]

# ---- measuring -----------------------------------------------------------------------------

def measure(run, queries):
    for kind, text in queries[:100]:
        run(kind, text)
    lat = {k: [] for k in ("term", "two", "phrase", "fuzzy")}
    found = 0
    for kind, text in queries:
        t = time.perf_counter()
        hits = run(kind, text)
        lat[kind].append((time.perf_counter() - t) * 1000)
        found += bool(hits)
    lat["all"] = [x for k in ("term", "two", "phrase", "fuzzy") for x in lat[k]]
    return lat, found

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]

def main():
    import gc
    import psycopg
    # Python's collector pausing mid-load would be charged to whichever system loads then.
    gc.disable()
    t = time.perf_counter()
    docs = corpus(N_DOCS)
    print(f"corpus: {len(docs)} man-page sections, {sum(len(d['body']) for d in docs) / 1e6:.1f} MB of text ({time.perf_counter() - t:.1f} s to read)")
    queries = make_queries(docs)
    print(f"queries: {N_QUERIES} (250 each: single term, two terms AND, two-word phrase, misspelled word)")

    strata_s = strata_index(docs)
    print(f"strata: indexed in {strata_s:.1f} s")
    pg_s, pg_vocab_s = pg_index(docs)
    print(f"postgres: indexed in {pg_s:.1f} s (+{pg_vocab_s:.1f} s for the trigram vocabulary fuzzy queries need)")
    db, sqlite_s = sqlite_index(docs)
    print(f"sqlite: indexed in {sqlite_s:.1f} s")

    es = Es()
    pg = psycopg.connect(PG_DSN, autocommit=True)
    pg.prepare_threshold = 0
    def pg_run(kind, text):
        return [r[0] for r in pg.execute(PG_SQL[kind], {"t": text}).fetchall()]
    results = {
        "Strata": measure(lambda k, q: strata_query(es, k, q), queries),
        "PostgreSQL 15": measure(pg_run, queries),
        "SQLite FTS5": measure(lambda k, q: sqlite_query(db, k, q), queries),
    }
    rates = {"Strata": len(docs) / strata_s, "PostgreSQL 15": len(docs) / pg_s, "SQLite FTS5": len(docs) / sqlite_s}
    names = list(results)
    print()
    print(f"| | {' | '.join(names)} | Strata vs the better peer |")
    print("|---|" + "---|" * (len(names) + 1))
    best_rate = max(rates["PostgreSQL 15"], rates["SQLite FTS5"])
    print(f"| indexing docs/s | {' | '.join(f'{rates[n]:,.0f}' for n in names)} | {rates['Strata'] / best_rate:.2f}x |")
    for kind in ("all", "term", "two", "phrase", "fuzzy"):
        for p, label in ((0.5, "p50"), (0.99, "p99")):
            vals = {n: pct(results[n][0][kind], p) for n in names}
            best = min(vals["PostgreSQL 15"], vals["SQLite FTS5"])
            print(f"| {kind} {label} ms | {' | '.join(f'{vals[n]:.3f}' for n in names)} | {best / vals['Strata']:.2f}x faster |")
    print(f"| queries with hits | {' | '.join(str(results[n][1]) for n in names)} | |")

if __name__ == "__main__":
    main()
