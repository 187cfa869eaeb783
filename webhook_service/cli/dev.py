"""Development commands: ``hubhook dev`` (the local loop, ``cli.devloop``), ``hubhook run`` (the
Procfile's processes in one terminal) and ``hubhook send-test-event`` (a delivery signed as HubSpot signs it);
``hubhook trigger`` lives in ``trigger``.

honcho's Manager runs ``hubhook web``, ``hubhook worker`` (one or more) and ``hubhook poll``, prefixes
each output line with the process name, and when one process exits or Ctrl-C arrives it stops all
of them. Redis is found the way ``make demo`` finds it (``webhook_service.devstack``): ``REDIS_URL``
when set, else a private redis-server started here (loopback, free port, AOF on) and stopped at the
end. Settings are checked before anything starts, so a missing secret or handlers module is one
line, not three processes dying in turn. Logs default to the readable text format here.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from webhook_service.cli.shared import _config, handlers_option, require_redis
from webhook_service.config import Config
from webhook_service.errors import HubhookError

if TYPE_CHECKING:
    from requests import PreparedRequest


def _hubhook() -> str:
    found = Path(sys.executable).with_name("hubhook")
    return str(found) if found.exists() else "hubhook"


def commands(workers: int, poller: bool, journal: bool = False) -> dict[str, str]:
    """Process name -> shell command, as a Procfile would say it (``exec`` so signals reach hubhook);
    ``journal``: the Webhooks Journal reader too (HUBHOOK_JOURNAL_MODE is set)."""
    exe = shlex.quote(_hubhook())
    procs = {"web": f"exec {exe} web"}
    for n in range(1, workers + 1):
        procs["worker" if workers == 1 else f"worker.{n}"] = f"exec {exe} worker"
    if poller:
        procs["poller"] = f"exec {exe} poll"
    if journal:
        procs["journal"] = f"exec {exe} journal"
    return procs


def run_all(*, handlers: str | None = None, workers: int = 1, poller: bool = True, port: int | None = None) -> int:
    """Start everything, multiplex the output, stop everything; return the exit status."""
    from honcho.manager import Manager  # only `hubhook run` needs these, not every process's start-up

    from webhook_service.devstack import RedisProcess
    from webhook_service.loading import load_router

    env = dict(os.environ)  # the children's environment: what the user set, plus the choices below
    if handlers:
        env["HUBHOOK_HANDLERS"] = handlers
    if port:
        env["PORT"] = str(port)
    env.setdefault("HUBHOOK_LOG_FORMAT", "text")
    env.setdefault("WEB_CONCURRENCY", "1")
    env["PYTHONUNBUFFERED"] = "1"
    config = Config.from_env(env).require_secret().require_hubspot_auth()
    env["PORT"] = str(config.port)  # the port printed below, not one a `hubhook dev` state would supply
    if config.handlers or not config.mirror_url:  # with the mirror on, handlers of one's own are optional
        load_router(config.handlers).check_against(config)  # a bad HUBHOOK_HANDLERS fails here, once
    redis = None
    if "REDIS_URL" in config.variables_set:
        require_redis(config)  # one line now, not a traceback from each process in turn
    else:
        redis = RedisProcess().start()
        env["REDIS_URL"] = redis.url
    print(f"hubhook run: redis {'started at ' + redis.url if redis else 'at ' + env['REDIS_URL']}; receiver on "
          f"http://localhost:{config.port}/webhooks/hubspot; Ctrl-C stops everything", flush=True)
    manager = Manager()
    try:
        for name, command in commands(workers, poller, journal=config.journal_mode is not None).items():
            manager.add_process(name, command, env=env)
        manager.loop()
    finally:
        if redis is not None:
            redis.stop()
    return manager.returncode or 0


@click.command()
@handlers_option
@click.option("--workers", "worker_count", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--no-poller", is_flag=True, help="Do not start `hubhook poll`.")
@click.option("--port", type=int, help="Port of the receiver (default: $PORT or 8000).")
def run(handlers: str | None, worker_count: int, no_poller: bool, port: int | None) -> None:
    """Every process in one terminal for development: web, worker(s), poller; Ctrl-C stops them all."""
    if worker_count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    sys.exit(run_all(handlers=handlers, workers=worker_count, poller=not no_poller, port=port))


def signed_request(target: str, events: list[dict], secret: str) -> PreparedRequest:
    """A POST of ``events`` to ``target`` signed as HubSpot signs it, ready for ``Session.send``."""
    import requests

    from webhook_service.testing.deliveries import signed_delivery

    try:
        # HubSpot signs the URL it sends, so sign requests' percent-encoded URL (a space or "ü" in the
        # query goes out as %20 or %C3%BC), not the one typed.
        request = requests.Request("POST", target).prepare()
    except requests.RequestException as exc:
        raise HubhookError(f"--url {target[:80]!r} is not a URL requests can send ({type(exc).__name__}): "
                           f"give the full URL, e.g. http://localhost:8000/webhooks/hubspot") from None
    signed_url = request.url
    if signed_url is None:  # prepare() always sets it (the stubs type it Optional for an unprepared request)
        raise HubhookError(f"--url {target[:80]!r}: requests prepared no URL from it")
    body, headers = signed_delivery(events, secret, signed_url)
    request.prepare_body(body, None)
    request.headers.update(headers)
    return request


@click.command()
@handlers_option
@click.option("--workers", "worker_count", type=int, default=1, show_default=True, help="Worker processes.")
@click.option("--no-poller", is_flag=True, help="Do not start `hubhook poll`.")
@click.option("--port", type=int, help="Port of the receiver (default: $PORT, the one used last time, or 8000).")
def dev(handlers: str | None, worker_count: int, no_poller: bool, port: int | None) -> None:
    """The local loop for your handlers: Redis, fake HubSpot, receiver, worker, poller, reload on change."""
    from webhook_service.cli.devloop import dev_all

    if worker_count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    sys.exit(dev_all(os.environ, handlers=handlers, workers=worker_count, poller=not no_poller, port=port))


@click.command("send-test-event")
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
    from webhook_service.testing.deliveries import make_event

    config = _config().require_secret()
    check_pattern(subscription_type)
    if subscription_type.endswith(".propertyChange") and not prop:
        raise click.UsageError("propertyChange events need --property NAME (and usually --value V)")
    target = url or config.webhook_url or f"http://localhost:{config.port}/webhooks/hubspot"
    event = make_event(subscription_type, object_id, portal_id=portal_id, property=prop, value=value)
    request = signed_request(target, [event], config.client_secrets[0])
    try:
        with requests.Session() as session:
            settings = session.merge_environment_settings(str(request.url), {}, None, None, None)
            response = session.send(request, timeout=10.0, **settings)
    except requests.RequestException as exc:
        raise HubhookError(f"could not reach {target} ({type(exc).__name__}): is `hubhook web` running?") from None
    click.echo(f"{response.status_code} {response.text.strip()}")
    if response.status_code >= 300:
        sys.exit(1)
