"""hubhook's one exception tree.

    HubhookError
    ├── ConfigError            a setting is missing or invalid; the message names the variable and the fix
    ├── RegistrationError      a handler registration is invalid; raised at import, with the fix
    ├── SignatureError         a delivery's signature or timestamp is missing, wrong, stale or from the future
    ├── PayloadError           a delivery's body is not JSON, too deep, or not HubSpot's event shape
    ├── MirrorUnavailable      the mirror's PostgreSQL is unreachable or refused a write: retried, then parked
    └── HubSpotAPIError        the HubSpot API answered with an error (carries status, category, correlation id)
        ├── RateLimited        429: carries the policy name and how long to wait
        ├── MissingScopes      403 MISSING_SCOPES: carries the scopes HubSpot named
        ├── NoToken            no usable token for a portal (OAuth app not installed there, refresh refused)
        ├── OAuthRefused       HubSpot's token endpoint refused a code or refresh token (invalid_grant...)
        └── TransientAPIError  5xx, timeouts, connection failures: worth retrying later

Every message is safe to log: none carries a secret or a token.
"""
from __future__ import annotations


class HubhookError(Exception):
    """Base of every error hubhook raises on purpose."""


class ConfigError(HubhookError):
    """A setting is missing or invalid; str() is one line naming the variable and the fix."""


class RegistrationError(HubhookError):
    """A handler registration is invalid; raised at import so the mistake never reaches production."""


class SignatureError(HubhookError):
    """A delivery failed signature verification; the receiver answers 401 with this message."""


class PayloadError(HubhookError):
    """A delivery's body cannot be accepted; the receiver answers 400 with this message."""


class MirrorUnavailable(HubhookError):
    """The Postgres mirror could not write (PostgreSQL down, or it refused the write); names the host and
    database, never the URL's password. The work is retried alone, then parked for ``hubhook replay``."""


class HubSpotAPIError(HubhookError):
    """The HubSpot API answered with an error status."""

    def __init__(self, message: str, *, status: int | None = None, category: str | None = None,
                 correlation_id: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.correlation_id = correlation_id
        self.endpoint = endpoint

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.category:
            parts.append(f"category={self.category}")
        if self.endpoint:
            parts.append(f"endpoint={self.endpoint}")
        if self.correlation_id:
            parts.append(f"correlationId={self.correlation_id}")
        return " ".join(parts)


class TransientAPIError(HubSpotAPIError):
    """A 5xx, timeout or connection failure that outlived the client's short retries."""


class RateLimited(HubSpotAPIError):
    """HubSpot answered 429; ``retry_after`` says how many seconds to wait before trying again."""

    def __init__(self, message: str, *, retry_after: float, policy: str | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        self.policy = policy


class MissingScopes(HubSpotAPIError):
    """HubSpot answered 403 MISSING_SCOPES: the app must be granted ``scopes`` and the work replayed."""

    def __init__(self, message: str, *, scopes: list[str], **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.scopes = scopes


class NoToken(HubSpotAPIError):
    """There is no usable token for ``portal_id``: the OAuth app was never installed there, or
    HubSpot refused its refresh token (uninstalled). Work for that portal is parked, not dropped."""

    def __init__(self, message: str, *, portal_id: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.portal_id = portal_id


class OAuthRefused(HubSpotAPIError):
    """HubSpot's token endpoint refused an install's code or a refresh token (``invalid_grant`` and
    friends); ``category`` carries HubSpot's error code. A worker turns a refused refresh into NoToken."""
