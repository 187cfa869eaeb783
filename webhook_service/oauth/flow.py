"""HubSpot's OAuth 2 flow for a public app installed in many portals (FACTS.md 5).

The install redirect carries an unguessable, single-use ``state`` kept in Redis for 10 minutes (a
CSRF guard: a callback whose state we did not issue, or already used, is refused). Codes and refresh
tokens are exchanged at ``/oauth/v3/token`` with a form-encoded body: v3 is the endpoint HubSpot
documents as current (v1 is legacy, with the same parameters, and goes unsupported with the other
legacy paths). Access tokens live 30 minutes.

Nothing here logs, returns in an error or puts in a Redis key any token, code or state: states are
stored under their sha256 digest, and errors carry only HubSpot's error code and message.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

import requests
from redis import Redis
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from webhook_service.config import Config
from webhook_service.errors import HubSpotAPIError, TransientAPIError

TOKEN_PATH = "/oauth/v3/token"
STATE_TTL = 600
TIMEOUT = (3.05, 15)
_PREFIX = "hubhook:oauth"


@dataclass(frozen=True)
class TokenSet:
    """One portal's tokens. ``repr`` never shows a token."""

    portal_id: int
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    scopes: tuple[str, ...] = ()
    issued_at: float = 0.0

    def fresh(self, margin: float) -> bool:
        """Whether the access token still has more than ``margin`` seconds (at most half its life) to live."""
        if self.issued_at:
            margin = min(margin, (self.expires_at - self.issued_at) / 2)
        return self.expires_at - margin > time.time()

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "scopes": list(self.scopes)})

    @classmethod
    def from_json(cls, text: str | bytes) -> "TokenSet":
        data = json.loads(text)
        return cls(int(data["portal_id"]), data["access_token"], data["refresh_token"], float(data["expires_at"]),
                   tuple(data.get("scopes") or ()), float(data.get("issued_at") or 0.0))


class OAuthRefused(HubSpotAPIError):
    """HubSpot's token endpoint refused a code or refresh token (``invalid_grant`` and friends)."""


def authorize_url(config: Config, state: str, redirect_uri: str) -> str:
    """Where ``/oauth/install`` sends the browser: HubSpot's consent screen for this app."""
    query = urlencode({"client_id": config.client_id, "redirect_uri": redirect_uri,
                       "scope": " ".join(config.oauth_scopes), "state": state})
    return f"{config.oauth_authorize_url}?{query}"


def issue_state(redis: Redis, redirect_uri: str, ttl: int = STATE_TTL) -> str:
    """A new single-use state; Redis remembers it (by digest) with the redirect URI it goes with."""
    state = secrets.token_urlsafe(32)
    redis.set(_state_key(state), redirect_uri, ex=ttl)
    return state


def consume_state(redis: Redis, state: str | None) -> str | None:
    """The redirect URI issued with ``state``, deleting it in the same step; None if unknown or used."""
    if not state or len(state) > 200:
        return None
    found = redis.getdel(_state_key(state))
    if found is None:
        return None
    return found.decode() if isinstance(found, bytes) else str(found)


def exchange_code(config: Config, code: str, redirect_uri: str) -> TokenSet:
    """Trade an authorization code (from the callback) for the portal's tokens."""
    return _request_tokens(config, {"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": redirect_uri}, portal_id=None)


def refresh(config: Config, refresh_token: str, portal_id: int) -> TokenSet:
    """A new access token for ``portal_id`` (HubSpot may hand back a new refresh token too)."""
    return _request_tokens(config, {"grant_type": "refresh_token", "refresh_token": refresh_token},
                           portal_id=portal_id)


def _request_tokens(config: Config, form: dict[str, str], portal_id: int | None) -> TokenSet:
    form = {**form, "client_id": config.client_id or "", "client_secret": config.client_secrets[0]
            if config.client_secrets else ""}
    try:
        with _session() as session:
            response = session.post(config.api_base_url + TOKEN_PATH, data=form, timeout=TIMEOUT,
                                    headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise TransientAPIError(f"HubSpot's token endpoint is unreachable: {type(exc).__name__}",
                                endpoint=TOKEN_PATH) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code >= 500:
        raise TransientAPIError("HubSpot's token endpoint failed", status=response.status_code, endpoint=TOKEN_PATH)
    if response.status_code != 200 or not body.get("access_token"):
        reason = body.get("status") or body.get("error") or "no access token in the answer"
        raise OAuthRefused(f"HubSpot refused the {form['grant_type'].replace('_', ' ')}: {reason}",
                           status=response.status_code, category=body.get("error"), endpoint=TOKEN_PATH)
    hub_id = body.get("hub_id", portal_id)
    if hub_id is None:
        raise OAuthRefused("HubSpot's token answer names no hub_id", status=response.status_code,
                           endpoint=TOKEN_PATH)
    now = time.time()
    return TokenSet(int(hub_id), str(body["access_token"]), str(body.get("refresh_token") or form.get(
        "refresh_token", "")), now + float(body.get("expires_in") or 1800), tuple(body.get("scopes") or ()), now)


def _session() -> requests.Session:
    """Connection errors and 502/503/504 are retried twice, quickly; a refused grant never is."""
    session = requests.Session()
    retry = Retry(total=2, connect=2, read=0, status=2, backoff_factor=0.3, status_forcelist=(502, 503, 504),
                  allowed_methods=frozenset({"POST"}), respect_retry_after_header=False, raise_on_status=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _state_key(state: str) -> str:
    return f"{_PREFIX}:state:{hashlib.sha256(state.encode()).hexdigest()}"
