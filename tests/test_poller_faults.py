"""The poller under HubSpot's faults: 429s and 5xx wait and resume, an unknown type stops alone."""
from __future__ import annotations

import logging
from collections import Counter

from webhook_service import Router
from webhook_service.testing.fake_hubspot.shapes import error_body, rate_limit_body

from . import poller_support as kit
from .conftest import drain
from .poller_support import cursor, poll, queued

config, hubspot, router, seen = kit.config, kit.hubspot, kit.router, kit.seen  # the poller tests' fixtures


def test_a_429_and_a_5xx_burst_wait_and_resume_where_the_walk_was(config, redis, hubspot, router, seen):
    # Given 600 changed tickets (three pages)
    poll(config, router)
    start = cursor(config, redis).position
    for i in range(600):
        hubspot.add("tickets", 10_000 + i, modified_at_ms=start + 1 + i)
    # When search answers 429 (secondly limit: wait 1 s), then 503 four times (past the client's retries)
    hubspot.fail_next(1, 429, path_contains="/search", body=rate_limit_body("SECONDLY", "secondly"))
    hubspot.fail_next(4, 503, path_contains="/search")
    hubspot.reset_calls()
    poll(config, router)
    drain(config, router)
    # Then every ticket reached the handler once
    counts = Counter(e.object_id for e in seen)
    assert len(counts) == 600 and set(counts.values()) == {1}
    # And the walk resumed with the same request: each page was read once, nothing re-walked
    searches = [c for c in hubspot.calls if c.path.endswith("/search")]
    assert [c.status for c in searches] == [429, 503, 503, 503, 503, 200, 200, 200]
    assert [c.body["after"] for c in searches if c.status == 200] == ["0", "200", "400"]


def test_a_type_hubspot_does_not_know_stops_with_one_log_line(config, redis, hubspot, seen, caplog):
    # Given handlers for tickets and for a custom object this portal does not have
    router = Router()
    router.add(seen.append, "ticket.*", name="tickets")
    router.add(seen.append, "p_nosuch.*", name="nosuch")
    poll(config, router)
    hubspot.add("tickets", 5)
    hubspot.fail_next(3, 400, path_contains="/p_nosuch/search",
                      body=error_body("Unable to infer object type from: p_nosuch", "VALIDATION_ERROR"))
    hubspot.reset_calls()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="hubhook.poller")
    # When a round runs
    poll(config, router)
    drain(config, router)
    # Then the ticket change is delivered and the unknown type is dropped with one clear error line
    assert [e.object_id for e in seen] == ["5"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "p_nosuch" in errors[0] and "does not know" in errors[0]
    assert hubspot.count(path_contains="/p_nosuch/search") == 1
    assert cursor(config, redis, object_type="p_nosuch").fields["outcome"].startswith("stopped: unknown type")


def test_with_nothing_to_poll_once_exits_and_says_why(config, redis, hubspot, caplog):
    # Given only handlers for types that arrive by webhook
    router = Router()
    router.add(print, "deal.propertyChange", property="dealstage")
    caplog.set_level(logging.INFO, logger="hubhook.poller")
    # When `hubhook poll --once` runs
    poll(config, router)
    # Then it says, in one line, that there is nothing to poll and which types the handlers want
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("nothing to poll") and "deal" in line
    assert hubspot.count() == 0 and not queued(config, redis)
