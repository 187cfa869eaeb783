"""How many accepted events wait in Redis: the figure back-pressure compares to HUBHOOK_MAX_QUEUE_DEPTH.

Counting events means reading every queued job, so a counter is kept instead: the receiver adds a
delivery's events in the same MULTI that enqueues its job (``webhook_service.receiver.intake``), and the
worker subtracts them once the job is done for good (success, or failure without retries left;
``jobs.worker.worker``). The same goes for each portal's own count (``keys.PENDING_BY_PORTAL``, raised by
``webhook_service.lanes.route``), which ``hubhook status`` and ``/metrics`` show per portal.
A counter can drift: a job deleted by hand in rq-dashboard, a job abandoned on its
last retry. Drifting up would mean 429s forever, so it self-heals: it never goes below zero, and
whenever the queue, the workers' in-flight lists and the started registry are all empty, it is
reset to zero atomically (a Lua script, so no delivery can slip in between the checks and the reset).
"""
from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.job import Job

from webhook_service.keys import LANES, PENDING_BY_PORTAL, PENDING_EVENTS, PROCESS_DELIVERY

PENDING_KEY = PENDING_EVENTS

#: KEYS: the counter, the per-portal hash. ARGV: events, the portal ('' for none).
_DONE = """
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
if left < 0 then redis.call('SET', KEYS[1], 0); left = 0 end
if ARGV[2] ~= '' and redis.call('HINCRBY', KEYS[2], ARGV[2], -tonumber(ARGV[1])) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return left
"""
_RECONCILE = """
if redis.call('LLEN', KEYS[2]) == 0 and redis.call('LLEN', KEYS[3]) == 0 and redis.call('ZCARD', KEYS[4]) == 0
   and redis.call('LLEN', KEYS[5]) == 0 then
  local was = tonumber(redis.call('GET', KEYS[1]) or '0')
  if was ~= 0 then redis.call('SET', KEYS[1], 0) end
  redis.call('DEL', KEYS[6])
  return was
end
return 0
"""


def done(redis: Redis, events: int, portal: str | None = None) -> int:
    """``events`` (of ``portal``, when known) left the queue for good; return how many remain pending
    (never below zero)."""
    if events <= 0:
        return read(redis)
    return int(redis.eval(_DONE, 2, PENDING_KEY, PENDING_BY_PORTAL, events, portal or ""))


def requeued(redis: Redis, events: int, portal: str | None = None) -> None:
    """Dead-lettered deliveries (of ``portal``, when known) went back on the queue (``hubhook replay``)."""
    if events > 0:
        with redis.pipeline() as pipe:
            pipe.incrby(PENDING_KEY, events)
            if portal is not None:
                pipe.hincrby(PENDING_BY_PORTAL, portal, events)
            pipe.execute()


def reconcile(redis: Redis, queue: Queue) -> int:
    """Reset the counters when nothing is queued (in RQ's queue or a portal's lane) or running; return
    the drift that was removed."""
    keys = [PENDING_KEY, queue.key, queue.intermediate_queue_key, queue.started_job_registry.key, LANES,
            PENDING_BY_PORTAL]
    return int(redis.eval(_RECONCILE, len(keys), *keys))


def read(redis: Redis) -> int:
    """The current count (0 when the key does not exist yet)."""
    value = redis.get(PENDING_KEY)
    return max(0, int(value)) if value else 0


def delivery_events(job: Job, outcome: str = "failed") -> int:
    """How many pending events a finished delivery job takes off the count (0 for other jobs): the
    worker subtracts them (``jobs.worker.accounting``), ``hubhook replay`` adds them back.

    A successful job reports what it processed: its own events plus the small deliveries it took
    along (``jobs.delivery.batching``), less the events it handed on to a rescheduled job
    (``jobs.delivery.parking``), which stay pending. A failed one is only its own events: RQ or
    ``coalesce.release`` put the deliveries it took along back on the queue.
    """
    try:
        if job.func_name != PROCESS_DELIVERY or not job.args:
            return 0
        result = getattr(job, "_result", None)
        if outcome == "ok" and isinstance(result, dict) and isinstance(result.get("events"), int):
            return max(0, result["events"] - int(result.get("rescheduled") or 0))
        return len(job.args[0])
    except Exception:  # a job whose payload cannot be decoded: nothing to count
        return 0
