"""The mirror's write path: rows/s a job's batch writes, against one row per statement and a bare COPY.

Why it matters: every mirrored change ends in this write, and a backfill writes every record there is.
A job's batch is one round trip per table (``jobs.mirror.writer``: one ``INSERT ... SELECT FROM unnest``
with the version guard, pipelined in one transaction). Baselines in the same run, on the same rows and
table shape, on a private PostgreSQL (fsync off, loopback): the same upsert sent one row per statement
(one round trip each, one transaction per batch: what a naive handler does), and a bare ``COPY`` of the
rows into an empty table (no conflict handling, no guard: the ceiling).

Then change-to-row latency at 50 events/s: two `hubhook worker` processes with the mirror on (no handlers
of their own), a fake HubSpot answering in 120 ms with 110 calls per 10 s enforced, deliveries of 10
property changes (distinct contacts) queued 5 a second straight into Redis (the receiver's own latency is
bench/ack_latency.py's); a watcher polls the table every 10 ms and times each row from queueing to visible.

Then ``hubhook mirror backfill``'s rate: records/s loaded from a fake HubSpot that enforces 110 calls per
10 s (so at most 1,100 records/s through the 100-record list pages) and answers in 50 ms, with
HUBHOOK_POLL_SHARE=1 (a backfill alone, no webhooks competing).

    .venv/bin/python bench/mirror.py [--rows 20000] [--batch 1000] [--seconds 20] [--backfill 30000]
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

from bench import harness
from bench.results import emit, percentile
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


def latency(seconds: float) -> list[float]:
    """Seconds from queueing each change to its row being visible, at 50 events/s."""
    from redis import Redis

    from webhook_service.connection import queue as build_queue
    from webhook_service.receiver.intake import enqueue_delivery
    from webhook_service.testing import FakeHubSpot, make_event

    total = int(seconds * 50)
    with harness.redis_server() as redis_server, \
            FakeHubSpot(tokens={harness.TOKEN}, latency=0.12, burst_limit=(110, 10.0)) as fake:
        postgres = PostgresProcess().start()
        try:
            for i in range(1, total + 1):
                fake.add("contacts", i, {"email": f"l{i}@example.com"})
            env = harness.environment(redis_server.url, HUBSPOT_API_BASE_URL=fake.url, HUBHOOK_MIRROR_URL=postgres.url,
                                      HUBHOOK_MIRROR_OBJECTS="contacts", HUBHOOK_HANDLERS="")
            config = Config(redis_url=redis_server.url, api_base_url=fake.url)
            redis = Redis.from_url(redis_server.url)
            queue = build_queue(config, redis)
            with harness.hubhook_workers(2, env), psycopg.connect(postgres.url, autocommit=True) as conn:
                harness.wait_until(lambda: _has_table(conn), 60, "the workers to create the mirror's tables")
                sent: dict[int, float] = {}
                seen: dict[int, float] = {}
                start = time.monotonic()
                for n in range(total // 10):
                    due = start + n / 5
                    while time.monotonic() < due:
                        _watch(conn, seen)
                        time.sleep(0.01)
                    ids = range(n * 10 + 1, n * 10 + 11)
                    now = time.monotonic()
                    sent.update((i, now) for i in ids)
                    enqueue_delivery(redis, queue, [make_event("contact.propertyChange", i, property="email",
                                                               value=f"l{i}@example.com") for i in ids])
                deadline = time.monotonic() + 60
                while len(seen) < total and time.monotonic() < deadline:
                    _watch(conn, seen)
                    time.sleep(0.01)
                return [seen[i] - sent[i] for i in sent if i in seen]
        finally:
            postgres.remove()


def backfill_rate(count: int) -> float:
    """Records/s `hubhook mirror backfill` loads (contacts, no association pairs) under 110 calls/10 s."""
    from jobs.mirror.backfill import backfill
    from webhook_service.testing import FakeHubSpot

    with harness.redis_server() as redis_server, \
            FakeHubSpot(tokens={harness.TOKEN}, latency=0.05, burst_limit=(110, 10.0)) as fake:
        postgres = PostgresProcess().start()
        try:
            for i in range(1, count + 1):
                fake.add("contacts", i, {"email": f"b{i}@example.com", "firstname": "F", "lastname": "L"})
            config = Config(redis_url=redis_server.url, api_base_url=fake.url, access_token=harness.TOKEN,
                            mirror_url=postgres.url, mirror_objects=("contacts",), poll_share=1.0, burst_limit=110)
            started = time.perf_counter()
            written = backfill(config, ["contacts"], portal_id=62515)["contacts"]
            elapsed = time.perf_counter() - started
            assert written == count, f"backfill wrote {written} of {count}"
            return written / elapsed
        finally:
            postgres.remove()


def _has_table(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('hubspot.contacts')").fetchone()
    return bool(row and row[0])


def _watch(conn: psycopg.Connection, seen: dict[int, float]) -> None:
    now = time.monotonic()
    for (object_id,) in conn.execute("SELECT object_id FROM hubspot.contacts").fetchall():
        seen.setdefault(object_id, now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="rows per job batch (a coalesced delivery)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the 50 events/s latency run (0: skip)")
    parser.add_argument("--backfill", type=int, default=30_000, help="records for the backfill run (0: skip)")
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
    finally:
        db.close()
        server.remove()
    if args.seconds:
        delays = latency(args.seconds)
        expected = int(args.seconds * 50)
        print(f"change-to-row latency at 50 events/s: {len(delays)} of {expected} rows seen; "
              f"p50 {percentile(delays, 50) * 1000:.0f} ms, p95 {percentile(delays, 95) * 1000:.0f} ms, "
              f"max {max(delays, default=float('nan')) * 1000:.0f} ms")
        emit("mirror change-to-row p95 at 50 events/s (ms)", f"{percentile(delays, 95) * 1000:.0f}",
             baseline=f"p50 {percentile(delays, 50) * 1000:.0f} ms; {len(delays)} of {expected} rows; "
                      f"HubSpot 120 ms a call, 110 calls/10 s")
    if args.backfill:
        rate = backfill_rate(args.backfill)
        print(f"backfill of {args.backfill} contacts: {rate:,.0f} records/s ({rate / 1100:.0%} of the 1,100/s "
              f"the list endpoint allows at 110 calls/10 s)")
        emit("mirror backfill, records/s under 110 calls/10 s", f"{rate:,.0f}",
             baseline=f"{rate / 1100:.0%} of the 1,100 records/s 100-record pages allow; {args.backfill} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
