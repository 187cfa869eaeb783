"""A fake HubSpot API served over real HTTP, for hubhook's tests, demo and benchmarks.

It speaks HubSpot's documented shapes so the real API client runs unchanged against it, and
it reproduces what makes HubSpot hard: 207 partial batches, merged ids that resolve to a new
record, archived records, search lag, the 10,000-result search cap, rolling rate limits, OAuth
expiry, and scripted faults. Data lives per portal: ``add(..., portal_id=42)`` is visible only
to tokens of hub 42 (OAuth tokens from ``issue_code(42)``, or ``add_token(t, 42)``); records
added without a portal belong to the portal of plain bearer tokens. Search shows a write only
``search_lag`` seconds after it; meanwhile it keeps showing the previous version, if any.

It refuses what HubSpot refuses: writes naming a property the portal lacks or a non-number for a
number property (400), a new contact with an existing email (409), API versions HubSpot never
shipped and routes the fake lacks (404 saying which), private-app calls past the daily limit (429
DAILY), token requests from another app (400). Rate-limit headers follow the token kind: private-app
tokens (static ones) get the daily headers, the fake's OAuth tokens do not.

Given a target (``webhook_url=``/``webhook_secret=``, or ``emit_webhooks_to``), it also sends the signed
webhooks a portal sends its app on every write, through the API or the helpers below (see
``fake_hubspot.webhooks``); the fake-only header ``X-Fake-HubSpot-Emit: none`` silences one request.

    python -m webhook_service.testing.fake_hubspot --port 8900 --seed-demo
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from webhook_service.objects import lookup
from webhook_service.testing.fake_hubspot import crm
from webhook_service.testing.fake_hubspot.auth import OAuthApp, TokenBook, auth_error
from webhook_service.testing.fake_hubspot.journal import (
    RETENTION_SECONDS,
    URL_LIFETIME_SECONDS,
    FakeJournal,
    is_journal_path,
)
from webhook_service.testing.fake_hubspot.policy import Call, Faults, RateLimits, fault_body
from webhook_service.testing.fake_hubspot.shapes import (
    ValidationFailed,
    error_body,
    iso,
    now_ms,
    rate_limit_body,
    render,
)
from webhook_service.testing.fake_hubspot.store import Portals
from webhook_service.testing.fake_hubspot.webhooks import (
    EMIT_HEADER,
    RETRY_DELAYS,
    Change,
    WebhookEmitter,
    acting_as,
    emitting,
)

#: The HubSpot user the fake's test helpers act as: ``add``/``update`` are changes "made in the UI".
UI_USER_ID = 1_000_001

log = logging.getLogger(__name__)


class _OrderedJSON(DefaultJSONProvider):
    """Flask sorts keys by default; HubSpot's field order reads better in test failures."""

    sort_keys = False


class _QuietHandler(WSGIRequestHandler):
    """No access log: benchmarks send tens of thousands of requests."""

    def log_request(self, *args: Any) -> None:
        pass


class FakeHubSpot:
    """HubSpot's CRM, associations, conversations and OAuth APIs on ``url``; see the module docstring."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, tokens: set[str] | None = None,
                 latency: float = 0.0, search_lag: float = 0.0, search_limit_per_second: int | None = 5,
                 burst_limit: tuple[int, float] | None = None,
                 daily_limit: int | None = RateLimits.PRIVATE_APP_DAILY,
                 oauth_app: OAuthApp | None = None, webhook_url: str | None = None,
                 webhook_secret: str | None = None, app_id: int = 54321, **webhook_options: Any) -> None:
        self.host, self.port, self.latency = host, port, latency
        self.token_lifetime = 1800
        self.app_id = app_id
        self._limits = RateLimits(search_limit_per_second, burst_limit, daily_limit)
        self._tokens, self._portals = TokenBook(tokens, oauth_app), Portals(search_lag)
        self._emitter: WebhookEmitter | None = None
        self.journal = FakeJournal()     # serves an empty journal until serve_journal() records writes
        self._journaling = False
        if webhook_url is not None:
            if not webhook_secret:
                raise ValueError("webhook_url needs webhook_secret: the app's client secret that signs deliveries")
            self.emit_webhooks_to(webhook_url, webhook_secret, **webhook_options)
        self._faults = Faults()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._server: BaseWSGIServer | None = None
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeHubSpot:
        """Serve in a daemon thread, one thread per request so ``latency`` overlaps."""
        self._server = make_server(self.host, self.port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},  # fast stop()
                         name="fake-hubspot", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._emitter is not None:
            self._portals.listen(None)
            self._emitter.stop()
            self._emitter = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- webhooks ------------------------------------------------------------------------------
    def emit_webhooks_to(self, url: str, secret: str, *, portal_id: int = 62515,
                         subscriptions: Iterable[str] | None = None, retry_delays: Iterable[float] = RETRY_DELAYS,
                         timeout: float = 5.0, batch_window: float = 0.05) -> WebhookEmitter:
        """Send every later write's webhooks to ``url``, signed with ``secret``, as app ``app_id``.

        ``portal_id`` is the ``portalId`` of the default portal (the one of plain bearer tokens);
        ``subscriptions`` limits the subscription types sent (``deal.creation``, ``object.creation``,
        ``p_cars.creation``; default: all); ``retry_delays`` are the waits before each retry of a
        failed delivery (HubSpot's ten retries over 24 hours, scaled down; ``()`` for none)."""
        if self._emitter is not None:
            self._emitter.stop()
        self._emitter = WebhookEmitter(url, secret, app_id=self.app_id, portal_id=portal_id,
                                       subscriptions=subscriptions, retry_delays=retry_delays, timeout=timeout,
                                       batch_window=batch_window)
        self._portals.listen(self._changed)
        return self._emitter

    @property
    def webhooks(self) -> WebhookEmitter:
        """The emitter (``deliveries``, ``events``, ``wait_idle()``); RuntimeError when none is set."""
        if self._emitter is None:
            raise RuntimeError("this fake HubSpot emits no webhooks: pass webhook_url= or call emit_webhooks_to()")
        return self._emitter

    def serve_journal(self, *, retention: float = RETENTION_SECONDS, url_lifetime: float = URL_LIFETIME_SECONDS,
                      portal_id: int = 62515) -> FakeJournal:
        """Journal every later write (``self.journal``): the Webhooks Journal, read with a client-credentials
        token; ``retention`` (three days) and ``url_lifetime`` (download links) shortened by tests."""
        self.journal.retention, self.journal.url_lifetime = retention, url_lifetime
        self.journal.portal_id = portal_id
        self._journaling = True
        self._portals.listen(self._changed)
        return self.journal

    def _changed(self, portal_id: int | None, changes: list[Change]) -> None:
        occurred = now_ms()  # one change, one occurredAt, whichever path carries it
        if self._emitter is not None:
            self._emitter.record(portal_id, changes, occurred)
        if self._journaling and emitting():
            self.journal.record(portal_id, changes, occurred)

    # -- data ----------------------------------------------------------------------------------
    def add(self, object_type: str, object_id: str | int | None = None, properties: dict | None = None, *,
            portal_id: int | None = None, modified_at_ms: int | None = None,
            created_at_ms: int | None = None) -> dict:
        """Create a record (as if made in HubSpot's UI) and return it as the API would, all properties.

        Properties the portal lacks are defined as they are seeded (numbers from int/float values,
        strings otherwise), so API writes may use them afterwards; a value unfit for an existing
        property (``amount="lots"``) raises ValueError."""
        otype, now = lookup(object_type), now_ms()
        modified = modified_at_ms if modified_at_ms is not None else now
        created = created_at_ms if created_at_ms is not None else min(modified, now)
        store = self._portals.get(portal_id)
        store.properties.learn(otype, properties or {})
        object_id = self._portals.ids.claim(object_id)
        record = store.write(otype, object_id, properties or {}, at_ms=modified,
                             created_ms=created, source="CRM_UI", new=True, user_id=UI_USER_ID)
        return render(record, otype, record.properties)

    def update(self, object_type: str, object_id: str | int, properties: dict, *,
               modified_at_ms: int | None = None, portal_id: int | None = None) -> dict:
        """Change properties (as a user would); the modified date moves to now or ``modified_at_ms``."""
        otype, store = lookup(object_type), self._portals.holding(object_type, object_id, portal_id)
        current = store.find(otype, str(object_id))
        if current is None:
            raise KeyError(f"{otype.api_name}/{object_id} does not exist or is archived")
        store.properties.learn(otype, properties)
        record = store.write(otype, current.id, properties, source="CRM_UI", user_id=UI_USER_ID,
                             at_ms=modified_at_ms if modified_at_ms is not None else now_ms())
        return render(record, otype, record.properties)

    def archive(self, object_type: str, object_id: str | int, *, portal_id: int | None = None) -> None:
        """Soft-delete, like HubSpot's recycling bin: readable only with ``archived=true``."""
        store = self._portals.holding(object_type, object_id, portal_id)
        if store.archive(lookup(object_type), str(object_id), now_ms()) is None:
            raise KeyError(f"{object_type}/{object_id} does not exist or is already archived")

    def restore(self, object_type: str, object_id: str | int, *, portal_id: int | None = None) -> dict:
        """Take a record out of the recycling bin (as a user would); returns it as the API would."""
        otype = lookup(object_type)
        store = self._portals.holding(object_type, object_id, portal_id)
        record = store.restore(otype, str(object_id), now_ms())
        if record is None:
            raise KeyError(f"{object_type}/{object_id} is not in the recycling bin")
        return render(record, otype, record.properties)

    def gdpr_delete(self, object_type: str, object_id: str | int, *, portal_id: int | None = None) -> None:
        """Permanently delete a record and its associations, as a GDPR deletion does."""
        store = self._portals.holding(object_type, object_id, portal_id)
        if not store.purge(lookup(object_type), str(object_id)):
            raise KeyError(f"{object_type}/{object_id} does not exist")

    def unassociate(self, from_type: str, from_id: str | int, to_type: str, to_id: str | int, *,
                    portal_id: int | None = None) -> None:
        """Remove the associations between two records, both ways."""
        store = self._portals.holding(from_type, from_id, portal_id)
        store.unassociate(lookup(from_type), str(from_id), lookup(to_type), str(to_id))

    def merge(self, object_type: str, primary_id: str | int, merged_id: str | int, *,
              portal_id: int | None = None) -> str:
        """Merge two records the 2024 way: returns the id of the new record both old ids now resolve to."""
        store = self._portals.holding(object_type, primary_id, portal_id)
        record = store.merge(lookup(object_type), str(primary_id), str(merged_id), self._portals.ids.claim(),
                             now_ms())
        if record is None:
            raise KeyError(f"cannot merge {object_type} {primary_id} and {merged_id}: "
                           "one is missing or archived, or both are the same record")
        return record.id

    def associate(self, from_type: str, from_id: str | int, to_type: str, to_id: str | int,
                  type_id: int | None = None, label: str | None = None, *,
                  portal_id: int | None = None) -> None:
        """Associate two records both ways with HubSpot's default types; ``type_id`` adds a labeled one."""
        store = self._portals.holding(from_type, from_id, portal_id)
        store.associate(lookup(from_type), str(from_id), lookup(to_type), str(to_id), type_id, label)

    def define_property(self, object_type: str, name: str, kind: str = "string", *,
                        portal_id: int | None = None) -> None:
        """Give a portal a property (as creating it in HubSpot's settings would), so API writes may set
        it: ``kind`` is string, number, integer, datetime, enumeration or bool; number and integer
        values are checked on writes."""
        self._portals.get(portal_id).properties.define(lookup(object_type), name, kind)

    def add_thread(self, thread_id: str | int, *, portal_id: int | None = None, **fields: Any) -> dict:
        """A conversations thread in the PublicThread shape; ``fields`` override defaults
        (https://developers.hubspot.com/docs/api-reference/legacy/conversations/guide)."""
        stamp = iso(now_ms())
        thread = {"id": str(thread_id), "createdAt": stamp, "status": "OPEN", "inboxId": "1",
                  "associatedContactId": "1", "archived": False, "spam": False, "originalChannelId": "1000",
                  "originalChannelAccountId": "1", "latestMessageTimestamp": stamp,
                  "latestMessageReceivedTimestamp": stamp, "threadAssociations": {}, **fields}
        self._portals.get(portal_id).threads[str(thread_id)] = thread
        return thread

    # -- auth ------------------------------------------------------------------------------------
    def issue_code(self, hub_id: int, scopes: list[str] | None = None, *,
                   redirect_uri: str | None = None) -> str:
        """An OAuth authorization code for ``hub_id``, to exchange at ``/oauth/v1/token`` with the app's
        client id and secret and the install's redirect URI (``redirect_uri``, when given, must match)."""
        return self._tokens.issue_code(hub_id, scopes or ["oauth", "crm.objects.contacts.read"], redirect_uri)

    @property
    def oauth_app(self) -> OAuthApp | None:
        """The app the token endpoint accepts: as given, else the first one that obtained a token."""
        return self._tokens.app

    def spend_daily(self, requests: int, *, portal_id: int | None = None) -> None:
        """Count ``requests`` against a portal's daily limit, as other private apps of the account would."""
        self._limits.spend_daily(portal_id, requests)

    def add_token(self, token: str, portal_id: int | None = None) -> None:
        """Accept ``token`` as a private-app token of ``portal_id``."""
        self._tokens.add_static(token, portal_id)

    # -- faults and observation ----------------------------------------------------------------
    def fail_next(self, n: int, status: int = 502, *, path_contains: str | None = None,
                  body: dict | None = None, headers: dict | None = None) -> None:
        """Answer the next ``n`` matching requests with ``status`` (HubSpot-shaped body unless given)."""
        self._faults.add("fail", n, path_contains, status=status, body=body, headers=headers)

    def hang_next(self, n: int, seconds: float, *, path_contains: str | None = None) -> None:
        """Delay the next ``n`` matching requests by ``seconds`` before answering them normally."""
        self._faults.add("hang", n, path_contains, seconds=seconds)

    @property
    def calls(self) -> list[Call]:
        """Every request answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def count(self, *, path_contains: str | None = None, method: str | None = None) -> int:
        """How many answered requests match a path fragment and/or method."""
        return sum(1 for c in self.calls if (path_contains is None or path_contains in c.path)
                   and (method is None or c.method == method.upper()))

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # -- internals -------------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.json = _OrderedJSON(app)
        crm.register(app, self._tokens, lambda: self.token_lifetime)
        self.journal.register(app, "<date:ver>")
        app.before_request(self._gate)
        app.after_request(self._record)
        app.teardown_request(self._forget_actor)
        app.register_error_handler(ValidationFailed,
                                   lambda e: (jsonify(error_body(str(e), "VALIDATION_ERROR")), 400))
        app.register_error_handler(HTTPException, _http_error)
        app.register_error_handler(Exception, self._crash)
        return app

    def _gate(self) -> ResponseReturnValue | None:
        """Latency, scripted faults, auth and rate limits, in that order, before any route runs."""
        g.at, g.window, g.new_id = time.time(), None, self._portals.ids.claim
        oauth = request.path.startswith("/oauth/")
        g.token, g.portal, failed = (None, None, None) if oauth else \
            self._tokens.identify(request.headers.get("Authorization"))
        if self.latency:
            time.sleep(self.latency)
        hang = self._faults.take("hang", request.path)
        if hang is not None:
            time.sleep(hang.seconds)
        fail = self._faults.take("fail", request.path)
        if fail is not None:
            return jsonify(fail.body or fault_body(fail.status)), fail.status, fail.headers or {}
        if oauth or request.path.startswith("/_fake-s3/"):   # pre-signed downloads carry no token
            return None
        if is_journal_path(request.path):   # exempt from the CRM's limits; only the app's own token
            if failed or not self._tokens.is_app_token(g.token):
                return jsonify(auth_error(failed or "INVALID_AUTHENTICATION")), 401
            g.oauth = False
            return None
        if failed:
            return jsonify(auth_error(failed)), 401
        emit = request.headers.get(EMIT_HEADER, "").strip().lower() != "none"
        g.actor = acting_as("INTEGRATION", str(self.app_id), emit=emit)   # API writes are the app's
        g.actor.__enter__()
        g.store, g.oauth = self._portals.get(g.portal), self._tokens.is_oauth(g.token)
        search = request.method == "POST" and request.path.endswith("/search")
        window = self._limits.window(g.portal, search)
        g.window = None if search else window       # search answers carry no rate-limit headers
        if not window.admit():
            return jsonify(rate_limit_body(*(RateLimits.SEARCH if search else RateLimits.BURST))), 429
        if not g.oauth and not self._limits.take_daily(g.portal):
            return jsonify(rate_limit_body(*RateLimits.DAILY)), 429
        return None

    @staticmethod
    def _forget_actor(error: BaseException | None) -> None:
        actor = g.pop("actor", None)
        if actor is not None:
            actor.__exit__(None, None, None)

    def _record(self, response: Response) -> Response:
        """Add the rate-limit headers HubSpot sends (never on search) and remember the call."""
        if g.get("window") is not None:
            response.headers.update(self._limits.headers(g.window, oauth=g.oauth, portal=g.portal))
        token = g.get("token")
        call = Call(request.method, request.path, request.args.to_dict(), request.get_json(silent=True),
                    response.status_code, g.get("at", time.time()),
                    hashlib.sha256(token.encode()).hexdigest()[:12] if token else None, g.get("portal"))
        with self._lock:
            self._calls.append(call)
        return response

    def _crash(self, error: Exception) -> tuple[Response, int]:
        log.exception("fake HubSpot failed on %s %s", request.method, request.path)
        body = error_body(f"Internal error in the fake: {type(error).__name__}", "INTERNAL_ERROR")
        return jsonify(body), 500


#: A ``YYYY-MM`` path segment: a dated API version, shipped or not.
_DATED = re.compile(r"/(\d{4}-\d{2})(?:/|$)")


def _http_error(error: HTTPException) -> tuple[Response, int]:
    """Werkzeug's errors in HubSpot's body. A path or method the fake has no route for is a 404 that
    says so (HubSpot may serve it; the fake does not), and a dated version HubSpot never shipped is
    the 404 of a path HubSpot does not serve, never the OBJECT_NOT_FOUND of a missing record."""
    if error.code not in (404, 405):
        return jsonify(error_body(f"{error.name}: {request.method} {request.path}", "VALIDATION_ERROR")), \
            error.code or 400
    dated = _DATED.search(request.path)
    if dated and dated.group(1)[-2:] not in ("03", "09"):
        message = (f"resource not found: HubSpot serves no API version {dated.group(1)}; dated versions ship "
                   "in March and September (YYYY-03, YYYY-09, e.g. 2026-03 or 2026-09)")
        return jsonify(error_body(message, "RESOURCE_NOT_FOUND")), 404
    message = (f"fake HubSpot does not implement {request.method} {request.path}: it serves the CRM object, "
               "search, associations, properties, conversations-thread and OAuth-token routes hubhook uses")
    return jsonify(error_body(message, "FAKE_NOT_IMPLEMENTED")), 404

