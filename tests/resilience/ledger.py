"""The resilience suite's handlers and the ledger they write: what actually ran, counted per event.

The ledger lives in a Redis of its own (``LEDGER_REDIS_URL``), not in the Redis the tests kill, so
it is the outside world's view of hubhook: a handler call recorded here happened, whatever hubhook's
own Redis later remembers. Per change the handler does ``HINCRBY calls <objectId>:<eventId> 1``, so a
duplicate call shows up as a count of 2.

It also records which *run* made each call: a run is one execution of one RQ job, named
``<pid>@<job start time>``. A job's batch may hold several deliveries (hubhook coalesces small ones),
so the run, not the job id, is what a kill interrupts: after a SIGKILL, only the calls of the run the
killed process had in flight may be repeated. Whether the handler got an enriched record (fetched
from HubSpot) or ``None`` is noted too.

Tests read it with ``Ledger``; the worker processes import ``router`` through ``HUBHOOK_HANDLERS``.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from functools import lru_cache

from redis import Redis
from rq import get_current_job

from webhook_service import Router

CALLS = "res:calls"              # hash: event key -> handler calls
KEY_RUNS = "res:key-runs:"       # set per event key: the runs that called the handler for it
RUN_KEYS = "res:run-keys:"       # set per run: the event keys it called the handler for
UNENRICHED = "res:unenriched"    # set of event keys whose handler got record=None
LAST_CALL = "res:last-call"      # float: time.time() of the latest handler call
OBJECTS = "res:objects"          # hash: object id -> handler calls (polled changes have no sender key)
SOURCE = "res:source:"           # set per event.source ("webhook", "poll"): object ids it delivered

router = Router()


def event_key(change: dict) -> str:
    """How the ledger names one HubSpot change: unique per change the sender made up."""
    return f"{change['objectId']}:{change.get('eventId')}"


def parse_run(run: str) -> tuple[int, float]:
    """``"<pid>@<start>"`` -> (pid, start as time.time())."""
    pid, _, started = run.partition("@")
    return int(pid), float(started)


@lru_cache(maxsize=1)
def _ledger() -> Redis:
    return Redis.from_url(os.environ["LEDGER_REDIS_URL"], socket_timeout=5)


@router.on("contact.*", properties=["email"])
def record(event) -> None:
    """Count this call for every change it carries; sleep ``RES_HANDLER_SLEEP`` s to keep jobs in flight."""
    pause = float(os.environ.get("RES_HANDLER_SLEEP", "0") or 0)
    if pause:
        time.sleep(pause)
    job = get_current_job()
    started = job.started_at.timestamp() if job is not None and job.started_at else 0.0
    run = f"{os.getpid()}@{started:.6f}"
    keys = [event_key(change) for change in event.changes]
    with _ledger().pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hincrby(CALLS, key, 1)
            pipe.sadd(KEY_RUNS + key, run)
            if event.record is None:
                pipe.sadd(UNENRICHED, key)
        pipe.sadd(RUN_KEYS + run, *keys)
        pipe.hincrby(OBJECTS, event.object_id, 1)
        pipe.sadd(SOURCE + event.source, event.object_id)
        pipe.set(LAST_CALL, time.time())
        pipe.execute()


class Ledger:
    """The test's reading of what the handlers did."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def calls(self) -> Counter:
        """Handler calls per event key."""
        return Counter({k.decode(): int(v) for k, v in self.redis.hgetall(CALLS).items()})

    def handled(self) -> int:
        """How many distinct events reached a handler."""
        return self.redis.hlen(CALLS)

    def has_all(self, keys: set[str]) -> bool:
        return self.handled() >= len(keys) and keys <= set(self.calls())

    def object_calls(self) -> Counter:
        """Handler calls per object id, whatever delivered them."""
        return Counter({k.decode(): int(v) for k, v in self.redis.hgetall(OBJECTS).items()})

    def delivered_by(self, source: str) -> set[str]:
        """Object ids that reached the handler from ``source`` ("webhook" or "poll")."""
        return {o.decode() for o in self.redis.smembers(SOURCE + source)}

    def duplicates(self) -> dict[str, int]:
        """Event key -> extra handler calls beyond the first."""
        return {k: n - 1 for k, n in self.calls().items() if n > 1}

    def unenriched(self) -> set[str]:
        return {k.decode() for k in self.redis.smembers(UNENRICHED)}

    def runs(self) -> set[str]:
        return {name.decode()[len(RUN_KEYS):] for name in self.redis.scan_iter(match=RUN_KEYS + "*", count=1000)}

    def runs_of(self, key: str) -> set[str]:
        return {r.decode() for r in self.redis.smembers(KEY_RUNS + key)}

    def keys_of(self, run: str) -> set[str]:
        return {k.decode() for k in self.redis.smembers(RUN_KEYS + run)}

    def last_runs(self, pids: set[int]) -> set[str]:
        """The latest run of each of ``pids``: for a killed process, the run its kill may have cut short."""
        latest: dict[int, tuple[float, str]] = {}
        for run in self.runs():
            pid, started = parse_run(run)
            if pid in pids and started >= latest.get(pid, (-1.0, ""))[0]:
                latest[pid] = (started, run)
        return {run for _, run in latest.values()}
