"""The mirror's write path: rows/s a job's batch writes, against one row per statement and a bare COPY.

Why it matters: every mirrored change ends in this write, and a backfill writes every record there is.
A job's batch is one round trip per table (``jobs.mirror.writer``: one ``INSERT ... SELECT FROM unnest``
with the version guard, pipelined in one transaction). Baselines in the same run, on the same rows and
table shape, on a private PostgreSQL (fsync off, loopback): the same upsert sent one row per statement
(one round trip each, one transaction per batch: what a naive handler does), and a bare ``COPY`` of the
rows into an empty table (no conflict handling, no guard: the ceiling).

    .venv/bin/python bench/mirror.py [--rows 20000] [--batch 1000]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

from bench.results import emit
from jobs.mirror import schema, writer
from jobs.mirror.database import Database
from jobs.mirror.layout import lookup, mirrored_types
from webhook_service.config import Config
from webhook_service.devstack import PostgresProcess

SCHEMA = "bench"


def records(count: int, shift: int = 0) -> list[dict]:
    """Contacts as the CRM API returns them: 20 string properties, ISO dates."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(1, count + 1):
        updated = (base + timedelta(seconds=i + shift)).isoformat().replace("+00:00", "Z")
        properties = {f"prop_{n:02d}": f"value {i} {n}" for n in range(18)}
        properties.update(email=f"c{i}@example.com", hs_object_id=str(i))
        out.append({"id": str(i), "properties": properties, "createdAt": "2025-12-01T00:00:00Z", "updatedAt": updated})
    return out


def mirror_path(db: Database, config: Config, rows: list[dict], batch: int) -> float:
    mirrored = lookup(config, "contacts")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        writes = writer.Writes(mirrored)
        stamp = writer.now_iso()
        for record in rows[start:start + batch]:
            writes.upsert(62515, record, stamp)
        writer.send(db, SCHEMA, writes)
    return len(rows) / (time.perf_counter() - started)


def row_per_statement(conn: psycopg.Connection, rows: list[dict], batch: int) -> float:
    statement = sql.SQL(writer.UPSERT).format(schema=sql.Identifier(SCHEMA), table=sql.Identifier("contacts"))
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        stamp = writer.now_iso()
        with conn.transaction():
            for record in rows[start:start + batch]:
                _, row = writer.record_row(62515, record, stamp)
                conn.execute(statement, [json.dumps([row])])
    return len(rows) / (time.perf_counter() - started)


def bare_copy(conn: psycopg.Connection, rows: list[dict], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        stamp = writer.now_iso()
        with conn.transaction(), conn.cursor().copy(sql.SQL(
                "COPY {}.contacts (portal_id, object_id, properties, created_at, updated_at, version, synced_at) "
                "FROM STDIN").format(sql.Identifier(SCHEMA))) as copy:
            for record in rows[start:start + batch]:
                copy.write_row((62515, int(record["id"]), json.dumps(record["properties"], sort_keys=True),
                                record["createdAt"], record["updatedAt"], record["updatedAt"], stamp))
    return len(rows) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="rows per job batch (a coalesced delivery)")
    args = parser.parse_args()
    server = PostgresProcess().start()
    config = Config(mirror_url=server.url, mirror_schema=SCHEMA, mirror_objects=("contacts",))
    db = Database(server.url)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            schema.migrate(conn, SCHEMA, mirrored_types(config))
            truncate = sql.SQL("TRUNCATE {}.contacts").format(sql.Identifier(SCHEMA))
            rows, newer = records(args.rows), records(args.rows, shift=10_000_000)
            figures: dict[str, list[float]] = {"mirror": [], "mirror_update": [], "per_row": [], "copy": []}
            for _ in range(3):  # interleaved rounds; the median of each
                conn.execute(truncate)
                figures["copy"].append(bare_copy(conn, rows, args.batch))
                conn.execute(truncate)
                figures["per_row"].append(row_per_statement(conn, rows, args.batch))
                conn.execute(truncate)
                figures["mirror"].append(mirror_path(db, config, rows, args.batch))
                figures["mirror_update"].append(mirror_path(db, config, newer, args.batch))
        median = {k: sorted(v)[len(v) // 2] for k, v in figures.items()}
        print(f"{args.rows} contacts (20 properties), batches of {args.batch}, median of 3 rounds:")
        for name, value in median.items():
            print(f"  {name:<14} {value:>10,.0f} rows/s")
        emit("mirror write path, rows/s (insert; batch of 1,000 rows per job)", f"{median['mirror']:,.0f}",
             baseline=f"one row per statement {median['per_row']:,.0f} rows/s "
                      f"(x{median['mirror'] / median['per_row']:.1f}); bare COPY {median['copy']:,.0f} rows/s")
        emit("mirror write path vs bare COPY (same rows, same table)", f"{median['mirror'] / median['copy']:.2f}",
             baseline=f"updates of existing rows (newer versions): {median['mirror_update']:,.0f} rows/s")
        return 0
    finally:
        db.close()
        server.remove()


if __name__ == "__main__":
    sys.exit(main())
