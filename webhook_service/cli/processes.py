"""The Procfile's processes: ``hubhook web``, ``hubhook worker``, ``hubhook poll``."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import sys
from dataclasses import replace

import click

from webhook_service.cli.shared import _config, _logging, handlers_option, require_redis
from webhook_service.config import Config
from webhook_service.errors import HubhookError


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``--bind`` for ``host:port``, once a probe socket could bind there: a port in use is
    one line suggesting another, not gunicorn's five retries and its exit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise HubhookError(f"HUBHOOK_BIND_HOST (or --host) {host!r} is no address of this machine: use "
                           f"0.0.0.0 (every interface) or 127.0.0.1 (this machine only)") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise HubhookError(f"port {port} is already in use on {host} (another `hubhook web`?): stop "
                                   f"that process, or choose a free port: PORT={port + 1} hubhook web "
                                   f"(or --port {port + 1})") from None
            raise HubhookError(f"cannot listen on {host} port {port} ({exc.strerror}): choose another PORT "
                               f"(above 1023 without root) or HUBHOOK_BIND_HOST (or --host)") from None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@click.command()
@click.option("--port", type=int, help=f"Port to listen on (default: $PORT or {Config.port}).")
@click.option("--host", help=f"Address to listen on (default: $HUBHOOK_BIND_HOST or {Config.bind_host}).")
@click.option("--workers", type=int,
              help=f"gunicorn worker processes (default: $WEB_CONCURRENCY or {Config.web_concurrency}).")
@click.option("--connections", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Open connections each worker process holds at once (gevent's worker_connections).")
@click.option("--threads", type=int, hidden=True, help="Ignored: the receiver runs gevent workers.")
def web(port: int | None, host: str | None, workers: int | None, connections: int,
        threads: int | None) -> None:
    """Serve the webhook receiver (gunicorn, gevent workers) on $PORT."""
    from webhook_service.receiver import metrics_dir

    config = (replace(_config(), port=port) if port else _config()).require_secret()
    config = replace(config, bind_host=host) if host else config
    if config.client_id:
        from webhook_service.oauth.flow import redirect_uri
        redirect_uri(config)  # an OAuth app needs its public callback URL from configuration
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    workers = config.web_concurrency if workers is None else workers
    metrics_dir.prepare(config.metrics_dir)  # before exec: every gunicorn worker must see the same folder
    bind = bind_address(config.bind_host, config.port)
    require_redis(config)
    # gevent (gunicorn_conf.py): a client slow to send its headers holds a greenlet, not a thread
    argv = [gunicorn, "-c", "python:webhook_service.receiver.gunicorn_conf", "--bind", bind,
            "--worker-class", "gevent", "--workers", str(workers), "--worker-connections", str(connections),
            "--no-control-socket", "--graceful-timeout", "20", "--timeout", "30",
            "webhook_service.receiver.app:create_app()"]
    os.execv(gunicorn, argv)


@click.command()
@handlers_option
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option("--name", help="Worker name shown in status and rq-dashboard.")
def worker(handlers: str | None, burst: bool, name: str | None) -> None:
    """Run a worker: enrich deliveries and call your handlers."""
    from webhook_service import keys

    config = _config(handlers).require_hubspot_auth()
    _logging(config)
    require_redis(config)
    keys.load(keys.WORKER_RUN)(config, burst=burst, name=name)


@click.command()
@handlers_option
@click.option("--once", is_flag=True, help="Poll every type once, then exit.")
@click.option("--backfill", is_flag=True, help="Walk history instead of starting at now (resumable).")
@click.option("--since", metavar="DATE", help="With --backfill: start here (YYYY-MM-DD or ISO-8601).")
def poll(handlers: str | None, once: bool, backfill: bool, since: str | None) -> None:
    """Feed handlers of types HubSpot sends no webhooks for, from the CRM search API."""
    from webhook_service import keys
    from webhook_service.connection import redis_client
    from webhook_service.telemetry import stats

    config = _config(handlers)
    _logging(config)
    require_redis(config)
    stats.start_autoflush(redis_client(config))  # the poller's HubSpot calls reach /metrics too
    keys.load(keys.POLLER_RUN)(config, once=once, backfill=backfill, since=since)
