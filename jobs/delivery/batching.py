"""Backlog batching: a delivery job takes deliveries queued behind it along, so one batch read serves many.

Under light load HubSpot sends one event per delivery, and hubhook makes one job per delivery; when
those pile up (a burst, a HubSpot outage just ended, workers were down, a stream paced by HubSpot's
quota) each job would cost its own batch reads. So a starting ``process_delivery`` job (the
*leader*) looks at the head of the queue and *claims* queued delivery jobs of the same source, oldest
first, while they fit in its batch. A lone event waits for nothing: the leader only takes what is
already queued.

How big a batch grows (``limit``): records are read 100 ids a call, associations 1,000, so beyond
100 events a bigger batch saves calls only when the handlers of its events read associations. Then
it grows up to ``HUBHOOK_COALESCE_MAX_EVENTS`` (default 1,000: a stream of 100-event deliveries costs
0.012 calls per event with 2 association types instead of 0.03); otherwise it stops at 100, the size
of one full HubSpot delivery. A big batch runs its handlers longer, so a batch that took deliveries
along stops dispatching at half the job timeout (``overdue``) and hands what it has not dispatched
on to a new job at the head of the queue (``jobs.delivery.parking``): handlers' time never runs it into
RQ's timeout, and nothing already dispatched runs twice.

Claiming must never lose or duplicate a job, so it is one Lua script: for each chosen id, ``LREM``
it from RQ's queue list (exactly one of RQ's dequeue and this script can remove a given id) and
``RPUSH`` it onto a claim list owned by this run, whose lease (``job_timeout + 15 s``, as long as RQ
waits before it calls the leader itself abandoned) is recorded in
a sorted set. The claimed jobs' hashes stay untouched, still "queued". Then:

- success: in one MULTI with handing on whatever HubSpot refused (``handoff.settle``), the claimed
  job hashes, the claim list and the lease are deleted;
- an unexpected exception (a bug, a job timeout): ``release`` puts the claimed ids back at the head of
  the queue and marks them and the leader *solo* for an hour (never claimed, never claiming), so one
  poisonous delivery cannot fail its neighbours twice; RQ retries the leader itself as usual;
- the worker dies: ``recover``, run in every worker's maintenance pass, puts back the ids of claims
  whose lease ran out, the same way; RQ recovers the leader itself.

So each claimed delivery is processed at least once, like every other job. The Lua scripts here
declare every key they touch in KEYS (a claim's solo keys are read from its list first, and a claim
list never grows once claimed), and every key carries hubhook's prefix, so on a Redis Cluster they
share one slot (``webhook_service.keys``).
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job

from webhook_service import keys, lanes
from webhook_service.keys import PROCESS_DELIVERY
from webhook_service.router import Handler

log = logging.getLogger("hubhook.worker")
LEASES = keys.COALESCE_LEASES
SOLO_TTL = 3600
LEASE_GRACE = 15            # RQ kills a job at its timeout; the batch's last writes take milliseconds
PEEK_CHUNK = 25
CLAIM_ROUNDS = 3
RECORDS_PER_CALL = 100      # HubSpot's batch read; beyond this a batch saves association calls only
DISPATCH_SHARE = 0.5        # a batch that took deliveries along dispatches for at most this share of the timeout
YIELD_CHECK_EVERY = 0.1     # seconds between a running batch's looks at the other portals' lanes, past its slice

_CLAIM = """
local claimed = {}
for i = 3, #ARGV do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    claimed[#claimed + 1] = ARGV[i]
  end
end
if #claimed > 0 then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
return claimed
"""
#: Put a claim's job ids back at the head of the queue in their order, mark them solo, forget the claim.
#: KEYS: the leases, the queue, the claim's list, then (declared for Redis Cluster, not read by index)
#: the solo key of each id the caller read from that list; a claim's list never grows once claimed.
_RETURN = """
local ids = redis.call('LRANGE', KEYS[3], 0, -1)
for i = #ids, 1, -1 do
  redis.call('LPUSH', KEYS[2], ids[i])
  redis.call('SET', ARGV[1] .. ids[i], '1', 'EX', ARGV[2])
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[3])
return #ids
"""

@dataclass
class Origin:
    """One delivery job whose events are in the batch."""

    job_id: str | None
    events: list[dict]
    attempt: int = 0
    leader: bool = False


@dataclass
class Batch:
    """The leader's own events plus the deliveries it claimed."""

    origins: list[Origin]
    source: str = "webhook"
    claim_id: str | None = None
    queue_key: str = ""
    claimed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    deadline: float = float("inf")
    portal: str | None = None
    fair_slice: float = 0.0           # HUBHOOK_FAIR_SLICE: 0 never yields
    redis: Any = field(default=None, repr=False)
    queue: Any = field(default=None, repr=False)
    next_check: float = 0.0
    yielding: bool = False

    @property
    def events(self) -> list[dict]:
        return [event for origin in self.origins for event in origin.events]


def limit(max_events: int, handlers: list[Handler], events: list[dict]) -> int:
    """How many events a batch led by ``events`` may hold: ``max_events`` when a handler of these
    events reads associations (1,000 ids a call), else at most one record batch (100 ids a call)."""
    if max_events <= RECORDS_PER_CALL:
        return max_events
    readers = [h for h in handlers if h.associations]
    return max_events if any(h.matches(e) for h in readers for e in events) else RECORDS_PER_CALL


def overdue(batch: Batch, changes: list[dict]) -> bool:
    """True for an object (its ``changes``) the batch should not dispatch any more: the batch took
    deliveries along and has run for its share of the job timeout, and no change is the leader's own
    (those always run, so every job makes progress). Such objects go to a new job (``handoff.settle``)."""
    if time.monotonic() <= batch.deadline:
        return False
    own = {id(event) for event in batch.origins[0].events}
    return not any(id(change) in own for change in changes)


def yields(batch: Batch) -> bool:
    """True once the batch ran for its slice (HUBHOOK_FAIR_SLICE) while another portal's lane waits:
    it then dispatches nothing more and hands the rest on to the head of its own lane
    (``parking.settle``), so that portal's work runs next. Looked up at most every 0.1 s; sticky."""
    if batch.yielding:
        return True
    now = time.monotonic()
    if batch.fair_slice <= 0 or batch.redis is None or batch.queue is None:
        return False
    if now - batch.started < batch.fair_slice or now < batch.next_check:
        return False
    batch.next_check = now + YIELD_CHECK_EVERY
    batch.yielding = lanes.others_waiting(batch.redis, batch.queue, batch.portal)
    return batch.yielding


def gather(redis: Redis, queue: Queue, events: list[dict], source: str, attempt: int, *, max_events: int,
           job_timeout: int, fair_slice: float = 0.0) -> Batch:
    """The batch this job processes: its own events, plus queued deliveries when there is room.

    With per-portal lanes (``fair_slice`` above 0) it takes deliveries from its own portal's lane,
    and no more than one record read's worth while another portal waits."""
    current = get_current_job()
    leader = Origin(current.id if current else None, events, attempt, leader=True)
    portal = lanes.portal_of(events)
    batch = Batch([leader], source=source, queue_key=queue.key, portal=portal, fair_slice=fair_slice, redis=redis,
                  queue=queue)
    sources: list[tuple[str, str | None]] = [(queue.key, None)]
    if fair_slice > 0 and portal is not None:
        # its lane first, then RQ's queue (retries come due there), taking only its own portal's jobs
        sources = [(keys.lane(portal), None), (queue.key, portal)]
        if lanes.others_waiting(redis, queue, portal):
            max_events = min(max_events, RECORDS_PER_CALL)
    room = max_events - len(events)
    if current is None or room <= 0 or redis.exists(_solo(current.id)):
        return batch
    claim_id = uuid.uuid4().hex
    for source_key, only_portal in sources:
        for _ in range(CLAIM_ROUNDS):  # another leader may claim some of what we saw: look again, twice at most
            picks = _peek(redis, queue, room, source, max(1, len(batch.events) // len(batch.origins)), source_key,
                          only_portal)
            if not picks:
                break
            claimed = {_text(i) for i in redis.eval(
                _CLAIM, 3, source_key, _claim_list(claim_id), LEASES, claim_id,
                time.time() + job_timeout + LEASE_GRACE, *[job.id for job in picks])}
            taken = [job for job in picks if job.id in claimed]
            if taken:
                batch.claim_id = claim_id
                batch.claimed += [job.id for job in taken]
                batch.origins += [Origin(job.id, job.args[0], int(job.kwargs.get("attempt", 0))) for job in taken]
                room -= sum(len(job.args[0]) for job in taken)
            if len(taken) == len(picks) or room <= 0:
                break
        if room <= 0:
            break
    if batch.claimed:
        batch.deadline = batch.started + job_timeout * DISPATCH_SHARE
    return batch


def _peek(redis: Redis, queue: Queue, room: int, source: str, guess: int, source_key: str,
          only_portal: str | None = None) -> list[Job]:
    """Delivery jobs of ``source`` (and ``only_portal``) at the head of ``source_key`` (RQ's queue or a
    portal's lane) that fit in ``room`` events, oldest first;
    stops at the first one too big. Jobs are read a few at a time, as many as seem to fit (``guess``:
    events per delivery so far), so a queue of full deliveries costs no reads of jobs left behind."""
    ids = [_text(i) for i in redis.lrange(source_key, 0, min(room, PEEK_CHUNK + 2 * room // guess) - 1)]
    if not ids:
        return []
    candidates = [i for i, solo in zip(ids, redis.mget([_solo(i) for i in ids])) if solo is None]
    picks: list[Job] = []
    seen, start = guess, 0
    while start < len(candidates):
        chunk = min(PEEK_CHUNK, max(1, room * (len(picks) + 1) // seen))
        try:
            jobs = Job.fetch_many(candidates[start:start + chunk], connection=redis, serializer=queue.serializer)
        except Exception:  # a job we cannot read is left for RQ to report as it runs it
            return picks
        start += chunk
        for job in jobs:
            if job is None or job.func_name != PROCESS_DELIVERY or job.kwargs.get("source", "webhook") != source \
                    or not job.args or not isinstance(job.args[0], list) \
                    or (only_portal is not None and lanes.portal_of(job.args[0]) != only_portal):
                continue
            size = len(job.args[0])
            if size == 0 or size > room:
                return picks
            picks.append(job)
            seen += size
            room -= size
            if room == 0:
                return picks
    return picks


def finish(pipe, batch: Batch) -> None:
    """Queue, on ``pipe`` (a MULTI), the end of a successful batch: claimed jobs done, claim gone."""
    if batch.claim_id is None:
        return
    pipe.delete(*[Job.key_for(job_id) for job_id in batch.claimed])
    pipe.delete(_claim_list(batch.claim_id))
    pipe.zrem(LEASES, batch.claim_id)


def release(redis: Redis, batch: Batch) -> int:
    """After an unexpected failure: claimed jobs back to the head of the queue, they and the leader solo."""
    leader = batch.origins[0].job_id
    if leader:
        redis.set(_solo(leader), "1", ex=SOLO_TTL)
    if batch.claim_id is None:
        return 0
    return _give_back(redis, batch.queue_key, batch.claim_id)


def _give_back(redis: Redis, queue_key: str, claim_id: str) -> int:
    """Return one claim's deliveries to the head of the queue (``_RETURN``), declaring every key it touches."""
    ids = [_text(i) for i in redis.lrange(_claim_list(claim_id), 0, -1)]  # type: ignore[union-attr]
    keys_ = [LEASES, queue_key, _claim_list(claim_id), *(_solo(i) for i in ids)]
    return int(redis.eval(_RETURN, len(keys_), *keys_, _solo(""), SOLO_TTL, claim_id))  # type: ignore[arg-type]


def recover(redis: Redis, queue: Queue) -> int:
    """Give back the claims of workers that died mid-batch (leases past due); run in maintenance.
    hubhook has one queue (webhook_service.connection), so every claim came from ``queue``."""
    # redis-py types ZRANGEBYSCORE for every mode; without WITHSCORES it returns a list of members
    due = cast("list[bytes]", redis.zrangebyscore(LEASES, "-inf", time.time(), start=0, num=100))
    returned = sum(_give_back(redis, queue.key, _text(claim)) for claim in due)
    if returned:
        log.warning("returned %d claimed deliveries of a worker that died mid-batch to the queue", returned)
    return returned


def claimed_count(redis: Redis) -> int:
    """Deliveries currently claimed by running batches (they are in no RQ queue or registry meanwhile)."""
    claims: list = list(redis.zrange(LEASES, 0, -1))  # type: ignore[arg-type]
    return sum(int(redis.llen(_claim_list(_text(c)))) for c in claims)  # type: ignore[misc, arg-type]


def _claim_list(claim_id: str) -> str:
    return keys.coalesce_claim(claim_id)


def _solo(job_id: str) -> str:
    return keys.coalesce_solo(job_id)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
