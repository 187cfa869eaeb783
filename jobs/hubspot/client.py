"""The HubSpot API client every job, poller and handler uses.

requests with explicit connect/read timeouts; urllib3's ``Retry`` for short transport-level retries
(connection errors, 500/502/503/504, POST included because HubSpot's batch read and search are reads;
creates, which are not idempotent, only retry a connection that never reached HubSpot); the shared
RateGovernor before every call and its headers fed back after; a 429 raises RateLimited carrying the
wait the governor chose, so the job is rescheduled instead of sleeping in a worker; a 401 refreshes an
OAuth token once and retries. Tokens go in the Authorization header only: never in a URL, a log line,
an error message or a job argument.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from jobs.hubspot.rate_budget import POLICY_WAIT, RateGovernor
from jobs.hubspot.tokens import Auth, StaticAuth
from webhook_service import objects
from webhook_service.config import Config
from webhook_service.errors import (
    HubSpotAPIError,
    MissingScopes,
    RateLimited,
    TransientAPIError,
)
from webhook_service.telemetry import stats

log = logging.getLogger("hubhook.api")
#: (connect, read) seconds. With two read retries a silent HubSpot costs at most ~50 s, inside a job's 60.
TIMEOUT = (3.05, 15)
#: What a record id put in a URL path must be, all of it (``fullmatch``).
RECORD_ID = re.compile(r"[0-9]{1,20}")


class HubSpotClient:
    """Thin, rate-limited, retrying access to the CRM endpoints hubhook needs."""

    def __init__(self, config: Config, *, governor: RateGovernor | None = None, auth: Auth | None = None,
                 priority: str = "webhook", max_wait: float = 10.0) -> None:
        self.config = config
        self.governor = governor
        self.priority = priority
        self.max_wait = max_wait
        self.auth: Auth = auth or StaticAuth(config.access_token)
        # Retry-After is not followed here: a 503 asking for an hour must reschedule the job, not hold it.
        self.session = _session(Retry(total=3, connect=3, read=2, status=3, backoff_factor=0.3, backoff_max=5,
                                      backoff_jitter=0.2, status_forcelist=(500, 502, 503, 504),
                                      allowed_methods=frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"}),
                                      respect_retry_after_header=False, raise_on_status=False))
        self.create_session = _session(Retry(total=3, connect=3, read=0, status=0, other=0,
                                             allowed_methods=frozenset({"POST"}), raise_on_status=False))

    # -- paths: dated (2026-09) by default, legacy v3/v4 when HUBSPOT_API_VERSION=v3 -------------
    @property
    def _legacy(self) -> bool:
        return self.config.api_version == "v3"

    def objects_path(self, object_type: str) -> str:
        name = objects.lookup(object_type).api_name
        return f"/crm/v3/objects/{name}" if self._legacy else f"/crm/objects/{self.config.api_version}/{name}"

    def associations_path(self, from_type: str, to_type: str) -> str:
        a, b = objects.lookup(from_type).api_name, objects.lookup(to_type).api_name
        if self._legacy:
            return f"/crm/v4/associations/{a}/{b}/batch/read"
        return f"/crm/associations/{self.config.api_version}/{a}/{b}/batch/read"

    def threads_path(self) -> str:
        if self._legacy:
            return "/conversations/v3/conversations/threads"
        return f"/conversations/conversations/{self.config.api_version}/threads"

    # -- the one request method ----------------------------------------------------------------
    def request(self, method: str, path: str, *, portal_id: int | None = None, search: bool = False,
                ok_statuses: tuple[int, ...] = (), idempotent: bool = True, **kwargs: Any) -> requests.Response:
        """Send one call within the shared budget; return the response or raise a HubSpotAPIError."""
        scope = self.auth.scope(portal_id)
        token = self.auth.token_for(portal_id)
        for attempt in (1, 2):
            if self.governor is not None:
                stats.budget_wait(self.governor.acquire(scope, search=search, priority=self.priority,
                                                        max_wait=self.max_wait))
            response = self._send(method, path, token, idempotent, **kwargs)
            if self.governor is not None:
                self.governor.observe(scope, response.headers, search=search)
            if response.status_code == 401 and attempt == 1:
                fresh = self.auth.refresh_after_401(portal_id, token)
                if fresh:
                    log.info("HubSpot refused the access token of portal %s (401): refreshed it, retrying once",
                             portal_id)
                    token = fresh
                    continue
            break
        if response.status_code < 300 or response.status_code in ok_statuses:
            return response
        error = self._error(response, path)
        if isinstance(error, RateLimited) and self.governor is not None:
            error.retry_after = self.governor.on_429(scope, error.policy, _retry_after(response), search=search)
        raise error

    def _send(self, method: str, path: str, token: str, idempotent: bool, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        session = self.session if idempotent else self.create_session
        try:
            return session.request(method, self.config.api_base_url + path, headers=headers, timeout=TIMEOUT,
                                   **kwargs)
        except requests.RequestException as exc:
            raise TransientAPIError(f"HubSpot unreachable: {type(exc).__name__}", endpoint=path) from None

    def _error(self, response: requests.Response, path: str) -> HubSpotAPIError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        common: dict[str, Any] = {  # HubSpotAPIError's keyword fields; the body's values are JSON
            "status": response.status_code, "category": body.get("category") or body.get("errorType"),
            "correlation_id": body.get("correlationId"), "endpoint": path}
        message = str(body.get("message") or response.reason or "error")[:300]
        if response.status_code == 429:
            policy = body.get("policyName")
            wait = _retry_after(response)
            if wait is None:  # the pause the named policy documents, else 10 s
                wait = 10.0 if policy is None else POLICY_WAIT.get(policy, 10.0)
            return RateLimited(message, retry_after=wait, policy=policy, **common)
        if response.status_code == 403 and body.get("category") == "MISSING_SCOPES":
            return MissingScopes(message, scopes=_scopes(body), **common)
        if response.status_code >= 500:
            return TransientAPIError(message, **common)
        return HubSpotAPIError(message, **common)

    # -- reads ------------------------------------------------------------------------------------
    def batch_read(self, object_type: str, ids: list[str], properties: list[str], *,
                   portal_id: int | None = None, archived: bool = False,
                   history: Sequence[str] = ()) -> dict[str, dict | None]:
        """Records by requested id, 100 ids a call; merged-away ids map to the surviving record; missing -> None.

        ``history`` asks for ``propertiesWithHistory`` of those properties (``from_=`` filters); such
        reads go 50 ids a call, the limit HubSpot documents for reads with history.
        """
        found: dict[str, dict | None] = {i: None for i in ids}
        wanted = list(dict.fromkeys([*properties, "hs_merged_object_ids"])) if properties else []
        size = 50 if history else 100
        for start in range(0, len(ids), size):
            chunk = ids[start:start + size]
            body = {"inputs": [{"id": i} for i in chunk], "properties": wanted, "propertiesWithHistory": list(history)}
            response = self.request("POST", self.objects_path(object_type) + "/batch/read", portal_id=portal_id,
                                    params={"archived": "true" if archived else "false"}, json=body)
            unmatched = 0
            for record in response.json().get("results", []):
                hits = _requested_ids(record, set(chunk))
                unmatched += not hits
                for requested in hits:
                    found[requested] = record
            if unmatched:  # a merged record we could not map back: ask for the ids singly (GET follows merges)
                for requested in (i for i in chunk if found[i] is None):
                    found[requested] = self.get(object_type, requested, wanted, portal_id=portal_id)
        return found

    def get(self, object_type: str, object_id: str, properties: Sequence[str] = (), *,
            portal_id: int | None = None) -> dict | None:
        """One record (follows merges), or None when HubSpot says it does not exist."""
        params = {"properties": ",".join(properties)} if properties else {}
        path = f"{self.objects_path(object_type)}/{_record_id(object_id)}"
        response = self.request("GET", path, portal_id=portal_id, params=params, ok_statuses=(404,))
        return None if response.status_code == 404 else response.json()

    def batch_associations(self, from_type: str, to_type: str, ids: list[str], *,
                           portal_id: int | None = None,
                           types: dict[str, dict[str, list[dict]]] | None = None) -> dict[str, list[str]]:
        """Associated ids of ``to_type`` for each id, 1,000 ids a call, following per-id paging.

        ``types``, when given, is filled with each id's association types per associated id
        (``{from_id: {to_id: [{"category", "typeId", "label"}]}}``), as the v4 batch read returns them."""
        result: dict[str, list[str]] = {i: [] for i in ids}
        pending = [{"id": i} for i in ids]
        while pending:
            chunk, pending = pending[:1000], pending[1000:]
            response = self.request("POST", self.associations_path(from_type, to_type), portal_id=portal_id,
                                    json={"inputs": chunk})
            for row in response.json().get("results", []):
                source = str(row["from"]["id"])
                result.setdefault(source, []).extend(str(t["toObjectId"]) for t in row.get("to", []))
                if types is not None:
                    found = types.setdefault(source, {})
                    for link in row.get("to", []):
                        found.setdefault(str(link["toObjectId"]), []).extend(link.get("associationTypes") or [])
                after = (row.get("paging") or {}).get("next", {}).get("after")
                if after:
                    pending.append({"id": source, "after": after})
        return result

    def properties(self, object_type: str, *, portal_id: int | None = None) -> list[dict]:
        """Every property HubSpot defines for ``object_type`` in the portal: name, type, label...
        (https://developers.hubspot.com/docs/api-reference/latest/crm/properties/get-properties)."""
        name = objects.lookup(object_type).api_name
        path = f"/crm/v3/properties/{name}" if self._legacy else f"/crm/properties/{self.config.api_version}/{name}"
        return list(self.request("GET", path, portal_id=portal_id).json().get("results", []))

    def list_page(self, object_type: str, properties: Sequence[str], *, after: str | None = None, limit: int = 100,
                  portal_id: int | None = None) -> dict:
        """One page of the list endpoint (records by ascending id, ``paging.next.after`` the next page's)."""
        params: dict[str, Any] = {"limit": limit, "archived": "false"}
        if properties:
            params["properties"] = ",".join(properties)
        if after:
            params["after"] = after
        return self.request("GET", self.objects_path(object_type), portal_id=portal_id, params=params).json()

    def get_thread(self, thread_id: str, *, portal_id: int | None = None) -> dict | None:
        """A conversations thread (conversation.* objectId is the thread id), or None when gone."""
        response = self.request("GET", f"{self.threads_path()}/{_record_id(thread_id)}", portal_id=portal_id,
                                ok_statuses=(404,))
        return None if response.status_code == 404 else response.json()

    def search(self, object_type: str, body: dict, *, portal_id: int | None = None) -> dict:
        """One page of CRM search (5 per second per account, counted in the search budget)."""
        return self.request("POST", self.objects_path(object_type) + "/search", portal_id=portal_id,
                            search=True, json=body).json()


def _record_id(value: str | int) -> str:
    """A record or thread id for a URL path: digits only (HubSpot's ids are numbers), all of it."""
    text = str(value)
    if not RECORD_ID.fullmatch(text):
        raise ValueError(f"a HubSpot record id is a number, got {text[:40]!r}")
    return text


def _session(retry: Retry) -> requests.Session:
    session = requests.Session()
    session.hooks["response"].append(stats.api_response)  # calls and 429s by endpoint, for /metrics
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds, when HubSpot sent it as a number (HubSpot documents it for 477 answers,
    not for 429s: https://developers.hubspot.com/docs/api-reference/error-handling)."""
    header = (response.headers.get("Retry-After") or "").strip()
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return max(0.0, seconds) if seconds is not None and math.isfinite(seconds) else None


def _scopes(body: dict) -> list[str]:
    """The scopes a MISSING_SCOPES body names, in its ``context`` or its ``errors[].context``."""
    contexts = [body.get("context") or {}] + [e.get("context") or {} for e in body.get("errors") or []
                                              if isinstance(e, dict)]
    found = [s for c in contexts if isinstance(c, dict) for v in c.values()
             for s in (v if isinstance(v, list) else [v]) if isinstance(s, str)]
    return list(dict.fromkeys(found))


def _requested_ids(record: dict, requested: set[str]) -> list[str]:
    """Which requested ids a returned record answers: its own id, or the ids merged into it."""
    hits = [record["id"]] if record.get("id") in requested else []
    merged = ((record.get("properties") or {}).get("hs_merged_object_ids") or "").split(";")
    return hits + [m for m in merged if m in requested and m not in hits]

