"""HubSpot's OAuth 2 flow for a public app installed in many portals.

The install redirect carries a ``state`` (a CSRF guard: a callback whose state we did not issue, that is
older than 10 minutes or already used, is refused). ``/oauth/install`` is public, so issuing a state
writes nothing anywhere: the state is a random nonce and its issue time, signed with HMAC-SHA256 under
a key derived from the app's client secret (itsdangerous), and any configured secret verifies it, so
a rotation does not break installs in progress. Single use is enforced at the callback, and only for
states that verify: their digests sit in one Redis sorted set, scored by expiry, pruned on every
callback and capped at ``MAX_OPEN_INSTALLS``, so whatever a client sends, Redis holds at most about
1 MB for this (a full set answers "try again in a few minutes", it never grows). The redirect URI is
built from configuration only (``redirect_uri``), never from the request's ``Host``, which the client
chooses. Codes and refresh
tokens are exchanged at ``/oauth/v3/token`` with a form-encoded body: v3 is the endpoint HubSpot
documents as current (v1 is legacy, with the same parameters, and goes unsupported with the other
legacy paths). Access tokens live 30 minutes
(https://developers.hubspot.com/docs/api-reference/legacy/authentication/manage-oauth-tokens).

Nothing here logs, returns in an error or puts in a Redis key any token, code or state: used states
are stored as a digest of their nonce, and errors carry only HubSpot's error code and message.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from urllib.parse import urlencode, urlparse

import requests
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis import Redis
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from webhook_service.config import Config
from webhook_service.errors import ConfigError, OAuthRefused, TransientAPIError
from webhook_service.keys import OAUTH_USED_STATES

TOKEN_PATH = "/oauth/v3/token"
CALLBACK_PATH = "/oauth/callback"
WEBHOOK_PATH = "/webhooks/hubspot"
STATE_TTL = 600
#: States used in the last STATE_TTL seconds that Redis remembers (about 100 bytes each): at most one
#: install every 60 ms, sustained, before "try again in a few minutes".
MAX_OPEN_INSTALLS = 10_000
MAX_STATE_LENGTH = 200
TIMEOUT = (3.05, 15)
_USED_KEY = OAUTH_USED_STATES


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
    def from_json(cls, text: str | bytes) -> TokenSet:
        data = json.loads(text)
        return cls(int(data["portal_id"]), data["access_token"], data["refresh_token"], float(data["expires_at"]),
                   tuple(data.get("scopes") or ()), float(data.get("issued_at") or 0.0))


def authorize_url(config: Config, state: str, redirect_uri: str) -> str:
    """Where ``/oauth/install`` sends the browser: HubSpot's consent screen for this app."""
    query = urlencode({"client_id": config.client_id, "redirect_uri": redirect_uri,
                       "scope": " ".join(config.oauth_scopes), "state": state})
    return f"{config.oauth_authorize_url}?{query}"


def redirect_uri(config: Config) -> str:
    """Where HubSpot sends the admin back: ``HUBHOOK_OAUTH_REDIRECT_URL``, else ``/oauth/callback`` next to
    ``HUBHOOK_WEBHOOK_URL`` (same origin, same path prefix). Never the request's ``Host``: a client picks
    that, and HubSpot would carry the code to wherever it points. Raises ConfigError when neither is set."""
    if config.oauth_redirect_url:
        return config.oauth_redirect_url
    if config.webhook_url:
        public = urlparse(config.webhook_url)
        prefix = public.path.removesuffix(WEBHOOK_PATH) if public.path.endswith(WEBHOOK_PATH) else ""
        return f"{public.scheme}://{public.netloc}{prefix}{CALLBACK_PATH}"
    raise ConfigError("HUBSPOT_CLIENT_ID is set but hubhook does not know its public address for the OAuth "
                      "callback: set HUBHOOK_OAUTH_REDIRECT_URL to the redirect URL of the app's Auth tab "
                      "(e.g. https://hooks.example.com/oauth/callback), or HUBHOOK_WEBHOOK_URL")


class StateCheck(Enum):
    """What the callback learns from a state."""

    OK = "ok"
    INVALID = "invalid"    # not ours, tampered with, expired or missing
    USED = "used"          # ours and fresh, but a callback already used it
    BUSY = "busy"          # ours and fresh, but MAX_OPEN_INSTALLS states are already remembered


def issue_state(config: Config) -> str:
    """A new state for one install: a signed, timestamped nonce. Stores nothing."""
    return _serializer(config).dumps(secrets.token_urlsafe(16))


def consume_state(redis: Redis, config: Config, state: str | None, *, ttl: int = STATE_TTL,
                  cap: int = MAX_OPEN_INSTALLS) -> StateCheck:
    """Check ``state`` (ours, at most ``ttl`` seconds old) and mark it used, in one Redis step; at most
    ``cap`` used states are remembered at once."""
    if not state or len(state) > MAX_STATE_LENGTH:
        return StateCheck.INVALID
    try:
        nonce = _serializer(config).loads(state, max_age=ttl)
    except BadSignature:  # SignatureExpired is a BadSignature
        return StateCheck.INVALID
    if not isinstance(nonce, str):
        return StateCheck.INVALID
    digest = hashlib.sha256(nonce.encode()).hexdigest()[:32]
    answer = redis.eval(_USE_STATE, 1, _USED_KEY, digest, f"{time.time():.3f}", ttl, cap)
    return {1: StateCheck.OK, 0: StateCheck.USED}.get(int(answer), StateCheck.BUSY)


#: Prune expired digests; refuse a used one; refuse when full; else remember it until it would expire.
_USE_STATE = """
local now, ttl, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[1]) >= cap then return -1 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl + 60)
return 1
"""


def _serializer(config: Config) -> URLSafeTimedSerializer:
    """Signs with the first client secret, verifies with any (itsdangerous wants the newest last)."""
    return URLSafeTimedSerializer(list(reversed(config.client_secrets)), salt="hubhook.oauth.state",
                                  signer_kwargs={"digest_method": hashlib.sha256})


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
