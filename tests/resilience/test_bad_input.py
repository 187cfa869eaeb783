"""Bad input against a real ``hubhook web`` over HTTP.

Every row of ``badinput.rows`` gets exactly its status, never a 5xx, and a rejected request leaves
no trace in Redis (no job, no seen-key), so HubSpot's retry of a fixed delivery is not mistaken for
a duplicate. Then a worker drains what was accepted: each accepted event reaches its handler once,
and nothing odd-but-valid ends in the dead-letter registry.
"""
import socket
import time

import pytest
import requests

from webhook_service.devstack import free_port
from webhook_service.testing import make_event

from .badinput import PUBLIC, encode, rows, v3
from .ledger import event_key
from .procs import rss_kb, wait_until

pytestmark = pytest.mark.resilience


def footprint(client) -> tuple[int, int, int]:
    """Queued jobs (RQ's queue and the portals' lanes), digests marked seen (members of the seen-sets)
    and job hashes in hubhook's Redis."""
    def count(pattern: str) -> int:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    seen = sum(client.scard(key) for key in client.scan_iter(match="hubhook:seen:*", count=1000))
    lanes = sum(client.llen(key) for key in client.scan_iter(match="hubhook:lane:*", count=1000))
    return client.llen("rq:queue:hubhook") + lanes, seen, count("rq:job:*")


def send(base: str, row) -> int:
    return requests.request(row.method, base + row.path + row.query, data=row.body or None, headers=row.headers,
                            timeout=10).status_code


def now_ms() -> int:
    return int(time.time() * 1000)


def receiver(stack, **env):
    """``hubhook web`` behind its public URL; one gunicorn worker (8 threads) starts faster and suffices."""
    return stack.web(HUBHOOK_WEBHOOK_URL=PUBLIC, WEB_CONCURRENCY="1", **env)


def test_every_bad_input_gets_its_status_and_leaves_nothing_in_redis(stack, stack_client, ledger):
    # Given the receiver behind its public URL, and no worker yet
    web = receiver(stack)
    base = web.url.removesuffix("/webhooks/hubspot")
    # When every row of the matrix is sent
    wrong, traces, accepted = [], [], []
    for row in rows(now_ms(), internal_url=web.url):
        before = footprint(stack_client)
        status = send(base, row)
        after = footprint(stack_client)
        if status != row.expected:
            wrong.append(f"{row.name}: expected {row.expected}, got {status}")
        grew = (after[0] - before[0], after[1] - before[1] > 0, after[2] - before[2])
        if grew != ((1, True, 1) if row.expected == 200 else (0, False, 0)):
            traces.append(f"{row.name}: queue/seen/jobs went from {before} to {after}")
        if row.expected == 200:
            accepted.append(row)
    # Then each got the documented status and only accepted rows wrote to Redis
    assert not wrong, "\n".join(wrong)
    assert not traces, "\n".join(traces)

    # And a valid request replayed 100 times inside the window is acknowledged each time, enqueued once
    event = make_event("contact.propertyChange", 990_001, property="email", value="replayed")
    body, before = encode([event]), footprint(stack_client)
    headers = v3(body, now_ms())
    statuses = {requests.post(web.url, data=body, headers=headers, timeout=10).status_code for _ in range(100)}
    assert statuses == {200} and footprint(stack_client)[0] == before[0] + 1

    # And once a worker drains the queue, each accepted contact event ran its handler exactly once
    assert stack.once("worker", "--burst", timeout=120) == 0
    expected = {event_key(e) for r in accepted for e in r.events
                if e["subscriptionType"].startswith("contact.")} | {event_key(event)}
    calls = ledger.calls()
    assert set(calls) == expected and set(calls.values()) == {1}
    assert stack_client.zcard("rq:failed:hubhook") == 0, "an accepted delivery ended as a dead letter"


def test_clock_skew_of_299_s_is_accepted_and_301_s_rejected(stack):
    # Given the receiver
    web = receiver(stack)
    body = encode([make_event("contact.creation", 990_100)])
    # When timestamps 299 s and 301 s away from now are sent (signed, built at the moment of sending)
    got = {skew: requests.post(web.url, data=body, headers=v3(body, now_ms() + skew * 1000), timeout=10).status_code
           for skew in (-301, 301, -299, 299)}
    # Then within 300 s either way is accepted, beyond is not
    assert got == {-301: 401, 301: 401, -299: 200, 299: 200}


def test_bodies_over_1_mib_get_413_fast_without_growing_the_worker(stack, stack_client):
    # Given the receiver, warmed up by one oversized body of each kind
    web = receiver(stack)
    big = b"[" + b" " * (1024 * 1024 - 1) + b"]"

    def chunks(body: bytes, repeat: int = 1):
        for _ in range(repeat):
            yield from (body[i:i + 65536] for i in range(0, len(body), 65536))

    def timed(body, headers) -> tuple[int, float]:
        started = time.perf_counter()
        try:
            status = requests.post(web.url, data=body, headers=headers, timeout=10).status_code
        except requests.ConnectionError:  # the server may close before the client has sent it all
            status = -1
        return status, time.perf_counter() - started

    timed(big, v3(big, now_ms())), timed(chunks(big, 50), v3(b"", now_ms()))
    rss_before = sum(rss_kb(pid) for pid in web.worker_pids())
    # When a 1 MiB + 1 body (with Content-Length) and a chunked 50 MB body are sent, five times each
    sized = [timed(big, v3(big, now_ms())) for _ in range(5)]
    chunked = [timed(chunks(big, 50), v3(b"", now_ms())) for _ in range(5)]
    # and, chunked, a valid delivery of exactly 1 MiB and the same plus one byte
    exact = encode([make_event("contact.creation", 990_400)])
    exact += b" " * (1024 * 1024 - len(exact))
    at_cap = requests.post(web.url, data=chunks(exact), headers=v3(exact, now_ms()), timeout=10).status_code
    over = requests.post(web.url, data=chunks(exact + b" "), headers=v3(exact + b" ", now_ms()), timeout=10)
    rss_growth_mb = (sum(rss_kb(pid) for pid in web.worker_pids()) - rss_before) / 1024

    # Then everything over the cap is refused with 413, in well under 50 ms, and the worker did not grow
    print(f"\nS5: 413 in {sorted(round(t * 1000, 1) for _, t in sized)} ms (sized), "
          f"{sorted(round(t * 1000, 1) for _, t in chunked)} ms (chunked); worker RSS {rss_growth_mb:+.1f} MB")
    assert {s for s, _ in sized} == {413}
    assert {s for s, _ in chunked} <= {413, -1} and 413 in {s for s, _ in chunked}
    assert sorted(t for _, t in sized)[2] < 0.05, "median time to 413 for a 1 MiB + 1 body is over 50 ms"
    assert abs(rss_growth_mb) <= 5
    # and the cap is exact: 1 MiB is accepted, one byte more is not, and only the former reached Redis
    assert (at_cap, over.status_code) == (200, 413)
    assert footprint(stack_client)[0] == 1


def test_secret_rotation_accepts_both_secrets_then_only_the_new_one(stack):
    # Given the receiver configured with the old and the new client secret
    web = receiver(stack, HUBSPOT_CLIENT_SECRET="old-secret,new-secret")

    def post(url: str, secret: str, object_id: int) -> int:
        body = encode([make_event("contact.creation", object_id)])
        return requests.post(url, data=body, headers=v3(body, now_ms(), secret=secret), timeout=10).status_code

    # When deliveries signed with either arrive, then the old secret is removed and the receiver restarted
    during = (post(web.url, "old-secret", 1), post(web.url, "new-secret", 2))
    web.stop()
    web = receiver(stack, HUBSPOT_CLIENT_SECRET="new-secret", PORT=str(free_port()))
    after = (post(web.url, "old-secret", 3), post(web.url, "new-secret", 4))
    # Then both were accepted during the rotation and only the new one after it
    assert during == (200, 200) and after == (401, 200)


def test_slow_clients_do_not_delay_other_deliveries(stack):
    # Given the receiver and three clients trickling a body one byte every 0.1 s (slowloris)
    web = receiver(stack)
    port = int(web.url.split(":")[2].split("/")[0])
    slow = []
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[")
        slow.append(sock)
    try:
        # When twenty deliveries arrive meanwhile
        latencies = []
        for i in range(20):
            for sock in slow:
                sock.sendall(b" ")
            body = encode([make_event("contact.creation", 990_200 + i)])
            started = time.perf_counter()
            assert requests.post(web.url, data=body, headers=v3(body, now_ms()), timeout=5).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.1)  # the slow clients' pace
        # Then each was acknowledged promptly
        assert max(latencies) < 1.0, latencies
    finally:
        for sock in slow:
            sock.close()


def test_redis_down_gets_503_and_leaves_the_retry_acceptable(stack, stack_redis):
    # Given the receiver, and Redis killed
    web = receiver(stack)
    stack_redis.kill()
    body = encode([make_event("contact.creation", 990_300)])
    # When a delivery arrives, and again after Redis is back (HubSpot's retry)
    down = requests.post(web.url, data=body, headers=v3(body, now_ms()), timeout=10)
    health = requests.get(web.url.replace("/webhooks/hubspot", "/healthz"), timeout=10).status_code
    stack_redis.start()
    wait_until(web.healthy, 30, "the receiver to reach Redis again")
    retry = requests.post(web.url, data=body, headers=v3(body, now_ms()), timeout=10)
    # Then the first is refused with 503 (HubSpot retries it), and the retry is accepted as new
    assert (down.status_code, health) == (503, 503) and down.json()["status"] == 503
    assert retry.status_code == 200 and retry.json()["enqueued"] == 1
