"""The Webhooks Journal's HTTP calls: a client-credentials token, pointer reads, file downloads, subscriptions.

The token is the app's own (``grant_type=client_credentials`` with ``HUBSPOT_CLIENT_ID`` and the first
``HUBSPOT_CLIENT_SECRET``; https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide):
HubSpot gives no refresh token, so it is asked for again when four fifths of its lifetime have passed,
and once more on a 401. It lives in this object's memory only: never in Redis, a log line or an error.

Journal calls are exempt from the CRM's daily and ten-secondly limits (HubSpot's API specs mark them
``x-hubspot-rate-limit-exemptions``), so they never take from the shared RateGovernor budget; the
journal's own limits are unpublished, so a 429 raises ``Throttled`` with HubSpot's ``Retry-After`` and
the reader waits that long. Files are fetched from their pre-signed URL without the Authorization header.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import requests

from jobs.journal import format
from webhook_service.config import Config
from webhook_service.errors import HubhookError
from webhook_service.telemetry import stats

log = logging.getLogger("hubhook.journal")
TIMEOUT = (3.05, 30)
#: A token is renewed once this share of its lifetime has passed.
RENEW_AT = 0.8


class JournalError(HubhookError):
    """A journal call failed in a way the reader retries (network, 5xx, an unexpected answer)."""


class Throttled(JournalError):
    """HubSpot answered 429: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"the journal answered 429: waiting {retry_after:.0f}s (Retry-After)")
        self.retry_after = retry_after


class OffsetLost(JournalError):
    """HubSpot no longer serves this offset (older than three days, or never issued)."""

    def __init__(self, offset: str, status: int) -> None:
        super().__init__(f"HubSpot no longer serves journal offset {offset} (HTTP {status})")
        self.offset, self.status = offset, status


class LinkExpired(JournalError):
    """A file's pre-signed URL expired (or its file is gone): ask for a fresh pointer."""


class CredentialsRefused(HubhookError):
    """The token endpoint refused the app's client id or secret, or a scope: the operator must act."""


def journal_version(config: Config) -> str:
    """The dated version in journal paths: the configured one from 2026-03 on, else 2026-03."""
    version = config.api_version
    return version if version[:4].isdigit() and version >= format.FIRST_VERSION else format.FIRST_VERSION


class JournalClient:
    """One reader's HTTP session with the journal; see the module docstring."""

    def __init__(self, config: Config, scopes: tuple[str, ...] = format.READ_SCOPES) -> None:
        if not config.client_id or not config.client_secrets:
            raise CredentialsRefused("the Webhooks Journal needs the app's HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET "
                                     "(the app's Auth tab); a private-app token cannot read it")
        self.base = config.api_base_url.rstrip("/")
        self.version = journal_version(config)
        self._client_id = config.client_id
        self._secret = config.client_secrets[0]
        self._scopes = scopes
        self._token: str | None = None
        self._renew_at = 0.0
        self.session = requests.Session()
        self.downloads = requests.Session()   # no Authorization header ever reaches a pre-signed URL

    def close(self) -> None:
        self.session.close()
        self.downloads.close()

    # -- the token ----------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._renew_at:
            self._renew()
        return {"Authorization": f"Bearer {self._token}"}

    def _renew(self) -> None:
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._secret,
                "scope": " ".join(self._scopes)}
        try:
            response = self.session.post(f"{self.base}/oauth/v1/token", data=form, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise JournalError(f"cannot reach HubSpot's token endpoint ({type(exc).__name__})") from None
        if response.status_code == 429:
            raise Throttled(_retry_after(response))
        if response.status_code >= 500:
            raise JournalError(f"HubSpot's token endpoint answered {response.status_code}")
        body = _json(response)
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            why = str(body.get("message") or body.get("error_description") or body.get("error") or "")[:200]
            raise CredentialsRefused(f"HubSpot refused a client-credentials token ({response.status_code}: {why}): "
                                     f"check HUBSPOT_CLIENT_ID/HUBSPOT_CLIENT_SECRET and that the app has the "
                                     f"scopes {', '.join(self._scopes)}")
        lifetime = float(body.get("expires_in") or 1800)
        self._token = body["access_token"]
        self._renew_at = time.monotonic() + lifetime * RENEW_AT
        stats.count("journal_tokens")

    # -- calls --------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, *, json_body: Any = None) -> tuple[int, Any]:
        """(status, parsed body or None) of one journal API call; 401 renews the token once."""
        url = f"{self.base}{path.format(version=self.version)}"
        for attempt in (0, 1):
            try:
                response = self.session.request(method, url, headers=self._headers(), json=json_body, timeout=TIMEOUT)
            except requests.RequestException as exc:
                raise JournalError(f"cannot reach the journal ({type(exc).__name__})") from None
            stats.count("journal_calls", status=response.status_code)
            if response.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        if response.status_code == 429:
            raise Throttled(_retry_after(response))
        if response.status_code >= 500:
            raise JournalError(f"the journal answered {response.status_code}")
        return response.status_code, (None if response.status_code == 204 else _json(response))

    def _pointers(self, path: str, offset: str | None = None) -> list[format.Pointer]:
        status, body = self.call("GET", path)
        if status == 204:
            return []
        if status in (401, 403):
            raise CredentialsRefused(f"the journal refused the app's token ({status}): the app needs the scope "
                                     f"{format.READ_SCOPES[0]}")
        if offset is not None and 400 <= status < 500:
            raise OffsetLost(offset, status)
        if status not in (200, 207):
            raise JournalError(f"the journal answered {status} to GET {path.split('/')[-2]}/...")
        return format.pointers(body)

    def earliest(self, count: int) -> list[format.Pointer]:
        """Pointers to the oldest files still kept (up to ``count``); [] when the journal is empty."""
        return self._pointers(f"{format.JOURNAL}/batch/earliest/{count}")

    def after(self, offset: str, count: int) -> list[format.Pointer]:
        """Pointers to the files after ``offset``; [] when nothing is new (204). Raises OffsetLost."""
        return self._pointers(f"{format.JOURNAL}/batch/{offset}/next/{count}", offset)

    def latest(self) -> format.Pointer | None:
        """The newest file's pointer, or None when the journal is empty."""
        found = self._pointers(f"{format.JOURNAL}/latest")
        return found[0] if found else None

    def download(self, pointer: format.Pointer) -> bytes:
        """A file's bytes from its pre-signed URL. Raises LinkExpired (ask again) or JournalError."""
        try:
            response = self.downloads.get(pointer.url, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise JournalError(f"cannot download journal file {pointer.offset} ({type(exc).__name__})") from None
        stats.count("journal_downloads", status=response.status_code)
        if response.status_code in (403, 404):
            raise LinkExpired(f"the download link of journal file {pointer.offset} expired ({response.status_code})")
        if response.status_code != 200:
            raise JournalError(f"downloading journal file {pointer.offset} answered {response.status_code}")
        return response.content

    def subscriptions(self) -> list[dict]:
        status, body = self.call("GET", format.SUBSCRIPTIONS)
        if status != 200:
            raise JournalError(f"listing journal subscriptions answered {status}: {_message(body)}")
        results = body.get("results") if isinstance(body, dict) else None
        return [s for s in results if isinstance(s, dict)] if isinstance(results, list) else []

    def subscribe(self, request: dict) -> dict:
        status, body = self.call("POST", format.SUBSCRIPTIONS, json_body=request)
        if status not in (200, 201):
            raise JournalError(f"creating a journal subscription answered {status}: {_message(body)}")
        return body if isinstance(body, dict) else {}


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"results": body}


def _message(body: Any) -> str:
    return str(body.get("message", ""))[:200] if isinstance(body, dict) else ""


def _retry_after(response: requests.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return 10.0
