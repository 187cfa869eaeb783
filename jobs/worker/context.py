"""What a worker process builds once and every job reuses: config, Redis, queue, router, API client.

Job functions are module-level and take only JSON-safe arguments, so they find their collaborators
here. ``configure`` lets the worker command (and tests running a worker in-process) install a
context explicitly; otherwise the first job builds it from the environment.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

from redis import Redis
from rq import Queue

from jobs.hubspot.client import HubSpotClient
from jobs.hubspot.rate_budget import Budget, RateGovernor
from jobs.hubspot.tokens import Auth, auth_for
from webhook_service import keys
from webhook_service.config import Config
from webhook_service.connection import queue, redis_client
from webhook_service.loading import load_router
from webhook_service.router import Router


@dataclass
class Context:
    """One process's long-lived collaborators, built lazily."""

    config: Config
    router_override: Router | None = None

    @cached_property
    def redis(self) -> Redis:
        return redis_client(self.config, socket_timeout=30.0)

    @cached_property
    def queue(self) -> Queue:
        return queue(self.config, self.redis)

    @cached_property
    def router(self) -> Router:
        """The handlers, checked against this config (a property= handler on a polled type fails here),
        plus the Postgres mirror's when HUBHOOK_MIRROR_URL is set (then HUBHOOK_HANDLERS is optional)."""
        if self.router_override is None and self.config.mirror_url and not self.config.handlers:
            router = Router()
        else:
            router = (self.router_override or load_router(self.config.handlers)).check_against(self.config)
        if self.config.mirror_url:
            from jobs.mirror.handler import install

            install(router, self.config, self.redis, lambda: self.webhook_client)
        return router

    @cached_property
    def governor(self) -> RateGovernor:
        return RateGovernor(self.redis, Budget(burst=self.config.burst_limit,
                                               search_per_second=self.config.search_limit,
                                               poll_share=self.config.poll_share))

    @cached_property
    def auth(self) -> Auth:
        """The static token, or the OAuth app's per-portal tokens (jobs.hubspot.tokens says which wins)."""
        return auth_for(self.config, self.redis)

    def client(self, priority: str = "webhook") -> HubSpotClient:
        """An API client in this process's shared budget; ``priority="poll"`` caps its share."""
        return HubSpotClient(self.config, governor=self.governor, auth=self.auth, priority=priority)

    @cached_property
    def webhook_client(self) -> HubSpotClient:
        return self.client("webhook")

    @cached_property
    def poll_client(self) -> HubSpotClient:
        """Enrichment of polled changes: capped at HUBHOOK_POLL_SHARE so webhook work keeps room."""
        return self.client("poll")

    def lock(self, name: str, *, timeout: float = 60.0, blocking_timeout: float | None = None):
        """A Redis lock shared by every process (``event.lock``)."""
        return self.redis.lock(keys.lock(name), timeout=timeout, blocking_timeout=blocking_timeout,
                               thread_local=False)


_current: Context | None = None
_guard = threading.Lock()


def configure(config: Config, router: Router | None = None) -> Context:
    """Install this process's context (the worker command calls it before it starts working)."""
    global _current
    with _guard:
        _current = Context(config, router)
    return _current


def current() -> Context:
    """This process's context, built from the environment on first use."""
    global _current
    with _guard:
        if _current is None:
            _current = Context(Config.from_env())
        return _current
