"""A sender that delivers webhooks the way HubSpot does, for the resilience suite.

HubSpot signs each request (v3, timestamp in ms, fresh per attempt), puts up to 100 events in one,
keeps at most 10 requests in flight, treats anything but a 2xx, and any answer slower than 5 s, as a
failure, and retries the same events with a higher ``attemptNumber``
(https://developers.hubspot.com/docs/api-reference/error-handling). This sender
does exactly that, with backoffs of milliseconds instead of hours so a test takes seconds. It
remembers, per delivery, when it was acknowledged: the tests' definition of "HubSpot considers these
events delivered".
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from webhook_service.testing import make_event, signed_delivery

from .ledger import event_key


@dataclass
class Delivery:
    """One request's worth of events and what happened to it."""

    events: list[dict]
    attempts: int = 0
    acked_at: float | None = None                     # time.monotonic() of the 2xx
    results: list[str] = field(default_factory=list)  # status code or exception name per attempt

    @property
    def keys(self) -> set[str]:
        return {event_key(e) for e in self.events}


def contact_events(count: int, *, first_id: int = 1) -> list[dict]:
    """``count`` distinct contact.propertyChange events, one object each."""
    return [make_event("contact.propertyChange", first_id + i, property="email", value=f"v{i}")
            for i in range(count)]


def split(events: list[dict], rng: random.Random, *, low: int = 1, high: int = 100) -> list[list[dict]]:
    """Cut ``events`` into deliveries of random sizes between ``low`` and ``high`` (HubSpot's max: 100)."""
    out, i = [], 0
    while i < len(events):
        size = rng.randint(low, high)
        out.append(events[i:i + size])
        i += size
    return out


class Sender:
    """Delivers a list of deliveries with at most ``concurrency`` in flight, retrying until acknowledged."""

    def __init__(self, url: str, secret: str, *, signed_url: str | None = None, concurrency: int = 10,
                 timeout: float = 5.0, give_up_after: float = 120.0,
                 on_ack: Callable[[Delivery, requests.Response], None] | None = None) -> None:
        self.url, self.secret, self.signed_url = url, secret, signed_url or url
        self.concurrency, self.timeout, self.give_up_after = concurrency, timeout, give_up_after
        self.on_ack = on_ack
        self.deliveries: list[Delivery] = []
        self.results: Counter = Counter()
        self.errors: list[str] = []          # exceptions inside the sender itself (a failed on_ack check)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- running --------------------------------------------------------------------------------
    def start(self, deliveries: list[list[dict]], *, per_second: float | None = None) -> Sender:
        """Send in the background; ``per_second`` paces the first attempts (deliveries per second)."""
        self.deliveries = [Delivery(list(events)) for events in deliveries]
        self._next, self._t0, self._pace = 0, time.monotonic(), per_second
        self._threads = [threading.Thread(target=self._loop, name=f"sender-{i}", daemon=True)
                         for i in range(self.concurrency)]
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float) -> Sender:
        """Block until every delivery was acknowledged or given up."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), f"sender still busy after {timeout} s"
        return self

    def send(self, deliveries: list[list[dict]], *, per_second: float | None = None,
             timeout: float = 180.0) -> Sender:
        return self.start(deliveries, per_second=per_second).wait(timeout)

    # -- what happened --------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return not any(t.is_alive() for t in self._threads)

    def acked(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.acked_at is not None]

    def acked_keys(self) -> set[str]:
        return {k for d in self.acked() for k in d.keys}

    def unacked(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.acked_at is None]

    # -- internals ------------------------------------------------------------------------------
    def _loop(self) -> None:
        session = requests.Session()
        while True:
            with self._lock:
                index = self._next
                self._next += 1
            if index >= len(self.deliveries):
                return
            if self._pace:
                time.sleep(max(0.0, self._t0 + index / self._pace - time.monotonic()))
            try:
                self._deliver(session, self.deliveries[index])
            except Exception as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def _deliver(self, session: requests.Session, delivery: Delivery) -> None:
        give_up = time.monotonic() + self.give_up_after
        while time.monotonic() < give_up:
            events = [{**e, "attemptNumber": e.get("attemptNumber", 0) + delivery.attempts} for e in delivery.events]
            delivery.attempts += 1
            body, headers = signed_delivery(events, self.secret, self.signed_url)
            try:
                response = session.post(self.url, data=body, headers=headers, timeout=(1.0, self.timeout))
                result = str(response.status_code)
            except requests.RequestException as exc:
                response, result = None, type(exc).__name__
                session = requests.Session()  # the connection may be half dead
            delivery.results.append(result)
            with self._lock:
                self.results[result] += 1
            if response is not None and 200 <= response.status_code < 300:
                delivery.acked_at = time.monotonic()
                if self.on_ack is not None:
                    self.on_ack(delivery, response)
                return
            time.sleep(min(1.0, 0.05 * 2 ** min(delivery.attempts, 5)) * random.uniform(0.5, 1.0))
