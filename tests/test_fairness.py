"""Fair share across portals: one portal's flood does not queue ahead of another portal's change.

Each portal's delivery jobs wait in its own lane (``webhook_service.lanes``); workers take the lanes in
turn, and a job that ran its slice (HUBHOOK_FAIR_SLICE) while another portal waits hands the rest on.
Real Redis, real RQ workers, the fake HubSpot; order is asserted by the order of handler calls."""
import dataclasses
import json
import os
import subprocess

from webhook_service import Router, lanes
from webhook_service.cli.operator import gather_status, render_status
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.app import create_app
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import backlog
from webhook_service.testing import make_event

from .conftest import METRICS_BEARER, ROOT, drain
from .fair_handlers import CALLS
from .quota_support import HUBHOOK, spawn_workers, stop, wait_until

A, B, C = 1001, 2002, 3003


def calls_router(calls: list):
    router = Router()

    def record(event):
        calls.append((event.portal_id, int(event.object_id)))

    router.add(record, "contact.*", name="record")
    return router


def flood(config, redis, hubspot, portal: int, deliveries: int, per_delivery: int, first_id: int = 1) -> None:
    """``deliveries`` deliveries of ``per_delivery`` contact creations each, from ``portal``."""
    queue = build_queue(config, redis)
    object_id = first_id
    for _ in range(deliveries):
        events = []
        for _ in range(per_delivery):
            hubspot.add("contacts", object_id)
            events.append(make_event("contact.creation", object_id, portal_id=portal))
            object_id += 1
        enqueue_delivery(redis, queue, events, fair=config.fair_slice > 0)


def slow_calls_router(calls: list, seconds: float):
    """A handler that works ``seconds`` per object (a real wait: the work the slice is measured on)."""
    import time

    router = Router()

    def record(event):
        time.sleep(seconds)
        calls.append((event.portal_id, int(event.object_id)))

    router.add(record, "contact.*", name="record")
    return router


def test_a_later_portal_runs_before_a_flooding_portal_drains_with_one_worker(config, redis, hubspot):
    # Given portal A's backlog of 6 deliveries of 10 events, then one event of portal B, and one worker
    config = dataclasses.replace(config, fair_slice=0.05)
    flood(config, redis, hubspot, A, 6, 10)
    flood(config, redis, hubspot, B, 1, 1, first_id=9001)
    calls: list = []
    # When the worker drains the queue, its handler taking 10 ms an object
    drain(config, slow_calls_router(calls, 0.01))
    # Then B's change was handled while most of A's backlog still waited, and every change exactly once
    a_calls = [i for i, (portal, _) in enumerate(calls) if portal == A]
    b_index = calls.index((B, 9001))
    assert b_index < a_calls[len(a_calls) // 2], calls
    assert sorted(object_id for portal, object_id in calls if portal == A) == list(range(1, 61))
    assert len(calls) == 61 and lanes.waiting_ids(redis, build_queue(config, redis)) == []
    assert backlog.read(redis) == 0 and lanes.rows(redis) == []


def test_without_lanes_the_later_portal_waits_for_the_whole_flood(config, redis, hubspot):
    # Given the same backlog with HUBHOOK_FAIR_SLICE=0 (one queue, oldest first: hubhook before lanes)
    config = dataclasses.replace(config, fair_slice=0)
    flood(config, redis, hubspot, A, 6, 10)
    flood(config, redis, hubspot, B, 1, 1, first_id=9001)
    calls: list = []
    # When one worker drains it
    drain(config, slow_calls_router(calls, 0.01))
    # Then B's change ran last: the flood was ahead of it
    assert calls[-1] == (B, 9001) and len(calls) == 61


def test_a_paused_portal_keeps_its_events_until_resumed(config, redis, hubspot):
    # Given portal A paused, then deliveries of A and of B accepted
    queue = build_queue(config, redis)
    assert lanes.pause(redis, str(A))
    flood(config, redis, hubspot, A, 3, 4)
    flood(config, redis, hubspot, B, 2, 1, first_id=9001)
    calls: list = []
    # When a worker drains what it may run
    drain(config, calls_router(calls))
    # Then only B's changes ran; A's 12 events wait, pending and shown as paused
    assert sorted(calls) == [(B, 9001), (B, 9002)]
    (row,) = lanes.rows(redis)
    assert row == {"portal": str(A), "waiting_jobs": 3, "pending_events": 12, "paused": True}
    assert backlog.read(redis) == 12
    status = gather_status(config)
    assert status["portals"] == [row]
    assert any("PAUSED" in line and str(A) in line for line in render_status(status))
    # When A is resumed and a worker drains again
    assert lanes.resume(redis, queue, str(A))
    drain(config, calls_router(calls))
    # Then each of A's changes ran exactly once, nothing is left waiting or pending
    assert sorted(object_id for portal, object_id in calls if portal == A) == list(range(1, 13))
    assert lanes.rows(redis) == [] and backlog.read(redis) == 0


def test_a_job_of_a_paused_portal_that_reaches_a_worker_goes_back_unrun(config, redis, hubspot):
    # Given a delivery of A already in RQ's queue (the system was idle), then A paused
    queue = build_queue(config, redis)
    flood(config, redis, hubspot, A, 1, 3)
    assert queue.count == 1
    lanes.pause(redis, str(A))
    calls: list = []
    # When a worker takes that job
    drain(config, calls_router(calls))
    # Then no handler ran and the events wait at the head of A's lane, still pending
    assert calls == [] and lanes.rows(redis)[0]["waiting_jobs"] == 1 and backlog.read(redis) == 3
    lanes.resume(redis, queue, str(A))
    drain(config, calls_router(calls))
    assert sorted(calls) == [(A, 1), (A, 2), (A, 3)]


def test_status_and_metrics_show_the_backlog_per_portal(config, redis, hubspot):
    # Given backlogs of two portals, one paused
    flood(config, redis, hubspot, A, 4, 5)
    flood(config, redis, hubspot, B, 1, 2, first_id=9001)
    lanes.pause(redis, str(B))
    # When the operator asks
    status = gather_status(config)
    text = create_app(config).test_client().get("/metrics", headers=METRICS_BEARER).text
    # Then each portal's pending events and waiting jobs are shown, and which is paused
    by_portal = {row["portal"]: row for row in status["portals"]}
    assert by_portal[str(A)]["pending_events"] == 20 and by_portal[str(B)]["pending_events"] == 2
    assert by_portal[str(B)]["paused"] and not by_portal[str(A)]["paused"]
    assert by_portal[str(A)]["waiting_jobs"] == 3  # the fourth is in RQ's queue, next to run
    assert f'hubhook_portal_pending_events{{portal="{A}"}} 20.0' in text
    assert f'hubhook_portal_paused{{portal="{B}"}} 1.0' in text
    assert f'hubhook_portal_waiting_jobs{{portal="{A}"}} 3.0' in text


def test_the_portal_command_pauses_and_resumes(env, redis):
    # Given the CLI
    def run(*args):
        return subprocess.run([HUBHOOK, "portal", *args], env=env, capture_output=True, text=True, timeout=60)

    # When a portal is paused, paused again, resumed; and a name that is no portal id is given
    first, again, resumed, bad = run("pause", str(A)), run("pause", str(A)), run("resume", str(A)), run("pause", "x")
    # Then each answer says what happened, and a bad id is one line saying what to pass
    assert first.returncode == 0 and "paused" in first.stdout and redis.smembers("hubhook:lanes:paused") == set()
    assert "already paused" in again.stdout and "resumed" in resumed.stdout
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "hub id" in bad.stderr


def test_a_running_worker_serves_a_portal_it_has_never_seen(config, env, redis, hubspot, tmp_path):
    # Given one running `hubhook worker` busy with portal A's flood (100 objects, 20 ms each)
    worker_env = {**env, "HUBHOOK_HANDLERS": "tests.fair_handlers:router", "HUBHOOK_FAIR_SLICE": "0.1",
                  "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])}
    workers = spawn_workers(1, worker_env, tmp_path)
    try:
        wait_until(lambda: redis.scard("rq:workers:hubhook") == 1, 60, "the worker to register")
        flood(config, redis, hubspot, A, 4, 25)
        wait_until(lambda: redis.llen(CALLS) > 0, 30, "the worker to start on A's flood")
        # When portal C, which no worker has seen, sends one change
        flood(config, redis, hubspot, C, 1, 1, first_id=9001)
        wait_until(lambda: redis.llen(CALLS) == 101, 120, "every change to be handled")
    finally:
        stop(workers)
    # Then C's change ran before A's flood drained, without a worker restart
    calls = [c.decode() for c in redis.lrange(CALLS, 0, -1)]
    assert calls.index(f"{C}:9001") < 75, json.dumps(calls)
    assert sorted(calls) == sorted([f"{A}:{i}" for i in range(1, 101)] + [f"{C}:9001"])
