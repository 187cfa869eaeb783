"""Bearer tokens and OAuth for the fake HubSpot.

HubSpot scopes each token to one account (portal): the fake remembers which portal a token belongs
to, so records added for a portal are visible to that portal's tokens only, and each call can be
attributed to a portal without the token itself ever being kept in clear outside this book.

The token endpoint checks the app as HubSpot does
(https://developers.hubspot.com/docs/api-reference/legacy/authentication/manage-oauth-tokens): the
client id, the client secret, and for a code the redirect URI it was issued for; a mismatch is a 400
``BAD_CLIENT_ID`` / ``BAD_CLIENT_SECRET`` / ``BAD_REDIRECT_URI``. The app is the one the fake was given
(``OAuthApp``), else the one the first successful token request named.
"""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook_service.testing.fake_hubspot.shapes import error_body

INVALID = "INVALID_AUTHENTICATION"
EXPIRED = "EXPIRED_AUTHENTICATION"


@dataclass(frozen=True)
class OAuthApp:
    """The public app whose installs the fake's token endpoint accepts. ``repr`` hides the secret."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()


class TokenBook:
    """Accepted tokens and their portals: static ones (private apps) and the fake's own OAuth tokens.

    ``static=None`` accepts any bearer token (portal unknown), the easy default for tests.
    """

    def __init__(self, static: set[str] | None, app: OAuthApp | None = None) -> None:
        self.app = app
        self._static = set(static) if static is not None else None
        self._portal_of: dict[str, int | None] = {}
        self._access: dict[str, tuple[int, float]] = {}          # token -> (hub id, monotonic expiry)
        self._refresh: dict[str, tuple[int, list[str]]] = {}     # refresh token -> (hub id, scopes)
        self._codes: dict[str, tuple[int, list[str]]] = {}
        self._code_redirects: dict[str, str] = {}               # code -> the redirect URI it was issued for
        self._app_tokens: set[str] = set()                      # client-credentials tokens (the app's own)
        self._lock = threading.Lock()

    def add_static(self, token: str, portal_id: int | None) -> None:
        """Accept ``token`` as a private-app token of ``portal_id``."""
        with self._lock:
            self._portal_of[token] = portal_id
            if self._static is not None:
                self._static.add(token)

    def identify(self, header: str | None) -> tuple[str | None, int | None, str | None]:
        """(token, portal, failed category) for an Authorization header; category None means accepted."""
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, None, INVALID
        with self._lock:
            if token in self._access:
                hub_id, expires = self._access[token]
                return token, hub_id, EXPIRED if time.monotonic() >= expires else None
            if self._static is None or token in self._static:
                return token, self._portal_of.get(token), None
        return token, None, INVALID

    def is_oauth(self, token: str | None) -> bool:
        """Whether ``token`` is an OAuth access token the fake issued (else a private-app token)."""
        with self._lock:
            return token in self._access

    def is_app_token(self, token: str | None) -> bool:
        """Whether ``token`` is a client-credentials token (the Webhooks Journal takes only these)."""
        with self._lock:
            return token in self._app_tokens

    def issue_code(self, hub_id: int, scopes: list[str], redirect_uri: str | None = None) -> str:
        """An authorization code, as HubSpot's install redirect would carry it; with ``redirect_uri``,
        only an exchange naming that same URI is accepted."""
        code = str(uuid.uuid4())
        with self._lock:
            self._codes[code] = (hub_id, scopes)
            if redirect_uri is not None:
                self._code_redirects[code] = redirect_uri
        return code

    def grant(self, form: Mapping[str, str], lifetime: int) -> tuple[int, dict[str, Any]]:
        """The token endpoint: exchange a code or a refresh token for a new access token, or grant the app
        its own client-credentials token (``scope`` space-separated; no refresh token:
        https://developers.hubspot.com/docs/api-reference/latest/webhooks-journal/guide)."""
        kind = form.get("grant_type")
        with self._lock:
            refused = self._check_app(form, kind)
            if refused is not None:
                return 400, refused
            if kind == "authorization_code":
                code = form.get("code", "")
                found = self._codes.pop(code, None)
                if found is None:
                    return 400, _oauth_error("invalid_grant", "BAD_AUTH_CODE", "missing or unknown auth code")
                wanted = self._code_redirects.pop(code, None)
                if wanted is not None and form.get("redirect_uri") != wanted:
                    return 400, _bad_redirect()
                refresh = f"na1-{uuid.uuid4()}"
                self._refresh[refresh] = found
            elif kind == "client_credentials":   # the app's own token: no portal, no refresh token
                if self.app is None:
                    self.app = OAuthApp(form["client_id"], form["client_secret"])
                access = f"fake-cc-{secrets.token_urlsafe(64)}"
                self._access[access] = (0, time.monotonic() + lifetime)
                self._app_tokens.add(access)
                return 200, {"access_token": access, "expires_in": lifetime, "token_type": "bearer",
                             "token_use": "client_credentials"}
            elif kind == "refresh_token":
                refresh = form.get("refresh_token", "")
                found = self._refresh.get(refresh)
                if found is None:
                    return 400, _oauth_error("invalid_grant", "BAD_REFRESH_TOKEN",
                                             "refresh token is invalid, expired or revoked")
            else:
                return 400, _oauth_error("unsupported_grant_type", "BAD_GRANT_TYPE",
                                         f"unsupported grant_type: {kind}")
            hub_id, scopes = found
            if self.app is None:                # the first app to get a token is this fake's app
                redirect = form.get("redirect_uri")
                self.app = OAuthApp(form["client_id"], form["client_secret"], (redirect,) if redirect else ())
            elif kind == "authorization_code" and not self.app.redirect_uris:
                self.app = OAuthApp(self.app.client_id, self.app.client_secret, (form["redirect_uri"],))
            access = f"fake-{secrets.token_urlsafe(96)}"
            self._access[access] = (hub_id, time.monotonic() + lifetime)
        return 200, {"token_type": "bearer", "refresh_token": refresh, "access_token": access,
                     "hub_id": hub_id, "scopes": list(scopes), "expires_in": lifetime}

    def _check_app(self, form: Mapping[str, str], kind: str | None) -> dict[str, str] | None:
        """HubSpot's 400 when the request does not come from the app (or names a foreign redirect)."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        redirect = form.get("redirect_uri")
        if not client_id or (self.app is not None and client_id != self.app.client_id):
            return _oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or unknown client id")
        if not secret or (self.app is not None and not secrets.compare_digest(
                secret.encode(), self.app.client_secret.encode())):
            return _oauth_error("invalid_client", "BAD_CLIENT_SECRET", "missing or invalid client secret")
        registered = self.app.redirect_uris if self.app is not None else ()
        if kind == "authorization_code" and (not redirect or (registered and redirect not in registered)):
            return _bad_redirect()
        return None


def _bad_redirect() -> dict[str, str]:
    return _oauth_error("invalid_grant", "BAD_REDIRECT_URI",
                        "redirect URI does not match initial auth code URI")


def auth_error(category: str) -> dict[str, Any]:
    """HubSpot's 401 body for a missing, unknown or expired token."""
    if category == EXPIRED:
        return error_body("The OAuth token used to make this call expired.", EXPIRED)
    return error_body("Authentication credentials not found. This API supports OAuth 2.0 authentication "
                      "and you can find more details at "
                      "https://developers.hubspot.com/docs/methods/auth/oauth-overview", INVALID)


def _oauth_error(error: str, status: str, message: str) -> dict[str, str]:
    """RFC 6749 error with HubSpot's extra fields (samples/oauth_error_response_example.json)."""
    return {"error": error, "error_description": message, "status": status, "message": message}
