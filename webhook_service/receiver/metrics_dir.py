"""The directory where gunicorn's workers keep their Prometheus counters (``PROMETHEUS_MULTIPROC_DIR``).

Why a module of its own: prometheus_client opens a file in that directory for every counter the
moment ``webhook_service.receiver.metrics`` is imported, so the directory must exist before that import, and
this module imports nothing of prometheus_client. ``hubhook web`` calls ``prepare`` before it execs
gunicorn; ``webhook_service.receiver.gunicorn_conf`` calls ``ensure`` for a hand-written gunicorn command.

What the user chose comes from ``Config.metrics_dir``; this module only *writes* the environment, because
prometheus_client in gunicorn's worker processes finds the directory there and nowhere else.
"""
from __future__ import annotations

import os
import tempfile

from webhook_service.errors import ConfigError

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: Process plumbing, not a setting: ``hubhook web`` sets it for the gunicorn it execs when it made the
#: directory, so gunicorn_conf.on_exit removes it.
OWNED = "HUBHOOK_OWNS_METRICS_DIR"


def ensure(given: str | None) -> str:
    """The directory ``given`` (``Config.metrics_dir``), created (with its parents) if it does not exist
    yet; a fresh temporary one when it is None. Either way ``PROMETHEUS_MULTIPROC_DIR`` names it from
    now on, for this process and its children. Raises ConfigError, one line, if it cannot be made."""
    if not given:
        os.environ[VARIABLE] = tempfile.mkdtemp(prefix="hubhook-metrics-")
        os.environ[OWNED] = "1"
        return os.environ[VARIABLE]
    try:
        os.makedirs(given, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{VARIABLE}={given} cannot be created ({exc.strerror}): point it at a folder "
                          f"this user can write, or unset it to use a temporary one") from None
    if not os.access(given, os.W_OK | os.X_OK):
        raise ConfigError(f"{VARIABLE}={given} is not writable by this user: point it at a folder this "
                          f"user can write, or unset it to use a temporary one")
    os.environ[VARIABLE] = given
    return given


def prepare(given: str | None) -> str:
    """Before gunicorn starts: ``ensure`` the directory and wipe the ``*.db`` files an earlier run left,
    whose counters would otherwise be added to the new ones."""
    directory = ensure(given)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    return directory
