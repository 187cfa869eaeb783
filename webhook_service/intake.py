"""Turn one validated delivery into at most one durable RQ job, dropping redeliveries.

HubSpot retries a delivery for 24 hours with a higher ``attemptNumber`` and ``eventId`` alone is not
unique (FACTS.md 2.2), so each event is keyed on what identifies the change itself. The seen-keys
and the job are written in one MULTI/EXEC under WATCH: either both land or neither does, so a 503
never leaves a key behind that would make HubSpot's retry look like a duplicate.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import WatchError
from rq import Queue, Retry
from rq.job import Job

PROCESS_DELIVERY = "jobs.process.process_delivery"
_IDENTITY = ("portalId", "appId", "subscriptionId", "subscriptionType", "objectTypeId", "objectId", "eventId",
             "occurredAt", "propertyName", "propertyValue", "fromObjectId", "toObjectId", "associationRemoved",
             "messageId", "primaryObjectId")
#: Delivery jobs that fail (HubSpot down, a bug) are retried with these delays (seconds), then parked.
DELIVERY_RETRY_INTERVALS = [5, 30, 120, 600, 1800]


@dataclass(frozen=True)
class Intake:
    """What happened to one delivery."""

    received: int
    enqueued: int
    job_id: str | None
    throttled: bool = False     # refused: HUBHOOK_MAX_QUEUE_DEPTH events were already pending
    pending: int = 0            # events pending before this delivery (read in the same round trip)

    @property
    def duplicates(self) -> int:
        return 0 if self.throttled else self.received - self.enqueued


#: json.dumps with options builds a new encoder per call; one encoder, same bytes, same keys as before.
_IDENTITY_JSON = json.JSONEncoder(separators=(",", ":"), default=str)
#: Marks every fresh change seen in one command: 100 SETs inside MULTI cost the receiver more than
#: everything else on its path (bench/receiver.py), mostly in queueing and parsing 200 replies.
#: The value is "1", not the job id: nothing reads it, and a 41-byte value is a third of a key's
#: memory (bench/memory.py: ~197 -> ~133 bytes a key, the goal being 200 bytes a queued event).
_MARK_SEEN = "for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end"


def dedupe_key(event: dict, prefix: str) -> str:
    """The Redis key that marks this change as seen: a digest of the fields that identify it."""
    identity = _IDENTITY_JSON.encode([event.get(f) for f in _IDENTITY])
    return f"{prefix}:seen:{hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()}"


def describe(events: list[dict]) -> str:
    """A short, readable job description for rq-dashboard: counts per subscription type."""
    counts = Counter(e["subscriptionType"] for e in events)
    return "hubspot delivery: " + ", ".join(f"{n}x {t}" for t, n in counts.most_common(4))


def delivery_job(queue: Queue, events: list[dict], *, source: str = "webhook", job_timeout: int = 60,
                 job_id: str | None = None, attempt: int = 0) -> Job:
    """The RQ job that processes ``events`` (not yet saved): the same shape for new deliveries, work a
    job hands on after a HubSpot failure (``attempt`` counts those), and parked work."""
    kwargs: dict = {"source": source}
    if attempt:
        kwargs["attempt"] = attempt
    return queue.create_job(
        PROCESS_DELIVERY, args=[events], kwargs=kwargs, job_id=job_id or f"delivery-{uuid.uuid4().hex}",
        description=describe(events), timeout=job_timeout, result_ttl=0, failure_ttl=30 * 86400,
        retry=Retry(max=len(DELIVERY_RETRY_INTERVALS), interval=DELIVERY_RETRY_INTERVALS),
    )


def enqueue_delivery(connection: Redis, queue: Queue, events: list[dict], *, source: str = "webhook",
                     dedupe_ttl: int = 48 * 3600, key_prefix: str = "hubhook", job_timeout: int = 60,
                     max_pending: int = 0) -> Intake:
    """Enqueue the events not seen before as one job; return what was kept. Raises RedisError.

    The count of pending events (``jobs.pending``) is read with the seen-keys and raised in the same
    MULTI as the enqueue; at ``max_pending`` or more (0: no limit) nothing is enqueued or marked seen
    and the Intake says ``throttled``.
    """
    pending_key = f"{key_prefix}:pending_events"
    unique: dict[str, dict] = {}
    for event in events:
        unique.setdefault(dedupe_key(event, key_prefix), event)
    keys = list(unique)
    job_id = f"delivery-{uuid.uuid4().hex}"
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*keys)
                *seen, waiting = pipe.mget([*keys, pending_key])
                fresh = [k for k, s in zip(keys, seen) if s is None]
                if not fresh:
                    pipe.unwatch()
                    return Intake(received=len(events), enqueued=0, job_id=None)
                waiting = max(0, int(waiting or 0))
                if max_pending and waiting >= max_pending:
                    pipe.unwatch()
                    return Intake(received=len(events), enqueued=0, job_id=None, throttled=True, pending=waiting)
                batch = [unique[k] for k in fresh]
                pipe.multi()
                pipe.eval(_MARK_SEEN, len(fresh), *fresh, dedupe_ttl)
                job = delivery_job(queue, batch, source=source, job_timeout=job_timeout, job_id=job_id)
                queue.enqueue_job(job, pipeline=pipe)
                pipe.incrby(pending_key, len(batch))
                pipe.execute()
                return Intake(received=len(events), enqueued=len(batch), job_id=job_id, pending=waiting)
            except WatchError:
                continue  # the same change arrived concurrently: look again
