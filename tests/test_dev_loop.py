"""`hubhook dev`: the local loop for a user's own handlers package, outside this repository.

Each test starts `hubhook dev` as a real process in a project directory under tmp_path, with none of
hubhook's variables set, and drives it the way a user would: other `hubhook` commands in a second
process, finding everything through `.hubhook/`.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from webhook_service.config import ENVIRONMENT, Config

from .conftest import free_port
from .ops_support import HUBHOOK, wait_until

HOOKS = '''\
from pathlib import Path

from webhook_service import Router

router = Router()
OUT = Path(__file__).resolve().parent.parent / "calls.txt"


@router.on("deal.propertyChange", property="dealstage")
def stage_changed(event):
    with OUT.open("a") as out:
        out.write(f"{VERSION} deal {event.object_id} {event.record['properties']['dealname']}\\n")


@router.on("contact.creation")
def broken(event):
    raise ValueError("boom")


VERSION = "v1"
'''
#: The dev loop's demo deal 1009 (webhook_service.testing.fake_hubspot.demo).
SEND_DEAL = ["send-test-event", "deal.propertyChange", "--object-id", "1009", "--property", "dealstage",
             "--value", "closedwon"]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user who set none of hubhook's variables (the suite's own are removed)."""
    ours = {v.name for v in ENVIRONMENT} - {"HUBHOOK_FAST_PATHS"}
    env = {k: v for k, v in os.environ.items() if k not in ours and k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: a `myhooks` package with a handler that writes to calls.txt, and no hubhook state."""
    (tmp_path / "myhooks").mkdir()
    (tmp_path / "myhooks" / "__init__.py").write_text("")
    (tmp_path / "myhooks" / "hooks.py").write_text(HOOKS)
    return tmp_path


class Dev:
    """A running `hubhook dev`, its output collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.process = subprocess.Popen([HUBHOOK, "dev"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in iter(stdout.readline, "")], daemon=True).start()

    def saw(self, pattern: str) -> re.Match | None:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return next((m for line in self.seen if (m := re.search(pattern, line))), None)

    def saw_all(self) -> list[str]:
        self.saw("")
        return self.seen

    def wait_for(self, pattern: str, what: str, timeout: float = 60) -> re.Match:
        return wait_until(lambda: self.saw(pattern) or self._died(what), timeout, what)

    def _died(self, what: str) -> None:
        if self.process.poll() is not None:
            self.saw("")
            raise AssertionError(f"hubhook dev exited ({self.process.returncode}) before {what}:\n"
                                 + "".join(self.seen[-40:]))

    def ready(self) -> Dev:
        self.wait_for(r"^dev\s+\| Ctrl-C stops everything", "the banner")
        self.wait_for(r"^worker\s+\| .*listening on queue", "the worker")
        self.wait_for(r"^web\s+\| .*Booting worker", "the receiver")
        return self

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def hubhook(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Another `hubhook` command, in a second process, with no hubhook variable set."""
    return subprocess.run([HUBHOOK, *args], cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=60)


def calls(project: Path) -> list[str]:
    path = project / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_an_edited_handler_runs_without_restarting_dev_and_a_broken_save_keeps_the_old_code(project):
    # Given `hubhook dev` running the user's handlers, on a free receiver port
    dev = Dev(project, user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port()))).ready()
    try:
        # Then the banner lists the handlers found and what to try next
        assert dev.saw(r"deal\.propertyChange property=dealstage -> myhooks\.hooks\.stage_changed")
        assert dev.saw(r"hubhook send-test-event deal\.propertyChange --object-id 1009 --property dealstage")
        # When a signed event is sent from a second process that sets nothing (it reads .hubhook/)
        sent = hubhook(project, *SEND_DEAL)
        assert sent.returncode == 0, sent.stderr
        # Then the handler ran on the fake HubSpot's demo deal, and dev said so in one line each
        wait_until(lambda: "v1 deal 1009 Acme renewal" in calls(project), 60, "the handler's first call")
        dev.wait_for(r"^web\s+\| \S+ received 1 event \(deal\.propertyChange; object 1009\): 1 enqueued", "received")
        dev.wait_for(r"^worker\s+\| \S+ handler myhooks\.hooks\.stage_changed ok in [\d.]+ ms for deal 1009",
                     "the ok line")
        # When the handler file is edited
        hooks = project / "myhooks" / "hooks.py"
        hooks.write_text(HOOKS.replace('VERSION = "v1"', 'VERSION = "v2"'))
        # Then dev reloads it and the next event runs the new code, with no restart of dev
        dev.wait_for(r"^dev\s+\| handlers changed \(myhooks/hooks\.py\): reloaded", "the reload line")
        assert hubhook(project, *SEND_DEAL).returncode == 0
        wait_until(lambda: "v2 deal 1009 Acme renewal" in calls(project), 60, "the edited handler's call")
        # When a save has a syntax error
        hooks.write_text(HOOKS.replace('VERSION = "v1"', 'VERSION = "v3"').replace("def broken(event):",
                                                                                   "def broken(event)"))
        # Then one line names the file and line, and the old code keeps running
        found = dev.wait_for(r"^dev\s+\| handlers changed \(myhooks/hooks\.py\): NOT reloaded.*SyntaxError.*"
                             r"myhooks/hooks\.py:(\d+)", "the syntax error line")
        assert int(found.group(1)) == HOOKS.splitlines().index("def broken(event):") + 1
        assert hubhook(project, *SEND_DEAL).returncode == 0
        wait_until(lambda: calls(project).count("v2 deal 1009 Acme renewal") == 2, 60, "the old code's call")
        # When the next save fixes it, dev recovers
        hooks.write_text(HOOKS.replace('VERSION = "v1"', 'VERSION = "v4"'))
        wait_until(lambda: len([x for x in dev.saw_all() if re.search(r"\): reloaded$", x)]) == 2, 60,
                   "the second reload")
        assert hubhook(project, *SEND_DEAL).returncode == 0
        wait_until(lambda: "v4 deal 1009 Acme renewal" in calls(project), 60, "the fixed handler's call")
    finally:
        assert dev.stop() == 130
    # And the dev-only signing secret was made once, readable by its owner only, and never printed
    secret_file = project / ".hubhook" / "secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text().strip() not in "".join(dev.seen)


def test_a_failing_handler_is_parked_within_seconds_and_other_commands_find_the_dev_redis_after_restart(project):
    # Given `hubhook dev` running (retries default to 1, 2 and 5 seconds under dev)
    env = user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port()))
    dev = Dev(project, env).ready()
    try:
        # When a handler fails on every attempt
        assert hubhook(project, "send-test-event", "contact.creation", "--object-id", "1004").returncode == 0
        # Then each failure is one line with the error and where it was raised, then a retry line
        dev.wait_for(r"^worker\s+\| \S+ handler myhooks\.hooks\.broken failed in [\d.]+ ms for contact 1004: "
                     r"ValueError: boom at myhooks/hooks\.py:\d+$", "the failed line")
        dev.wait_for(r"handler myhooks\.hooks\.broken for contact 1004: retry in 1 s", "the first retry line")
        # And it reaches the dead-letter registry in seconds, with a line naming `hubhook replay`
        dev.wait_for(r"myhooks\.hooks\.broken for contact:1004 parked in the dead-letter registry.*"
                     r"`hubhook replay --handler myhooks\.hooks\.broken`", "the parked line", timeout=90)
        assert "Traceback" not in "".join(dev.seen)
        # And `hubhook status` in another process finds the dev Redis, says where its URL came from,
        # and lists the dead letter
        status = hubhook(project, "status")
        assert status.returncode == 0, status.stderr
        assert re.search(r"^redis +redis://127\.0\.0\.1:\d+/0 \(from the dev state in .*\.hubhook\)$", status.stdout,
                         re.M), status.stdout
        assert re.search(r"^  myhooks\.hooks\.broken +1$", status.stdout, re.M), status.stdout
        redis_url = json.loads((project / ".hubhook" / "dev.json").read_text())["redis_url"]
    finally:
        assert dev.stop() == 130
    # When dev is stopped, other commands say in one line that the dev Redis is not running
    status = hubhook(project, "status")
    assert status.returncode != 0
    assert status.stderr.strip().splitlines() == [
        f"hubhook: error: dev Redis at {redis_url} is not running: start `hubhook dev` in this directory, or set "
        f"REDIS_URL (recorded in {(project / '.hubhook').resolve()})"]
    # When dev starts again
    dev = Dev(project, env).ready()
    try:
        # Then it has the same Redis URL, and the job parked before the restart is still listed
        assert json.loads((project / ".hubhook" / "dev.json").read_text())["redis_url"] == redis_url
        replay = hubhook(project, "replay", "--dry-run")
        assert replay.returncode == 0, replay.stderr
        assert "myhooks.hooks.broken" in replay.stdout
    finally:
        assert dev.stop() == 130


def test_a_broken_handlers_module_stops_dev_at_start_with_one_line(project):
    # Given a handlers module that does not import (a name error at import time)
    (project / "myhooks" / "hooks.py").write_text(HOOKS + "\nundefined_name\n")
    # When `hubhook dev` starts
    done = subprocess.run([HUBHOOK, "dev"], cwd=project, capture_output=True, text=True, timeout=60,
                          env=user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port())))
    # Then one line names HUBHOOK_HANDLERS, the error and the file:line, and nothing was started
    assert done.returncode != 0
    line = HOOKS.count("\n") + 2
    assert done.stderr.strip().splitlines() == [
        f"hubhook: error: the handlers module 'myhooks.hooks' (HUBHOOK_HANDLERS or --handlers) failed to import: "
        f"NameError: name 'undefined_name' is not defined at myhooks/hooks.py:{line}; fix it there"], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (project / ".hubhook" / "dev.json").exists()


def test_precedence_is_environment_then_dev_state_then_defaults(tmp_path, monkeypatch):
    # Given a dev state that recorded a Redis, the fake HubSpot and a receiver, and a dev-only secret
    from webhook_service import devstate

    directory = devstate.ensure(tmp_path)
    devstate.save(directory, devstate.DevState(redis_url="redis://127.0.0.1:7001/0", hubspot_url="http://127.0.0.1:7002",
                                               hubspot_token=devstate.DEV_TOKEN,
                                               receiver_url="http://127.0.0.1:7003/webhooks/hubspot"))
    secret = devstate.make_secret(directory)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found from a subdirectory too, as git finds .git
    # When nothing is set, the dev state supplies each value
    config = Config.from_env({}, dev_state=True)
    assert (config.redis_url, config.api_base_url, config.access_token, config.port, config.client_secrets) == (
        "redis://127.0.0.1:7001/0", "http://127.0.0.1:7002", devstate.DEV_TOKEN, 7003, (secret,))
    assert config.origin("REDIS_URL") == f"dev state in {directory}"
    # When the environment sets a variable, it wins over the dev state
    config = Config.from_env({"REDIS_URL": "redis://cache:6379/1", "HUBSPOT_CLIENT_SECRET": "mine"}, dev_state=True)
    assert (config.redis_url, config.client_secrets, config.origin("REDIS_URL")) == (
        "redis://cache:6379/1", ("mine",), "environment")
    # And an explicit environment without the dev state reads defaults only
    config = Config.from_env({})
    assert (config.redis_url, config.origin("REDIS_URL")) == (Config.redis_url, "default")
    # And a secret made again is the same one, kept readable by its owner only
    assert devstate.make_secret(directory) == secret
    assert stat.S_IMODE((directory / "secret").stat().st_mode) == 0o600


def test_the_standalone_fake_hubspot_starts_with_no_warning(tmp_path):
    # When the fake HubSpot is started as the docs say, with every warning an error
    process = subprocess.Popen([sys.executable, "-W", "error", "-m", "webhook_service.testing.fake_hubspot", "--port",
                                str(free_port()), "--seed-demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=tmp_path)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
    # Then it prints its demo data and URL, and no RuntimeWarning
    assert first.startswith("demo data: companies 1001 1002 1003"), first
    assert second.startswith("fake HubSpot serving on http://127.0.0.1:"), second


def test_the_dev_log_format_is_one_sentence_per_handler_call():
    # Given the dev formatter, and the records a worker logs for a handler call
    import logging

    from webhook_service.logs import DevFormatter, fields

    def record(msg: str, **values) -> logging.LogRecord:
        made = logging.LogRecord("hubhook.worker", logging.INFO, __file__, 1, msg, (), None)
        made.hubhook = values
        return made

    formatter = DevFormatter()
    # Then each renders as one line with the handler, the object and the outcome
    ok = formatter.format(record("handler ok", **fields(handler="h", ms=2.5, type="deal", object_id="7")["hubhook"]))
    assert re.fullmatch(r"\d\d:\d\d:\d\d handler h ok in 2\.5 ms for deal 7", ok)
    retry = formatter.format(record("handler retry scheduled", handler="h", type="deal", object_id="7", retry_in=2.0))
    assert retry.endswith("handler h for deal 7: retry in 2 s")
    # And a record the dev format has no sentence for keeps its message and fields on one line
    other = formatter.format(record("job done", job="j1", events=3))
    assert re.fullmatch(r"\d\d:\d\d:\d\d info hubhook\.worker: job done job=j1 events=3", other)


def test_a_hubspot_url_without_a_token_stops_dev_at_start_with_one_line(project):
    # Given HUBSPOT_API_BASE_URL set (a developer test account, say) but no token or OAuth app
    env = user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port()),
                   HUBSPOT_API_BASE_URL="https://api.hubapi.com")
    # When `hubhook dev` starts
    done = subprocess.run([HUBHOOK, "dev"], cwd=project, capture_output=True, text=True, timeout=60, env=env)
    # Then it starts nothing and says in one line what to set
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hubhook: error: no HubSpot token: set HUBSPOT_ACCESS_TOKEN"), lines
    assert not (project / ".hubhook" / "dev.json").exists()


def test_a_second_dev_is_refused_and_a_killed_dev_leaves_nothing_running_after_the_next_start(project):
    # Given `hubhook dev` running
    env = user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port()))
    dev = Dev(project, env).ready()
    try:
        state = json.loads((project / ".hubhook" / "dev.json").read_text())
        # When a second one starts in the same directory, it is refused in one line
        second = subprocess.run([HUBHOOK, "dev"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"hubhook: error: `hubhook dev` is already running in this directory (pid {dev.process.pid}): use that "
            f"one, or stop it (Ctrl-C in its terminal) first"]
        # When the first is killed with SIGKILL (it cannot stop its processes)
        dev.process.kill()
        dev.process.wait()
    finally:
        dev.stop()
    assert all(_alive(pid) for pid in state["children"])
    # Then the next start stops what it left, and reuses its Redis: same URL
    dev = Dev(project, env).ready()
    try:
        dev.wait_for(r"^dev\s+\| stopped \d+ process\(es\) an earlier `hubhook dev` here left running", "the cleanup")
        assert json.loads((project / ".hubhook" / "dev.json").read_text())["redis_url"] == state["redis_url"]
        assert not any(_alive(pid) for pid in state["children"])
        later = json.loads((project / ".hubhook" / "dev.json").read_text())["children"]
    finally:
        assert dev.stop() == 130
    # And once it is stopped, nothing of it runs: neither its processes nor the Redis it adopted
    assert not any(_alive(pid) for pid in later)
    assert hubhook(project, "status").returncode != 0


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie (reaped or not, a zombie has stopped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


TRIGGER_HOOKS = '''\
from pathlib import Path

from webhook_service import Router

router = Router()
OUT = Path(__file__).resolve().parent.parent / "calls.txt"


def note(line):
    with OUT.open("a") as out:
        out.write(line + "\\n")


@router.on("deal.creation")
def created(event):
    note(f"{VERSION} created deal {event.object_id} {event.record['properties']['dealname']}")
    event.hubspot.update("deals", event.object_id, {"description": "seen by hubhook"})


@router.on("deal.propertyChange", property="description")
def described(event):
    change = event.changes[0]
    note(f"described deal {event.object_id} by {change['changeSource']} {change.get('sourceId')}")


VERSION = "v1"
'''


def test_trigger_in_dev_runs_the_handler_once_and_its_write_back_comes_back_as_a_webhook(project):
    # Given `hubhook dev` running a handler that writes back to HubSpot, and one that watches that property
    (project / "myhooks" / "hooks.py").write_text(TRIGGER_HOOKS)
    dev = Dev(project, user_env(HUBHOOK_HANDLERS="myhooks.hooks:router", PORT=str(free_port()))).ready()
    try:
        # When `hubhook trigger` creates a deal from a second process that sets nothing (it reads .hubhook/)
        triggered = hubhook(project, "trigger", "deal.creation", "--set", "dealname=Triggered")
        assert triggered.returncode == 0, triggered.stderr
        created = re.search(r"^created deal (\d+) ", triggered.stdout, re.M)
        assert created, triggered.stdout
        deal = created.group(1)
        assert re.search(r"^sent 1 event\(s\) \(deal\.creation\) to http://(localhost|127\.0\.0\.1):\d+"
                         r"/webhooks/hubspot: 200$", triggered.stdout, re.M), triggered.stdout
        # Then the creation handler ran on the record the trigger wrote
        wait_until(lambda: f"v1 created deal {deal} Triggered" in calls(project), 60, "the creation handler")
        # And the fake HubSpot sent the webhook of the handler's own write-back, attributed to the app
        wait_until(lambda: any(c.startswith(f"described deal {deal} by INTEGRATION") for c in calls(project)), 60,
                   "the write-back's webhook")
        # When the handler is edited while dev runs, and the trigger runs again
        (project / "myhooks" / "hooks.py").write_text(TRIGGER_HOOKS.replace('VERSION = "v1"', 'VERSION = "v2"'))
        dev.wait_for(r"^dev\s+\| handlers changed \(myhooks/hooks\.py\): reloaded", "the reload line")
        again = hubhook(project, "trigger", "deal.creation", "--set", "dealname=Again")
        assert again.returncode == 0, again.stderr
        # Then the new code handles it, without a restart
        wait_until(lambda: any(c.startswith("v2 created deal") and c.endswith("Again") for c in calls(project)), 60,
                   "the edited handler")
        # And the trigger's own write caused no second delivery: each creation ran the handler exactly once
        # (the webhooks the fake sends for its writes are silenced by the trigger's fake-only header)
        wait_until(lambda: sum(c.startswith("described deal") for c in calls(project)) >= 2, 60, "both write-backs")
        assert sum("created deal" in c for c in calls(project)) == 2, calls(project)
    finally:
        assert dev.stop() == 130
