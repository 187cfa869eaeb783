"""What every ``hubhook`` command shares: its Config, its logging, the ``--handlers`` option."""
from __future__ import annotations

import click

from webhook_service.config import Config
from webhook_service.errors import HubhookError


def _config(handlers: str | None = None, **overrides) -> Config:
    if handlers:
        overrides["handlers"] = handlers
    return Config.from_env(**overrides)


def _logging(config: Config) -> None:
    """JSON lines on stderr (HUBHOOK_LOG_FORMAT=text for a terminal); the config's secrets are redacted."""
    from webhook_service import logs

    logs.configure(config.log_level, config.log_format)
    logs.add_secrets(config.secrets())


def require_redis(config: Config) -> None:
    """One PING with a short timeout before a process starts, so an unreachable Redis is one line saying
    what to do (URL without its password), not a traceback from deep in RQ or a poller retrying forever."""
    from redis.exceptions import RedisError

    from webhook_service.cli.operator import safe_url
    from webhook_service.connection import connect

    client = connect(config.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except RedisError as exc:
        if "REDIS_URL" in config.dev_supplied:
            raise HubhookError(f"dev Redis at {safe_url(config.redis_url)} is not running: start `hubhook dev` in "
                               f"this directory, or set REDIS_URL (recorded in {config.dev_state})") from None
        raise HubhookError(f"Redis at {safe_url(config.redis_url)} did not answer ({type(exc).__name__}): "
                           f"start redis-server there, or set REDIS_URL to a Redis that is running") from None
    finally:
        client.close()


handlers_option = click.option("--handlers", metavar="MODULE:ATTR", help="Your Router (default: $HUBHOOK_HANDLERS).")
