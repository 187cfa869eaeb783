"""``hubhook journal``: read the app's Webhooks Journal into the same queue as webhooks.

Any number of readers may run; one leads, on the poller's leadership model (``jobs.poller.leader``) with
its own lock, and standbys wait. The leader asks for the files after its offset (from the earliest one
HubSpot keeps when it has none), downloads each from its pre-signed URL, maps its events to the webhook
shape (``jobs.journal.format``) and enqueues them through the receiver's intake with ``source="journal"``.
Only when every event of a file is enqueued does the offset move to that file, in Redis
(``keys.JOURNAL_STATE``): a reader killed in between reads the file again and intake drops what it
already took, by each change's identity (``webhook_service.receiver.intake.change_identity``), which is
also how a change that came by webhook too reaches each handler once.

In ``reconcile`` mode webhooks are the fast path: a file is read once its newest change is
``HUBHOOK_JOURNAL_RECONCILE_DELAY`` old, so the webhooks of its changes land first (they say who made a
change, which echo suppression needs; the journal does not) and the journal only fills what they missed.

A lost offset (HubSpot answers 4xx for it: older than the three days it keeps events, or never issued) is
said once, and reading restarts at the earliest file; the poller's search cursors are moved back to the
newest change read before, so the search reconcile walks the gap the journal no longer holds. A file that
is no journal file is retried ``MALFORMED_ATTEMPTS`` times, then skipped with its offset recorded.
Events of unknown actions or types, and unknown fields, are counted (``hubhook_journal_skipped``), never fatal.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from jobs.journal import format
from jobs.journal.client import JournalClient, JournalError, LinkExpired, OffsetLost, Throttled
from jobs.poller.leader import Leadership, Stopped, current_leader, serve_as_leader, text
from jobs.poller.main import _stop_on_signals
from jobs.poller.reconcile import rewind_search
from webhook_service import keys
from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.connection import redis_client
from webhook_service.errors import ConfigError
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import stats
from webhook_service.timestamps import iso_utc

log = logging.getLogger("hubhook.journal")
#: Files asked for per read (HubSpot publishes no maximum for 2026-03/09; the 2027-03 beta allows 100).
BATCH = 20
#: Events per job: a 10,000-event file becomes 20 jobs, each one intake round trip.
CHUNK = 500
#: A file that is no journal file is tried this many times, then skipped.
MALFORMED_ATTEMPTS = 3
MAX_BACKOFF = 300.0
#: With ``--once``, reading stops after this many failures in a row.
ONCE_ATTEMPTS = 5


class Reader:
    """The leader's work: one ``step`` reads what is new; see the module docstring."""

    def __init__(self, config: Config, redis: Redis, client: JournalClient, guard: Leadership) -> None:
        self.config, self.redis, self.client, self.guard = config, redis, client, guard
        self.queue = build_queue(config, redis)
        self.failures = 0
        self.caught_up = False   # the last read answered "nothing new" (204)
        self._unknown: set[str] = set()
        self._said: set[str] = set()

    def state(self) -> dict[str, str]:
        return {text(k): text(v) for k, v in self.redis.hgetall(keys.JOURNAL_STATE).items()}

    def step(self) -> float:
        """Read and enqueue what is new; the seconds to wait before the next step (0: go on at once)."""
        state = self.state()
        offset = state.get("offset")
        self.caught_up = False
        try:
            pointers = self.client.after(offset, BATCH) if offset else self.client.earliest(BATCH)
            if not pointers:
                self.redis.hset(keys.JOURNAL_STATE, mapping={"caught_up_at": f"{time.time():.3f}",
                                                             "latest_offset": offset or ""})
                self.failures, self.caught_up = 0, True
                return self.config.journal_poll_interval
            for pointer in pointers:
                self.guard.check()
                if not self._file(pointer):   # its link expired: fresh pointers, after a short wait
                    self.failures += 1
                    return self._backoff()
            self.failures = 0
            return 0.0
        except OffsetLost as exc:
            self._lost(exc, state)
            return 0.0
        except NotYet as exc:
            self.failures, self.caught_up = 0, True
            return exc.seconds
        except Throttled as exc:
            self._error(str(exc))
            return exc.retry_after
        except (JournalError, Malformed) as exc:
            self.failures += 1
            self._error(str(exc))
            return self._backoff()

    def _backoff(self) -> float:
        """After a failure: the poll interval, doubled each failure in a row, at most MAX_BACKOFF."""
        return min(MAX_BACKOFF, max(self.config.journal_poll_interval, 0.01) * 2.0 ** self.failures)

    def _file(self, pointer: format.Pointer) -> bool:
        """Enqueue one file's events, then move the offset to it; False: ask for fresh pointers first."""
        try:
            raw = self.client.download(pointer)
            events = format.decode_file(raw)
        except LinkExpired as exc:
            log.info("%s; asking for a fresh one", exc)
            return False
        except format.MalformedFile as exc:
            return self._malformed(pointer, str(exc))
        mapped = format.map_file(events, self._unknown)
        if self.config.journal_mode == "reconcile" and mapped.newest_ms is not None:
            due = mapped.newest_ms / 1000 + self.config.journal_reconcile_delay - time.time()
            if due > 0:   # webhooks are the fast path: give this file's webhooks time to land first
                raise NotYet(due)
        for reason, count in mapped.skipped.items():
            stats.count("journal_skipped", count, reason=reason)
            if reason not in self._said:   # once per reason and process: the metric counts the rest
                self._said.add(reason)
                log.warning("journal: skipped or ignored %s (counted in hubhook_journal_skipped)", reason)
        enqueued = duplicates = 0
        for start in range(0, len(mapped.events), CHUNK):
            chunk = mapped.events[start:start + CHUNK]
            while True:
                self.guard.check()
                result = enqueue_delivery(self.redis, self.queue, chunk, source="journal",
                                          dedupe_ttl=self.config.dedupe_ttl, job_timeout=self.config.job_timeout,
                                          max_pending=self.config.max_queue_depth, identities=True)
                if not result.throttled:
                    break
                log.info("journal: %d events already wait in the queue (limit %d); waiting %ds",
                         result.pending, self.config.max_queue_depth, self.config.backpressure_retry_after)
                self.guard.sleep(min(self.config.backpressure_retry_after, self.guard.heartbeat))
            enqueued += result.enqueued
            duplicates += result.duplicates
        self._commit(pointer.offset, mapped, enqueued, duplicates)
        return True

    def _commit(self, offset: str, mapped: format.Mapped, enqueued: int, duplicates: int,
                **fields: Any) -> None:
        """The offset moves to ``offset`` (its events are in the queue), with the figures."""
        self.guard.check()
        mapping: dict[Any, Any] = {"offset": offset, "offset_at": f"{time.time():.3f}", **fields}
        if mapped.newest_ms is not None:
            mapping["last_event_ms"] = mapped.newest_ms
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.JOURNAL_STATE, mapping=mapping)
            pipe.hdel(keys.JOURNAL_STATE, "malformed_offset", "malformed_attempts")
            pipe.hincrby(keys.JOURNAL_STATE, "files", 1)
            pipe.hincrby(keys.JOURNAL_STATE, "events_read", mapped.read)
            pipe.hincrby(keys.JOURNAL_STATE, "events_enqueued", enqueued)
            pipe.hincrby(keys.JOURNAL_STATE, "duplicates", duplicates)
            pipe.execute()
        stats.count("journal_files")
        stats.count("journal_events", enqueued, outcome="enqueued")
        stats.count("journal_events", duplicates, outcome="duplicate")

    def _malformed(self, pointer: format.Pointer, why: str) -> bool:
        state = self.state()
        attempts = int(state.get("malformed_attempts") or 0) + 1 if state.get("malformed_offset") == pointer.offset \
            else 1
        self.redis.hset(keys.JOURNAL_STATE, mapping={"malformed_offset": pointer.offset,
                                                     "malformed_attempts": attempts})
        stats.count("journal_malformed_files")
        if attempts < MALFORMED_ATTEMPTS:
            raise Malformed(f"journal file {pointer.offset} is malformed ({why}); attempt {attempts} of "
                            f"{MALFORMED_ATTEMPTS}, trying again")
        log.error("journal file %s is malformed (%s) after %d attempts: skipped, its offset recorded as "
                  "skipped_offset in `hubhook journal status`", pointer.offset, why, attempts)
        self.redis.hincrby(keys.JOURNAL_STATE, "skipped_files", 1)
        self._commit(pointer.offset, format.Mapped(), 0, 0, skipped_offset=pointer.offset,
                     last_error=f"skipped malformed file {pointer.offset}: {why}"[:300],
                     last_error_at=f"{time.time():.3f}")
        return True

    def _lost(self, exc: OffsetLost, state: dict[str, str]) -> None:
        """Say it once, restart at the earliest file, and have the search reconcile walk the gap."""
        since = int(state.get("last_event_ms") or float(state.get("offset_at") or time.time()) * 1000)
        moved = rewind_search(self.redis, since)
        remedy = (f"the poller's search reconcile walks {moved} type(s) again from {iso_utc(since)}" if moved else
                  f"no poller search cursor exists to reconcile it: run `hubhook poll --backfill --since "
                  f"{iso_utc(since)[:10]}` to fetch the changes since then")
        log.warning("%s: restarting at the earliest event it keeps; changes the journal no longer holds: %s",
                    exc, remedy)
        stats.count("journal_offsets_lost")
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.JOURNAL_STATE, "offset")
            pipe.hset(keys.JOURNAL_STATE, mapping={"lost_offset": exc.offset, "lost_at": f"{time.time():.3f}",
                                                   "gap_since_ms": since, "last_error": str(exc)[:300],
                                                   "last_error_at": f"{time.time():.3f}"})
            pipe.hincrby(keys.JOURNAL_STATE, "offsets_lost", 1)
            pipe.execute()

    def _error(self, message: str) -> None:
        log.warning("journal: %s", message)
        self.redis.hset(keys.JOURNAL_STATE, mapping={"last_error": message[:300],
                                                     "last_error_at": f"{time.time():.3f}"})


class Malformed(Exception):
    """A malformed file's attempt that will be retried (internal)."""


class NotYet(Exception):
    """Reconcile mode: the next file is younger than HUBHOOK_JOURNAL_RECONCILE_DELAY (internal)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the next journal file is due in {seconds:.0f}s")
        self.seconds = seconds


def run(config: Config, *, once: bool = False, stop: threading.Event | None = None) -> None:
    """The ``hubhook journal`` process: lead or stand by until stopped (``once``: read until caught up)."""
    if config.journal_mode is None:
        raise ConfigError("HUBHOOK_JOURNAL_MODE is not set: intake (the journal is the only source) or reconcile "
                          "(webhooks first, the journal heals what they missed), e.g. HUBHOOK_JOURNAL_MODE=intake")
    client = JournalClient(config)
    redis = redis_client(config, socket_timeout=30.0)
    redis.hset(keys.JOURNAL_STATE, "mode", config.journal_mode)
    leadership = Leadership(redis, config.poll_lock_ttl, stop, key=keys.JOURNAL_LEADER)
    restore: Callable[[], None] = _stop_on_signals(leadership.stop)
    reader = Reader(config, redis, client, leadership)

    def lead() -> None:
        log.info("leader: %s reads the journal (%s mode)", leadership.identity, config.journal_mode)
        while True:
            wait = reader.step()
            if once and (reader.caught_up or reader.failures >= ONCE_ATTEMPTS):
                return
            leadership.sleep(wait)
            leadership.check()

    try:
        serve_as_leader(leadership, lead, once=once, role="journal reader", logger=log)
    except Stopped:
        log.info("journal reader stopping")
    finally:
        restore()
        client.close()
        try:
            leadership.release()
        except RedisError:
            pass


def status(config: Config, redis: Redis | None = None) -> dict[str, Any] | None:
    """The reader's offset, its age, lag, files and events read, last error and leader; None before any run."""
    redis = redis or redis_client(config)
    raw = {text(k): text(v) for k, v in redis.hgetall(keys.JOURNAL_STATE).items()}
    if not raw:
        return None
    now = time.time()
    offset_at = float(raw["offset_at"]) if raw.get("offset_at") else None
    caught_up_at = float(raw["caught_up_at"]) if raw.get("caught_up_at") else None
    last_event = int(raw["last_event_ms"]) if raw.get("last_event_ms") else None
    at_latest = bool(raw.get("offset")) and caught_up_at is not None and raw.get("latest_offset") == raw.get("offset")
    lag = 0.0 if at_latest else (round(now - last_event / 1000, 1) if last_event else None)
    return {
        "mode": raw.get("mode"), "offset": raw.get("offset"),
        "offset_age_seconds": round(now - offset_at, 1) if offset_at else None,
        "lag_seconds": lag, "at_latest": at_latest,
        "last_event": iso_utc(last_event) if last_event else None,
        "files": int(raw.get("files") or 0), "events_read": int(raw.get("events_read") or 0),
        "events_enqueued": int(raw.get("events_enqueued") or 0), "duplicates": int(raw.get("duplicates") or 0),
        "skipped_files": int(raw.get("skipped_files") or 0), "skipped_offset": raw.get("skipped_offset"),
        "offsets_lost": int(raw.get("offsets_lost") or 0), "last_error": raw.get("last_error"),
        "last_error_at": iso_utc(float(raw["last_error_at"]) * 1000) if raw.get("last_error_at") else None,
        "leader": current_leader(redis, keys.JOURNAL_LEADER),
    }
