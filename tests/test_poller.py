"""The fallback poller: every change of a polled type reaches its handlers exactly once.

Real Redis, the fake HubSpot over HTTP (its search lags, caps at 10,000 and pages like HubSpot's),
the real poller (``jobs.poller.main.run(..., once=True)`` is one round of ``hubhook poll --once``) and a
real RQ worker (``drain``). Leadership is in test_poller_leader.py, faults in test_poller_faults.py.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace

from jobs.poller import main as poller
from jobs.poller.reconcile import note_webhook_changes
from webhook_service import Router
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery
from webhook_service.testing import FakeHubSpot, make_event

from . import poller_support as kit
from .conftest import TOKEN, drain
from .poller_support import cursor, poll, queued, wait_for

config, hubspot, router, seen = kit.config, kit.hubspot, kit.router, kit.seen  # the poller tests' fixtures


def test_first_start_begins_at_now_and_later_changes_arrive_once(config, redis, hubspot, router, seen):
    # Given a ticket changed before the poller ever ran, and a first round that starts the cursor
    hubspot.add("tickets", 1, {"subject": "old"})
    poll(config, router)
    # When a ticket is created and the old one is changed
    hubspot.add("tickets", 2, {"subject": "new"})
    hubspot.update("tickets", 1, {"subject": "old, edited"})
    poll(config, router)
    poll(config, router)  # the second round re-reads the lookback window and drops what it delivered
    drain(config, router)
    # Then each change reached the handler once, as a poll event with the fetched record
    assert sorted((e.object_id, e.subscription_type, e.source) for e in seen) == [
        ("1", "ticket.propertyChange", "poll"), ("2", "ticket.creation", "poll")]
    assert next(e for e in seen if e.object_id == "1").record["properties"]["subject"] == "old, edited"
    # And the search asked for 200 per page, sorted ascending on the modified date
    body = next(c.body for c in hubspot.calls if c.path.endswith("/search"))
    assert body["limit"] == 200
    assert body["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]


def test_a_change_that_search_shows_late_is_still_delivered_once(config, redis, router, seen):
    with FakeHubSpot(tokens={TOKEN}, search_limit_per_second=None, search_lag=1.0) as lagging:
        config = replace(config, api_base_url=lagging.url)
        poll(config, router)
        start = cursor(config, redis).position
        # Given ticket B (modified at start+200ms) already delivered
        lagging.add("tickets", 20, modified_at_ms=start + 200)
        wait_for(lambda: poll(config, router) or queued(config, redis), 10, "ticket B to be polled")
        assert cursor(config, redis).position == start + 200
        # When ticket A, modified earlier (start+100ms) but indexed only now, shows up in search
        lagging.add("tickets", 10, modified_at_ms=start + 100)
        poll(config, router)
        assert [e["objectId"] for e in queued(config, redis)] == [20]  # not visible yet: search lags
        wait_for(lambda: poll(config, router) or len(queued(config, redis)) == 2, 10, "ticket A to be polled")
        poll(config, router)
        drain(config, router)
    # Then both reached the handler, once each, although A is older than the cursor
    assert sorted(e.object_id for e in seen) == ["10", "20"]


def test_more_than_10000_changes_are_walked_without_passing_the_search_cap(config, redis, hubspot):
    # Given 12,500 tickets changed since the last round, four per millisecond
    router = Router()
    router.add(lambda e: None, "ticket.*")
    poll(config, router)
    start = cursor(config, redis).position
    for i in range(12_500):
        hubspot.add("tickets", 100_000 + i, modified_at_ms=start + 1 + i // 4)
    hubspot.reset_calls()
    # When one round runs
    poll(config, router)
    # Then every ticket is enqueued exactly once, in jobs of at most 200 events
    events = queued(config, redis)
    assert len(events) == 12_500 and len({e["objectId"] for e in events}) == 12_500
    assert max(len(job.args[0]) for job in build_queue(config, redis).jobs) <= 200
    # And no request asked past 10,000 results: the lower bound moved instead
    searches = [c for c in hubspot.calls if c.path.endswith("/search")]
    assert all(int(c.body["after"]) + c.body["limit"] <= 10_000 and c.status == 200 for c in searches)
    bounds = {c.body["filterGroups"][0]["filters"][0]["value"] for c in searches}
    assert len(bounds) == 2
    assert cursor(config, redis).position == start + 1 + 12_499 // 4


def test_25000_changes_in_one_millisecond_are_delivered_exactly_once(config, redis, hubspot, router):
    # Given 25,000 tickets stamped with the same modified time (a bulk import)
    poll(config, router)
    stamp = cursor(config, redis).position + 5
    for i in range(25_000):
        hubspot.add("tickets", 200_000 + i, modified_at_ms=stamp)
    # When one round runs
    poll(config, router)
    # Then each ticket was enqueued exactly once (what the worker does with a poll job is the other
    # tests' business; draining 25,000 handler calls here would only make this test slow)
    counts = Counter(e["objectId"] for e in queued(config, redis))
    assert len(counts) == 25_000 and set(counts.values()) == {1}
    # And the walk broke the tie on hs_object_id, never asking past 10,000 results
    searches = [c.body for c in hubspot.calls if c.path.endswith("/search")]
    assert any(f["propertyName"] == "hs_object_id" and f["operator"] == "GT"
               for body in searches for f in body["filterGroups"][0]["filters"])
    assert all(int(body["after"]) + body["limit"] <= 10_000 for body in searches)


def test_a_restarted_poller_resumes_from_the_stored_cursor(config, redis, hubspot, router, seen):
    # Given a round that started the cursor, then 3,000 tickets changed 10 ms apart
    config = replace(config, poll_lookback=1)
    poll(config, router)
    start = cursor(config, redis).position
    for i in range(3_000):
        hubspot.add("tickets", 300_000 + i, modified_at_ms=start + 1 + i * 10)
    # When a poller is stopped mid-walk (after its first pages are committed) and a new one starts
    hubspot.hang_next(15, 0.1, path_contains="/search")
    stop = threading.Event()
    first = threading.Thread(target=poller.run, args=(config,), kwargs={"router": router, "stop": stop})
    first.start()
    wait_for(lambda: (cursor(config, redis).position or 0) >= start + 4_000, 20, "the first committed pages")
    stop.set()
    first.join(10)
    stopped_at = cursor(config, redis).position
    assert start + 4_000 <= stopped_at < start + 29_991
    hubspot.reset_calls()
    poll(config, router)
    drain(config, router)
    # Then every ticket reached the handler exactly once
    counts = Counter(e.object_id for e in seen)
    assert len(counts) == 3_000 and set(counts.values()) == {1}
    # And the new poller read from the stored cursor (less its lookback), not from the beginning
    first_search = next(c.body for c in hubspot.calls if c.path.endswith("/search"))
    assert int(first_search["filterGroups"][0]["filters"][0]["value"]) == stopped_at - 1_000


def test_backfill_walks_history_and_resumes_from_its_checkpoint(config, redis, hubspot, router, seen):
    # Given 2,000 tickets changed in 2024, and one from 2023 that --since excludes
    base = 1_717_200_000_000  # 2024-06-01
    hubspot.add("tickets", 1, modified_at_ms=base - 200 * 86_400_000)
    for i in range(2_000):
        hubspot.add("tickets", 400_000 + i, modified_at_ms=base + i * 1000)
    # When a backfill since 2024-01-01 is stopped part-way, then run again
    hubspot.hang_next(10, 0.1, path_contains="/search")
    stop = threading.Event()
    first = threading.Thread(target=poller.run, args=(config,),
                             kwargs={"router": router, "stop": stop, "backfill": True, "since": "2024-01-01"})
    first.start()
    wait_for(lambda: (cursor(config, redis, "backfill").position or 0) > base + 400_000, 20, "progress")
    stop.set()
    first.join(10)
    checkpoint = cursor(config, redis, "backfill").position
    assert checkpoint < base + 1_999_000
    hubspot.reset_calls()
    poll(config, router, backfill=True, since="2024-01-01")
    drain(config, router)
    # Then every 2024 ticket arrived exactly once, as a creation, and the 2023 one did not
    counts = Counter(e.object_id for e in seen)
    assert len(counts) == 2_000 and set(counts.values()) == {1} and "1" not in counts
    assert {e.subscription_type for e in seen} == {"ticket.creation"}
    # And the second run started from the checkpoint, not from --since
    first_search = next(c.body for c in hubspot.calls if c.path.endswith("/search"))
    assert int(first_search["filterGroups"][0]["filters"][0]["value"]) == checkpoint
    assert cursor(config, redis, "backfill").fields["done"] == "1"
    assert [r["stream"] for r in poller.status_rows(config)] == ["backfill", "search"]


def test_archived_records_become_deletion_events_once(config, redis, hubspot, router, seen):
    # Given polled tickets and a sweep every round
    config = replace(config, archive_sweep_interval=0.1)
    hubspot.add("tickets", 7, {"subject": "bin me"})
    hubspot.add("tickets", 8, {"subject": "keep"})
    hubspot.archive("tickets", 8)  # archived before the poller started: not news
    poll(config, router)
    # When a ticket is deleted, and two sweeps run
    hubspot.archive("tickets", 7)
    poll(config, router)
    poll(config, router)
    drain(config, router)
    # Then its handler saw one deletion, with no record
    assert [(e.object_id, e.subscription_type, e.record) for e in seen] == [("7", "ticket.deletion", None)]
    assert any(c.query.get("archived") == "true" and c.query.get("limit") == "100" for c in hubspot.calls)


def test_reconciliation_delivers_what_webhooks_missed_and_only_that(config, redis, hubspot, seen):
    # Given contact handlers (contacts arrive by webhook) and reconciliation on
    config = replace(config, reconcile_interval=0.1, poll_lookback=0.5)
    router = Router()
    router.add(seen.append, "contact.*", name="contacts", properties=["email"])
    poll(config, router)
    start = cursor(config, redis, object_type="contact").position
    hubspot.add("contacts", 1, {"email": "hooked@example.com"}, modified_at_ms=start + 10)
    hubspot.add("contacts", 2, {"email": "lost@example.com"}, modified_at_ms=start + 10)
    # And a webhook delivered contact 1's change (the worker notes it as it takes the job)
    hook = [make_event("contact.propertyChange", 1, property="email", value="hooked@example.com",
                       occurred_at=start + 10)]
    note_webhook_changes(redis, hook, config.reconcile_interval)
    enqueue_delivery(redis, build_queue(config, redis), hook)
    # When reconciliation rounds run once the webhook has had its time
    wait_for(lambda: poll(config, router) or len(queued(config, redis)) == 2, 10, "the reconciliation round")
    poll(config, router)
    drain(config, router)
    # Then contact 1 reached the handler once (by webhook) and contact 2, whose webhook was lost, by poll
    assert sorted((e.object_id, e.source) for e in seen) == [("1", "webhook"), ("2", "poll")]
    assert next(e for e in seen if e.object_id == "2").record["properties"]["email"] == "lost@example.com"
