"""``hubhook``: the processes of the Procfile and the operator's tools.

Every error a user can fix is one line on stderr saying what to do, with exit status 2; nothing
prints a traceback for a bad setting or argument.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace

import click

from webhook_service.config import Config
from webhook_service.errors import HubhookError


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """hubhook: HubSpot CRM changes become calls of your own Python functions."""


@cli.command()
@click.option("--port", type=int, help="Port to listen on (default: $PORT or 8000).")
@click.option("--workers", type=int, default=lambda: int(os.environ.get("WEB_CONCURRENCY", 2)), show_default="2")
@click.option("--connections", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Open connections each worker process holds at once (gevent's worker_connections).")
@click.option("--threads", type=int, hidden=True, help="Ignored: the receiver runs gevent workers.")
def web(port: int | None, workers: int, connections: int, threads: int | None) -> None:
    """Serve the webhook receiver (gunicorn, gevent workers) on $PORT."""
    from webhook_service.receiver import metrics_dir

    config = (replace(_config(), port=port) if port else _config()).require_secret()
    if config.client_id:
        from webhook_service.oauth.flow import redirect_uri
        redirect_uri(config)  # an OAuth app needs its public callback URL from configuration
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    metrics_dir.prepare()  # before exec: every gunicorn worker must see the same PROMETHEUS_MULTIPROC_DIR
    # gevent (gunicorn_conf.py): a client slow to send its headers holds a greenlet, not a thread
    argv = [gunicorn, "-c", "python:webhook_service.receiver.gunicorn_conf", "--bind", f"0.0.0.0:{config.port}",
            "--worker-class", "gevent", "--workers", str(workers), "--worker-connections", str(connections),
            "--no-control-socket", "--graceful-timeout", "20", "--timeout", "30",
            "webhook_service.receiver.app:create_app()"]
    os.execv(gunicorn, argv)


@cli.command()
@handlers_option
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option("--name", help="Worker name shown in status and rq-dashboard.")
def worker(handlers: str | None, burst: bool, name: str | None) -> None:
    """Run a worker: enrich deliveries and call your handlers."""
    from jobs.worker.worker import run

    config = _config(handlers)
    _logging(config)
    run(config, burst=burst, name=name)


@cli.command()
@handlers_option
@click.option("--once", is_flag=True, help="Poll every type once, then exit.")
@click.option("--backfill", is_flag=True, help="Walk history instead of starting at now (resumable).")
@click.option("--since", metavar="DATE", help="With --backfill: start here (YYYY-MM-DD or ISO-8601).")
def poll(handlers: str | None, once: bool, backfill: bool, since: str | None) -> None:
    """Feed handlers of types HubSpot sends no webhooks for, from the CRM search API."""
    from webhook_service.telemetry import stats
    from webhook_service.connection import redis_client
    from jobs.poller.main import run

    config = _config(handlers)
    _logging(config)
    stats.start_autoflush(redis_client(config))  # the poller's HubSpot calls reach /metrics too
    run(config, once=once, backfill=backfill, since=since)


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

    from webhook_service.router import check_pattern
    from webhook_service.testing.deliveries import make_event, signed_delivery

    config = _config().require_secret()
    check_pattern(subscription_type)
    if subscription_type.endswith(".propertyChange") and not prop:
        raise click.UsageError("propertyChange events need --property NAME (and usually --value V)")
    target = url or config.webhook_url or f"http://localhost:{config.port}/webhooks/hubspot"
    event = make_event(subscription_type, object_id, portal_id=portal_id, property=prop, value=value)
    try:
        # HubSpot signs the URL it sends, so sign requests' percent-encoded URL (a space or "ü" in the
        # query goes out as %20 or %C3%BC), not the one typed.
        request = requests.Request("POST", target).prepare()
    except requests.RequestException as exc:
        raise HubhookError(f"--url {target[:80]!r} is not a URL requests can send ({type(exc).__name__}): "
                           f"give the full URL, e.g. http://localhost:8000/webhooks/hubspot") from None
    body, headers = signed_delivery([event], config.client_secrets[0], request.url)
    request.prepare_body(body, None)
    request.headers.update(headers)
    try:
        with requests.Session() as session:
            settings = session.merge_environment_settings(request.url, {}, None, None, None)
            response = session.send(request, timeout=10.0, **settings)
    except requests.RequestException as exc:
        raise HubhookError(f"could not reach {target} ({type(exc).__name__}): is `hubhook web` running?") from None
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        sys.exit(1)


@cli.command()
@click.option("--handler", "handler_name", help="Only dead letters of this handler.")
@click.option("--older-than", metavar="AGE", help="Only work that failed at least AGE ago (90s, 15m, 2h, 3d).")
@click.option("--newer-than", metavar="AGE", help="Only work that failed at most AGE ago.")
@click.option("--dry-run", is_flag=True, help="List what would be replayed.")
def replay(handler_name: str | None, older_than: str | None, newer_than: str | None, dry_run: bool) -> None:
    """Re-run what is in the dead-letter registry (all, one handler's, by age)."""
    from webhook_service.operator.dead_letters import replay as do_replay

    from webhook_service.logs import for_terminal
    from webhook_service.cli.operator import operator_config, parse_duration

    ages = {"older_than": parse_duration(older_than, "--older-than"),
            "newer_than": parse_duration(newer_than, "--newer-than")}
    for line in do_replay(operator_config(), handler=handler_name, dry_run=dry_run, **ages):
        click.echo(for_terminal(line))


def _add_operator_commands() -> None:
    from webhook_service.cli.oauth import oauth
    from webhook_service.cli.operator import inspect, run, status

    for command in (status, inspect, run, oauth):
        cli.add_command(command)


_add_operator_commands()


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

