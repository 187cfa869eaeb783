"""gunicorn settings for the receiver: ``gunicorn -c python:webhook_service.receiver.gunicorn_conf ...``.

``hubhook web`` uses it; so can a hand-written gunicorn command. It gives gunicorn and the app one
log format (``HUBHOOK_LOG_FORMAT``, JSON by default) and keeps the receiver's Prometheus counters
correct across worker processes: a gunicorn worker that exits has its live gauges dropped
(``child_exit``), and when nobody set ``PROMETHEUS_MULTIPROC_DIR`` a private directory is made here,
before any worker imports prometheus_client, and removed when gunicorn exits.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from webhook_service.logs import gunicorn_logconfig

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hubhook-metrics-")
    os.environ["HUBHOOK_OWNS_METRICS_DIR"] = "1"

logconfig_dict = gunicorn_logconfig(os.environ.get("HUBHOOK_LOG_LEVEL", "INFO"),
                                    os.environ.get("HUBHOOK_LOG_FORMAT", "json"))
control_socket_disable = True  # gunicorn >= 25.1 would share one control socket between instances


def child_exit(server: Any, worker: Any) -> None:
    """A gunicorn worker exited: its live gauges no longer count (its counters still do)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics directory if this config created it."""
    if os.environ.get("HUBHOOK_OWNS_METRICS_DIR") == "1":
        shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)
