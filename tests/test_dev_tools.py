"""Developer experience: `hubhook run` (every process in one terminal) and the pytest plugin."""
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from webhook_service.testing import make_event, post_delivery

from .conftest import ROOT, SECRET, free_port
from .ops_support import HUBHOOK, wait_until


def test_hubhook_run_starts_everything_prefixes_logs_and_stops_on_ctrl_c(env, hubspot):
    # Given no REDIS_URL: `hubhook run` starts a private Redis, as `make demo` does
    hubspot.add("contacts", 5, {"email": "ada@example.com"})
    port = free_port()
    run_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
    run_env.update(PORT=str(port), HUBHOOK_HANDLERS="tests.ops_handlers:router")
    process = subprocess.Popen([HUBHOOK, "run", "--no-poller"], env=run_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(x) for x in iter(process.stdout.readline, "")], daemon=True).start()

    def saw(pattern):
        while not lines.empty():
            seen.append(lines.get())
        return any(re.search(pattern, line) for line in seen)

    try:
        wait_until(lambda: saw(r"web\s+\| .*Booting worker"), 60, "the receiver to boot")
        redis_port = int(re.search(r"redis started at redis://127.0.0.1:(\d+)/0", seen[0]).group(1))
        # When a signed delivery arrives
        url = f"http://127.0.0.1:{port}/webhooks/hubspot"
        assert post_delivery(url, [make_event("contact.creation", 5)], SECRET).status_code == 200
        # Then the handler's output appears, prefixed by the process that printed it
        wait_until(lambda: saw(r"worker\s+\| \[welcome\] contact 5 ada@example.com"), 60, "the handler's output")
        assert saw(r"web\s+\| .*delivery accepted")
        pids = [int(p) for line in seen for p in re.findall(r"started \(pid=(\d+)\)", line)]
        assert len(pids) == 2
        # When the developer presses Ctrl-C
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Then every process is gone, and so is the private Redis
    for pid in pids:
        wait_until(lambda pid=pid: not _alive(pid), 10, f"process {pid} to exit")
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", redis_port)) != 0


def test_hubhook_run_checks_settings_before_starting_anything(env):
    result = subprocess.run([HUBHOOK, "run"], env={**env, "HUBHOOK_HANDLERS": ""}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "no handlers configured" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_pytest_plugin_gives_a_users_tests_their_fixtures(tmp_path):
    # Given a user's project with handlers and a three-line test, and no conftest
    (tmp_path / "hooks.py").write_text(textwrap.dedent("""
        from webhook_service import Router

        router = Router()

        @router.on("deal.propertyChange", property="dealstage", to="closedwon", from_="contractsent",
                   properties=["dealname"])
        def stage_changed(event):
            if event.record["properties"]["dealname"] == "Broken":
                raise ValueError("cannot handle it")
    """))
    (tmp_path / "test_hooks.py").write_text(textwrap.dedent("""
        import time
        from hooks import router
        from webhook_service.testing import make_event

        def won(deal_id):
            return make_event("deal.propertyChange", deal_id, property="dealstage", value="closedwon")

        def test_stage_changed(run_handlers, hubspot_fake):
            hubspot_fake.add("deals", 1, {"dealname": "Big", "dealstage": "contractsent"})
            time.sleep(0.002)
            run = run_handlers(router, won(1), records={"deals": {1: {"dealstage": "closedwon"}}})
            assert run.event("stage_changed").record["properties"]["dealname"] == "Big"

        def test_from_filters_and_errors(run_handlers, hubspot_fake):
            run = run_handlers(router, won(2), records={"deals": {2: {"dealname": "New"}}})
            assert run.called == [] and run.filtered == ["hooks.stage_changed"]
            hubspot_fake.add("deals", 3, {"dealname": "Broken", "dealstage": "contractsent"})
            time.sleep(0.002)
            run = run_handlers(router, [won(3)], raise_errors=False, records={"deals": {3: {"dealstage": "closedwon"}}})
            assert isinstance(run.calls[0].error, ValueError)

        def test_signed(signed_delivery):
            body, headers = signed_delivery([won(1)])
            assert "X-HubSpot-Signature-v3" in headers
    """))
    # When the user runs pytest (no Redis, no HubSpot, no REDIS_URL)
    environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYTEST_ADDOPTS")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
                            cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120)
    # Then the plugin's fixtures were there and the tests passed
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_the_readmes_first_handler_runs_against_the_fake_without_declaring_properties(capsys):
    # Given the README's first Python example, as a new user copies it: no properties=
    from webhook_service.testing import FakeHubSpot, run_handlers

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_example = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {"__name__": "readme"}
    exec(compile(first_example, "README.md (first example)", "exec"), namespace)
    with FakeHubSpot() as hubspot:
        # When its deal changes stage; the deal has a name and a contact, the other defaults unset
        change = make_event("deal.propertyChange", 7, property="dealstage", value="closedwon")
        run = run_handlers(namespace["router"], change, hubspot=hubspot,
                           associations=[("deals", 7, "contacts", 1)],
                           records={"deals": {7: {"dealname": "Big", "dealstage": "closedwon"}},
                                    "contacts": {1: {"email": "ada@example.com"}}})
    # Then it runs (the fake answers with HubSpot's default deal properties, as HubSpot does)
    assert run.called == ["readme.stage_changed"] and capsys.readouterr().out.startswith("Big ")
    properties = run.event("stage_changed").record["properties"]
    assert properties["dealname"] == "Big" and properties["amount"] is None and properties["pipeline"] is None
