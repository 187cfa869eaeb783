"""Per-portal lanes: one portal's flood never queues ahead of another portal's single change.

RQ's queue stays the one list workers take jobs from (one queue keeps RQ's loss-free dequeue, its
scheduler and its recovery exactly as they are), but it is kept short: at most one job per live
worker waits in it. Every other delivery job waits in its portal's *lane* (``keys.lane``), and the
portals whose lanes hold jobs form a ring (``keys.LANES``). Whenever a worker finishes a job it
*refills* RQ's queue from the ring, one job from each lane in turn, so the queue order is
round-robin across portals, and a portal that was idle goes to the front of the ring.

- ``route`` runs right after the intake wrote a job (receiver and poller): the job stays in RQ's
  queue when that queue is short and the portal's lane is empty (an idle system adds no wait),
  otherwise it moves to the tail of its lane. One Lua script, so no job is ever in both or neither.
- ``refill`` runs after every job and in every maintenance pass: RQ's queue up to one job per live
  worker (at least one), taking lanes in ring order, skipping paused portals.
- ``others_waiting`` tells a running job that another portal has work waiting, so it yields after
  its time slice (``jobs.delivery.batching``) and hands what it has not dispatched on to the head of
  its own lane (``push_front``): no job holds a worker long while another portal waits.
- ``pause`` / ``resume``: a paused portal's deliveries are still accepted and queued in its lane;
  no refill takes them, and a job of a paused portal that reaches a worker anyway (it was already in
  RQ's queue, or a retry came due) goes back to the head of its lane unrun.

``HUBHOOK_FAIR_SLICE=0`` turns lanes off: every job goes straight to RQ's queue, oldest first.
The scripts touch keys named from their arguments: fine on one Redis; on Redis Cluster every key
must share a hash tag in the prefix.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable

from redis import Redis
from redis.commands.core import Script
from rq import Queue
from rq.job import Job
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from webhook_service import keys

#: KEYS: RQ's queue, the ring, the lane, the paused set, RQ's workers of the queue. ARGV: the portal,
#: then the job ids (already in RQ's queue, pushed at its tail). Moves each id to the lane unless the
#: queue is short and the lane empty (and the portal not paused).
_ROUTE = """
local portal = ARGV[1]
local target = math.max(1, redis.call('SCARD', KEYS[5]))
local paused = redis.call('SISMEMBER', KEYS[4], portal) == 1
local moved = 0
for i = 2, #ARGV do
  if paused or redis.call('LLEN', KEYS[3]) > 0 or redis.call('LLEN', KEYS[1]) > target then
    if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then
      if redis.call('LLEN', KEYS[3]) == 0 and not redis.call('LPOS', KEYS[2], portal) then
        redis.call('LPUSH', KEYS[2], portal)  -- a portal that was idle is served next
      end
      redis.call('RPUSH', KEYS[3], ARGV[i])
      moved = moved + 1
    end
  end
end
return moved
"""
#: KEYS: RQ's queue, the ring, the paused set, RQ's workers of the queue. ARGV: the lane prefix.
_REFILL = """
local target = math.max(1, redis.call('SCARD', KEYS[4]))
local moved, tries = 0, redis.call('LLEN', KEYS[2])
while tries > 0 and redis.call('LLEN', KEYS[1]) < target do
  local portal = redis.call('LMOVE', KEYS[2], KEYS[2], 'LEFT', 'RIGHT')
  if not portal then break end
  tries = tries - 1
  if redis.call('SISMEMBER', KEYS[3], portal) == 0 then
    local lane = ARGV[1] .. portal
    local id = redis.call('LPOP', lane)
    if redis.call('LLEN', lane) == 0 then redis.call('LREM', KEYS[2], 1, portal) end
    if id then
      redis.call('RPUSH', KEYS[1], id)
      moved = moved + 1
      tries = redis.call('LLEN', KEYS[2])
    end
  end
end
return moved
"""
#: KEYS: the ring, the paused set, RQ's queue. ARGV: the asking portal, its job ids' suffix. 1 when another
#: unpaused portal has a lane waiting, or RQ's queue holds a job that is not this portal's.
_OTHERS = """
for _, portal in ipairs(redis.call('LRANGE', KEYS[1], 0, 63)) do
  if portal ~= ARGV[1] and redis.call('SISMEMBER', KEYS[2], portal) == 0 then return 1 end
end
local suffix = ARGV[2]
for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, 63)) do
  if string.sub(id, -#suffix) ~= suffix then return 1 end
end
return 0
"""
#: KEYS: the ring, the lane. ARGV: the portal. Puts the portal in the ring (at its tail) unless it is there.
_JOIN = """
if not redis.call('LPOS', KEYS[1], ARGV[1]) then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return 1
"""
_SCRIPTS = {name: Script(None, text.encode()) for name, text in  # type: ignore[arg-type]  # client= per call
            (("route", _ROUTE), ("refill", _REFILL), ("others", _OTHERS))}
_LANE_PREFIX = keys.lane("")


def portal_of(events: Iterable[dict]) -> str | None:
    """The portal (hub id) of a delivery's events, as text: the first event's ``portalId``, or None."""
    for event in events:
        portal = event.get("portalId") if isinstance(event, dict) else None
        return None if portal is None or isinstance(portal, bool) else str(portal)
    return None


def _workers_key(queue: Queue) -> str:
    return WORKERS_BY_QUEUE_KEY % queue.name


def route(redis: Redis, queue: Queue, portal: str | None, job_ids: list[str]) -> int:
    """Move freshly enqueued jobs of ``portal`` from RQ's queue to its lane unless they may run next;
    return how many went to the lane."""
    if portal is None or not job_ids:
        return 0
    keys_ = [queue.key, keys.LANES, keys.lane(portal), keys.LANES_PAUSED, _workers_key(queue)]
    return int(_SCRIPTS["route"](keys=keys_, args=[portal, *job_ids], client=redis))


def refill(redis: Redis, queue: Queue) -> int:
    """Top RQ's queue up to one job per live worker, one lane after the other; return how many moved."""
    keys_ = [queue.key, keys.LANES, keys.LANES_PAUSED, _workers_key(queue)]
    return int(_SCRIPTS["refill"](keys=keys_, args=[_LANE_PREFIX], client=redis))


def delivery_job_id(events: list[dict]) -> str:
    """A new delivery job's id: ``delivery-<uuid>``, ending in ``-p<portal>`` when its events have one, so
    a running job can tell its own portal's jobs from others' in RQ's queue (``others_waiting``)."""
    portal = portal_of(events)
    return f"delivery-{uuid.uuid4().hex}" + (f"-p{portal}" if portal is not None else "")


def others_waiting(redis: Redis, queue: Queue, portal: str | None) -> bool:
    """Whether another portal's work waits: a portal other than ``portal`` (and not paused) has jobs in
    its lane, or RQ's queue holds a job that is not ``portal``'s (it went there while the queue was short)."""
    suffix = f"-p{portal}" if portal is not None else "\0"
    return bool(_SCRIPTS["others"](keys=[keys.LANES, keys.LANES_PAUSED, queue.key], args=[portal or "", suffix],
                                   client=redis))


def push_front(pipe, queue: Queue, job: Job, portal: str | None, *, lanes_on: bool = True) -> None:
    """Queue, on ``pipe`` (a MULTI), ``job`` at the head of its portal's lane: work a job handed on
    (yielded, or refused while its portal is paused) runs before the rest of that portal's backlog,
    but after the other portals' turns. Without lanes (or portal) it goes to the head of RQ's queue."""
    queue.enqueue_job(job, pipeline=pipe, at_front=True)
    if not lanes_on or portal is None:
        return
    pipe.lrem(queue.key, 1, job.id)
    pipe.lpush(keys.lane(portal), job.id)
    pipe.eval(_JOIN, 1, keys.LANES, portal)


def waiting_ids(redis: Redis, queue: Queue) -> list[str]:
    """Every delivery job id waiting to run: RQ's queue first, then each portal's lane in ring order."""
    ring = [p.decode() if isinstance(p, bytes) else p for p in redis.lrange(keys.LANES, 0, -1)]
    with redis.pipeline(transaction=False) as pipe:
        pipe.lrange(queue.key, 0, -1)
        for portal in ring:
            pipe.lrange(keys.lane(portal), 0, -1)
        lists = pipe.execute()
    return [i.decode() if isinstance(i, bytes) else i for ids in lists for i in ids]


def is_paused(redis: Redis, portal: str | None) -> bool:
    return portal is not None and bool(redis.sismember(keys.LANES_PAUSED, portal))


def pause(redis: Redis, portal: str) -> bool:
    """Stop workers taking ``portal``'s jobs (they are still accepted); False when it was paused already."""
    return bool(redis.sadd(keys.LANES_PAUSED, portal))


def resume(redis: Redis, queue: Queue, portal: str) -> bool:
    """Let workers take ``portal``'s jobs again, at once; False when it was not paused."""
    was = bool(redis.srem(keys.LANES_PAUSED, portal))
    refill(redis, queue)
    return was


def rows(redis: Redis) -> list[dict]:
    """Per portal with anything waiting, paused, or pending: jobs in its lane, pending events, paused."""
    def text(values: Iterable) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    with redis.pipeline(transaction=False) as pipe:
        pipe.lrange(keys.LANES, 0, -1)
        pipe.smembers(keys.LANES_PAUSED)
        pipe.hgetall(keys.PENDING_BY_PORTAL)
        ring, paused, pending = pipe.execute()
    counts = {k: max(0, int(v)) for k, v in zip(text(pending.keys()), pending.values())}
    paused_set = set(text(paused))
    portals = sorted({*text(ring), *paused_set, *(p for p, n in counts.items() if n)},
                     key=lambda p: (not p.isdigit(), int(p) if p.isdigit() else 0, p))
    with redis.pipeline(transaction=False) as pipe:
        for portal in portals:
            pipe.llen(keys.lane(portal))
        lengths = pipe.execute()
    return [{"portal": p, "waiting_jobs": int(n), "pending_events": counts.get(p, 0), "paused": p in paused_set}
            for p, n in zip(portals, lengths)]
