"""The ``hubhook`` command: every theme's commands in one click group, and ``main``, its entry point.

Each command is defined in its theme's module and listed here, once; no module adds commands to the
group when it is imported.
"""
from __future__ import annotations

import sys

import click

from webhook_service.cli.dev import dev, run, send_test_event
from webhook_service.cli.journal import journal
from webhook_service.cli.mirror import mirror
from webhook_service.cli.oauth import oauth
from webhook_service.cli.operator import inspect, portal, replay, status
from webhook_service.cli.processes import poll, web, worker
from webhook_service.cli.trigger import trigger
from webhook_service.errors import HubhookError

cli = click.Group(
    "cli", help="hubhook: HubSpot CRM changes become calls of your own Python functions.",
    commands=[web, worker, poll, journal, status, inspect, replay, portal, dev, run, send_test_event, trigger, oauth,
              mirror],
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _what_exists(ctx: click.Context | None) -> str:
    """``(commands: ...)`` or ``(options of `hubhook status`: ...)`` for a usage error's line."""
    if ctx is None:
        return ""
    if isinstance(ctx.command, click.Group):
        return f"(commands: {', '.join(sorted(ctx.command.commands))})"
    arguments = [p.human_readable_name for p in ctx.command.params if isinstance(p, click.Argument)]
    options = ["/".join(p.opts) for p in ctx.command.params if isinstance(p, click.Option)] + ["-h/--help"]
    return f"(usage: {' '.join([ctx.command_path, *arguments])} [OPTIONS]; options: {', '.join(options)})"


def main() -> None:
    """Console entry point: one line and exit 2 for every error the user can fix."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as exc:  # one line, with what exists instead of a usage block
        click.echo(f"hubhook: error: {exc.format_message()} {_what_exists(exc.ctx)}".rstrip(), err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HubhookError as exc:
        click.echo(f"hubhook: error: {exc}", err=True)
        sys.exit(2)
