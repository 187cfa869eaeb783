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

    @property
    def duplicates(self) -> int:
        return self.received - self.enqueued


def dedupe_key(event: dict, prefix: str) -> str:
    """The Redis key that marks this change as seen: a digest of the fields that identify it."""
    identity = json.dumps([event.get(f) for f in _IDENTITY], separators=(",", ":"), default=str)
    return f"{prefix}:seen:{hashlib.blake2b(identity.encode(), digest_size=12).hexdigest()}"


def describe(events: list[dict]) -> str:
    """A short, readable job description for rq-dashboard: counts per subscription type."""
    counts = Counter(e["subscriptionType"] for e in events)
    return "hubspot delivery: " + ", ".join(f"{n}x {t}" for t, n in counts.most_common(4))


def enqueue_delivery(connection: Redis, queue: Queue, events: list[dict], *, source: str = "webhook",
                     dedupe_ttl: int = 48 * 3600, key_prefix: str = "hubhook", job_timeout: int = 60) -> Intake:
    """Enqueue the events not seen before as one job; return what was kept. Raises RedisError."""
    unique: dict[str, dict] = {}
    for event in events:
        unique.setdefault(dedupe_key(event, key_prefix), event)
    keys = list(unique)
    job_id = f"delivery-{uuid.uuid4().hex}"
    with connection.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(*keys)
                seen = pipe.mget(keys)
                fresh = [k for k, s in zip(keys, seen) if s is None]
                if not fresh:
                    pipe.unwatch()
                    return Intake(received=len(events), enqueued=0, job_id=None)
                batch = [unique[k] for k in fresh]
                pipe.multi()
                for k in fresh:
                    pipe.set(k, job_id, ex=dedupe_ttl)
                job = queue.create_job(
                    PROCESS_DELIVERY, args=[batch], kwargs={"source": source}, job_id=job_id,
                    description=describe(batch), timeout=job_timeout, result_ttl=0, failure_ttl=30 * 86400,
                    retry=Retry(max=len(DELIVERY_RETRY_INTERVALS), interval=DELIVERY_RETRY_INTERVALS),
                )
                queue.enqueue_job(job, pipeline=pipe)
                pipe.execute()
                return Intake(received=len(events), enqueued=len(batch), job_id=job_id)
            except WatchError:
                continue  # the same change arrived concurrently: look again
