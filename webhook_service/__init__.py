"""hubhook: HubSpot CRM changes become calls of your own Python functions.

Public API (pinned by tests/test_public_api.py: ``__all__`` is exactly these names, and every public
name of this module is one of them)::

    from webhook_service import Router, Event

- ``Router``, ``Handler``: register handlers (``@router.on("deal.propertyChange", ...)``).
- ``Event``: what a handler is called with (read-only plain data, ``event.hubspot``, ``event.lock``).
- ``Config``: every setting, read from the environment by ``Config.from_env()``.
- Errors, one tree rooted at ``HubhookError`` (drawn in ``webhook_service.errors``): ``ConfigError``,
  ``RegistrationError``, ``SignatureError``, ``PayloadError``, ``HubSpotAPIError`` and its kinds
  ``RateLimited``, ``MissingScopes``, ``NoToken``, ``OAuthRefused``, ``TransientAPIError``.

The testing kit is ``webhook_service.testing``; the command line is ``webhook_service.cli``.
"""
from webhook_service.config import Config
from webhook_service.errors import (
    ConfigError,
    HubhookError,
    HubSpotAPIError,
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
