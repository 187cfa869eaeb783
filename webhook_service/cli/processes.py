"""The Procfile's processes: ``hubhook web``, ``hubhook worker``, ``hubhook poll``."""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace

import click

from webhook_service.cli.shared import _config, _logging, handlers_option
from webhook_service.config import Config


@click.command()
@click.option("--port", type=int, help=f"Port to listen on (default: $PORT or {Config.port}).")
@click.option("--workers", type=int,
              help=f"gunicorn worker processes (default: $WEB_CONCURRENCY or {Config.web_concurrency}).")
@click.option("--connections", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Open connections each worker process holds at once (gevent's worker_connections).")
@click.option("--threads", type=int, hidden=True, help="Ignored: the receiver runs gevent workers.")
def web(port: int | None, workers: int | None, connections: int, threads: int | None) -> None:
    """Serve the webhook receiver (gunicorn, gevent workers) on $PORT."""
    from webhook_service.receiver import metrics_dir

    config = (replace(_config(), port=port) if port else _config()).require_secret()
    if config.client_id:
        from webhook_service.oauth.flow import redirect_uri
        redirect_uri(config)  # an OAuth app needs its public callback URL from configuration
    gunicorn = shutil.which("gunicorn") or os.path.join(os.path.dirname(sys.executable), "gunicorn")
    workers = config.web_concurrency if workers is None else workers
    metrics_dir.prepare(config.metrics_dir)  # before exec: every gunicorn worker must see the same folder
    # gevent (gunicorn_conf.py): a client slow to send its headers holds a greenlet, not a thread
    argv = [gunicorn, "-c", "python:webhook_service.receiver.gunicorn_conf", "--bind", f"0.0.0.0:{config.port}",
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

    config = _config(handlers)
    _logging(config)
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
    stats.start_autoflush(redis_client(config))  # the poller's HubSpot calls reach /metrics too
    keys.load(keys.POLLER_RUN)(config, once=once, backfill=backfill, since=since)
