"""Per-portal OAuth tokens in Redis, encrypted, refreshed before they expire by exactly one process.

Keys hold only portal ids (``hubhook:oauth:portal:<hub id>``); values are Fernet ciphertexts
(AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) under a key derived with HKDF from
the app's client secret, so a Redis dump or replica alone does not leak a token. Every configured
client secret can decrypt (MultiFernet), the first one encrypts: during a secret rotation tokens
stay readable and are re-encrypted at their next refresh, or all at once by ``hubhook oauth rekey``
(``rekey``), after which the old secret can go.

A ciphertext is bound to its portal: the encrypted payload names the portal (it always did, so tokens
stored by earlier releases are bound too), and ``load`` refuses a blob whose payload names another
portal than its key, so copying portal A's value into portal B's key does not make B use A's token.
Every token a process loads or stores is registered for log redaction (``webhook_service.logs``).

Access tokens live 30 minutes; one is refreshed when it has under 5 minutes left (HubSpot: a 401
"is not a valid indicator that a new access token must be retrieved", so refresh follows the stored
expiry; https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines), under a
Redis lock so that one process calls HubSpot while the others wait and reuse its result. Each process
keeps the tokens it has read until they need refreshing.
"""
from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import Redis
from redis.exceptions import LockError, WatchError

from webhook_service import keys, logs
from webhook_service.config import Config
from webhook_service.errors import NoToken, TransientAPIError
from webhook_service.oauth import flow as oauth
from webhook_service.oauth.flow import TokenSet

log = logging.getLogger("hubhook.oauth")
REFRESH_MARGIN = 300.0
LOCK_TIMEOUT = 30


@dataclass(frozen=True)
class Rekeyed:
    """What ``TokenStore.rekey`` did with one portal's tokens: re-encrypted, current, missing, unreadable."""

    portal_id: int
    outcome: str
    detail: str = ""


class TokenStore:
    """``token_for(portal_id)``: a valid access token of that portal, refreshing it when due."""

    def __init__(self, redis: Redis, config: Config, *, margin: float = REFRESH_MARGIN) -> None:
        if not config.client_secrets:
            raise ValueError("TokenStore needs the app's client secret (HUBSPOT_CLIENT_SECRET)")
        self.redis, self.config, self.margin = redis, config, margin
        self._crypto = MultiFernet([Fernet(_derive(secret)) for secret in config.client_secrets])
        self._cache: dict[int, TokenSet] = {}
        self._guard = threading.Lock()

    # -- storage ---------------------------------------------------------------------------------
    def save(self, tokens: TokenSet) -> None:
        """Store (or replace) a portal's tokens."""
        _register(tokens)
        with self.redis.pipeline() as pipe:
            pipe.set(self._key(tokens.portal_id), self._crypto.encrypt(tokens.to_json().encode()))
            pipe.sadd(keys.OAUTH_PORTALS, tokens.portal_id)
            pipe.execute()
        with self._guard:
            self._cache[tokens.portal_id] = tokens

    def load(self, portal_id: int) -> TokenSet | None:
        """The stored tokens of ``portal_id``, or None when the app is not installed there."""
        blob = self.redis.get(self._key(portal_id))
        if blob is None:
            return None
        return self._open(portal_id, blob)

    def _open(self, portal_id: int, blob: bytes | str) -> TokenSet:
        """Decrypt ``blob`` stored under ``portal_id``'s key; NoToken when no secret opens it or it belongs
        to another portal (its payload names the portal and Fernet authenticates the payload)."""
        try:
            tokens = TokenSet.from_json(self._crypto.decrypt(blob))
        except InvalidToken:
            raise NoToken(f"the stored OAuth tokens of portal {portal_id} cannot be decrypted with the "
                          f"configured HUBSPOT_CLIENT_SECRET: if the client secret was rotated, put the old "
                          f"one back after the new one (HUBSPOT_CLIENT_SECRET=new,old) and run `hubhook "
                          f"oauth rekey`; otherwise reinstall the app there (/oauth/install), then "
                          f"`hubhook replay`",
                          portal_id=portal_id) from None
        if tokens.portal_id != int(portal_id):
            log.error("the OAuth tokens stored under portal %s belong to portal %s: refused (something with "
                      "write access to Redis copied them)", portal_id, tokens.portal_id)
            raise NoToken(f"the OAuth tokens stored for portal {portal_id} belong to another portal and were "
                          f"refused: reinstall the app in portal {portal_id} (/oauth/install), check who can "
                          f"write to Redis, then `hubhook replay`", portal_id=portal_id)
        _register(tokens)
        return tokens

    def rekey(self) -> Iterator[Rekeyed]:
        """Re-encrypt every stored portal's tokens under the first (newest) client secret, one portal at a
        time, so that older secrets can be removed from HUBSPOT_CLIENT_SECRET afterwards.

        Each write is a check-and-set (WATCH): a refresh that stores new tokens meanwhile wins, and its
        tokens are already under the newest secret.
        """
        newest = Fernet(_derive(self.config.client_secrets[0]))
        for portal_id in self.portals():
            key = self._key(portal_id)
            while True:
                try:
                    with self.redis.pipeline() as pipe:
                        pipe.watch(key)
                        blob = pipe.get(key)
                        if blob is None:
                            yield Rekeyed(portal_id, "missing", "no tokens stored (uninstalled?)")
                            break
                        try:
                            tokens = self._open(portal_id, blob)
                        except NoToken as exc:
                            yield Rekeyed(portal_id, "unreadable", str(exc))
                            break
                        try:
                            newest.decrypt(blob)
                            yield Rekeyed(portal_id, "current")
                            break
                        except InvalidToken:
                            pass
                        pipe.multi()
                        pipe.set(key, self._crypto.encrypt(tokens.to_json().encode()))
                        pipe.execute()
                        yield Rekeyed(portal_id, "re-encrypted")
                        break
                except WatchError:
                    continue  # a refresh stored new tokens meanwhile: look again

    def portals(self) -> list[int]:
        """Portals that installed the app."""
        return sorted(int(p) for p in self.redis.smembers(keys.OAUTH_PORTALS))

    # -- the provider the API client uses --------------------------------------------------------
    def token_for(self, portal_id: int | None) -> str:
        """A valid access token of ``portal_id``; raises NoToken when the app is not installed there."""
        if portal_id is None:
            raise NoToken("this call names no portal, and with an OAuth app every token belongs to one portal")
        with self._guard:
            cached = self._cache.get(portal_id)
        if cached is not None and cached.fresh(self.margin):
            return cached.access_token
        tokens = self.load(portal_id)
        if tokens is None:
            raise NoToken(f"portal {portal_id} has not installed the app, so hubhook has no token for it: open "
                          f"/oauth/install while logged in to that portal, then `hubhook replay`",
                          portal_id=portal_id)
        if not tokens.fresh(self.margin):
            tokens = self._refresh(portal_id, stale=tokens.access_token)
        with self._guard:
            self._cache[portal_id] = tokens
        return tokens.access_token

    def refresh_after_401(self, portal_id: int | None, rejected: str) -> str | None:
        """HubSpot refused ``rejected``: a token another process refreshed meanwhile, or a new one."""
        if portal_id is None:
            return None
        with self._guard:
            self._cache.pop(portal_id, None)
        return self._refresh(portal_id, stale=rejected).access_token

    def _refresh(self, portal_id: int, *, stale: str) -> TokenSet:
        lock = self.redis.lock(keys.oauth_refresh_lock(portal_id), timeout=LOCK_TIMEOUT,
                               blocking_timeout=LOCK_TIMEOUT + 5, thread_local=False)
        if not lock.acquire():
            raise TransientAPIError(f"the token refresh of portal {portal_id} is taking too long in another process")
        try:
            tokens = self.load(portal_id)
            if tokens is None:
                raise NoToken(f"portal {portal_id} has not installed the app", portal_id=portal_id)
            if tokens.access_token != stale and tokens.fresh(min(self.margin, 30.0)):
                return tokens  # another process refreshed while we waited for the lock
            try:
                fresh = oauth.refresh(self.config, tokens.refresh_token, portal_id)
            except oauth.OAuthRefused as exc:
                raise NoToken(f"HubSpot refused the refresh token of portal {portal_id} ({exc.category or exc.status}"
                              f"): the app was probably uninstalled there; reinstall it (/oauth/install), then "
                              f"`hubhook replay`", portal_id=portal_id) from None
            self.save(fresh)
            log.info("refreshed the OAuth access token of portal %s (valid %.0f min)", portal_id,
                     max(0.0, fresh.expires_at - time.time()) / 60)
            return fresh
        finally:
            try:
                lock.release()
            except LockError:
                pass  # it expired during a very slow refresh: nothing left to release

    @staticmethod
    def _key(portal_id: int) -> str:
        return keys.oauth_tokens(portal_id)


def _register(tokens: TokenSet) -> None:
    """This process now holds the portal's tokens: no log line, stored error or printed text may show them."""
    logs.add_secrets([tokens.access_token, tokens.refresh_token], owner=f"oauth:{tokens.portal_id}")


def _derive(secret: str) -> bytes:
    """A Fernet key from a client secret (HKDF-SHA256, fixed context), so no extra key to manage."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"hubhook oauth token store v1").derive(
        secret.encode())
    return base64.urlsafe_b64encode(raw)
