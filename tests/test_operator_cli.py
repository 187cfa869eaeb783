"""`hubhook status`, `inspect` and `replay`, run through the console entry point against a real Redis."""
import json

import pytest

from jobs.hubspot.rate_budget import RateGovernor
from jobs.poller.cursor import Cursor
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import make_event

from .conftest import drain
from .ops_support import hubhook, spawn, stop, wait_until

WELCOME, BROKEN = "tests.ops_handlers.welcome", "tests.ops_handlers.broken"


@pytest.fixture
def cli_env(env):
    return {**env, "HUBHOOK_HANDLERS": "tests.ops_handlers:router"}


@pytest.fixture
def router():
    from tests.ops_handlers import router
    return router


def deliver(config, redis, events):
    return enqueue_delivery(redis, build_queue(config, redis), events)


def test_status_on_a_running_stack(config, redis, hubspot, router, cli_env, tmp_path):
    # Given a dead letter, a queued delivery, a poller cursor, some rate budget used and a live worker
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    deliver(config, redis, [make_event("deal.creation", 7)])
    drain(config, router)
    deliver(config, redis, [make_event("contact.creation", 1), make_event("contact.creation", 2)])
    cursor = Cursor(redis, 62515, "ticket", "search")
    cursor.start(1_700_000_000_000)
    cursor.record("ok: 0 changes")
    worker = spawn("worker", "--name", "status-worker", env={**cli_env, "HUBHOOK_HANDLER_RETRIES": "600"},
                   log=tmp_path / "worker.log")
    try:
        wait_until(lambda: "status-worker" in hubhook("status", env=cli_env).stdout, 30, "the worker to register")
        # When the operator asks for the status (the rate window is 10 s: use some budget just before)
        RateGovernor(redis).acquire("62515")
        result = hubhook("status", env=cli_env)
        data = json.loads(hubhook("status", "--json", env=cli_env).stdout)
    finally:
        stop(worker)
    # Then it shows queues, workers, dead letters by handler, poll cursors with lag, and the rate budget
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "queue    hubhook:" in out and "dead letters" in out
    assert "status-worker" in out
    assert f"  {BROKEN}" in out
    assert "portal 62515 ticket" in out and "ok: 0 changes" in out
    assert "62515" in out.split("rate budget")[1]
    assert data["dead_letters_by_handler"] == {BROKEN: 1}
    assert data["poll_cursors"][0]["lag_seconds"] > 0
    assert data["rate_budget"][0]["scope"] == "62515" and data["rate_budget"][0]["used"] >= 1


def test_status_on_an_empty_redis_and_on_no_redis(cli_env):
    result = hubhook("status", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "0 queued" in result.stdout and "dead letters by handler: none" in result.stdout
    down = hubhook("status", env={**cli_env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 2 and len(down.stderr.strip().splitlines()) == 1
    assert "cannot read Redis at redis://127.0.0.1:1/0" in down.stderr


def test_inspect_shows_what_hubhook_saw_and_did_for_one_object(config, redis, hubspot, router, cli_env):
    # Given a contact whose handler succeeded and a deal whose handler failed
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    deliver(config, redis, [make_event("contact.creation", 1, event_id=501)])
    deliver(config, redis, [make_event("deal.creation", 7)])
    drain(config, router)
    # When the operator inspects them
    contact = hubhook("inspect", "contacts", "1", env=cli_env)
    deal = hubhook("inspect", "deal", "7", env=cli_env)
    entries = [json.loads(line) for line in hubhook("inspect", "deal", "7", "--json", env=cli_env).stdout.splitlines()]
    # Then each shows the changes seen, the handlers called and their outcome
    assert contact.returncode == 0, contact.stderr
    assert "contact 1:" in contact.stdout and "seen via webhook, portal 62515: contact.creation (event 501" \
        in contact.stdout
    assert f"-> handlers: {WELCOME}" in contact.stdout and f"handler {WELCOME} ok in" in contact.stdout
    assert f"handler {BROKEN} failed in" in deal.stdout and "RuntimeError: cannot sync deal 7" in deal.stdout
    assert f"parked in the dead-letter registry: {BROKEN}" in deal.stdout
    assert [e["kind"] for e in entries][:2] == ["seen", "handler"]
    # And the history is bounded and expires
    assert 0 < redis.ttl("hubhook:history:deal:7") <= config.history_ttl


def test_inspect_bad_input_is_one_line_and_nothing_recorded_is_not_an_error(cli_env):
    unknown = hubhook("inspect", "dela", "7", env=cli_env)
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert "unknown object type 'dela'; use one of contact, company, deal" in unknown.stderr
    nothing = hubhook("inspect", "deal", "404", env=cli_env)
    assert nothing.returncode == 0 and "hubhook has nothing recorded for deal 404" in nothing.stdout


def test_replay_by_handler_and_age_with_dry_run(config, redis, hubspot, router, cli_env):
    # Given a dead letter of the broken handler
    deliver(config, redis, [make_event("deal.creation", 7)])
    drain(config, router)
    # When the operator filters by an age it does not have, then dry-runs and replays by handler
    too_old = hubhook("replay", "--older-than", "2h", env=cli_env)
    dry = hubhook("replay", "--handler", BROKEN, "--newer-than", "1h", "--dry-run", env=cli_env)
    done = hubhook("replay", "--handler", BROKEN, env=cli_env)
    again = hubhook("replay", env=cli_env)
    # Then each says what it did, and an empty replay is not an error
    assert too_old.returncode == 0 and "nothing to replay in that age range; 1 dead letter(s)" in too_old.stdout
    assert dry.returncode == 0 and "would replay" in dry.stdout and "1 job(s) would be requeued" in dry.stdout
    assert done.returncode == 0 and "1 job(s) requeued" in done.stdout
    assert again.returncode == 0 and again.stdout.startswith("nothing to replay")
    assert build_queue(config, redis).count == 1


@pytest.mark.parametrize("args, expected", [
    (["statsu"], "No such command 'statsu'"),
    (["status", "--verbose"], "options: --json, -h/--help"),
    (["replay", "--older-than", "soon"], "--older-than takes a duration such as 90s"),
    (["inspect", "deal"], "usage: hubhook inspect OBJECT_TYPE OBJECT_ID"),
    (["run", "--workers", "0"], "must be at least 1"),
])
def test_bad_arguments_are_one_line_saying_what_exists(cli_env, args, expected):
    result = hubhook(*args, env=cli_env)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_handler_error_quoting_the_token_is_redacted_in_redis_and_on_the_terminal(config, redis, hubspot,
                                                                                     cli_env):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from tests.conftest import TOKEN
    from tests.leaky_handlers import router as leaky
    from webhook_service.telemetry import object_history

    # Given a handler whose error quotes the access token and carries ESC[2J (clear screen)
    deliver(config, redis, [make_event("deal.creation", 7)])
    # When a worker runs it until it is parked, and the operator inspects and replays
    drain(config, leaky)
    inspect = hubhook("inspect", "deal", "7", env=cli_env)
    as_json = hubhook("inspect", "deal", "7", "--json", env=cli_env)
    replay = hubhook("replay", "--dry-run", env=cli_env)
    # Then neither the object history nor RQ's record of the failed job holds the token
    errors = [e["error"] for e in object_history.read(redis, "deal", 7) if e.get("error")]
    (job_id,) = build_queue(config, redis).failed_job_registry.get_job_ids()
    job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    stored = [*errors, job.exc_info, job.latest_result().exc_string]
    assert errors and all("[redacted]" in text and TOKEN not in text for text in stored)
    # And nothing printed holds the token or a raw escape character; the escapes are shown, not obeyed
    printed = inspect.stdout + as_json.stdout + replay.stdout
    assert inspect.returncode == replay.returncode == 0, inspect.stderr + replay.stderr
    assert TOKEN not in printed and "\x1b" not in printed and "\x07" not in printed
    assert "\\x1b[2J" in inspect.stdout and "[redacted]" in replay.stdout


def test_text_stored_raw_is_still_redacted_and_escaped_when_printed(redis, cli_env):
    from tests.conftest import TOKEN

    # Given a history entry written raw (by an earlier release), with the token and escape sequences
    entry = {"at": 1_700_000_000, "kind": "handler", "handler": "h", "outcome": "failed", "ms": 1.0,
             "portal": 62515, "error": f"RuntimeError: token {TOKEN} \x1b[2J\x9b31m"}
    redis.lpush("hubhook:history:deal:8", json.dumps(entry))
    # When the operator inspects the object
    result = hubhook("inspect", "deal", "8", env=cli_env)
    # Then the line shows neither the token nor a control character
    assert result.returncode == 0, result.stderr
    assert "RuntimeError: token [redacted] \\x1b[2J\\x9b31m" in result.stdout
    assert TOKEN not in result.stdout and "\x1b" not in result.stdout and "\x9b" not in result.stdout


def test_status_hides_the_redis_password_in_the_query_as_well_as_in_user_info(cli_env):
    # Given REDIS_URL carrying a password in user:pass@ and another in ?password=
    url = cli_env["REDIS_URL"].replace("redis://", "redis://default:hunter2-userinfo@")
    url += "?password=hunter2-query"
    # When the operator asks for the status (this Redis has no password: the command fails, saying where)
    result = hubhook("status", env={**cli_env, "REDIS_URL": url})
    output = result.stdout + result.stderr
    # Then the URL is shown without either password
    assert "hunter2" not in output and ":***@" in output and "password=***" in output
