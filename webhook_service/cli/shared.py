"""What every ``hubhook`` command shares: its Config, its logging, the ``--handlers`` option."""
from __future__ import annotations

import os

import click

from webhook_service.config import Config


def _config(handlers: str | None = None, **overrides) -> Config:
    if handlers:
        overrides["handlers"] = handlers
    return Config.from_env(**overrides)


def _logging(config: Config | None = None) -> None:
    """JSON lines on stderr (HUBHOOK_LOG_FORMAT=text for a terminal); the config's secrets are redacted."""
    from webhook_service import logs

    logs.configure(os.environ.get("HUBHOOK_LOG_LEVEL", "INFO"), os.environ.get("HUBHOOK_LOG_FORMAT", "json"))
    if config is not None:
        logs.add_secrets([*config.client_secrets, config.access_token])


handlers_option = click.option("--handlers", metavar="MODULE:ATTR", help="Your Router (default: $HUBHOOK_HANDLERS).")
