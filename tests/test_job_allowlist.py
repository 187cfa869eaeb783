"""Write access to Redis is not code execution: workers run only hubhook's own job functions.

A job is a dotted function name in Redis; RQ imports and calls whatever it names. Here jobs are written
by a plain RQ Queue, as anyone who can reach Redis could, and real workers (the `hubhook worker`
process, and the in-process worker the other tests use) must refuse every one that hubhook did not
enqueue, while hubhook's own jobs keep running.
"""
import json

from rq import Callback, Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.operator import dead_letters
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.telemetry import object_history
from webhook_service.testing import make_event

from .conftest import drain
from .ops_support import hubhook, spawn, stop


def foreign_jobs(config, redis, tmp_path) -> dict[str, str]:
    """Jobs hubhook never enqueues, each of which would leave a file behind if run; {job id: marker path}."""
    queue = Queue(build_queue(config, redis).name, connection=redis, serializer=JSONSerializer)
    markers = {name: str(tmp_path / f"{name}.ran") for name in ("system", "function", "callback")}
    jobs = [
        queue.enqueue("os.system", f"touch {markers['system']}"),
        queue.enqueue("tests.intruder.plant", markers["function"], meta={"handler": "made.up"}),
        # hubhook's own function, with a success callback that is not hubhook's
        queue.enqueue("jobs.process.process_delivery", [], on_success=Callback("tests.intruder.on_success"),
                      meta={"marker": markers["callback"]}),
    ]
    return dict(zip((j.id for j in jobs), markers.values()))


def test_the_hubhook_worker_process_refuses_jobs_hubhook_did_not_enqueue(config, redis, hubspot, env,
                                                                          tmp_path):
    # Given jobs written into hubhook's queue by a plain RQ client, and one genuine delivery behind them
    refused = foreign_jobs(config, redis, tmp_path)
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    enqueue_delivery(redis, build_queue(config, redis), [make_event("contact.creation", 1)])
    # When `hubhook worker` drains the queue
    log = tmp_path / "worker.log"
    worker = spawn("worker", "--burst", env={**env, "HUBHOOK_HANDLERS": "tests.ops_handlers:router"}, log=log)
    try:
        worker.wait(timeout=60)
    finally:
        stop(worker)
    # Then none of them ran: no marker file exists
    assert worker.returncode == 0, log.read_text()
    assert not [path for path in refused.values() if (tmp_path / path).exists()]
    # And each is in the failed-job registry with one log line saying why, and no traceback
    assert set(FailedJobRegistry(queue=build_queue(config, redis)).get_job_ids()) == set(refused)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    refusals = [line["msg"] for line in lines if line["msg"].startswith("refused job")]
    assert len(refusals) == 3 and not [line for line in lines if "exc" in line]
    assert any("'os.system' is not one of hubhook's job functions" in msg for msg in refusals)
    assert any("success callback" in msg for msg in refusals)
    # And hubhook's own delivery still ran its handler
    assert [e["outcome"] for e in object_history.read(redis, "contact", 1) if e["kind"] == "handler"] == ["ok"]


def test_the_in_process_worker_refuses_them_too_and_replay_leaves_them_parked(config, redis, hubspot, env,
                                                                              tmp_path):
    # Given the same foreign jobs
    refused = foreign_jobs(config, redis, tmp_path)
    # When the worker the test suite uses (jobs.worker.worker.build_worker) drains the queue
    drain(config, Router())
    # Then nothing ran, and every job is parked as refused
    assert not [path for path in refused.values() if (tmp_path / path).exists()]
    letters = dead_letters.dead_letters(config)
    assert {d.job_id for d in letters} == set(refused) and {d.handler for d in letters} == {"refused"}
    # And `hubhook replay` does not requeue them: it says who must look at what
    replay = hubhook("replay", env=env)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.count("skipped") == 3 and "who can write to Redis" in replay.stdout
    assert build_queue(config, redis).count == 0
    # And `hubhook status` counts them as refused, not under a handler name the job's writer chose
    status = json.loads(hubhook("status", "--json", env=env).stdout)
    assert status["dead_letters_by_handler"] == {"refused": 3}

