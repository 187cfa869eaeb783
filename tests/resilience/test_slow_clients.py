"""Slow clients: 200 connections trickling their headers must not keep HubSpot or a load balancer waiting.

A client that sends one header line every 2 s and never finishes holds whatever the server gives a
connection until its headers are complete. With a thread per connection, 16 such clients stall a
2 x 8 thread receiver; `hubhook web` runs gevent workers, where they cost a greenlet each. The
figure this test asserts is printed by ``.venv/bin/python bench/slow_clients.py``.
"""
import pytest

from bench.slow_clients import SlowHeaderClients, timed_requests

from ..conftest import SECRET
from .procs import wait_until

pytestmark = pytest.mark.resilience

SLOW_CLIENTS = 200
DELIVERIES = 30


def test_deliveries_and_healthz_answer_within_a_second_while_200_clients_trickle_headers(stack, stack_client):
    # Given `hubhook web` as the Procfile runs it (2 gunicorn workers) and 200 connections that each sent a
    # request line and then one header line every 2 s, read by the server at least once
    web = stack.web()
    base = web.url.removesuffix("/webhooks/hubspot")
    port = int(base.rsplit(":", 1)[1])
    with SlowHeaderClients("127.0.0.1", port, SLOW_CLIENTS, interval=2.0) as slow:
        assert slow.round_done.wait(15), "the slow clients never sent their second header line"
        # When HubSpot sends signed deliveries and a load balancer asks /healthz, one after another
        delivery_s, health_s, problems = timed_requests(base, SECRET, web.env["HUBHOOK_WEBHOOK_URL"],
                                                        DELIVERIES, timeout=5.0)
        still_open = slow.open()
    # Then every one was answered 200, each within 1 s
    assert not problems, problems
    assert len(delivery_s) == len(health_s) == DELIVERIES
    assert max(delivery_s) < 1.0, f"slowest delivery took {max(delivery_s):.2f} s"
    assert max(health_s) < 1.0, f"slowest /healthz took {max(health_s):.2f} s"
    # And the slow clients were still connected throughout: the server held them, it did not shed them
    assert still_open == SLOW_CLIENTS
    # And every delivery was enqueued, once
    wait_until(lambda: stack_client.llen("rq:queue:hubhook") + sum(  # RQ's queue and the portals' lanes
        stack_client.llen(k) for k in stack_client.scan_iter(match="hubhook:lane:*")) == DELIVERIES, 10,
        "the deliveries' jobs")
