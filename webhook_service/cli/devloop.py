"""``hubhook dev``: the whole local loop for your own handlers in one terminal.

It keeps its state in ``.hubhook/`` (``webhook_service.devstate``: the nearest one from the working
directory up, else a new one here), so every other ``hubhook`` command run in this directory finds
the same Redis, fake HubSpot and signing secret. In order:

1. Redis: ``REDIS_URL`` when set; else a redis-server with its data in ``.hubhook/redis/`` (AOF on) on
   the port recorded last time when free: same URL and same queued jobs and dead letters after a restart.
2. HubSpot: ``HUBSPOT_API_BASE_URL`` when set (with your token or OAuth app); else the fake HubSpot,
   seeded with demo data, on its recorded port, and a token it accepts for the processes below.
3. The signing secret: ``HUBSPOT_CLIENT_SECRET`` when set (never written anywhere); else a dev-only
   one made once in ``.hubhook/secret`` (mode 0600).
4. ``hubhook web``, ``hubhook worker`` (one or more) and ``hubhook poll``, their lines prefixed by
   their name, in the ``dev`` log format, with retries in seconds. A change to a ``.py`` file of the
   handlers package restarts the processes that import it (workers and poller; the receiver does not)
   once the package imports cleanly; a broken save is one line, and the next good save recovers.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO

from webhook_service import devstate
from webhook_service.config import Config
from webhook_service.devstack import RedisProcess, free_port
from webhook_service.errors import ConfigError
from webhook_service.router import Router

#: What ``hubhook dev`` sets for its processes unless the environment does (retries in seconds, the
#: one-line log format, one receiver process on loopback).
DEV_DEFAULTS = {"HUBHOOK_LOG_FORMAT": "dev", "HUBHOOK_HANDLER_RETRIES": "1,2,5", "WEB_CONCURRENCY": "1",
                "HUBHOOK_BIND_HOST": "127.0.0.1"}
#: With the fake HubSpot only: poll every 5 s, so polled types (tickets) show changes quickly.
FAKE_DEFAULTS = {"HUBHOOK_POLL_INTERVAL": "5"}
#: One example object per type in the fake's demo data (``fake_hubspot.demo``).
DEMO_IDS = {"company": 1001, "contact": 1004, "deal": 1009}
_CHECK = ("import sys\nfrom webhook_service.config import Config\nfrom webhook_service.errors import HubhookError\n"
          "from webhook_service.loading import load_router\n"
          "try:\n    load_router(sys.argv[1]).check_against(Config.from_env())\n"
          "except HubhookError as exc:\n    print(exc, file=sys.stderr)\n    sys.exit(2)\n")


def fake_hubspot_command(port: int, *, seed_demo: bool = True, webhook_url: str | None = None) -> list[str]:
    """The one command line that starts the fake HubSpot for ``hubhook dev`` (flags are added here only).

    With ``webhook_url`` the fake sends the signed webhooks of every write to it, as a portal sends them
    to its app, so a handler's own write-backs come back as webhooks (it signs with HUBSPOT_CLIENT_SECRET
    from its environment, never from argv)."""
    argv = [sys.executable, "-m", "webhook_service.testing.fake_hubspot", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--seed-demo"] if seed_demo else []
    return argv + (["--webhook-url", webhook_url] if webhook_url else [])


def is_free(port: int | None) -> bool:
    """Whether nothing listens on loopback ``port`` (None: no port recorded)."""
    if not port:
        return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def recorded_or_free(recorded: int | None) -> int:
    """The port recorded last time when it is free, else any free one."""
    return recorded if recorded and is_free(recorded) else free_port()


def watched_path(spec: str) -> tuple[Path, bool]:
    """(path, recursive) to watch for ``module:attribute``: a package's directory, or the folder of a
    single module (not recursively, so a project's other folders are not watched)."""
    module = spec.partition(":")[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found = importlib.util.find_spec(module.split(".")[0])
    if found is None or not found.origin:
        raise ConfigError(f"cannot find the handlers module {module!r} to watch: run `hubhook dev` from the "
                          f"directory that contains it")
    origin = Path(found.origin)
    return (origin.parent, True) if origin.name == "__init__.py" else (origin.parent, False)


class Child:
    """One process of the stack; ``stopping`` tells its reader that its end was asked for."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, dict(env)
        self.stopping = False
        self.spoke = threading.Event()  # its first line, or its end: it got past importing the handlers
        self.process = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, errors="replace",
                                        start_new_session=True)  # the terminal's Ctrl-C reaches dev only

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a worker finishes its job first), then SIGKILL after ``timeout``."""
        self.stopping = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Supervisor:
    """Starts, prefixes, restarts and stops the children; any unexpected exit stops everything."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.children: dict[str, Child] = {}
        #: Processes that import the handlers: restarted on a change; one that exits waits for the next
        self.restartable: list[str] = []
        self.done = threading.Event()
        self.failed: str | None = None
        self._lock = threading.Lock()
        self._life = threading.Lock()  # a reload and the final stop never interleave
        self._width = 7
        self.on_start: Callable[[], None] = lambda: None  # records the children's pids (devstate)

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{name:<{self._width}}| {line}\n")
            self.out.flush()

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        child = Child(name, argv, env)
        self.children[name] = child
        self.on_start()
        threading.Thread(target=self._pump, args=(child,), name=f"dev-{name}", daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        assert child.process.stdout is not None
        for line in child.process.stdout:
            child.spoke.set()
            self.say(child.name, line.rstrip("\n"))
        status = child.process.wait()
        child.spoke.set()
        if child.stopping or self.done.is_set():
            return
        if child.name in self.restartable:  # e.g. it imported a save that broke right after a reload
            self.say("dev", f"{child.name} exited with status {status}: it starts again at the next change of "
                            f"the handlers")
            return
        self.failed = f"{child.name} exited with status {status}"
        self.done.set()

    def restart(self, timeout: float = 30.0) -> bool:
        """Stop and start the restartable processes again, and wait until each has said something (so
        the handlers were imported) or exited; False when everything is stopping or one of them exited."""
        started = []
        with self._life:
            for name in self.restartable:
                if self.done.is_set():
                    return False
                old = self.children[name]
                old.stop()
                started.append(self.start(name, old.argv, old.env))
        for child in started:
            child.spoke.wait(timeout)
        return not self.done.is_set() and all(c.process.poll() is None for c in started)

    def stop_all(self) -> None:
        self.done.set()
        with self._life:
            for child in reversed(list(self.children.values())):
                child.stop()


def check_handlers(spec: str, env: Mapping[str, str]) -> str | None:
    """Import the handlers in a fresh interpreter (as a restarted worker would); None, or the one-line error."""
    found = subprocess.run([sys.executable, "-c", _CHECK, spec], env=dict(env), capture_output=True, text=True,
                           timeout=60)
    if found.returncode == 0:
        return None
    lines = [x for x in (found.stderr or found.stdout).splitlines() if x.strip()]
    return lines[-1] if lines else f"importing {spec} failed (status {found.returncode})"


def watch(spec: str, env: Mapping[str, str], supervisor: Supervisor) -> None:
    """Reload on every change of a ``.py`` file of the handlers package, until the supervisor is done."""
    from watchfiles import PythonFilter
    from watchfiles import watch as watch_files

    path, recursive = watched_path(spec)
    for changes in watch_files(path, watch_filter=PythonFilter(), recursive=recursive, stop_event=supervisor.done,
                               raise_interrupt=False, debounce=300):
        names = ", ".join(sorted({os.path.relpath(p) if not os.path.relpath(p).startswith("..") else p
                                  for _, p in changes}))
        problem = check_handlers(spec, env)
        if problem:
            supervisor.say("dev", f"handlers changed ({names}): NOT reloaded, the old code keeps running: {problem}")
            continue
        if supervisor.restart():
            supervisor.say("dev", f"handlers changed ({names}): reloaded")


def handler_lines(router: Router) -> list[str]:
    """``pattern [property=...] -> module.function`` for each handler, for the banner."""
    lines = []
    for h in router.handlers:
        options = f" property={h.property_name}" if h.property_name else ""
        options += f" to={','.join(sorted(h.to_values))}" if h.to_values else ""
        lines.append(f"    {h.pattern}{options} -> {h.fn.__module__}.{h.fn.__qualname__}")
    return lines or ["    (none registered yet)"]


def example_event(router: Router) -> str:
    """A ``send-test-event`` command line that reaches the first handler, on a demo object."""
    handler = next((h for h in router.handlers if "*" not in h.pattern), None)
    pattern = handler.pattern if handler else "deal.creation"
    object_type = pattern.split(".")[0]
    command = f"hubhook send-test-event {pattern} --object-id {DEMO_IDS.get(object_type, 1009)}"
    if pattern.endswith(".propertyChange"):
        prop = handler.property_name if handler and handler.property_name else "dealstage"
        value = sorted(handler.to_values)[0] if handler and handler.to_values else "closedwon"
        command += f" --property {prop} --value {value}"
    return command


def reuse_or_start_redis(directory: Path, recorded_port: int | None) -> tuple[RedisProcess | None, str]:
    """The dev Redis: the one recorded last time when it still runs on this data directory (after a
    ``hubhook dev`` that was killed), else a new redis-server on the recorded port, or a free one."""
    from redis import Redis
    from redis.exceptions import RedisError

    data = directory / "redis"
    data.mkdir(exist_ok=True)
    if recorded_port and not is_free(recorded_port):
        client = Redis(port=recorded_port, socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True)
        try:
            same = Path(str(client.config_get("dir").get("dir", ""))).resolve() == data.resolve()
        except RedisError:
            same = False
        finally:
            client.close()
        if same:  # a killed `hubhook dev` left it: adopt it (stopped at the end like one started here)
            adopted = RedisProcess(data, new_session=True)
            adopted.port = recorded_port
            return adopted, adopted.url
    redis = RedisProcess(data, new_session=True)
    redis.port = recorded_or_free(recorded_port)
    redis.start()
    return redis, redis.url


def stop_leftovers(state: devstate.DevState) -> int:
    """Refuse a second ``hubhook dev`` here; stop what a killed one left running. The number stopped."""
    if state.pid != os.getpid() and devstate.running(state.pid, "hubhook"):
        raise ConfigError(f"`hubhook dev` is already running in this directory (pid {state.pid}): use that one, "
                          f"or stop it (Ctrl-C in its terminal) first")
    left = [pid for pid in state.children if devstate.running(pid, "hubhook", "gunicorn", "fake_hubspot")]
    for pid in left:
        try:
            os.killpg(pid, signal.SIGTERM)  # each child leads its own group (gunicorn's workers are in it)
        except OSError:
            pass
    deadline = time.monotonic() + 15
    while any(devstate.running(pid, "hubhook", "gunicorn", "fake_hubspot") for pid in left):
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            break
        time.sleep(0.05)
    return len(left)


def dev_all(environ: Mapping[str, str], *, handlers: str | None, workers: int, poller: bool,
            port: int | None) -> int:
    """Start the stack, print the banner, reload on change, stop everything on Ctrl-C; the exit status."""
    from webhook_service.cli.dev import _hubhook
    from webhook_service.cli.operator import safe_url
    from webhook_service.cli.shared import require_redis
    from webhook_service.loading import load_router

    try:  # the reload thread imports it later, where a failure would go unseen
        import watchfiles  # noqa: F401
    except ImportError:
        raise ConfigError("`hubhook dev` reloads handlers with the watchfiles package, which is not installed: "
                          "reinstall hubhook (`pip install -e .` in its clone, or `make install`)") from None
    directory = devstate.ensure()
    state = devstate.load(directory)
    leftovers = stop_leftovers(state)
    env = {k: v for k, v in environ.items()}
    if handlers:
        env["HUBHOOK_HANDLERS"] = handlers
    for name, value in DEV_DEFAULTS.items():
        env.setdefault(name, value)
    env["PYTHONUNBUFFERED"] = "1"
    own_secret = not env.get("HUBSPOT_CLIENT_SECRET", "").strip()
    if own_secret:
        env["HUBSPOT_CLIENT_SECRET"] = devstate.make_secret(directory)
    use_fake = not env.get("HUBSPOT_API_BASE_URL", "").strip()
    fake_port = recorded_or_free(state.hubspot_port) if use_fake else None
    if use_fake:  # the fake accepts any token: never hand it one of yours
        env.update(HUBSPOT_API_BASE_URL=f"http://127.0.0.1:{fake_port}", HUBSPOT_ACCESS_TOKEN=devstate.DEV_TOKEN)
        env.pop("HUBSPOT_CLIENT_ID", None)
        for name, value in FAKE_DEFAULTS.items():
            env.setdefault(name, value)
    if port:
        env["PORT"] = str(port)
    elif not env.get("PORT", "").strip():  # the port of last time, else the usual one, else any free one
        env["PORT"] = str(state.receiver_port if state.receiver_port and is_free(state.receiver_port)
                          else Config.port if is_free(Config.port) else recorded_or_free(None))
    config = Config.from_env(env, dev_state=False).require_secret().require_hubspot_auth()
    receiver_port = config.port
    router = load_router(config.handlers).check_against(config)  # a broken module: one line, before anything
    path, _ = watched_path(config.handlers or "")
    supervisor = Supervisor(sys.stdout)
    stopped_by: list[int] = []

    def on_signal(number: int, frame: object) -> None:
        stopped_by.append(number)
        supervisor.done.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    redis = None
    try:
        if env.get("REDIS_URL", "").strip():
            require_redis(config)
            redis_url = ""  # the user's Redis (maybe with a password) is not recorded: others need REDIS_URL too
        else:
            redis, redis_url = reuse_or_start_redis(directory, state.redis_port)
            env["REDIS_URL"] = redis_url
        receiver = f"http://127.0.0.1:{receiver_port}/webhooks/hubspot"
        recorded = devstate.DevState(
            redis_url=redis_url, hubspot_url=env["HUBSPOT_API_BASE_URL"] if use_fake else "",
            hubspot_token=devstate.DEV_TOKEN if use_fake else "", receiver_url=receiver, portal_id=state.portal_id,
            pid=os.getpid())
        devstate.save(directory, recorded)
        supervisor.on_start = lambda: devstate.save(directory, replace(
            recorded, children=[c.process.pid for c in supervisor.children.values()]))
        hubhook = _hubhook()
        if leftovers:
            supervisor.say("dev", f"stopped {leftovers} process(es) an earlier `hubhook dev` here left running")
        if use_fake:
            supervisor.start("fake", fake_hubspot_command(fake_port or 0, webhook_url=receiver), env)
            _wait_listening(fake_port or 0, supervisor)
        supervisor.start("web", [hubhook, "web"], env)
        supervisor.restartable = [f"worker.{n}" if workers > 1 else "worker" for n in range(1, workers + 1)]
        for name in supervisor.restartable:
            supervisor.start(name, [hubhook, "worker"], env)
        if poller:
            supervisor.start("poller", [hubhook, "poll"], env)
            supervisor.restartable.append("poller")
        lines = [f"hubhook dev: state in {directory} (kept across restarts; other hubhook commands run here use it)",
                 f"  receiver      {receiver}",
                 f"  HubSpot       {env['HUBSPOT_API_BASE_URL']} "
                 + ("(fake HubSpot, demo data seeded; it sends the webhooks of every write to the receiver)"
                    if use_fake else "(HUBSPOT_API_BASE_URL)"),
                 f"  redis         {safe_url(env['REDIS_URL'])} "
                 + ("(REDIS_URL)" if not redis_url else f"(data in {directory / 'redis'})"),
                 "  signing       " + ("a dev-only secret in .hubhook/secret" if own_secret
                                       else "HUBSPOT_CLIENT_SECRET"),
                 f"  retries       {env['HUBHOOK_HANDLER_RETRIES']} s (HUBHOOK_HANDLER_RETRIES)",
                 f"  handlers      {config.handlers}, reloaded when a .py file in {path} changes:",
                 *handler_lines(router),
                 "Try, in another terminal in this directory:",
                 f"  {example_event(router)}",
                 "  hubhook trigger deal.creation",
                 "  hubhook status",
                 "Ctrl-C stops everything."]
        for line in lines:
            supervisor.say("dev", line)
        threading.Thread(target=watch, args=(config.handlers, env, supervisor), name="dev-watch",
                         daemon=True).start()
        supervisor.done.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        supervisor.done.set()
        supervisor.stop_all()
        if redis is not None:
            _stop_redis(redis)
        if devstate.load(directory).pid == os.getpid():  # nothing of ours runs any more
            devstate.save(directory, replace(devstate.load(directory), pid=0, children=[]))
    if supervisor.failed and not stopped_by:
        supervisor.say("dev", f"{supervisor.failed}: stopped everything")
        return 1
    return 130 if stopped_by and stopped_by[0] == signal.SIGINT else 0


def _wait_listening(port: int, supervisor: Supervisor, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not supervisor.done.is_set():
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise ConfigError(f"the fake HubSpot did not start on port {port}: see its lines above")
        time.sleep(0.05)


def _stop_redis(redis: RedisProcess) -> None:
    """Stop the dev Redis: its process, or for one adopted from a killed dev, with SHUTDOWN (AOF kept)."""
    if redis.process is not None:
        redis.stop()
        return
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis(port=redis.port, socket_timeout=5.0, socket_connect_timeout=1.0)
    try:
        client.shutdown()
    except RedisError:
        pass  # already gone
    finally:
        client.close()
