"""hubhook: HubSpot CRM changes become calls of your own Python functions.

Public API (pinned by tests/test_public_api.py: ``__all__`` is exactly these names, and every public
name of this module is one of them)::

    from webhook_service import Router, Event

- ``Router``, ``Handler``: register handlers (``@router.on("deal.propertyChange", ...)``).
- ``Event``: what a handler is called with (read-only plain data, ``event.hubspot``, ``event.lock``).
- ``Config``: every setting, read from the environment by ``Config.from_env()``.
- Errors, one tree rooted at ``HubhookError`` (drawn in ``webhook_service.errors``): ``ConfigError``,
  ``RegistrationError``, ``SignatureError``, ``PayloadError``, ``HubSpotAPIError`` and its kinds
  ``RateLimited``, ``MissingScopes``, ``NoToken``, ``OAuthRefused``, ``TransientAPIError``, and
  ``MirrorUnavailable`` (the Postgres mirror could not write).

Package map (``jobs`` holds what runs inside ``hubhook worker`` and ``hubhook poll``; see its map):

- ``router``, ``events``, ``filters``, ``objects``: handler registration and matching, the Event,
  transition filters and echo suppression, HubSpot's object types in one table.
- ``config``: every setting and its default, the only reader of the environment.
- ``errors``: the one exception tree. ``logs``: JSON log lines with secrets redacted.
- ``keys``: every Redis key name and every job path, shared by the receiver and the jobs.
- ``connection``: the Redis client and the RQ queue every process uses.
- ``timestamps``: epoch milliseconds and ISO-8601, parsed and printed in one place.
- ``receiver/``: ``hubhook web``: signatures, schemas, intake (dedupe, enqueue), routes, /metrics.
- ``oauth/``: the install flow and per-portal tokens.
- ``telemetry/``: figures every process writes to Redis and ``/metrics`` reads.
- ``operator/``: ``hubhook status`` and the dead-letter registry.
- ``private_apis/``: every use of RQ's and CPython's private internals, version-gated, with a stock
  fallback and a drift tripwire.
- ``cli/``: the ``hubhook`` command. ``testing/``: the fake HubSpot and the handler test kit.
- ``devstack``, ``loading``: a Redis (and a PostgreSQL) for development; the user's Router from
  ``module:attribute``.
- ``devstate``: what ``hubhook dev`` keeps in ``.hubhook/``, which every command reads for unset variables.

``jobs`` imports this package; here only ``cli/`` and ``testing/`` reach ``jobs`` (the two entry points).
"""
from webhook_service.config import Config
from webhook_service.errors import (
    ConfigError,
    HubhookError,
    HubSpotAPIError,
    MirrorUnavailable,
    MissingScopes,
    NoToken,
    OAuthRefused,
    PayloadError,
    RateLimited,
    RegistrationError,
    SignatureError,
    TransientAPIError,
)
from webhook_service.events import Event
from webhook_service.router import Handler, Router

__all__ = [
    "Config",
    "ConfigError",
    "Event",
    "Handler",
    "HubSpotAPIError",
    "HubhookError",
    "MirrorUnavailable",
    "MissingScopes",
    "NoToken",
    "OAuthRefused",
    "PayloadError",
    "RateLimited",
    "RegistrationError",
    "Router",
    "SignatureError",
    "TransientAPIError",
]
