"""``hubhook run``: the Procfile's processes in one terminal, for development.

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

from honcho.manager import Manager

from webhook_service.config import Config
from webhook_service.devstack import RedisProcess
from webhook_service.loading import load_router


def _hubhook() -> str:
    found = Path(sys.executable).with_name("hubhook")
    return str(found) if found.exists() else "hubhook"


def commands(workers: int, poller: bool) -> dict[str, str]:
    """Process name -> shell command, as a Procfile would say it (``exec`` so signals reach hubhook)."""
    exe = shlex.quote(_hubhook())
    procs = {"web": f"exec {exe} web"}
    for n in range(1, workers + 1):
        procs["worker" if workers == 1 else f"worker.{n}"] = f"exec {exe} worker"
    if poller:
        procs["poller"] = f"exec {exe} poll"
    return procs


def run_all(*, handlers: str | None = None, workers: int = 1, poller: bool = True, port: int | None = None) -> int:
    """Start everything, multiplex the output, stop everything; return the exit status."""
    env = dict(os.environ)  # the children's environment: what the user set, plus the choices below
    if handlers:
        env["HUBHOOK_HANDLERS"] = handlers
    if port:
        env["PORT"] = str(port)
    env.setdefault("HUBHOOK_LOG_FORMAT", "text")
    env.setdefault("WEB_CONCURRENCY", "1")
    env["PYTHONUNBUFFERED"] = "1"
    config = Config.from_env(env).require_secret()
    load_router(config.handlers)  # a bad HUBHOOK_HANDLERS fails here, once
    redis = None
    if "REDIS_URL" not in config.variables_set:
        redis = RedisProcess().start()
        env["REDIS_URL"] = redis.url
    print(f"hubhook run: redis {'started at ' + redis.url if redis else 'at ' + env['REDIS_URL']}; receiver on "
          f"http://localhost:{config.port}/webhooks/hubspot; Ctrl-C stops everything", flush=True)
    manager = Manager()
    try:
        for name, command in commands(workers, poller).items():
            manager.add_process(name, command, env=env)
        manager.loop()
    finally:
        if redis is not None:
            redis.stop()
    return manager.returncode or 0
