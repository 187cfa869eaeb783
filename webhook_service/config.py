"""One Config, read from the environment once.

Only ``Config.from_env`` reads ``os.environ``; tests and tools build a Config directly. Every default
is written once, as the dataclass field's default; ``ENVIRONMENT`` says which variable sets which field
and how its text is read, and tests/test_config_table.py checks the table in docs/configuration.md
against both.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple
from urllib.parse import urlparse

from webhook_service.errors import ConfigError
from webhook_service.keys import RQ_KEY_PREFIX

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_API_BASE_URL = "https://api.hubapi.com"
DEFAULT_API_VERSION = "2026-09"
DEFAULT_WEBHOOK_TYPES = ("contact", "company", "deal", "conversation")
DEFAULT_OAUTH_AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
#: v3 when HubSpot sends it, else v1/v2 (private-app webhooks are documented with v1 only).
DEFAULT_SIGNATURE_VERSIONS = ("v3", "v2", "v1")
#: HubSpot sends at most 100 events in one request ("Each request can contain up to 100 events",
#: https://developers.hubspot.com/docs/api/webhooks); the receiver answers 413 above the cap.
DEFAULT_MAX_EVENTS_PER_DELIVERY = 100
MIN_METRICS_TOKEN_LENGTH = 16
#: ``HUBHOOK_JOURNAL_MODE``: the journal alone, or webhooks healed by the journal.
JOURNAL_MODES = ("intake", "reconcile")
DEFAULT_MIRROR_OBJECTS = ("contacts", "companies", "deals", "tickets")
DEFAULT_OAUTH_SCOPES = ("crm.objects.contacts.read", "crm.objects.companies.read", "crm.objects.deals.read")


@dataclass(frozen=True)
class Config:
    """Every setting hubhook reads. ``repr`` never shows a secret."""

    redis_url: str = DEFAULT_REDIS_URL
    client_secrets: tuple[str, ...] = field(default=(), repr=False)
    access_token: str | None = field(default=None, repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    api_version: str = DEFAULT_API_VERSION
    handlers: str | None = None
    webhook_url: str | None = None
    queue_name: str = "hubhook"
    max_body_bytes: int = 1024 * 1024
    dedupe_ttl: int = 48 * 3600
    job_timeout: int = 60
    handler_retries: tuple[int, ...] = (10, 30, 60, 300, 900)
    webhook_types: tuple[str, ...] = DEFAULT_WEBHOOK_TYPES
    poll_interval: float = 60.0
    poll_lookback: float = 120.0
    archive_sweep_interval: float = 600.0
    poll_lock_ttl: float = 30.0
    reconcile_interval: float | None = None
    burst_limit: int = 100
    search_limit: int = 5
    port: int = 8000
    bind_host: str = "0.0.0.0"          # address ``hubhook web`` listens on (127.0.0.1: this machine only)
    web_concurrency: int = 2            # gunicorn worker processes of ``hubhook web``
    log_level: str = "INFO"
    log_format: str = "json"            # or "text"
    metrics_dir: str | None = None      # PROMETHEUS_MULTIPROC_DIR; None: ``hubhook web`` makes a temporary one
    #: Names of the variables the environment set (from_env), for the one choice that depends on it:
    #: ``hubhook run`` starts its own Redis unless REDIS_URL is one.
    variables_set: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    #: The ``.hubhook/`` directory whose dev state supplied the variables in ``dev_supplied`` (those the
    #: environment left unset; ``webhook_service.devstate``), for ``hubhook status`` and Redis's error line.
    dev_state: str | None = field(default=None, repr=False, compare=False)
    dev_supplied: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    portal_id: int = 0
    client_id: str | None = None
    oauth_scopes: tuple[str, ...] = DEFAULT_OAUTH_SCOPES
    oauth_redirect_url: str | None = None
    oauth_authorize_url: str = DEFAULT_OAUTH_AUTHORIZE_URL
    poll_share: float = 0.5
    coalesce_max_events: int = 1000
    #: Seconds a job runs while another portal's work waits before it yields (0: no per-portal lanes).
    fair_slice: float = 0.5
    max_queue_depth: int = 100_000
    #: Pending events one portal may have before its deliveries get 429 (0: no limit of its own).
    max_portal_depth: int = 0
    backpressure_retry_after: int = 60
    ignore_sources: tuple[str, ...] = ()
    history_ttl: int = 7 * 86400
    signature_versions: tuple[str, ...] = DEFAULT_SIGNATURE_VERSIONS
    max_events_per_delivery: int = DEFAULT_MAX_EVENTS_PER_DELIVERY
    metrics_token: str | None = field(default=None, repr=False)
    #: False: RQ's and CPython's stock paths, not hubhook's fast ones (``webhook_service.private_apis``).
    fast_paths: bool = True
    journal_mode: str | None = None         # "intake" or "reconcile": ``hubhook journal`` reads the Webhooks Journal
    journal_poll_interval: float = 5.0      # seconds the journal reader waits when nothing new is there
    journal_reconcile_delay: float = 60.0   # reconcile mode: a change this young is left to its webhook first
    #: The built-in Postgres mirror (jobs.mirror): on when a URL is set. The URL may hold a password.
    mirror_url: str | None = field(default=None, repr=False)
    mirror_objects: tuple[str, ...] = DEFAULT_MIRROR_OBJECTS
    mirror_schema: str = "hubspot"
    mirror_properties: tuple[str, ...] = ()         # empty: every property the properties API lists
    mirror_associations: tuple[str, ...] = ()       # "from:to" pairs; empty: every pair of mirrored types
    mirror_hard_delete: bool = False                # deletion removes the row instead of archiving it
    #: Replicas each accepted delivery must reach (Redis's WAIT) before the receiver answers 2xx; 0: off.
    redis_min_replicas: int = 0
    #: RQ's key prefix; RQ reads RQ_KEY_PREFIX itself when imported. A hash tag in it (``{hubhook}:rq``)
    #: puts every hubhook and RQ key in one Redis Cluster slot (``webhook_service.keys``).
    rq_key_prefix: str = RQ_KEY_PREFIX

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dev_state: bool | None = None,
                 **overrides) -> Config:
        """Read the environment; raise ConfigError naming the variable and the fix on bad values.

        Each variable of ``ENVIRONMENT`` that is set becomes its field; an unset one (or an empty one,
        for most) leaves the field's default above, so every default is written once, in the dataclass.
        With ``dev_state`` (the default when reading the process's own environment), the variables it
        leaves unset come from the nearest ``.hubhook/`` that ``hubhook dev`` keeps (``devstate``):
        environment first, then the dev state, then the defaults. An explicit ``environ`` is read alone.
        """
        from webhook_service import devstate

        env: Mapping[str, str] = os.environ if environ is None else environ
        directory = devstate.find() if (environ is None if dev_state is None else dev_state) else None
        supplied = devstate.supplied(env, directory)
        if supplied:
            env = {**env, **supplied}
        values: dict[str, Any] = {}
        for variable in ENVIRONMENT:
            raw = env.get(variable.name)
            if raw is not None and (value := variable.parse(variable.name, raw)) is not UNSET:
                values[variable.field] = value
        config = cls(**values, variables_set=frozenset(v.name for v in ENVIRONMENT if v.field in values),
                     dev_state=str(directory) if supplied else None, dev_supplied=frozenset(supplied))
        return replace(config, **overrides).validated()

    def origin(self, variable: str) -> str:
        """Where a variable's value came from, for ``hubhook status``: the environment, the dev state, or
        the default."""
        if variable in self.dev_supplied:
            return f"dev state in {self.dev_state}"
        return "environment" if variable in self.variables_set else "default"

    def validated(self) -> Config:
        """Return self after checking the values that would otherwise fail much later."""
        scheme = urlparse(self.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster"):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss://, unix://, redis+sentinel:// or "
                              f"redis+cluster:// (got {self.redis_url.split('://')[0]!r}); e.g. redis://localhost:6379/0")
        if scheme == "redis+cluster":
            self._check_cluster()
        if scheme.endswith("+sentinel"):
            from webhook_service.connection import SentinelAddress
            try:
                SentinelAddress.parse(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"REDIS_URL: {exc}; e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
                                  ) from None
        if urlparse(self.api_base_url).scheme not in ("http", "https"):
            raise ConfigError("HUBSPOT_API_BASE_URL must be an http(s) URL, e.g. https://api.hubapi.com")
        if self.api_version != "v3" and not _is_dated_version(self.api_version):
            raise ConfigError(f"HUBSPOT_API_VERSION must be a version HubSpot ships, YYYY-03 or YYYY-09 "
                              f"(e.g. 2026-03 or 2026-09), or v3 for the legacy v3/v4 paths; got "
                              f"{self.api_version!r}")
        if self.webhook_url and urlparse(self.webhook_url).scheme not in ("http", "https"):
            raise ConfigError("HUBHOOK_WEBHOOK_URL must be the full public URL HubSpot posts to, "
                              "e.g. https://hooks.example.com/webhooks/hubspot")
        if not 0 < self.poll_share <= 1:
            raise ConfigError(f"HUBHOOK_POLL_SHARE must be a fraction above 0 and at most 1 (e.g. 0.5), "
                              f"got {self.poll_share}")
        if self.fair_slice < 0:
            raise ConfigError(f"HUBHOOK_FAIR_SLICE must be seconds >= 0 (e.g. 0.5; 0 turns per-portal lanes off), "
                              f"got {self.fair_slice}")
        if self.client_id and not self.client_secrets:
            raise ConfigError("HUBSPOT_CLIENT_ID is set but HUBSPOT_CLIENT_SECRET is not: the OAuth app needs "
                              "both (copy them from the app's Auth tab)")
        for name, url in (("HUBHOOK_OAUTH_REDIRECT_URL", self.oauth_redirect_url),
                          ("HUBSPOT_OAUTH_AUTHORIZE_URL", self.oauth_authorize_url)):
            if url and urlparse(url).scheme not in ("http", "https"):
                raise ConfigError(f"{name} must be a full http(s) URL, got {url[:60]!r}")
        if self.max_events_per_delivery < 1:
            raise ConfigError(f"HUBHOOK_MAX_EVENTS_PER_DELIVERY must be a whole number >= 1 (HubSpot "
                              f"sends up to 100 a request), got {self.max_events_per_delivery}")
        if self.handlers and ":" not in self.handlers:
            raise ConfigError(f"HUBHOOK_HANDLERS must be module:attribute (e.g. myapp.hooks:router), "
                              f"got {self.handlers!r}")
        if "v3" not in self.signature_versions or not set(self.signature_versions) <= {"v1", "v2", "v3"}:
            raise ConfigError(f"HUBHOOK_SIGNATURE_VERSIONS must be v3 (strict: OAuth and project apps) or v3 "
                              f"with v1 and/or v2 (the default v3,v2,v1; a private app needs v1), "
                              f"got {','.join(self.signature_versions)[:40]!r}")
        if self.journal_mode is not None and self.journal_mode not in JOURNAL_MODES:
            raise ConfigError(f"HUBHOOK_JOURNAL_MODE must be intake (the journal is the only source) or reconcile "
                              f"(webhooks first, the journal heals gaps), got {self.journal_mode[:40]!r}")
        if self.metrics_token is not None and len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
            raise ConfigError(f"HUBHOOK_METRICS_TOKEN must have at least {MIN_METRICS_TOKEN_LENGTH} "
                              "characters; make one with: "
                              "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        if self.mirror_url and urlparse(self.mirror_url).scheme not in ("postgresql", "postgres"):
            raise ConfigError("HUBHOOK_MIRROR_URL must be a PostgreSQL URL, e.g. "
                              "postgresql://hubhook@localhost:5432/app")
        if not _SQL_NAME.fullmatch(self.mirror_schema):
            raise ConfigError(f"HUBHOOK_MIRROR_SCHEMA must be a plain lower-case SQL name (letters, digits, _), "
                              f"got {self.mirror_schema[:40]!r}")
        for pair in self.mirror_associations:
            if pair.count(":") != 1:
                raise ConfigError(f"HUBHOOK_MIRROR_ASSOCIATIONS takes from:to pairs, e.g. contacts:companies,"
                                  f"deals:contacts; got {pair[:40]!r}")
        return self

    def secrets(self) -> list[str | None]:
        """Every secret this config holds, for ``logs.add_secrets``: client secrets, the token, and the
        password in HUBHOOK_MIRROR_URL (the URL itself is never logged either)."""
        password = urlparse(self.mirror_url).password if self.mirror_url else None
        return [*self.client_secrets, self.access_token, password]

    def _check_cluster(self) -> None:
        """A cluster URL needs well-formed nodes and a hash tag in RQ_KEY_PREFIX, set before RQ was imported."""
        from webhook_service.connection import cluster_nodes
        from webhook_service.keys import hash_tag
        try:
            cluster_nodes(self.redis_url)
        except ValueError as exc:
            raise ConfigError(f"REDIS_URL: {exc}; e.g. redis+cluster://10.0.0.1:6379,10.0.0.2:6379") from None
        if not hash_tag(self.rq_key_prefix):
            raise ConfigError("REDIS_URL is a Redis Cluster: set RQ_KEY_PREFIX to a prefix with a hash tag, e.g. "
                              "RQ_KEY_PREFIX='{hubhook}:rq', so every key hubhook and RQ write lands in one slot")
        if self.rq_key_prefix != RQ_KEY_PREFIX:
            raise ConfigError(f"RQ_KEY_PREFIX is {self.rq_key_prefix!r} in this Config but RQ was imported with "
                              f"{RQ_KEY_PREFIX!r}: export RQ_KEY_PREFIX before the process starts")

    def require_secret(self) -> Config:
        """The receiver cannot verify anything without a client secret: say so at start."""
        if not self.client_secrets:
            raise ConfigError("HUBSPOT_CLIENT_SECRET is not set: copy the client secret from your HubSpot "
                              "app's Auth tab (several, comma-separated, during rotation)")
        return self

    def require_hubspot_auth(self) -> Config:
        """Workers call HubSpot for every event: without a token or an OAuth app each job would only be
        parked, so say at start what to set instead."""
        if not self.access_token and not self.client_id:
            raise ConfigError("no HubSpot token: set HUBSPOT_ACCESS_TOKEN (private app or service key), or "
                              "HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET (OAuth app); for local development "
                              "with the fake HubSpot: HUBSPOT_ACCESS_TOKEN=any "
                              "HUBSPOT_API_BASE_URL=http://127.0.0.1:8900")
        return self


_SQL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _delays(value: str | None) -> tuple[int, ...]:
    try:
        delays = tuple(int(v) for v in _csv(value))
    except ValueError:
        raise ConfigError(f"HUBHOOK_HANDLER_RETRIES must be comma-separated seconds, e.g. 10,30,60; "
                          f"got {value!r}") from None
    if any(d < 0 for d in delays):
        raise ConfigError("HUBHOOK_HANDLER_RETRIES must not contain negative delays")
    return delays


def _is_dated_version(value: str) -> bool:
    """HubSpot ships a dated API version every March and September, nothing in between
    (https://developers.hubspot.com/docs/developer-tooling/platform/versioning)."""
    year, _, month = value.partition("-")
    return len(year) == 4 and year.isdigit() and month in ("03", "09")


def _number(name: str, raw: str) -> float | None:
    """A non-negative number; None for an empty value."""
    if raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw[:40]!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


#: What a parser returns for "not set": the field keeps its default.
UNSET: Any = object()


def _verbatim(name: str, raw: str) -> str:
    """The text as given, even empty (``validated`` then names the variable)."""
    return raw


def _url(name: str, raw: str) -> str:
    return raw.rstrip("/")


def _text(name: str, raw: str) -> str:
    """The text; empty means unset."""
    return raw or UNSET


def _token(name: str, raw: str) -> str:
    return raw.strip() or UNSET


def _list(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated; empty means unset."""
    return _csv(raw) or UNSET


def _scopes(name: str, raw: str) -> tuple[str, ...]:
    return _csv(raw.replace(" ", ",")) or UNSET


def _versions(name: str, raw: str) -> tuple[str, ...]:
    return _csv(raw.lower()) or UNSET


def _seconds(name: str, raw: str) -> float:
    value = _number(name, raw)
    return UNSET if value is None else value


def _whole(name: str, raw: str) -> int:
    value = _number(name, raw)
    return UNSET if value is None else int(value)


def _retries(name: str, raw: str) -> tuple[int, ...]:
    return _delays(raw) or UNSET


def _switch(name: str, raw: str) -> bool:
    """An on/off setting: 1/0, true/false, yes/no, on/off (any case); empty means unset."""
    word = raw.strip().lower()
    if not word:
        return UNSET
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (also true/false, yes/no, on/off), got {raw[:40]!r}")


class Variable(NamedTuple):
    """One environment variable: the Config field it sets and how its text becomes the value."""

    name: str
    field: str
    parse: Callable[[str, str], Any]   # (variable name, text) -> value, or UNSET to keep the default


#: Every variable hubhook reads, in the order of the table in docs/configuration.md.
ENVIRONMENT: tuple[Variable, ...] = (
    Variable("REDIS_URL", "redis_url", _verbatim),
    Variable("HUBSPOT_CLIENT_SECRET", "client_secrets", _list),
    Variable("HUBSPOT_ACCESS_TOKEN", "access_token", _text),
    Variable("HUBSPOT_CLIENT_ID", "client_id", _text),
    Variable("HUBHOOK_OAUTH_SCOPES", "oauth_scopes", _scopes),
    Variable("HUBHOOK_OAUTH_REDIRECT_URL", "oauth_redirect_url", _text),
    Variable("HUBSPOT_OAUTH_AUTHORIZE_URL", "oauth_authorize_url", _text),
    Variable("HUBSPOT_API_BASE_URL", "api_base_url", _url),
    Variable("HUBSPOT_API_VERSION", "api_version", _verbatim),
    Variable("HUBSPOT_PORTAL_ID", "portal_id", _whole),
    Variable("HUBHOOK_HANDLERS", "handlers", _text),
    Variable("HUBHOOK_WEBHOOK_URL", "webhook_url", _text),
    Variable("HUBHOOK_HANDLER_RETRIES", "handler_retries", _retries),
    Variable("HUBHOOK_JOB_TIMEOUT", "job_timeout", _whole),
    Variable("HUBHOOK_WEBHOOK_TYPES", "webhook_types", _list),
    Variable("HUBHOOK_POLL_INTERVAL", "poll_interval", _seconds),
    Variable("HUBHOOK_POLL_LOOKBACK", "poll_lookback", _seconds),
    Variable("HUBHOOK_ARCHIVE_SWEEP_INTERVAL", "archive_sweep_interval", _seconds),
    Variable("HUBHOOK_RECONCILE_INTERVAL", "reconcile_interval", _seconds),
    Variable("HUBHOOK_POLL_LOCK_TTL", "poll_lock_ttl", _seconds),
    Variable("HUBSPOT_BURST_LIMIT", "burst_limit", _whole),
    Variable("HUBSPOT_SEARCH_LIMIT", "search_limit", _whole),
    Variable("HUBHOOK_POLL_SHARE", "poll_share", _seconds),
    Variable("HUBHOOK_COALESCE_MAX_EVENTS", "coalesce_max_events", _whole),
    Variable("HUBHOOK_FAIR_SLICE", "fair_slice", _seconds),
    Variable("PORT", "port", _whole),
    Variable("HUBHOOK_BIND_HOST", "bind_host", _text),
    Variable("WEB_CONCURRENCY", "web_concurrency", _whole),
    Variable("HUBHOOK_LOG_LEVEL", "log_level", _text),
    Variable("HUBHOOK_LOG_FORMAT", "log_format", _text),
    Variable("HUBHOOK_MAX_QUEUE_DEPTH", "max_queue_depth", _whole),
    Variable("HUBHOOK_MAX_PORTAL_DEPTH", "max_portal_depth", _whole),
    Variable("HUBHOOK_BACKPRESSURE_RETRY_AFTER", "backpressure_retry_after", _whole),
    Variable("HUBHOOK_IGNORE_SOURCES", "ignore_sources", _list),
    Variable("HUBHOOK_HISTORY_TTL", "history_ttl", _whole),
    Variable("HUBHOOK_SIGNATURE_VERSIONS", "signature_versions", _versions),
    Variable("HUBHOOK_MAX_EVENTS_PER_DELIVERY", "max_events_per_delivery", _whole),
    Variable("PROMETHEUS_MULTIPROC_DIR", "metrics_dir", _text),
    Variable("HUBHOOK_METRICS_TOKEN", "metrics_token", _token),
    Variable("HUBHOOK_FAST_PATHS", "fast_paths", _switch),
    Variable("HUBHOOK_JOURNAL_MODE", "journal_mode", _text),
    Variable("HUBHOOK_JOURNAL_POLL_INTERVAL", "journal_poll_interval", _seconds),
    Variable("HUBHOOK_JOURNAL_RECONCILE_DELAY", "journal_reconcile_delay", _seconds),
    Variable("HUBHOOK_MIRROR_URL", "mirror_url", _token),
    Variable("HUBHOOK_MIRROR_OBJECTS", "mirror_objects", _list),
    Variable("HUBHOOK_MIRROR_SCHEMA", "mirror_schema", _text),
    Variable("HUBHOOK_MIRROR_PROPERTIES", "mirror_properties", _list),
    Variable("HUBHOOK_MIRROR_ASSOCIATIONS", "mirror_associations", _list),
    Variable("HUBHOOK_MIRROR_HARD_DELETE", "mirror_hard_delete", _switch),
    Variable("HUBHOOK_REDIS_MIN_REPLICAS", "redis_min_replicas", _whole),
    Variable("RQ_KEY_PREFIX", "rq_key_prefix", _text),
)
