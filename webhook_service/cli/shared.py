"""What every ``hubhook`` command shares: its Config, its logging, the ``--handlers`` option."""
from __future__ import annotations

import click

from webhook_service.config import Config


def _config(handlers: str | None = None, **overrides) -> Config:
    if handlers:
        overrides["handlers"] = handlers
    return Config.from_env(**overrides)


def _logging(config: Config) -> None:
    """JSON lines on stderr (HUBHOOK_LOG_FORMAT=text for a terminal); the config's secrets are redacted."""
    from webhook_service import logs

    logs.configure(config.log_level, config.log_format)
    logs.add_secrets([*config.client_secrets, config.access_token])


handlers_option = click.option("--handlers", metavar="MODULE:ATTR", help="Your Router (default: $HUBHOOK_HANDLERS).")
