"""gunicorn settings for the receiver: ``gunicorn -c python:webhook_service.receiver.gunicorn_conf ...``.

``hubhook web`` uses it; so can a hand-written gunicorn command. It gives gunicorn and the app one
log format (``HUBHOOK_LOG_FORMAT``, JSON by default) and keeps the receiver's Prometheus counters
correct across worker processes: a gunicorn worker that exits has its live gauges dropped
(``child_exit``), and the ``PROMETHEUS_MULTIPROC_DIR`` folder is created here if it does not exist yet,
before any worker imports prometheus_client (when nobody set it, a private one, removed when gunicorn
exits).

Workers are gevent's (``worker_class``): a connection whose client is slow to send its headers waits
as a greenlet, not as one of a few threads, so a few hundred slow or idle clients cannot keep HubSpot's
deliveries or a load balancer's ``/healthz`` waiting. ``worker_connections`` bounds the connections
each worker holds at once. A proxy with header and body timeouts in front (see docs/deployment.md) is still
what bounds how long a slow client may take.
"""
from __future__ import annotations

import os
import shutil
from typing import Any

from webhook_service.config import Config
from webhook_service.logs import gunicorn_logconfig
from webhook_service.receiver import metrics_dir

_config = Config.from_env()
_metrics_dir = metrics_dir.ensure(_config.metrics_dir)
worker_class = "gevent"
worker_connections = 1000

logconfig_dict = gunicorn_logconfig(_config.log_level, _config.log_format)
control_socket_disable = True  # gunicorn >= 25.1 would share one control socket between instances


def pre_request(worker: Any, req: Any) -> None:
    """Under gevent, let every other connection with a request waiting go first, once per request.

    Why: a greenlet yields only when it would block, and on a kept-alive connection whose client sends
    the next request at once, reading it does not block: one busy connection is then served again and
    again while the others wait (measured: p50 2.5 ms but p90 1 s at 16 connections on one worker).
    ``gevent.idle()`` starts this request once the loop has nothing else ready, so requests already
    waiting go first: round robin (``sleep(0)`` measured a p99 two to three times higher).
    """
    worker.log.debug("%s %s", req.method, req.path)  # what gunicorn's default pre_request does
    if type(worker).__module__ == "gunicorn.workers.ggevent":
        import gevent

        gevent.idle()


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker exited: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics directory if hubhook created it (here, or ``hubhook web`` before exec)."""
    if os.environ.get(metrics_dir.OWNED) == "1":  # plumbing from metrics_dir.ensure, not a user setting
        shutil.rmtree(_metrics_dir, ignore_errors=True)
