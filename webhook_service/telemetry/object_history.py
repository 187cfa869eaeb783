"""What hubhook last saw and did for one object, for ``hubhook inspect deal 123``.

A short Redis list per object (newest first, at most HISTORY_LENGTH entries, expiring after
HUBHOOK_HISTORY_TTL seconds of silence): one ``seen`` entry per job that touched the object (its
changes, which handlers matched, what echo suppression and ``from_=`` filters skipped), one
``handler`` entry per handler run (outcome, duration, error). Entries are buffered during a job and
written by the worker after it, in the same pipeline as the figures (``jobs.worker.recording.flush``).

Entries hold property values from the events (already in the job's arguments), never tokens: every
entry passes through the log redaction (``webhook_service.logs.redact``) before it is buffered, since
a handler's error text may quote one.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any

from redis import Redis
from redis.client import Pipeline

from webhook_service import keys
from webhook_service.logs import redact

HISTORY_LENGTH = 30
_CHANGE_FIELDS = ("subscriptionType", "eventId", "occurredAt", "propertyName", "propertyValue", "changeSource",
                  "sourceId", "attemptNumber")
_lock = threading.Lock()
_pending: list[tuple[str, str]] = []


def history_key(object_type: str, object_id: str | int) -> str:
    """``hubhook:history:<type>:<id>``; ``object_type`` is the singular name (``deal``)."""
    return keys.history(object_type, object_id)


def compact(change: dict) -> dict:
    """The fields of one change worth showing (HubSpot's names, absent ones left out)."""
    return {k: change[k] for k in _CHANGE_FIELDS if change.get(k) not in (None, "")}


def add(object_type: str, object_id: str, entry: dict[str, Any]) -> None:
    """Buffer one entry for this object; ``at`` (epoch seconds) is added."""
    payload = redact(json.dumps({"at": round(time.time(), 3), **entry}, default=str, separators=(",", ":")))
    with _lock:
        _pending.append((history_key(object_type, object_id), payload))


def write(pipe: Pipeline, ttl: int) -> int:
    """Queue the buffered entries on ``pipe`` (or drop them when ``ttl`` is 0); return how many."""
    with _lock:
        entries, _pending[:] = list(_pending), []
    if ttl <= 0 or not entries:
        return 0
    by_key: dict[str, list[str]] = {}
    for name, payload in entries:
        by_key.setdefault(name, []).append(payload)
    for name, payloads in by_key.items():
        pipe.lpush(name, *payloads)
        pipe.ltrim(name, 0, HISTORY_LENGTH - 1)
        pipe.expire(name, ttl)
    return len(entries)


def read(redis: Redis, object_type: str, object_id: str | int) -> list[dict[str, Any]]:
    """The stored entries, oldest first; [] when hubhook saw nothing (or it expired)."""
    entries = []
    for raw in reversed(redis.lrange(history_key(object_type, object_id), 0, -1)):
        try:
            entries.append(json.loads(raw))
        except ValueError:
            continue
    return entries
