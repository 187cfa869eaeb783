"""Which token (and which rate budget) a HubSpot call of a given portal uses.

Two kinds of credentials (https://developers.hubspot.com/docs/api/intro-to-auth):

- a static token (``HUBSPOT_ACCESS_TOKEN``: a private-app token or service key) belongs to one
  account; it is used for every call and shares one "app" budget, since HubSpot's burst limit is
  per app. When it is set it wins, even if an OAuth app is configured too: a private app cannot
  read other portals, and mixing the two would send one portal's events with another's token.
- an OAuth app (``HUBSPOT_CLIENT_ID``) holds a token per installed portal (``TokenStore``); each
  portal has its own budget, as HubSpot counts 110 requests per 10 s per installing account.
"""
from __future__ import annotations

from typing import Protocol

from redis import Redis

from webhook_service import logs
from webhook_service.config import Config
from webhook_service.errors import NoToken
from webhook_service.oauth.token_store import TokenStore


class Auth(Protocol):
    """What HubSpotClient asks of its credentials."""

    def token_for(self, portal_id: int | None) -> str: ...

    def scope(self, portal_id: int | None) -> str: ...

    def refresh_after_401(self, portal_id: int | None, rejected: str) -> str | None: ...


class StaticAuth:
    """A private-app token or service key: one token and one budget for everything."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        logs.add_secrets([token])  # whatever process holds it never logs, stores or prints it

    def token_for(self, portal_id: int | None) -> str:
        if not self._token:
            raise NoToken("no HubSpot token: set HUBSPOT_ACCESS_TOKEN (private app or service key), or "
                          "HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET and install the OAuth app", portal_id=portal_id)
        return self._token

    def scope(self, portal_id: int | None) -> str:
        return "app"

    def refresh_after_401(self, portal_id: int | None, rejected: str) -> str | None:
        return None  # a static token cannot be refreshed: the 401 is reported as it is


class OAuthAuth:
    """An OAuth app's per-portal tokens, refreshed under a lock (see webhook_service.oauth.token_store), which
    registers each token it loads or refreshes for redaction."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    def token_for(self, portal_id: int | None) -> str:
        return self.store.token_for(portal_id)

    def scope(self, portal_id: int | None) -> str:
        return str(portal_id) if portal_id is not None else "app"

    def refresh_after_401(self, portal_id: int | None, rejected: str) -> str | None:
        return self.store.refresh_after_401(portal_id, rejected)


def auth_for(config: Config, redis: Redis) -> Auth:
    """The static token when set, else the OAuth app's tokens when a client id is set."""
    if config.access_token or not config.client_id:
        return StaticAuth(config.access_token)
    return OAuthAuth(TokenStore(redis, config))
