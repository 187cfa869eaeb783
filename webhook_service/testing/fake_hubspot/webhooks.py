"""The fake HubSpot's webhooks: every write becomes the events a real portal would send to an app.

HubSpot POSTs a JSON array of up to 100 events to the app's one target URL, signed with the app's
client secret (``X-HubSpot-Signature-v3`` plus the older v1 header), and retries a failed request
(connection refused, no answer within 5 seconds, any 4xx or 5xx) up to 10 times over the following
24 hours (https://developers.hubspot.com/docs/api-reference/error-handling ;
https://developers.hubspot.com/docs/api/webhooks). Here the same happens from one background thread,
a moment after the write (the API answer never waits), with the retry delays scaled down to seconds.

Who made the change is what HubSpot puts in ``changeSource``/``sourceId``: writes through the API carry
``INTEGRATION`` and the writing app's id (as deliveries captured from real portals show), writes made
with the fake's Python helpers stand for a user in HubSpot's UI (``CRM_UI``, ``userId:<n>``). A request
with the fake-only header ``X-Fake-HubSpot-Emit: none`` changes the CRM without any webhook:
``hubhook trigger`` sends its own signed delivery and must not cause a second one. Real HubSpot has no
such header (and ignores unknown headers).
"""
from __future__ import annotations

import contextvars
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from webhook_service.objects import GENERIC_PREFIX, ObjectType, name_for_type_id
from webhook_service.receiver.signature import signed_headers

log = logging.getLogger(__name__)

#: The fake-only request header that turns emission off for one write (its only value: ``none``).
EMIT_HEADER = "X-Fake-HubSpot-Emit"
#: Object types with classic (``contact.creation``) subscriptions; every other type, custom objects
#: included, sends generic ``object.*`` events with ``objectTypeId``
#: (https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions).
CLASSIC_TYPES = frozenset({"contact", "company", "deal", "ticket", "product", "line_item"})
GENERIC_ACTIONS = ("creation", "deletion", "merge", "restore", "propertyChange", "associationChange")
#: HubSpot's batch cap: "Each request can contain up to 100 events".
MAX_BATCH = 100
#: HubSpot gives up after 10 retries spread over 24 hours; these are the same ten, in seconds.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: A user editing in HubSpot's UI, for writes made through the fake's Python helpers.
UI_ACTOR = ("CRM_UI", "userId:1001")

_actor: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("fake_hubspot_actor", default=None)


@contextmanager
def acting_as(change_source: str, source_id: str, *, emit: bool = True) -> Iterator[None]:
    """Attribute the writes made inside to ``change_source``/``source_id`` (``emit=False``: no webhooks)."""
    token = _actor.set((change_source, source_id) if emit else ("", ""))
    try:
        yield
    finally:
        _actor.reset(token)


def emitting() -> bool:
    """False inside ``acting_as(..., emit=False)`` (the ``X-Fake-HubSpot-Emit: none`` header): no event at all."""
    actor = _actor.get()
    return actor is None or bool(actor[0])


@dataclass(frozen=True)
class Change:
    """What happened to one record, before it is dressed as a HubSpot event."""

    action: str                 # creation, propertyChange, deletion, merge, restore, associationChange, ...
    otype: ObjectType
    object_id: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One POST the fake made: HTTP status (None when no answer came), attempt number, events sent."""

    status: int | None
    attempt: int
    events: list[dict]
    error: str | None = None


def subscription_type(otype: ObjectType, action: str) -> tuple[str, bool] | None:
    """(subscriptionType, generic?) HubSpot sends for ``action`` on ``otype``; None when it sends none."""
    if otype.name in CLASSIC_TYPES and action in otype.actions:
        return f"{otype.name}.{action}", False
    if action in GENERIC_ACTIONS and otype.name != "conversation":
        return f"{GENERIC_PREFIX}.{action}", True
    return None


class WebhookEmitter:
    """Turns a portal's changes into signed deliveries to ``url``; see the module docstring."""

    def __init__(self, url: str, secret: str, *, app_id: int = 54321, portal_id: int = 62515,
                 subscriptions: Iterable[str] | None = None, retry_delays: Iterable[float] = RETRY_DELAYS,
                 timeout: float = 5.0, batch_window: float = 0.05) -> None:
        self.url, self.app_id, self.portal_id = url, app_id, portal_id
        self._secret = secret
        self.subscriptions = frozenset(subscriptions) if subscriptions is not None else None
        self.retry_delays, self.timeout, self.batch_window = tuple(retry_delays), timeout, batch_window
        self._event_ids = itertools.count(int(time.time() * 1000) % 10**9)
        self._subscription_ids: dict[str, int] = {}
        self._pending: list[dict] = []
        self._retries: list[tuple[float, int, int, list[dict]]] = []   # (due, seq, attempt, events)
        self._seq = itertools.count()
        self._busy = False
        self._stopped = False
        self._cond = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="fake-hubspot-webhooks", daemon=True)
        self._thread.start()

    # -- what tests look at ----------------------------------------------------------------------
    @property
    def deliveries(self) -> list[Delivery]:
        """Every POST made so far, oldest first (a copy)."""
        with self._cond:
            return list(self._deliveries)

    @property
    def events(self) -> list[dict]:
        """The events of every delivery the target accepted (2xx), in the order sent."""
        return [e for d in self.deliveries if d.status is not None and d.status < 300 for e in d.events]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending, in flight or scheduled for a retry; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._retries or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(self.timeout + 1)
        self._session.close()

    # -- from the store ------------------------------------------------------------------------
    def record(self, portal_id: int | None, changes: list[Change], occurred: int | None = None) -> None:
        """Queue the events of ``changes`` (made now or at ``occurred`` ms, by whoever ``acting_as`` names)."""
        change_source, source_id = _actor.get() or UI_ACTOR
        if not change_source:
            return
        occurred = time.time_ns() // 1_000_000 if occurred is None else occurred
        with self._cond:    # ids are handed out in order, whichever request thread writes
            events = [e for c in changes
                      if (e := self._event(portal_id, c, occurred, change_source, source_id)) is not None]
            if events:
                self._pending.extend(events)
                self._cond.notify_all()

    def _event(self, portal_id: int | None, change: Change, occurred: int, change_source: str,
               source_id: str) -> dict | None:
        found = subscription_type(change.otype, change.action)
        if found is None:
            return None
        kind, generic = found
        if self.subscriptions is not None and kind not in self.subscriptions and \
                f"{name_for_type_id(change.otype.type_id)}.{change.action}" not in self.subscriptions:
            return None
        key = f"{kind}:{change.otype.type_id}" if generic else kind
        if key not in self._subscription_ids:
            self._subscription_ids[key] = 1000 + len(self._subscription_ids)
        event: dict[str, Any] = {
            "eventId": next(self._event_ids), "subscriptionId": self._subscription_ids[key],
            "portalId": portal_id if portal_id is not None else self.portal_id, "appId": self.app_id,
            "occurredAt": occurred, "subscriptionType": kind, "attemptNumber": 0,
            "objectId": int(change.object_id)}
        if generic:
            event["objectTypeId"] = change.otype.type_id
        if change.action == "associationChange":
            target: ObjectType = change.fields["to"]
            if generic:
                event.update(fromObjectTypeId=change.otype.type_id, fromObjectId=int(change.object_id),
                             toObjectTypeId=target.type_id)
            else:
                event.update(associationType=f"{change.otype.name}_TO_{target.name}".upper(),
                             fromObjectId=int(change.object_id))
            event.update(toObjectId=int(change.fields["to_id"]), associationRemoved=False,
                         isPrimaryAssociation=False)
        else:
            event.update(change.fields)
        event.update(changeSource=change_source, sourceId=source_id)
        return event

    # -- the sending thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._pending and not self._due():
                    self._cond.wait(self._retries[0][0] - time.monotonic() if self._retries else None)
                if self._stopped:
                    return
                self._busy, fresh = True, bool(self._pending)
            if fresh:
                time.sleep(self.batch_window)    # let the rest of a write's events join the batch
            with self._cond:
                if fresh:
                    batch, self._pending, attempt = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:], 0
                else:
                    _, _, attempt, batch = heapq.heappop(self._retries)
            try:
                self._send(batch, attempt)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _due(self) -> bool:
        return bool(self._retries) and self._retries[0][0] <= time.monotonic()

    def _send(self, batch: list[dict], attempt: int) -> None:
        events = [{**e, "attemptNumber": attempt} for e in batch]
        body = json.dumps(events, separators=(",", ":")).encode()
        status, error = None, None
        try:
            response = self._session.post(self.url, data=body, headers=signed_headers(self._secret, body, self.url),
                                          timeout=self.timeout)
            status = response.status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        with self._cond:
            self._deliveries.append(Delivery(status, attempt, events, error))
            if status is not None and status < 300:
                return
            if attempt < len(self.retry_delays):
                due = time.monotonic() + self.retry_delays[attempt]
                heapq.heappush(self._retries, (due, next(self._seq), attempt + 1, batch))
                log.info("fake HubSpot: webhook delivery of %d event(s) to %s failed (%s); retry %d of %d in %gs",
                         len(batch), self.url, status or error, attempt + 1, len(self.retry_delays),
                         self.retry_delays[attempt])
            else:
                log.warning("fake HubSpot: gave up on a webhook delivery of %d event(s) to %s after %d attempts "
                            "(%s)", len(batch), self.url, attempt + 1, status or error)
