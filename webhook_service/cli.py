"""``hubhook``: the processes of the Procfile and the operator's tools.

Every error a user can fix is one line on stderr saying what to do, with exit status 2; nothing
prints a traceback for a bad setting or argument.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys

import click

from .config import Config
from .errors import HubhookError


def _config(handlers: str | None = None, **overrides) -> Config:
    if handlers:
        overrides["handlers"] = handlers
    return Config.from_env(**overrides)


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("HUBHOOK_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


handlers_option = click.option("--handlers", metavar="MODULE:ATTR", help="Your Router (default: $HUBHOOK_HANDLERS).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """hubhook: HubSpot CRM changes become calls of your own Python functions."""


@cli.command()
@click.option("--port", type=int, help="Port to listen on (default: $PORT or 8000).")
@click.option("--workers", type=int, default=lambda: int(os.environ.get("WEB_CONCURRENCY", 2)), show_default="2")
@click.option("--threads", type=int, default=8, show_default=True)
def web(port: int | None, workers: int, threads: int) -> None:
    """Serve the webhook receiver (gunicorn, gthread) on $PORT."""
    config = _config(**({"port": port} if port else {})).require_secret()
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "--bind", f"0.0.0.0:{config.port}", "--worker-class", "gthread", "--workers", str(workers),
            "--threads", str(threads), "--no-control-socket", "--graceful-timeout", "20", "--timeout", "30",
            "--access-logfile", "-", "--access-logformat", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
            "webhook_service.app:create_app()"]
    os.execv(gunicorn, argv)


@cli.command()
@handlers_option
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option("--name", help="Worker name shown in status and rq-dashboard.")
def worker(handlers: str | None, burst: bool, name: str | None) -> None:
    """Run a worker: enrich deliveries and call your handlers."""
    from jobs.worker import run

    _logging()
    run(_config(handlers), burst=burst, name=name)


@cli.command()
@handlers_option
@click.option("--once", is_flag=True, help="Poll every type once, then exit.")
@click.option("--backfill", is_flag=True, help="Walk history instead of starting at now (resumable).")
@click.option("--since", metavar="DATE", help="With --backfill: start here (YYYY-MM-DD or ISO-8601).")
def poll(handlers: str | None, once: bool, backfill: bool, since: str | None) -> None:
    """Feed handlers of types HubSpot sends no webhooks for, from the CRM search API."""
    from jobs.poller import run

    _logging()
    run(_config(handlers), once=once, backfill=backfill, since=since)


@cli.command("send-test-event")
@click.argument("subscription_type")
@click.option("--object-id", type=int, required=True)
@click.option("--property", "prop", help="Property name (propertyChange events).")
@click.option("--value", help="New property value (propertyChange events).")
@click.option("--portal-id", type=int, default=62515, show_default=True)
@click.option("--url", help="Receiver URL (default: $HUBHOOK_WEBHOOK_URL or http://localhost:$PORT/webhooks/hubspot).")
def send_test_event(subscription_type: str, object_id: int, prop: str | None, value: str | None,
                    portal_id: int, url: str | None) -> None:
    """Sign a delivery exactly as HubSpot does and POST it to the receiver."""
    import requests

    from .router import _check_pattern
    from .testing.deliveries import make_event, post_delivery

    config = _config().require_secret()
    _check_pattern(subscription_type)
    if subscription_type.endswith(".propertyChange") and not prop:
        raise click.UsageError("propertyChange events need --property NAME (and usually --value V)")
    target = url or config.webhook_url or f"http://localhost:{config.port}/webhooks/hubspot"
    event = make_event(subscription_type, object_id, portal_id=portal_id, property=prop, value=value)
    try:
        response = post_delivery(target, [event], config.client_secrets[0])
    except requests.RequestException as exc:
        raise HubhookError(f"could not reach {target} ({type(exc).__name__}): is `hubhook web` running?") from None
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        sys.exit(1)


@cli.command()
@click.option("--handler", "handler_name", help="Only dead letters of this handler.")
@click.option("--dry-run", is_flag=True, help="List what would be replayed.")
def replay(handler_name: str | None, dry_run: bool) -> None:
    """Re-run what is in the dead-letter registry (all, or one handler's)."""
    from jobs.deadletter import replay as do_replay

    for line in do_replay(_config(), handler=handler_name, dry_run=dry_run):
        click.echo(line)


def main() -> None:
    """Console entry point: one line and exit 2 for every error the user can fix."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HubhookError as exc:
        click.echo(f"hubhook: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
