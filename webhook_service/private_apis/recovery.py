"""Taking over the work of a worker that died: the parts of RQ 3.0's recovery that hubhook retunes.

``RecoveryMixin`` puts them in the worker: a running job's heartbeat lasts its timeout plus 15 s (a
job past its timeout is killed anyway), and the maintenance pass is ``maintain`` below.

hubhook promises that a killed worker's job runs again within about ``job_timeout + 45`` seconds
(docs/deployment.md). RQ's own recovery has four places where a SIGKILL at the wrong moment breaks
that promise; each was found by ``tests/resilience/test_worker_kills.py`` killing a worker every 2 s:

1. The scheduler (forked by one worker, it runs every Retry delay) holds its lock for 61 s. When its
   worker dies, every scheduled retry waits up to 61 s plus a maintenance pass.
   ``release_dead_scheduler_locks`` frees a lock not refreshed for 10 s.
2. The maintenance lock lives 899 s: a worker killed during its maintenance pass stopped all
   recovery for 15 minutes. ``maintain`` holds it for at most 30 s (a pass takes milliseconds).
3. A job dequeued (BLMOVE to RQ's intermediate list) by a worker killed before it registered the job
   as started is failed, hence retried, only after 60 s. ``fail_stranded_dequeues`` does it after
   10 s; a live worker registers a dequeued job within milliseconds.
4. RQ lists an execution 60 s longer than the execution exists; a job re-run inside those 60 s (the
   normal case with short heartbeats) fails in RQ's cleanup *after* succeeding ("Execution ... not
   found in Redis"), so its handlers ran again at every retry and it ended a dead letter.
   ``webhook_service.private_apis.lean_worker``'s success path deletes such ids with the rest;
   before RQ's own success path ``forget_lost_executions`` drops them.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

from redis import Redis
from rq import worker_registration
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.utils import now

log = logging.getLogger("hubhook.worker")
HEARTBEAT_GRACE = 15         # seconds a running job's heartbeat outlives its timeout
SCHEDULER_LOCK_TTL = 61      # RQ: the scheduler's interval (1 s) + 60
SCHEDULER_STALE_AFTER = 10   # seconds without a refresh (a live scheduler refreshes every second)
MAINTENANCE_LOCK_TTL = 30    # RQ: 899
STRANDED_AFTER = 10          # RQ: 60
_RELEASE_IF_STALE = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 and ttl < tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RecoveryMixin:
    """Put before ``LeanMixin`` (or RQ's worker class): RQ's recovery with hubhook's timings."""

    connection: Redis
    queues: list[Queue]
    name: str
    log: Any
    last_cleaned_at: Any

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """A running job's heartbeat outlives its timeout by 15 s, not RQ's 60."""
        if job.timeout is None or job.timeout < 0:
            return super().get_heartbeat_ttl(job, working_time)  # type: ignore[misc]
        return int(job.timeout) + HEARTBEAT_GRACE

    def clean_registries(self) -> None:
        """RQ's maintenance pass (``Worker.clean_registries``) with hubhook's recovery timings."""
        for queue in self.queues:
            if maintain(self, queue):
                self.log.info("Worker %s: cleaned registries for queue: %s", self.name, queue.name)
        self.last_cleaned_at = now()

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance, after freeing the scheduler lock of a scheduler whose worker died."""
        release_dead_scheduler_locks(self.connection, [q.name for q in self.queues])
        super().run_maintenance_tasks()  # type: ignore[misc]


def maintain(worker, queue: Queue) -> bool:
    """RQ's maintenance pass for ``queue`` (what ``Worker.clean_registries`` does), with a lock that
    outlives a killed worker by at most 30 s and stranded dequeues failed after 10 s. Returns
    whether this worker did the pass (another one holds the lock otherwise)."""
    if not queue.connection.set(queue.registry_cleaning_key, 1, nx=True, ex=MAINTENANCE_LOCK_TTL):
        return False
    try:
        clean_registries(queue, worker._exc_handlers)
        worker_registration.clean_worker_registry(queue)
        fail_stranded_dequeues(worker, queue)
    finally:
        queue.release_maintenance_lock()
    return True


def fail_stranded_dequeues(worker, queue: Queue) -> int:
    """Fail (so RQ retries) jobs left in the intermediate list by a worker that died right after
    dequeuing them; return how many. A job is stranded once two passes at least 10 s apart saw it."""
    intermediate = queue.intermediate_queue
    started = set(queue.started_job_registry.get_job_ids(cleanup=False))
    stranded = 0
    for job_id in intermediate.get_job_ids():
        if job_id in started or intermediate.set_first_seen(job_id):
            continue  # running, or seen for the first time just now
        first_seen = intermediate.get_first_seen(job_id)
        if first_seen is not None and now() - first_seen < timedelta(seconds=STRANDED_AFTER):
            continue
        job = queue.fetch_job(job_id)
        if job is not None:
            log.warning("job %s was dequeued by a worker that died before starting it; failing it so it is "
                        "retried", job_id)
            worker.handle_job_failure(job, queue, exc_string="Stranded in the intermediate queue: the worker "
                                                             "that dequeued it died before starting it.")
            stranded += 1
        intermediate.remove(job_id)
    return stranded


def release_dead_scheduler_locks(connection: Redis, queue_names: list[str]) -> int:
    """Free the scheduler lock of a scheduler that stopped refreshing it; return how many were freed.
    Atomic (only a still-stale lock is deleted). A live scheduler that was merely slow finds its lock
    taken at its next heartbeat, which comes before its next enqueue, and stops scheduling."""
    stale_below_ms = (SCHEDULER_LOCK_TTL - SCHEDULER_STALE_AFTER) * 1000
    release = connection.register_script(_RELEASE_IF_STALE)
    return sum(int(release(keys=[RQScheduler.get_locking_key(name)], args=[stale_below_ms]))
               for name in queue_names)


def forget_lost_executions(job: Job) -> int:
    """Drop the job's records of executions whose worker died (their hash expired); return how many."""
    registry_key = job.execution_registry.key
    # redis-py types ZRANGE for every mode; without WITHSCORES, on RQ's connection (responses never
    # decoded), it returns a list of bytes members
    ids = [i.decode() for i in cast("list[bytes]", job.connection.zrange(registry_key, 0, -1))]
    with job.connection.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.exists(Execution(execution_id, job.id, job.connection).key)
        alive = pipe.execute()
    lost = [i for i, found in zip(ids, alive) if not found]
    if lost:
        job.connection.zrem(registry_key, *lost)
    return len(lost)
