"""Turn one validated delivery into at most one durable RQ job per portal, dropping redeliveries.

HubSpot retries a delivery for 24 hours with a higher ``attemptNumber`` and ``eventId`` alone is not
unique (https://developers.hubspot.com/docs/api/webhooks), so each event is identified by a digest of
all it carries but ``attemptNumber``.

The digests live as members of one Redis SET per time bucket (``<prefix>:seen:<ttl>:<bucket>``, a
bucket being half the dedupe TTL, on Redis's own clock): a digest is seen when any of the last three
buckets holds it, and a bucket expires exactly when it leaves that window, so every digest is kept
between 1x and 1.5x the TTL (48 to 72 h for webhooks). One SADD per delivery instead of a SET per
event halves Redis's CPU per delivery and its memory per event (no key, no TTL entry per digest).

One Lua script does the whole intake in one Redis round trip, atomically: it reads the pending
count, checks the digests, and only when every digest it was given is new (and back-pressure allows)
writes the job, the digests and the count. The job's writes are RQ's own: ``Queue.enqueue_job``
records them on a pipeline that is never sent, and the script replays those commands verbatim, so the
job is exactly what RQ would have saved (rq-dashboard and ``Job.fetch`` read it unchanged). When some
digests were already seen, the script writes nothing and says which: the job is rebuilt from the fresh
events only and the script runs again, so a job never holds a redelivery. The job's writes run before
the SADD, so an error part-way (Redis does not roll a script back) can at worst leave a job without
its digests, a possible second run, and never digests without their job, which would lose HubSpot's
retry.

Recording RQ's commands leans on RQ's internals (``webhook_service.private_apis.rq_enqueue``). On the
stock path (an RQ version that was not tested, or ``HUBHOOK_FAST_PATHS=0``) the script only checks,
``queue.enqueue_job`` writes the job, then the script runs again to record the digests and the count:
still never digests without their job, but two receivers given the same redelivery at the same moment
may both enqueue it (at-least-once, as HubSpot's own retries are).
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.commands.core import Script
from rq import Queue, Retry
from rq.job import Job

from webhook_service import keys, lanes, objects, private_apis
from webhook_service.config import Config
from webhook_service.keys import PROCESS_DELIVERY
from webhook_service.private_apis import json_identity, rq_enqueue

#: The one field HubSpot changes when it sends a change again: everything else it sent identifies it.
_RETRY_FIELD = "attemptNumber"
#: Delivery jobs that fail (HubSpot down, a bug) are retried with these delays (seconds), then parked.
DELIVERY_RETRY_INTERVALS = [5, 30, 120, 600, 1800]
#: Seconds parked work (RQ's failed-job registry: deliveries and handler runs) is kept for inspection.
DEAD_LETTER_TTL = 30 * 86400


@dataclass(frozen=True)
class Intake:
    """What happened to one delivery."""

    received: int
    enqueued: int
    job_id: str | None
    throttled: bool = False     # refused: HUBHOOK_MAX_QUEUE_DEPTH events were already pending (or the portal's
    pending: int = 0            # events pending before this delivery (read in the same round trip)
    portal: str | None = None   # set when HUBHOOK_MAX_PORTAL_DEPTH throttled this portal: ``pending`` is its own

    @property
    def duplicates(self) -> int:
        return 0 if self.throttled else self.received - self.enqueued


private_apis.enabled()  # decided at start-up (one warning on an untested RQ); a queue's config may change it
_blake2b = hashlib.blake2b

_DIGEST_SIZE = 12  # bytes, raw: the width _INTAKE cuts the concatenated digests at
#: How many buckets (each half the TTL) a digest is looked up in: the current one and the two before.
_BUCKETS = 3
#: KEYS: the pending counter, the per-portal pending hash, then (declared, not read by index) the seen-sets and
#: RQ keys it may touch (``_seen_candidates``, ``_command_keys``). ARGV: the seen-sets' prefix, the delivery's
#: digests (12 raw bytes each, concatenated: one argument instead of a hundred), the dedupe TTL, the pending
#: limit (0: none), how many events the job holds (0: one per digest; fewer when each event also has its
#: change identity), how many commands follow (or 'check': check only and return {3, pending}; or 'mark':
#: write the digests and counts without checking), the portal ('' for none), the portal's own pending limit
#: (0: none), then each command as its length and its words. Every key must be in one slot on a Redis
#: Cluster (``webhook_service.keys``: RQ_KEY_PREFIX's hash tag). Redis's TIME picks the
#: bucket, so web hosts with skewed clocks still agree. Returns {0, pending, "0110..."} when some
#: digests were seen (a 1 each, in order; nothing written), {1, pending} when throttled (nothing
#: written), {4, portal's pending} when the portal's own limit throttled it, {2, pending} once the job,
#: digests and counts are written.
_INTAKE = """
local prefix, digests, width = ARGV[1], ARGV[2], math.ceil(tonumber(ARGV[3]) / 2)
local bucket = math.floor(tonumber(redis.call('TIME')[1]) / width)
local members = {}
for i = 1, #digests, 12 do members[#members + 1] = string.sub(digests, i, i + 11) end
local flags, seen = {}, 0
for b = bucket - 2, bucket do
  local key = prefix .. b
  if redis.call('EXISTS', key) == 1 then
    for i = 1, #members, 1000 do  -- unpack() has a stack limit: at most 1000 members a call
      local found = redis.call('SMISMEMBER', key, unpack(members, i, math.min(i + 999, #members)))
      for j = 1, #found do
        if found[j] == 1 and not flags[i + j - 1] then flags[i + j - 1] = true; seen = seen + 1 end
      end
    end
  end
end
local pending = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if pending < 0 then pending = 0 end
if seen > 0 and ARGV[6] ~= 'mark' then
  local out = {}
  for i = 1, #members do out[i] = flags[i] and '1' or '0' end
  return {0, pending, table.concat(out)}
end
local limit = tonumber(ARGV[4])
if limit > 0 and pending >= limit then return {1, pending} end
local portal, portal_limit = ARGV[7], tonumber(ARGV[8])
if portal ~= '' and portal_limit > 0 then
  local mine = tonumber(redis.call('HGET', KEYS[2], portal) or '0') or 0
  if mine >= portal_limit then return {4, mine} end
end
if ARGV[6] == 'check' then return {3, pending} end
local at = 9
for _ = 1, tonumber(ARGV[6]) or 0 do
  local len = tonumber(ARGV[at])
  redis.call(unpack(ARGV, at + 1, at + len))
  at = at + len + 1
end
local current = prefix .. bucket
for i = 1, #members, 1000 do redis.call('SADD', current, unpack(members, i, math.min(i + 999, #members))) end
redis.call('EXPIREAT', current, (bucket + 3) * width)  -- the moment it leaves the window looked up
local counted = tonumber(ARGV[5])
local added = counted > 0 and counted or #members
redis.call('INCRBY', KEYS[1], added)
if portal ~= '' then redis.call('HINCRBY', KEYS[2], portal, added) end
return {2, pending}
"""
_SOME_SEEN, _THROTTLED, _WRITTEN, _CHECKED, _PORTAL_THROTTLED = 0, 1, 2, 3, 4
#: EVALSHA, loading the script again when Redis lost it (a restart); bytes, so no client is needed here.
_SCRIPT = Script(None, _INTAKE.encode())  # type: ignore[arg-type]  # stub requires a client; calls pass client=


#: Per key order an event arrived with (events of one delivery share one): its identity fields, sorted,
#: and a hash already fed with their names. Bounded: an odd sender cannot grow it without end.
_SHAPES: dict[tuple[str, ...], tuple[tuple[str, ...], Any]] = {}
_MAX_SHAPES = 256


def _digest(event: dict) -> bytes:
    """What identifies the change, hashed: every field HubSpot sent but ``attemptNumber``.

    HubSpot documents that one change may come as several messages that differ only in fields such as
    ``associationType`` or ``isPrimaryAssociation`` ("may result in two webhook messages":
    https://developers.hubspot.com/docs/api/webhooks), so no field is left out but the retry count.
    The hash covers the sorted field names, then their values in that order (nested objects with
    sorted keys): key order never matters. Hashing the names once per key order keeps a digest as
    cheap as when it covered a fixed list of fields.
    """
    shape = tuple(event)
    known = _SHAPES.get(shape)
    if known is None:
        names = tuple(sorted(name for name in shape if name != _RETRY_FIELD))
        known = (names, _blake2b(json_identity.encode(list(names)).encode(), digest_size=_DIGEST_SIZE))
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        _SHAPES[shape] = known
    names, named = known
    digest = named.copy()
    digest.update(json_identity.encode(list(map(event.get, names))).encode())
    return digest.digest()


#: The actions whose changes both paths carry; ``change_identity`` covers these only.
_CHANGE_ACTIONS = frozenset({"creation", "deletion", "propertyChange", "associationChange", "merge", "restore",
                             "privacyDeletion"})


def change_identity(event: dict) -> bytes | None:
    """What identifies a change whichever path brought it, push webhook or Webhooks Journal; None when the
    event is not a CRM change (then only its own digest dedupes it).

    The journal documents no ``eventId`` (https://developers.hubspot.com/docs/api-reference/latest/
    webhooks-journal/journal-entries/guide), so the identity is what both paths carry: the portal, the
    object type (``deal``, whether named by ``deal.*`` or by ``object.*`` with ``objectTypeId`` 0-3), the
    action, the object id, ``occurredAt`` in epoch ms, and for a property change its name and new value,
    for an association change both ends and whether it was removed. It assumes HubSpot stamps one change
    with the same ``occurredAt`` on both paths, which HubSpot does not document.
    """
    kind = event.get("subscriptionType")
    if not isinstance(kind, str) or "." not in kind:
        return None
    action = kind.split(".", 1)[1]
    otype = objects.event_type(event)
    occurred = event.get("occurredAt")
    if action not in _CHANGE_ACTIONS or otype is None or isinstance(occurred, bool) or \
            not isinstance(occurred, (int, float)):
        return None
    parts: list[Any] = ["change", event.get("portalId"), otype, action, str(event.get("objectId")), int(occurred)]
    if action == "propertyChange":
        value = event.get("propertyValue")
        parts += [event.get("propertyName"), None if value is None else str(value)]
    elif action == "associationChange":
        parts += [str(event.get("fromObjectId")), str(event.get("toObjectId")), bool(event.get("associationRemoved"))]
    return _blake2b(json_identity.encode(parts).encode(), digest_size=_DIGEST_SIZE).digest()


def drop_stale(events: list[dict], max_age: int, *, now: float | None = None) -> tuple[list[dict], int]:
    """The events that occurred at most ``max_age`` seconds ago, and how many did not.

    For webhook deliveries, ``max_age`` is the dedupe TTL, the least time a digest is kept: an event
    inside it that was delivered before is still known, and HubSpot stops retrying a delivery after
    about a day (https://developers.hubspot.com/docs/api-reference/error-handling), so an older one
    can only be a replay, e.g. of a captured v1-signed delivery, whose signature has no timestamp.
    The poller's events are not passed here: a backfill enqueues changes of any age.
    """
    cutoff = ((time.time() if now is None else now) - max_age) * 1000
    fresh = [event for event in events if not event.get("occurredAt", cutoff) < cutoff]
    return fresh, len(events) - len(fresh)


def _seen_prefix(key_prefix: str, dedupe_ttl: int) -> str:
    """Seen-sets are per TTL: the poller's 1 h digests must not live in (and as long as) the webhook's."""
    return keys.seen_prefix(dedupe_ttl, key_prefix)


#: Commands RQ's enqueue records whose one key is their first argument (``_command_keys``).
_SINGLE_KEY_COMMANDS = frozenset({"HSET", "HMSET", "EXPIRE", "PEXPIRE", "PERSIST", "SADD", "SREM", "RPUSH", "LPUSH",
                                  "ZADD", "ZREM", "SET", "HDEL"})


def _seen_candidates(seen_prefix: str, dedupe_ttl: int) -> list[str]:
    """The seen-sets the script may touch, declared in its KEYS (Redis Cluster wants every key a script
    touches declared): the buckets around this host's clock, one either side of the three looked up, as
    the script picks them by Redis's clock. Declaring is routing metadata only; the script builds the
    names itself, so a host whose clock is off by more than a bucket (a day) still works on one Redis
    and on a cluster (every name shares the prefix's hash tag, so the slot)."""
    width = -(-dedupe_ttl // 2)
    bucket = int(time.time()) // width
    return [f"{seen_prefix}{b}" for b in range(bucket - _BUCKETS, bucket + 2)]


def _command_keys(flat: list) -> list:
    """The keys of the recorded RQ commands (``rq_enqueue.enqueue_commands``' flat form), to declare them."""
    found: dict = {}
    if not flat or not isinstance(flat[0], int):
        return []
    at = 1
    for _ in range(flat[0]):
        length = flat[at]
        words = flat[at + 1:at + 1 + length]
        name = words[0].decode() if isinstance(words[0], bytes) else str(words[0])
        if name.upper() in _SINGLE_KEY_COMMANDS and len(words) > 1:
            found.setdefault(words[1], None)
        at += length + 1
    return list(found)


def was_seen(connection: Redis, event: dict, *, key_prefix: str = keys.PREFIX,
             dedupe_ttl: int = Config.dedupe_ttl) -> bool:
    """Would a delivery of ``event`` now be dropped as a redelivery? (Tests, operators; not the hot path.)"""
    width = -(-dedupe_ttl // 2)
    bucket = int(connection.time()[0]) // width
    prefix, digest = _seen_prefix(key_prefix, dedupe_ttl), _digest(event)
    # redis-py types the member as str; like every value, bytes (the digest) is sent as is
    return any(connection.sismember(f"{prefix}{b}", digest)  # type: ignore[arg-type]
               for b in range(bucket - _BUCKETS + 1, bucket + 1))


def describe(events: list[dict]) -> str:
    """A short, readable job description for rq-dashboard: counts per subscription type."""
    counts = Counter(e["subscriptionType"] for e in events)
    return "hubspot delivery: " + ", ".join(f"{n}x {t}" for t, n in counts.most_common(4))


def delivery_job(queue: Queue, events: list[dict], *, source: str = "webhook",
                 job_timeout: int = Config.job_timeout, job_id: str | None = None, attempt: int = 0) -> Job:
    """The RQ job that processes ``events`` (not yet saved): the same shape for new deliveries, work a
    job hands on after a HubSpot failure (``attempt`` counts those), and parked work."""
    kwargs: dict = {"source": source}
    if attempt:
        kwargs["attempt"] = attempt
    return queue.create_job(
        PROCESS_DELIVERY, args=[events], kwargs=kwargs, job_id=job_id or lanes.delivery_job_id(events),
        description=describe(events), timeout=job_timeout, result_ttl=0, failure_ttl=DEAD_LETTER_TTL,
        retry=Retry(max=len(DELIVERY_RETRY_INTERVALS), interval=DELIVERY_RETRY_INTERVALS),
    )


def enqueue_delivery(connection: Redis, queue: Queue, events: list[dict], *, source: str = "webhook",
                     dedupe_ttl: int = Config.dedupe_ttl, key_prefix: str = keys.PREFIX,
                     job_timeout: int = Config.job_timeout,
                     max_pending: int = 0, identities: bool = False, fair: bool = Config.fair_slice > 0,
                     max_portal_pending: int = 0) -> Intake:
    """Enqueue the events not seen before as one job per portal; return what was kept. Raises RedisError.

    The count of pending events (``webhook_service.telemetry.backlog``) is read with the seen-sets and raised with the
    enqueue, in the same script; at ``max_pending`` or more (0: no limit) nothing is enqueued or
    marked seen and the Intake says ``throttled``; so it does when the delivery's portal alone has
    ``max_portal_pending`` or more pending (0: no limit), the Intake naming the portal.
    With ``fair`` (HUBHOOK_FAIR_SLICE above 0) each job then waits in its portal's lane unless it may
    run next (``webhook_service.lanes.route``).

    With ``identities`` (on whenever the Webhooks Journal is read: ``HUBHOOK_JOURNAL_MODE``), each event is
    also looked up and marked by its ``change_identity``, so a change that arrives both by webhook and from
    the journal, in either order, is enqueued once.
    """
    by_portal: dict[str | None, list[dict]] = {}
    for event in events:
        by_portal.setdefault(lanes.portal_of([event]), []).append(event)
    outcomes = [_enqueue_one(connection, queue, part, source=source, dedupe_ttl=dedupe_ttl, key_prefix=key_prefix,
                             job_timeout=job_timeout, max_pending=max_pending, identities=identities, fair=fair,
                             max_portal_pending=max_portal_pending)
                for part in by_portal.values()]
    if len(outcomes) == 1:
        return outcomes[0]
    return Intake(received=len(events), enqueued=sum(o.enqueued for o in outcomes),
                  job_id=next((o.job_id for o in outcomes if o.job_id), None),
                  throttled=any(o.throttled for o in outcomes), pending=max((o.pending for o in outcomes), default=0),
                  portal=next((o.portal for o in outcomes if o.portal), None))


def _enqueue_one(connection: Redis, queue: Queue, events: list[dict], *, source: str, dedupe_ttl: int,
                 key_prefix: str, job_timeout: int, max_pending: int, identities: bool, fair: bool,
                 max_portal_pending: int) -> Intake:
    """``enqueue_delivery`` for the events of one portal."""
    pending_key = keys.pending_events(key_prefix)
    script_keys = [pending_key, keys.pending_by_portal(key_prefix)]
    portal = lanes.portal_of(events) or ""
    seen_prefix = _seen_prefix(key_prefix, dedupe_ttl)
    unique: dict[bytes, dict] = {}
    alias: dict[bytes, bytes] = {}   # digest -> its change identity (identities only)
    changes: set[bytes] = set()
    for event in events:
        digest = _digest(event)
        if digest in unique:
            continue
        if identities:
            change = change_identity(event) or digest
            if change in changes:   # the same change twice in one batch (a file read again, two messages)
                continue
            changes.add(change)
            alias[digest] = change
        unique[digest] = event
    digests = list(unique)
    job_id = lanes.delivery_job_id(events)
    fast = private_apis.enabled()
    while digests:
        batch = [unique[d] for d in digests]
        job = delivery_job(queue, batch, source=source, job_timeout=job_timeout, job_id=job_id)
        commands = rq_enqueue.enqueue_commands(connection, queue, job) if fast else ["check"]
        members = b"".join(digests) + (b"".join(alias[d] for d in digests) if identities else b"")
        counted = len(digests) if identities else 0
        args = [seen_prefix, members, dedupe_ttl, max_pending, counted, commands[0], portal, max_portal_pending,
                *commands[1:]]
        declared = [*script_keys, *_seen_candidates(seen_prefix, dedupe_ttl), *_command_keys(commands)]
        outcome, pending, *seen = _SCRIPT(keys=declared, args=args, client=connection)
        if outcome == _CHECKED:  # the stock path: RQ writes the job, then the digests and counts follow it
            queue.enqueue_job(job)
            _SCRIPT(keys=declared, args=[seen_prefix, members, dedupe_ttl, 0, counted, "mark", portal, 0],
                    client=connection)
            outcome = _WRITTEN
        if outcome == _WRITTEN:
            if fair:
                lanes.route(connection, queue, portal or None, [job_id])
            return Intake(received=len(events), enqueued=len(batch), job_id=job_id, pending=pending)
        if outcome in (_THROTTLED, _PORTAL_THROTTLED):
            return Intake(received=len(events), enqueued=0, job_id=None, throttled=True, pending=pending,
                          portal=portal if outcome == _PORTAL_THROTTLED else None)
        flags = seen[0].decode() if isinstance(seen[0], bytes) else seen[0]
        if identities:  # an event was seen when its digest or its change identity was
            flags = "".join("1" if "1" in (a, b) else "0" for a, b in zip(flags, flags[len(digests):]))
        digests = [d for d, flag in zip(digests, flags) if flag == "0"]  # run again on the fresh ones only
    return Intake(received=len(events), enqueued=0, job_id=None)
