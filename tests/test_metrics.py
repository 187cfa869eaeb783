"""/metrics, /healthz and the JSON logs, scraped from real `hubhook web` and `hubhook worker` processes.

/metrics answers only the bearer of HUBHOOK_METRICS_TOKEN; /healthz tells everyone else no more than a
load balancer needs."""
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from webhook_service.config import Config
from webhook_service.errors import ConfigError
from webhook_service.receiver.app import create_app
from webhook_service.testing import make_event, post_delivery, signed_delivery

from .conftest import SECRET, TOKEN, free_port
from .ops_support import (
    healthy,
    hubhook,
    scrape,
    spawn,
    stack_env,
    stop,
    value,
    wait_until,
)

METRICS_TOKEN = "metrics-test-token-0123456789"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def web(env, tmp_path):
    """`hubhook web` with 2 gunicorn workers and a known metrics directory; yields (base URL, env, log)."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: must be wiped at start
    run_env = stack_env(env, port, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                        HUBHOOK_METRICS_TOKEN=METRICS_TOKEN)
    log = tmp_path / "web.log"
    process = spawn("web", env=run_env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base), 30, "hubhook web to answer /healthz")
        yield base, run_env, log, metrics_dir
    finally:
        stop(process)


def test_receiver_counters_are_the_same_whichever_gunicorn_worker_answers(web):
    base, run_env, _, metrics_dir = web
    # Given 2 gunicorn workers and 20 deliveries sent concurrently, one of them forged
    url = run_env["HUBHOOK_WEBHOOK_URL"]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: post_delivery(url, [make_event("contact.creation", i)], SECRET).status_code,
                              range(1, 20)))
    codes.append(post_delivery(url, [make_event("contact.creation", 99)], "forged").status_code)
    assert codes.count(200) == 19 and codes[-1] == 401
    # Then both workers keep their counters in the multiprocess directory (the stale file is gone)
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    assert not (metrics_dir / "counter_1.db").exists()
    # And every scrape, whichever worker serves it, reports all of them
    for _ in range(10):
        samples = scrape(base, METRICS_TOKEN)
        assert value(samples, "hubhook_deliveries_received_total") == 20
        assert value(samples, "hubhook_events_enqueued_total") == 19
        assert value(samples, "hubhook_deliveries_rejected_total", reason="signature") == 1
        assert value(samples, "hubhook_deliveries_rejected_total", reason="backpressure") == 0
        assert value(samples, "hubhook_delivery_seconds_count") == 20
        assert value(samples, "hubhook_queue_jobs", queue="hubhook", state="queued") == 19
        assert value(samples, "hubhook_pending_events") == 19


def test_worker_figures_reach_metrics_through_redis(web, hubspot, tmp_path):
    base, run_env, web_log, _ = web
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    hubspot.add("contacts", 2, {"email": "grace@example.com"})
    url = run_env["HUBHOOK_WEBHOOK_URL"]
    # Given two deliveries for a handler that works and one for a handler that always fails
    for events in ([make_event("contact.creation", 1)], [make_event("contact.creation", 2)],
                   [make_event("deal.creation", 7)]):
        assert post_delivery(url, events, SECRET).status_code == 200
    # When a worker processes the queue in its own process
    result = hubhook("worker", "--burst", env={**run_env, "HUBHOOK_HANDLER_RETRIES": ""}, timeout=120)
    assert result.returncode == 0, result.stderr
    # Then /metrics shows what the worker did, by handler and by HubSpot endpoint
    samples = scrape(base, METRICS_TOKEN)
    welcome, broken = "tests.ops_handlers.welcome", "tests.ops_handlers.broken"
    assert value(samples, "hubhook_handler_runs_total", handler=welcome) == 2
    assert value(samples, "hubhook_handler_failures_total", handler=welcome) is None
    assert value(samples, "hubhook_handler_failures_total", handler=broken) >= 1
    assert value(samples, "hubhook_handler_duration_seconds_count", handler=welcome) == 2
    assert value(samples, "hubhook_handler_duration_seconds_bucket", handler=welcome, le="+Inf") == 2
    calls = {labels: v for (name, labels), v in samples.items() if name == "hubhook_hubspot_api_calls_total"}
    assert sum(calls.values()) >= 1
    assert all(dict(labels)["endpoint"].startswith(("POST /crm/", "GET /crm/")) for labels in calls)
    assert value(samples, "hubhook_pending_events") == 0
    assert value(samples, "hubhook_redis_up") == 1
    # And the logs of both processes are JSON lines: one per delivery, job and handler run, no secret
    worker_lines = [json.loads(line) for line in result.stderr.splitlines()]
    web_lines = [json.loads(line) for line in web_log.read_text().splitlines()]
    for line in worker_lines + web_lines:
        assert SECRET not in json.dumps(line) and TOKEN not in json.dumps(line)
    accepted = [x for x in web_lines if x["msg"] == "delivery accepted"]
    assert len(accepted) == 3 and {"portals", "types", "object_ids", "event_ids", "job"} <= set(accepted[0])
    runs = [x for x in worker_lines if x["msg"] in ("handler ok", "handler failed")]
    assert {x["handler"] for x in runs} == {welcome, broken}
    assert all({"portal", "type", "object_id", "event_ids", "ms"} <= set(x) for x in runs)
    failed = next(x for x in runs if x["msg"] == "handler failed")
    assert "[redacted]" in failed["error"] and "Traceback" in failed["exc"]
    assert any(x["msg"] == "job done" and x["events"] >= 1 for x in worker_lines)


def test_metrics_and_healthz_on_an_empty_redis_and_without_redis(config, redis):
    config = dataclasses.replace(config, metrics_token=METRICS_TOKEN)
    # Given a Redis that has never seen hubhook: every figure reads as zero, nothing fails
    client = create_app(config).test_client()
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert "hubhook_dead_letters" in response.text and "hubhook_redis_up 1.0" in response.text
    assert client.get("/healthz", headers=BEARER).json["oldest_job_age_seconds"] is None
    # When Redis cannot be reached, /metrics still answers with the receiver's own counters
    down = Config(**{**config.__dict__, "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    client = create_app(down).test_client()
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200
    assert "hubhook_redis_up 0.0" in response.text and "hubhook_deliveries_received_total" in response.text
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz", headers=BEARER).status_code == 503


def test_healthz_reports_the_age_of_the_oldest_queued_job_to_the_token_bearer(config, redis):
    client = create_app(dataclasses.replace(config, metrics_token=METRICS_TOKEN)).test_client()
    body, headers = signed_delivery([make_event("contact.creation", 1), make_event("contact.creation", 2)],
                                    SECRET, config.webhook_url)
    assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
    health = client.get("/healthz", headers=BEARER).json
    assert health["queued_jobs"] == 1 and health["pending_events"] == 2
    assert 0 <= health["oldest_job_age_seconds"] < 30


def test_healthz_tells_the_public_only_what_a_load_balancer_needs(config, redis):
    # Given a receiver with a metrics token and one delivery waiting in the queue
    client = create_app(dataclasses.replace(config, metrics_token=METRICS_TOKEN)).test_client()
    body, headers = signed_delivery([make_event("contact.creation", 1)], SECRET, config.webhook_url)
    assert client.post("/webhooks/hubspot", data=body, headers=headers).status_code == 200
    # When anyone without the token (or with a wrong one) asks /healthz
    for extra in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": METRICS_TOKEN}):
        response = client.get("/healthz", headers=extra)
        # Then they learn that the receiver and Redis are up, and nothing about the queue
        assert response.status_code == 200 and response.json == {"status": "ok", "redis": "ok"}


def test_metrics_are_off_without_a_token_and_answer_only_its_bearer(config, redis):
    from webhook_service.telemetry import stats

    # Given a worker-side figure that names a handler module
    stats.count("handler_runs", handler="myapp.secret_module.on_change")
    stats.flush(redis)
    # When no HUBHOOK_METRICS_TOKEN is set, /metrics is not served and says which setting turns it on
    off = create_app(dataclasses.replace(config, metrics_token=None)).test_client().get("/metrics", headers=BEARER)
    assert off.status_code == 404 and off.is_json and "HUBHOOK_METRICS_TOKEN" in off.json["error"]
    # When a token is set, a scrape without it or with another one is a 401 that shows nothing
    client = create_app(dataclasses.replace(config, metrics_token=METRICS_TOKEN)).test_client()
    for extra in ({}, {"Authorization": "Bearer not-the-token-123456"},
                  {"Authorization": f"Basic {METRICS_TOKEN}"}, {"Authorization": f"Bearer {METRICS_TOKEN}x"}):
        refused = client.get("/metrics", headers=extra)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "hubhook_" not in refused.text and "secret_module" not in refused.text
    # And the bearer of the token gets the Prometheus text
    scraped = client.get("/metrics", headers=BEARER)
    assert scraped.status_code == 200 and "hubhook_deliveries_received_total" in scraped.text
    assert 'handler="myapp.secret_module.on_change"' in scraped.text


def test_a_short_metrics_token_is_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="HUBHOOK_METRICS_TOKEN must have at least 16 characters"):
        Config.from_env({"HUBHOOK_METRICS_TOKEN": "short"})
    assert Config.from_env({"HUBHOOK_METRICS_TOKEN": METRICS_TOKEN}).metrics_token == METRICS_TOKEN
    assert METRICS_TOKEN not in repr(Config(metrics_token=METRICS_TOKEN))


def test_web_metrics_directory_is_removed_when_hubhook_web_made_it(env, tmp_path):
    port = free_port()
    run_env = stack_env(env, port, HUBHOOK_METRICS_TOKEN=METRICS_TOKEN)
    run_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = spawn("web", env=run_env, log=tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(base), 30, "hubhook web")
        assert requests.get(f"{base}/metrics", headers=BEARER, timeout=5).status_code == 200
        made = [line for line in (tmp_path / "web.log").read_text().splitlines() if "Booting worker" in line]
        assert made
        directory = _metrics_dir_of(process.pid)
    finally:
        stop(process)
    assert directory and not directory.exists()


def _metrics_dir_of(pid: int):
    from pathlib import Path
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(found[0]) if found else None


def test_poll_lag_per_type_comes_from_the_poller_cursors(config, redis, monkeypatch):
    from jobs.poller.cursor import Cursor
    from webhook_service.telemetry import prometheus

    monkeypatch.setattr(prometheus, "_poll_cache", (0.0, None))  # another test may have cached an empty answer
    cursor = Cursor(redis, 62515, "ticket", "search")
    cursor.start(1_700_000_000_000)
    cursor.record("ok")
    app = create_app(dataclasses.replace(config, metrics_token=METRICS_TOKEN))
    text = app.test_client().get("/metrics", headers=BEARER).text
    lag = [line for line in text.splitlines() if line.startswith("hubhook_poll_lag_seconds{")]
    assert lag and 'type="ticket"' in lag[0] and 'portal="62515"' in lag[0] and float(lag[0].split()[-1]) > 0


def test_web_creates_a_metrics_directory_that_does_not_exist_yet(env, tmp_path):
    # Given PROMETHEUS_MULTIPROC_DIR naming a folder (and parent) that nobody has made yet
    port = free_port()
    metrics_dir = tmp_path / "not" / "yet"
    run_env = stack_env(env, port, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                        HUBHOOK_METRICS_TOKEN=METRICS_TOKEN)
    # When `hubhook web` starts
    process = spawn("web", env=run_env, log=tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        # Then it serves, with the folder made and the workers' counters in it
        wait_until(lambda: healthy(base), 30, "hubhook web to answer /healthz")
        assert value(scrape(base, METRICS_TOKEN), "hubhook_deliveries_received_total") == 0
        assert list(metrics_dir.glob("counter_*.db"))
    finally:
        stop(process)
    assert "Traceback" not in (tmp_path / "web.log").read_text()


def test_web_stops_with_one_line_when_the_metrics_directory_cannot_be_made(env, tmp_path):
    # Given PROMETHEUS_MULTIPROC_DIR under a regular file, where no folder can be made
    (tmp_path / "a-file").write_text("")
    run_env = stack_env(env, free_port(), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "a-file" / "metrics"))
    # When `hubhook web` starts
    result = hubhook("web", env=run_env, timeout=30)
    # Then it exits 2 with one line naming the setting and what to do, no traceback
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr and "point it at a folder" in result.stderr
