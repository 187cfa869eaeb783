"""Shared pieces of the Webhooks Journal tests: the reader's config, journal events, a handler ledger."""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from jobs.journal import reader
from webhook_service import Router, keys
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue

CLIENT_ID = "journal-test-app"


def journal_config(config: Config, mode: str = "intake", **overrides) -> Config:
    """``config`` reading the journal: the app's client id (its secret is the suite's), quick polls."""
    values = {"journal_reconcile_delay": 0.0, **overrides}
    return dataclasses.replace(config, client_id=CLIENT_ID, journal_mode=mode, journal_poll_interval=0.05,
                               poll_lock_ttl=1.0, **values)


def update_event(object_id: int, properties: dict, occurred_ms: int, *, portal: int = 62515,
                 type_id: str = "0-3") -> dict:
    """A journal UPDATE as the community clients saw them."""
    return {"type": "crmObject", "portalId": portal, "occurredAt": str(occurred_ms), "action": "UPDATE",
            "objectTypeId": type_id, "objectId": object_id, "propertyChanges": properties}


def queued_events(redis: Redis, config: Config) -> list[dict]:
    """Every event of every job waiting to run (RQ's queue, then the portals' lanes), in order."""
    from .conftest import queued_jobs

    queue = build_queue(config, redis)
    return [event for job in queued_jobs(redis, queue) for event in job.args[0]]


def state(redis: Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in redis.hgetall(keys.JOURNAL_STATE).items()}


class Ledger:
    """Handlers that count each change they were called for: (type, action, object, property, value)."""

    def __init__(self, *patterns: str) -> None:
        self.calls: Counter = Counter()
        self.sources: Counter = Counter()
        self.router = Router()
        self._lock = threading.Lock()
        for pattern in patterns:
            self.router.add(self._recorder(pattern.split(".", 1)[1]), pattern, name=f"ledger:{pattern}")

    def _recorder(self, action: str):
        def record(event) -> None:   # a handler sees its object's changes; each counts those of its action
            with self._lock:
                for change in event.changes:
                    if change["subscriptionType"].endswith(f".{action}"):
                        self.calls[(change["subscriptionType"], str(event.object_id), change.get("propertyName"),
                                    change.get("propertyValue"))] += 1
                self.sources[event.source] += 1
        return record


@contextmanager
def running_reader(config: Config) -> Iterator[threading.Event]:
    """``hubhook journal`` in a thread until the block ends (its stop event is yielded)."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            reader.run(config, stop=stop)
        except BaseException as exc:  # surfaced when the block ends
            failure.append(exc)
    thread = threading.Thread(target=target, name="journal-reader", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)
    assert not failure, failure
