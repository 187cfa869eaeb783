"""Worker overhead per job: what RQ and hubhook's worker cost around a job that does nothing.

Why it matters: one delivery is one job, so this is the floor under every delivery's processing, and
with 1-event deliveries it bounds events/s per worker process. Each worker class drains N pre-filled
no-op jobs (JSON serializer, result_ttl=0, as hubhook's delivery jobs) in burst mode, in this
process, on a private redis-server; the fixed start-up cost is removed by also timing a short
run (per job = (T(N) - T(n0)) / (N - n0)); the two in-process classes alternate in three
rounds and each figure is the median. Baselines in the same run: RQ's default fork-per-job
``Worker`` (what a plain `rq worker` runs) and the plain ``SimpleWorker`` hubhook's worker extends.

    .venv/bin/python bench/worker_overhead.py [--jobs 1200]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer

from bench import harness
from bench.handlers import router
from bench.results import emit
from jobs.worker.worker import build_worker
from webhook_service.config import Config

SHORT = 20
ROUNDS = 3
NOOP = "bench.handlers.noop"  # not a hubhook job function: the hubhook worker is told to run it (also_run)
NAMES = ("hubhook (HubhookWorker, in-process)", "rq SimpleWorker (in-process)", "rq Worker (fork per job)")


def fill(queue: Queue, count: int) -> None:
    queue.enqueue_many([Queue.prepare_data(NOOP, result_ttl=0) for _ in range(count)])


def drain_seconds(make_worker, queue: Queue, count: int) -> float:
    """Seconds one burst worker takes to run ``count`` no-op jobs, start-up included."""
    fill(queue, count)
    worker = make_worker()
    started = time.perf_counter()
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    elapsed = time.perf_counter() - started
    if queue.count:
        raise RuntimeError(f"{queue.count} jobs left in {queue.name}")
    return elapsed


def per_job_ms(make_worker, queue: Queue, count: int) -> float:
    short = drain_seconds(make_worker, queue, SHORT)
    full = drain_seconds(make_worker, queue, count)
    return (full - short) / (count - SHORT) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1200, help="jobs for each in-process worker class")
    parser.add_argument("--fork-jobs", type=int, default=120, help="jobs for the fork-per-job baseline")
    args = parser.parse_args()
    logging.getLogger("rq").setLevel(logging.WARNING)
    with harness.redis_server(appendonly=True) as server:
        redis = Redis.from_url(server.url)
        config = Config(redis_url=server.url, client_secrets=(harness.SECRET,))
        hubhook = build_worker(config, router).queues[0]
        plain = Queue("simple", connection=redis, serializer=JSONSerializer)
        forked = Queue("fork", connection=redis, serializer=JSONSerializer)
        samples: dict[str, list[float]] = {NAMES[0]: [], NAMES[1]: []}
        for _ in range(ROUNDS):  # interleaved, so load from elsewhere on the box hits both alike
            samples[NAMES[0]].append(per_job_ms(lambda: build_worker(config, router, also_run=[NOOP]),
                                                hubhook, args.jobs // ROUNDS))
            samples[NAMES[1]].append(per_job_ms(
                lambda: SimpleWorker([plain], connection=redis, serializer=JSONSerializer), plain, args.jobs // ROUNDS))
        results = {name: statistics.median(values) for name, values in samples.items()}
        results[NAMES[2]] = per_job_ms(lambda: Worker([forked], connection=redis, serializer=JSONSerializer),
                                       forked, args.fork_jobs)
    print("\nper-job overhead, no-op jobs, Redis AOF everysec (shared cores):")
    for name, ms in results.items():
        print(f"  {name:36} {ms:6.2f} ms/job  ({1000 / ms:5.0f} jobs/s per process)")
    ours, simple, fork = results.values()
    print(f"  => hubhook {ours:.2f} ms/job: {fork / ours:.1f}x less than fork-per-job, "
          f"{ours / simple:.2f}x SimpleWorker")
    emit("Worker overhead per job (no-op job)", f"{ours:.2f} ms ({1000 / ours:.0f} jobs/s per process)",
         baseline=f"rq fork Worker {fork:.1f} ms, SimpleWorker {simple:.2f} ms")


if __name__ == "__main__":
    main()
