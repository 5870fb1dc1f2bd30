#!/usr/bin/env python3
"""Fill in sqllogictest expected results from a real PostgreSQL.

Reads every crates/blocks/sql/tests/slt-src/*.slt (records whose `query` blocks may have no
results), runs each file in a fresh PostgreSQL database, and writes the same records with
PostgreSQL's results to crates/blocks/sql/tests/slt/. It also checks that every
`statement ok` succeeds and every `statement error <SQLSTATE>` fails with that SQLSTATE on
PostgreSQL, so the expectations are PostgreSQL's, not ours.

Usage: scripts/slt-expected-from-postgres.py "host=127.0.0.1 port=5432 user=postgres"
(`pip install psycopg2-binary`; a throwaway server: see scripts/pgbench-vs-postgres.sh.)
"""
import pathlib
import sys

import psycopg2

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "crates/blocks/sql/tests/slt-src"
OUT = ROOT / "crates/blocks/sql/tests/slt"


def render(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (bytes, memoryview)):
        return "\\x" + bytes(value).hex()
    text = str(value)
    return "(empty)" if text == "" else text


def records(text):
    """Splits a file into records: lists of lines separated by blank lines."""
    block = []
    for line in text.splitlines():
        if line.strip() == "":
            if block:
                yield block
                block = []
        else:
            block.append(line)
    if block:
        yield block


def main(dsn):
    admin = psycopg2.connect(dsn + " dbname=postgres")
    admin.autocommit = True
    failures = []
    for src in sorted(SRC.glob("*.slt")):
        db = "slt_" + src.stem
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db}")
        conn = psycopg2.connect(dsn + f" dbname={db}")
        # psycopg2 returns raw text for every type, as PostgreSQL prints it.
        conn.set_session(autocommit=True)
        psycopg2.extensions.register_type(psycopg2.extensions.new_type(
            tuple(range(16, 5000)), "RAW", lambda v, c: v))
        out = []
        for block in records(src.read_text()):
            head = block[0]
            if head.startswith("#"):
                out.append("\n".join(block))
                continue
            if head.startswith("statement"):
                sql = "\n".join(block[1:])
                want_error = head.split()[1] == "error"
                code = head.split()[2] if want_error and len(head.split()) > 2 else None
                with conn.cursor() as cur:
                    try:
                        cur.execute(sql)
                        if want_error:
                            failures.append(f"{src.name}: PostgreSQL accepted: {sql}")
                    except psycopg2.Error as e:
                        if not want_error:
                            failures.append(f"{src.name}: PostgreSQL failed ({e.pgcode}): {sql}: {e}")
                        elif code and e.pgcode != code:
                            failures.append(f"{src.name}: PostgreSQL gave {e.pgcode}, file says {code}: {sql}")
                out.append("\n".join(block))
                continue
            if head.startswith("query"):
                sep = block.index("----") if "----" in block else len(block)
                sql = "\n".join(block[1:sep])
                with conn.cursor() as cur:
                    try:
                        cur.execute(sql)
                        rows = [" ".join(render(v) for v in row) for row in cur.fetchall()]
                    except psycopg2.Error as e:
                        failures.append(f"{src.name}: PostgreSQL failed ({e.pgcode}): {sql}: {e}")
                        rows = []
                if "rowsort" in head:
                    rows.sort()
                out.append("\n".join([head, sql, "----", *rows]))
                continue
            out.append("\n".join(block))
        conn.close()
        (OUT / src.name).write_text("\n\n".join(out) + "\n")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "host=127.0.0.1 port=5432 user=postgres")
