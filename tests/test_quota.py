"""HubSpot's quota: one budget shared by every process, learned from HubSpot's headers, and 429s,
5xx runs and missing scopes that reschedule or park work but never drop it."""
import dataclasses
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from jobs.delivery import parking
from jobs.hubspot.client import HubSpotClient
from jobs.hubspot.rate_budget import Budget, RateGovernor
from jobs.worker.worker import build_worker
from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.errors import RateLimited
from webhook_service.operator import dead_letters
from webhook_service.receiver.intake import delivery_job
from webhook_service.testing import FakeHubSpot, make_event

from .conftest import TOKEN, drain
from .quota_support import (
    HUBHOOK,
    deliver,
    ledger,
    max_in_window,
    spawn_workers,
    stop,
    wait_until,
)

MISSING_SCOPES = {"status": "error", "message": "This app hasn't been granted all required scopes to make this call.",
                  "correlationId": "5d7b2c36-9cf0-4e43-a8d6-6c4dbb1fa2a1", "category": "MISSING_SCOPES",
                  "errors": [{"message": "One or more of the following scopes are required.",
                              "context": {"requiredGranularScopes": ["crm.objects.deals.read"]}}]}


@pytest.fixture
def seen():
    return []


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_several_worker_processes_never_exceed_the_rolling_window(config, env, redis, tmp_path):
    # Given a HubSpot that refuses more than 40 requests in any rolling second, and 40 queued
    # one-event deliveries costing 2 calls each (record + associations; batching off)
    with FakeHubSpot(tokens={TOKEN}, burst_limit=(40, 1.0)) as fake:
        for i in range(1, 41):
            fake.add("contacts", i, {"email": f"c{i}@example.com"})
            fake.add("companies", 5000 + i)
            fake.associate("contacts", i, "companies", 5000 + i)
        for i in range(1, 41):
            deliver(config, redis, [make_event("contact.creation", i)])
        # When three worker processes drain the queue together
        workers = spawn_workers(3, {**env, "HUBSPOT_API_BASE_URL": fake.url, "HUBSPOT_BURST_LIMIT": "40",
                                    "HUBHOOK_HANDLERS": "tests.quota_handlers:router",
                                    "HUBHOOK_COALESCE_MAX_EVENTS": "1"}, tmp_path)
        try:
            wait_until(lambda: len(ledger(redis)) >= 40, 60, "all 40 deliveries to be handled")
        finally:
            stop(workers)
        calls = fake.calls
    # Then every delivery was handled once, HubSpot never answered 429, and no second held more than 40
    assert sorted(int(e["id"]) for e in ledger(redis)) == list(range(1, 41))
    assert [c for c in calls if c.status == 429] == []
    assert len(calls) == 80 and max_in_window([c.at for c in calls], 1.0) <= 40


def test_the_budget_follows_hubspots_headers(config, redis):
    # Given a configured budget of 100 per 10 s but a HubSpot that allows 6 per second
    with FakeHubSpot(tokens={TOKEN}, burst_limit=(6, 1.0)) as fake:
        fake.add("contacts", 1)
        client = HubSpotClient(dataclasses.replace(config, api_base_url=fake.url),
                               governor=RateGovernor(redis, Budget(burst=100)))
        # When 12 calls are made back to back
        started = time.monotonic()
        for _ in range(12):
            client.get("contacts", "1")
        elapsed = time.monotonic() - started
        statuses = [c.status for c in fake.calls]
    # Then the governor learned 6/s (less headroom) from the first answer: no 429, paced over 3+ s
    assert statuses == [200] * 12
    assert elapsed >= 3.0


def test_polling_takes_at_most_its_share_and_webhook_work_keeps_the_rest(redis):
    governor = RateGovernor(redis, Budget(burst=10, burst_window=1, poll_share=0.5))
    for _ in range(5):
        governor.acquire("app", priority="poll")
    with pytest.raises(RateLimited):
        governor.acquire("app", priority="poll", max_wait=0.1)
    for _ in range(5):
        governor.acquire("app", priority="webhook", max_wait=0.1)
    with pytest.raises(RateLimited):
        governor.acquire("app", priority="webhook", max_wait=0.1)


def test_calls_are_spread_over_the_window_instead_of_burst(redis):
    # Given a budget of 20 per 10 s: at most 2 in any one second
    governor = RateGovernor(redis, Budget(burst=20, burst_window=10))
    governor.acquire("app")
    governor.acquire("app")
    with pytest.raises(RateLimited):
        governor.acquire("app", max_wait=0.1)
    assert governor.acquire("app", max_wait=2.0) > 0.1


def test_a_429_without_retry_after_waits_for_the_rest_of_the_window(redis):
    # Given a scope that made 3 requests in a 2-second window
    governor = RateGovernor(redis, Budget(burst=10, burst_window=2))
    for _ in range(3):
        governor.acquire("42")
    # When HubSpot answers 429 TEN_SECONDLY_ROLLING with no Retry-After
    wait = governor.on_429("42", "TEN_SECONDLY_ROLLING", None)
    # Then the work waits for the rest of the window, and so does every process sharing the scope
    assert 1.0 <= wait <= 2.0
    with pytest.raises(RateLimited):
        governor.acquire("42", max_wait=0.2)
    assert governor.remaining("43") == 10          # another portal is not affected
    assert governor.on_429("42", "SECONDLY", None, search=True) == 1.0


def test_a_daily_429_pauses_the_portal_and_is_logged_once(redis, caplog):
    governor = RateGovernor(redis)
    with caplog.at_level(logging.WARNING, logger="hubhook.api"):
        first = governor.on_429("42", "DAILY", None)
        second = governor.on_429("42", "DAILY", None)
    assert first == 3600 and 3590 < second <= 3600
    assert len([r for r in caplog.records if "daily limit" in r.getMessage()]) == 1
    with pytest.raises(RateLimited) as caught:
        governor.acquire("42", max_wait=60)            # never sleeps through a daily pause
    assert caught.value.policy == "DAILY" and caught.value.retry_after > 3500
    governor.acquire("43")                              # other portals keep working


def test_hubspot_counting_more_than_we_did_shrinks_our_budget(redis):
    governor = RateGovernor(redis, Budget(burst=100))
    governor.observe("app", {"X-HubSpot-RateLimit-Max": "110", "X-HubSpot-RateLimit-Remaining": "0",
                             "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    assert governor.remaining("app") == 0
    with pytest.raises(RateLimited):
        governor.acquire("app", max_wait=0.2)


def test_a_429_storm_loses_nothing_and_spends_no_retry(config, redis, hubspot, seen):
    # Given 30 queued one-event deliveries and a HubSpot that answers the next 6 calls with 429
    for i in range(1, 31):
        hubspot.add("contacts", i)
        deliver(config, redis, [make_event("contact.creation", i)])
    hubspot.fail_next(6, 429, headers={"Retry-After": "0.2"})
    router = Router()
    router.add(seen.append, "contact.creation", name="welcome")
    # When the worker drains the queue (each 429 reschedules the work)
    drain(config, router)
    # Then every contact reached its handler exactly once and nothing was parked
    assert sorted(int(e.object_id) for e in seen) == list(range(1, 31))
    assert hubspot.count() == 7 and FailedJobRegistry(queue=build_queue(config)).count == 0


def test_a_run_of_5xx_loses_nothing(config, redis, hubspot, seen):
    for i in range(1, 6):
        hubspot.add("deals", i, {"dealname": f"d{i}"})
        deliver(config, redis, [make_event("deal.creation", i)])
    hubspot.fail_next(6, 503)  # more than urllib3's retries of one call: the job reschedules
    router = Router()
    router.add(seen.append, "deal.creation", name="deals", properties=["dealname"])
    drain(config, router)
    assert sorted(e.record["properties"]["dealname"] for e in seen) == [f"d{i}" for i in range(1, 6)]
    assert dead_letters.dead_letters(config) == []


def test_missing_scopes_park_that_type_with_one_line_naming_the_scope(config, redis, hubspot, seen, caplog):
    # Given a delivery with a contact and a deal, and an app that may not read deals
    hubspot.add("contacts", 1)
    hubspot.add("deals", 2)
    hubspot.fail_next(1, 403, body=MISSING_SCOPES, path_contains="/deals/")
    router = Router()
    router.add(seen.append, "contact.creation", name="contacts")
    router.add(seen.append, "deal.creation", name="deals")
    deliver(config, redis, [make_event("contact.creation", 1), make_event("deal.creation", 2)])
    # When it is processed
    with caplog.at_level(logging.INFO):
        drain(config, router)
    # Then the contact was handled, the deal parked, and one warning names the missing scope
    assert [e.object_type for e in seen] == ["contact"]
    (letter,) = dead_letters.dead_letters(config)
    assert "crm.objects.deals.read" in letter.error
    lines = [r for r in caplog.records if "crm.objects.deals.read" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "Traceback" not in caplog.text
    # And once the scope is granted, a replay delivers it
    list(dead_letters.replay(config))
    drain(config, router)
    assert [e.object_type for e in seen] == ["contact", "deal"]


def test_work_hubspot_keeps_failing_is_parked_after_its_last_attempt(config, redis, hubspot, seen):
    # Given a delivery on its last attempt and a HubSpot that keeps answering 500
    hubspot.add("contacts", 1)
    queue = build_queue(config, redis)
    queue.enqueue_job(delivery_job(queue, [make_event("contact.creation", 1)], attempt=parking.MAX_ATTEMPTS - 1))
    hubspot.fail_next(4, 500)
    router = Router()
    router.add(seen.append, "contact.creation", name="welcome")
    # When it is processed
    drain(config, router)
    # Then nothing reached the handler, and the delivery waits in the dead-letter registry, replayable
    (letter,) = dead_letters.dead_letters(config)
    assert seen == [] and letter.handler == "delivery" and "HubSpot kept failing" in letter.error
    list(dead_letters.replay(config))
    drain(config, router)
    assert [e.object_id for e in seen] == ["1"]


def test_a_spent_daily_budget_pauses_the_work_instead_of_hammering_hubspot(config, redis, seen, caplog):
    # Given a private-app account with 2 API requests left today, and 4 queued one-event deliveries
    # (one batch read each) for a handler that needs the contact's email
    with FakeHubSpot(tokens={TOKEN}, daily_limit=2) as fake:
        for i in range(1, 5):
            fake.add("contacts", i, {"email": f"c{i}@example.com"})
            deliver(config, redis, [make_event("contact.creation", i)])
        router = Router()
        router.add(seen.append, "contact.creation", name="welcome", properties=["email"])
        daily = dataclasses.replace(config, api_base_url=fake.url, coalesce_max_events=1)
        # When a worker works through the queue once
        with caplog.at_level(logging.INFO):
            build_worker(daily, router).work(burst=True, with_scheduler=False, logging_level="WARNING")
        calls = fake.calls
    # Then HubSpot got its 2 requests and no third: the answer saying Daily-Remaining 0 paused the app
    assert [(c.method, c.status) for c in calls] == [("POST", 200), ("POST", 200)]
    assert sorted(e.object_id for e in seen) == ["1", "2"]
    assert RateGovernor(redis).paused_for("app") > 3500
    # And the other deliveries wait about an hour in the scheduler, nothing parked, one warning line
    scheduled = ScheduledJobRegistry(queue=build_queue(daily))
    assert scheduled.count == 2 and dead_letters.dead_letters(daily) == []
    due = [scheduled.get_scheduled_time(job_id) for job_id in scheduled.get_job_ids()]
    assert all(at - datetime.now(UTC) > timedelta(minutes=55) for at in due)
    warnings = [r for r in caplog.records if "daily limit" in r.getMessage()]
    assert len(warnings) == 1
    assert "its daily remaining reached 0" in warnings[0].getMessage() and "Traceback" not in caplog.text
