"""The fake HubSpot's Webhooks Journal: the change events of every write, read from an offset the app keeps.

HubSpot appends an app's change events to a journal of files, each named by an offset (a UUID); the app
asks for the ``earliest``, the ``latest`` or the file(s) after an offset it holds, and gets pointers
``{url, expiresAt, currentOffset}``, answered 204 when nothing is new. Each ``url`` is a pre-signed
download link valid until ``expiresAt``, fetched without the app's token; the file is one JSON object
``{offset, journalEvents, publishedAt}``. Events stay readable for three days, and every call takes a
client-credentials token (https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide ;
https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/journal-entries/guide).

What HubSpot does not document, the fake decides, and the reader must not rely on it:

- one file per write (a write's changes, several properties at once, share one file and one ``occurredAt``,
  the same millisecond its webhooks carry); ``occurredAt`` is an ISO-8601 string;
- an offset older than the retention (or never issued) answers 404, as any 4xx that means "gone" would;
- a download link past its ``expiresAt`` answers S3's 403 ``AccessDenied``.

Tests shorten the three days with ``retention=`` and move the journal's clock with ``advance`` instead
of waiting. Subscriptions (``/webhooks-journal/subscriptions/{version}``) are kept and listed; until the
first one is created every change is journaled (as the fake's webhooks send every type by default), after
it only the subscribed object types, actions and properties.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from webhook_service.objects import ObjectType
from webhook_service.testing.fake_hubspot.http import json_body, json_response
from webhook_service.testing.fake_hubspot.shapes import ValidationFailed, error_body, iso, now_ms
from webhook_service.testing.fake_hubspot.webhooks import Change

#: HubSpot keeps journal events for three days.
RETENTION_SECONDS = 3 * 86400
#: How long a download link stays valid (HubSpot's is not published; the reader re-asks when one expires).
URL_LIFETIME_SECONDS = 300
#: The webhook action each journal action stands for (and back).
ACTIONS = {"creation": "CREATE", "propertyChange": "UPDATE", "deletion": "DELETE", "merge": "MERGE",
           "restore": "RESTORE", "associationChange": "ASSOCIATION_ADDED"}
_SUBSCRIPTION_TYPES = ("OBJECT", "ASSOCIATION", "APP_LIFECYCLE_EVENT", "LIST_MEMBERSHIP", "GDPR_PRIVACY_DELETION")


@dataclass
class JournalFile:
    """One file of the journal: its offset, events, publication time (the journal's clock) and, for
    tests of broken files, the raw body served instead of the events."""

    offset: str
    events: list[dict]
    published_ms: int
    raw: bytes | None = None

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps({"offset": self.offset, "journalEvents": self.events,
                           "publishedAt": iso(self.published_ms)}, separators=(",", ":")).encode()


class FakeJournal:
    """The journal of one app: ``append``/``record`` add files, the routes read them; see the module docstring."""

    def __init__(self, *, retention: float = RETENTION_SECONDS, url_lifetime: float = URL_LIFETIME_SECONDS,
                 portal_id: int = 62515) -> None:
        self.retention, self.url_lifetime, self.portal_id = retention, url_lifetime, portal_id
        self._files: list[JournalFile] = []
        self._where: dict[str, int] = {}
        self._skew_ms = 0
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._subscriptions: dict[int, dict] = {}
        self._subscription_ids = itertools.count(7_000_001)
        self.downloads = 0

    # -- what tests use ---------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The journal's clock: real time plus whatever ``advance`` added."""
        return now_ms() + self._skew_ms

    def advance(self, seconds: float) -> None:
        """Move the journal's clock on: files age, offsets and download links expire, nobody waits."""
        with self._lock:
            self._skew_ms += int(seconds * 1000)

    def append(self, events: list[dict], *, raw: bytes | None = None) -> str:
        """Publish one file holding ``events`` (journal-shaped) or, with ``raw``, that body as is; its offset."""
        offset = str(uuid.uuid4())
        with self._lock:
            self._where[offset] = len(self._files)
            self._files.append(JournalFile(offset, list(events), self.now_ms(), raw))
        return offset

    @property
    def files(self) -> list[JournalFile]:
        """Every file still readable, oldest first (a copy)."""
        with self._lock:
            return self._alive()

    @property
    def events(self) -> list[dict]:
        """Every event of every readable file, in journal order."""
        return [e for f in self.files for e in f.events]

    @property
    def subscriptions(self) -> list[dict]:
        with self._lock:
            return list(self._subscriptions.values())

    # -- from the store ---------------------------------------------------------------------------------
    def record(self, portal_id: int | None, changes: list[Change], occurred_ms: int) -> None:
        """Journal the changes of one write, made at ``occurred_ms``, as one file."""
        portal = portal_id if portal_id is not None else self.portal_id
        events: list[dict] = []
        updates: dict[tuple[str, str], dict] = {}
        for change in changes:
            event = self._event(portal, change, occurred_ms)
            if event is None:
                continue
            if event["action"] == "UPDATE":
                key = (change.otype.type_id, change.object_id)
                if key in updates:   # one UPDATE per object and write, several properties at once
                    updates[key]["propertyChanges"].update(event["propertyChanges"])
                    continue
                updates[key] = event
            events.append(event)
        events = [e for e in events if e["action"] != "UPDATE" or e["propertyChanges"]]
        if events:
            self.append(events)

    def _event(self, portal: int, change: Change, occurred_ms: int) -> dict | None:
        action = ACTIONS.get(change.action)
        if action is None:
            return None
        stamp = iso(occurred_ms)
        if action == "ASSOCIATION_ADDED":
            target: ObjectType = change.fields["to"]
            if not self._subscribed(change.otype, "ASSOCIATION_ADDED", None, association=True):
                return None
            return {"type": "association", "portalId": portal, "occurredAt": stamp, "action": action,
                    "fromObjectTypeId": change.otype.type_id, "fromObjectId": int(change.object_id),
                    "toObjectTypeId": target.type_id, "toObjectId": int(change.fields["to_id"]),
                    "associationTypeId": None, "associationCategory": "HUBSPOT_DEFINED", "isPrimary": False}
        event: dict[str, Any] = {"type": "crmObject", "portalId": portal, "occurredAt": stamp, "action": action,
                                 "objectTypeId": change.otype.type_id, "objectId": int(change.object_id)}
        if action == "UPDATE":
            name = change.fields["propertyName"]
            if not self._subscribed(change.otype, action, name):
                return None
            event["propertyChanges"] = {name: change.fields["propertyValue"]}
            return event
        if not self._subscribed(change.otype, action, None):
            return None
        if action == "MERGE":
            event["mergedObjectIds"] = change.fields.get("mergedObjectIds", [])
            event["newObjectId"] = change.fields.get("newObjectId")
        return event

    def _subscribed(self, otype: ObjectType, action: str, prop: str | None, *, association: bool = False) -> bool:
        with self._lock:
            subscriptions = list(self._subscriptions.values())
        if not subscriptions:
            return True
        for sub in subscriptions:
            if association:
                if sub["subscriptionType"] == "ASSOCIATION" and sub.get("objectTypeId") in (None, otype.type_id):
                    return True
                continue
            if sub["subscriptionType"] != "OBJECT" or sub.get("objectTypeId") != otype.type_id:
                continue
            if action not in sub.get("actions", []):
                continue
            if prop is None or not sub.get("properties") or prop in sub["properties"]:
                return True
        return False

    # -- the journal's own bookkeeping --------------------------------------------------------------------
    def _first_alive(self) -> int:
        """Index of the oldest file still readable (files are appended in the journal clock's order)."""
        horizon = self.now_ms() - int(self.retention * 1000)
        return next((i for i, f in enumerate(self._files) if f.published_ms >= horizon), len(self._files))

    def _alive(self) -> list[JournalFile]:
        return self._files[self._first_alive():]

    def _position(self, offset: str) -> int | None:
        """Where a still-readable offset is; None when it expired or was never issued."""
        position = self._where.get(offset)
        return position if position is not None and position >= self._first_alive() else None

    def _after(self, offset: str | None, count: int) -> list[JournalFile] | None:
        """The files after ``offset`` (None: from the earliest, inclusive); None when the offset is gone."""
        with self._lock:
            if offset is None:
                start = self._first_alive()
                return self._files[start:start + count]
            position = self._position(offset)
            if position is None:
                return None
            return self._files[position + 1:position + 1 + count]

    def _signature(self, offset: str, expires: int) -> str:
        return hmac.new(self._key, f"{offset}:{expires}".encode(), hashlib.sha256).hexdigest()

    def _pointer(self, item: JournalFile) -> dict:
        expires = self.now_ms() + int(self.url_lifetime * 1000)
        url = (f"{request.host_url.rstrip('/')}/_fake-s3/webhooks-journal/{item.offset}"
               f"?X-Amz-Expires={expires}&X-Amz-Signature={self._signature(item.offset, expires)}")
        return {"url": url, "expiresAt": iso(expires), "currentOffset": item.offset}

    # -- the routes ---------------------------------------------------------------------------------------
    def register(self, app: Flask, version: str) -> None:
        """Add the journal's routes (``version`` is the dated-version converter's rule, e.g. ``<date:ver>``)."""
        base = f"/webhooks-journal/journal/{version}"

        def rule(method: str, path: str, view: Any) -> None:
            app.add_url_rule(path, f"journal:{method}:{path}", view, methods=[method])

        rule("GET", f"{base}/earliest", lambda ver: self._one(self._after(None, 1)))
        rule("GET", f"{base}/latest", lambda ver: self._one(self.files[-1:]))
        rule("GET", f"{base}/offset/<offset>/next", lambda ver, offset: self._one(self._after(offset, 1), offset))
        rule("GET", f"{base}/batch/earliest/<count>", lambda ver, count: self._batch(self._after(None, _count(count))))
        rule("GET", f"{base}/batch/latest/<count>", lambda ver, count: self._batch(self.files[-_count(count):]))
        rule("GET", f"{base}/batch/<offset>/next/<count>",
             lambda ver, offset, count: self._batch(self._after(offset, _count(count)), offset))
        rule("POST", f"{base}/batch/read", lambda ver: self._batch_read())
        rule("GET", "/_fake-s3/webhooks-journal/<offset>", self._download)
        subs = f"/webhooks-journal/subscriptions/{version}"
        rule("POST", subs, lambda ver: self._subscribe())
        rule("GET", subs, lambda ver: json_response({"results": self.subscriptions}))
        rule("DELETE", f"{subs}/<int:sid>", lambda ver, sid: self._unsubscribe(sid))

    def _one(self, files: list[JournalFile] | None, offset: str | None = None) -> Response:
        if files is None:
            return _gone(offset or "")
        if not files:
            return Response(status=204)
        return json_response(self._pointer(files[0]))

    def _batch(self, files: list[JournalFile] | None, offset: str | None = None) -> Response:
        if files is None:
            return _gone(offset or "")
        if not files:
            return Response(status=204)
        started = iso(now_ms())
        return json_response({"status": "COMPLETE", "results": [self._pointer(f) for f in files],
                              "startedAt": started, "completedAt": iso(now_ms())})

    def _batch_read(self) -> Response:
        inputs = json_body().get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return json_response(error_body("inputs must be a list of offsets", "VALIDATION_ERROR"), 400)
        with self._lock:
            found = {o: self._files[p] for o in map(str, inputs) if (p := self._position(o)) is not None}
        results = [self._pointer(found[o]) for o in map(str, inputs) if o in found]
        missing = [str(o) for o in inputs if str(o) not in found]
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            body.update(numErrors=len(missing), errors=[{"status": "error", "category": "OBJECT_NOT_FOUND",
                                                         "message": "offset not found or expired",
                                                         "context": {"offsets": missing}}])
        return json_response(body, 207 if missing else 200)

    def _download(self, offset: str) -> Response:
        expires = request.args.get("X-Amz-Expires", "")
        signature = request.args.get("X-Amz-Signature", "")
        if not expires.isdigit() or not hmac.compare_digest(signature, self._signature(offset, int(expires))):
            return _s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match", 403)
        if self.now_ms() > int(expires):
            return _s3_error("AccessDenied", "Request has expired", 403)
        with self._lock:
            position = self._position(offset)
            item = self._files[position] if position is not None else None
            self.downloads += 1
        if item is None:
            return _s3_error("NoSuchKey", "The specified key does not exist.", 404)
        return Response(item.body(), status=200, content_type="application/json")

    def _subscribe(self) -> Response:
        body = json_body()
        kind = body.get("subscriptionType")
        if kind not in _SUBSCRIPTION_TYPES:
            return json_response(error_body(f"subscriptionType must be one of {', '.join(_SUBSCRIPTION_TYPES)}",
                                            "VALIDATION_ERROR"), 400)
        if kind == "OBJECT" and (not body.get("objectTypeId") or not body.get("actions")):
            return json_response(error_body("an OBJECT subscription needs objectTypeId and actions",
                                            "VALIDATION_ERROR"), 400)
        subscription = {"id": next(self._subscription_ids), "subscriptionType": kind,
                        "portalId": body.get("portalId"), "objectTypeId": body.get("objectTypeId"),
                        "actions": list(body.get("actions") or []), "properties": list(body.get("properties") or []),
                        "objectIds": list(body.get("objectIds") or []), "createdAt": iso(now_ms())}
        with self._lock:
            self._subscriptions[subscription["id"]] = subscription
        return json_response(subscription, 201)

    def _unsubscribe(self, sid: int) -> Response:
        with self._lock:
            found = self._subscriptions.pop(sid, None)
        if found is None:
            return json_response(error_body("subscription not found", "OBJECT_NOT_FOUND"), 404)
        return Response(status=204)


def is_journal_path(path: str) -> bool:
    """Journal calls are exempt from the CRM's daily and ten-secondly limits; downloads need no token."""
    return path.startswith("/webhooks-journal/") or path.startswith("/_fake-s3/")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValidationFailed("count must be a whole number of at least 1")
    return int(text)


def _gone(offset: str) -> Response:
    return json_response(error_body(f"offset {offset} not found: it expired or was never issued",
                                    "OBJECT_NOT_FOUND"), 404)


def _s3_error(code: str, message: str, status: int) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>")
    return Response(body, status=status, content_type="application/xml")


