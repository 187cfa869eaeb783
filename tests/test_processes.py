"""The Procfile's processes, as a user runs them: `hubhook web` and `hubhook worker` over real HTTP."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from rq.defaults import RQ_KEY_PREFIX

from webhook_service.testing import make_event, post_delivery

from .conftest import SECRET, free_port
from .ledger_handlers import TEST

HUBHOOK = str(Path(sys.executable).with_name("hubhook"))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def spawn(*args, env):
    return subprocess.Popen([HUBHOOK, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def stack_env(env):
    port = free_port()
    return {**env, "PORT": str(port), "WEB_CONCURRENCY": "1", "HUBHOOK_HANDLERS": "tests.ledger_handlers:router",
            "HUBHOOK_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/hubspot", "HUBHOOK_JOB_TIMEOUT": "20"}


@pytest.fixture
def web(stack_env):
    process = spawn("web", env=stack_env)
    url = stack_env["HUBHOOK_WEBHOOK_URL"]

    def healthy():
        try:
            return requests.get(url.replace("/webhooks/hubspot", "/healthz"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(healthy, 20, "hubhook web to answer /healthz")
    yield url
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def ledger(redis):
    return [json.loads(x) for x in redis.lrange(TEST + "ledger", 0, -1)]


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_a_delivery_reaches_a_handler_through_web_and_worker(stack_env, web, redis, hubspot):
    # Given the receiver and a worker running as separate processes
    hubspot.add("contacts", 1, {"email": "ada@example.com"})
    hubspot.add("companies", 9)
    hubspot.associate("contacts", 1, "companies", 9)
    worker = spawn("worker", env=stack_env)
    try:
        # When HubSpot posts a signed delivery
        response = post_delivery(web, [make_event("contact.creation", 1)], SECRET)
        # Then it is acknowledged and the handler sees the enriched contact
        assert response.status_code == 200
        wait_until(lambda: ledger(redis), 30, "the handler call")
        assert ledger(redis) == [{"id": "1", "type": "contact.creation", "companies": ["9"]}]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_a_worker_killed_mid_job_loses_nothing(stack_env, web, redis, hubspot):
    # Given a worker in the middle of a slow handler
    hubspot.add("contacts", 5, {"email": "slow@example.com"})
    first = spawn("worker", "--name", "first", env=stack_env)
    assert post_delivery(web, [make_event("contact.creation", 5)], SECRET).status_code == 200
    wait_until(lambda: redis.llen(TEST + "started"), 30, "the slow handler to start")
    # When the worker is killed with SIGKILL and another worker is running
    first.kill()
    first.wait()
    killed_at = time.monotonic()
    second = spawn("worker", "--name", "second", env=stack_env)
    try:
        # Then the job runs again within 2 minutes and the handler completes
        wait_until(lambda: ledger(redis), 120, "the abandoned job to run again")
        assert [e["id"] for e in ledger(redis)] == ["5"]
        assert time.monotonic() - killed_at < 120
    finally:
        second.terminate()
        second.wait(timeout=30)


@pytest.mark.parametrize("args, env_change, message", [
    (["web"], {"HUBSPOT_CLIENT_SECRET": ""}, "HUBSPOT_CLIENT_SECRET is not set"),
    (["worker", "--burst"], {"HUBHOOK_HANDLERS": "no_such_module:router"}, "cannot import handlers module"),
    (["worker", "--burst"], {"HUBHOOK_HANDLERS": ""}, "no handlers configured"),
    (["worker"], {"REDIS_URL": "http://x"}, "REDIS_URL must start with redis://"),
    (["worker"], {"HUBHOOK_POLL_INTERVAL": "soon"}, "HUBHOOK_POLL_INTERVAL must be a number"),
])
def test_cli_errors_are_one_line_with_the_fix(env, args, env_change, message):
    result = subprocess.run([sys.executable, "-m", "webhook_service.cli", *args], env={**env, **env_change},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_send_test_event_signs_like_hubspot_and_is_accepted(stack_env, web, redis):
    # Given a running receiver
    # When a developer sends a test event with the CLI
    result = subprocess.run([HUBHOOK, "send-test-event", "deal.propertyChange", "--object-id", "42",
                             "--property", "dealstage", "--value", "won", "--url", web],
                            env=stack_env, capture_output=True, text=True, timeout=60)
    # Then the receiver verified and enqueued it
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("200 ") and '"enqueued":1' in result.stdout
    assert redis.llen(f"{RQ_KEY_PREFIX}:queue:hubhook") == 1


def test_send_test_event_without_a_receiver_says_what_to_do(env):
    result = subprocess.run([sys.executable, "-m", "webhook_service.cli", "send-test-event", "contact.creation",
                             "--object-id", "1", "--url", f"http://127.0.0.1:{free_port()}/webhooks/hubspot"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "is `hubhook web` running?" in result.stderr


def one_line_error(result) -> str:
    """The stderr of a command that stopped on an error the user can fix: exit 2, one line, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize("args", [["worker"], ["poll", "--once"], ["replay"], ["web"], ["run"]])
def test_an_unreachable_redis_is_one_line_naming_the_url_without_its_password(env, args):
    # Given REDIS_URL pointing at a port nobody listens on, with a password in it
    url = f"redis://:hunter2secret@127.0.0.1:{free_port()}/0"
    run_env = {**env, "REDIS_URL": url, "HUBHOOK_HANDLERS": "tests.ledger_handlers:router", "PORT": str(free_port())}
    # When a process starts
    result = subprocess.run([sys.executable, "-m", "webhook_service.cli", *args], env=run_env,
                            capture_output=True, text=True, timeout=60)
    # Then it stops at once with one line: where it looked (password hidden) and what to do
    line = one_line_error(result)
    assert url.replace("hunter2secret", "***") in line and "hunter2secret" not in line
    assert "start redis-server" in line and "REDIS_URL" in line


@pytest.mark.parametrize("args", [["worker", "--burst"], ["run", "--no-poller"]])
def test_run_and_worker_without_a_hubspot_token_or_oauth_app_stop_at_start(env, args):
    # Given a client secret but neither HUBSPOT_ACCESS_TOKEN nor HUBSPOT_CLIENT_ID
    run_env = {**env, "HUBSPOT_ACCESS_TOKEN": "", "HUBSPOT_CLIENT_ID": "", "PORT": str(free_port()),
               "HUBHOOK_HANDLERS": "tests.ledger_handlers:router"}
    # When the process starts (in its own session, so a stack that wrongly starts can be stopped whole)
    process = subprocess.Popen([sys.executable, "-m", "webhook_service.cli", *args], env=run_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
        raise AssertionError(f"`hubhook {args[0]}` started without HubSpot credentials") from None
    # Then it stops with one line saying what to set, for HubSpot and for the local fake
    line = one_line_error(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    assert "HUBSPOT_ACCESS_TOKEN" in line and "HUBSPOT_CLIENT_ID" in line
    assert "HUBSPOT_ACCESS_TOKEN=any HUBSPOT_API_BASE_URL=http://127.0.0.1:8900" in line


@pytest.mark.parametrize("source, expected", [
    pytest.param("from webhook_service import Router\n\nrouter = Router(\n", "SyntaxError: ", id="syntax"),
    pytest.param("from webhook_service import Router\nimport json\nrouter = Router()\nSETTINGS = json.loads('{')\n",
                 "JSONDecodeError: Expecting property name", id="raises"),
    pytest.param("from webhook_service import Router\n\nimport not_installed_anywhere_xyz\n",
                 "ModuleNotFoundError: No module named 'not_installed_anywhere_xyz'", id="dependency"),
])
def test_a_handlers_module_that_fails_to_import_is_one_line_naming_the_setting_and_the_line(env, tmp_path,
                                                                                             source, expected):
    # Given a handlers module with a syntax error, an error at import or a missing dependency
    (tmp_path / "broken_hooks.py").write_text(source)
    # When a worker starts with it
    result = subprocess.run([sys.executable, "-m", "webhook_service.cli", "worker", "--burst"],
                            env={**env, "HUBHOOK_HANDLERS": "broken_hooks:router"}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    # Then one line ties it to HUBHOOK_HANDLERS and says what failed where
    line = one_line_error(result)
    assert "HUBHOOK_HANDLERS" in line and "'broken_hooks'" in line and expected in line
    assert f"broken_hooks.py:{source.count(chr(10))}" in line


def test_web_on_a_port_in_use_is_one_line_suggesting_another_port(env):
    # Given something already listening on the port
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # When `hubhook web` starts there
        result = subprocess.run([sys.executable, "-m", "webhook_service.cli", "web"], env={**env, "PORT": str(port)},
                                capture_output=True, text=True, timeout=60)
    # Then one line says so and how to choose another
    line = one_line_error(result)
    assert f"port {port} is already in use" in line and f"PORT={port + 1} hubhook web" in line


@pytest.mark.skipif(not Path(HUBHOOK).exists(), reason="hubhook is not installed in this environment")
def test_web_listens_only_on_the_address_it_is_given(stack_env):
    # Given `hubhook web --host 127.0.0.2` (HUBHOOK_BIND_HOST says 127.0.0.3, the option wins)
    port = int(stack_env["PORT"])
    process = spawn("web", "--host", "127.0.0.2", env={**stack_env, "HUBHOOK_BIND_HOST": "127.0.0.3"})

    def answers(host):
        try:
            return requests.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        # Then it answers there and not on another loopback address
        wait_until(lambda: answers("127.0.0.2"), 20, "hubhook web to answer on 127.0.0.2")
        assert not answers("127.0.0.1") and not answers("127.0.0.3")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.parametrize("args", [["worker", "--burst"], ["poll", "--once"], ["run"]])
def test_a_property_handler_on_a_type_nothing_can_deliver_stops_the_process_with_the_reason(env, tmp_path, args):
    # Given a handler watching one conversation property, while conversations are not sent by webhook
    # (HUBHOOK_WEBHOOK_TYPES leaves them out) and cannot be polled (no CRM search for threads)
    (tmp_path / "thread_hooks.py").write_text(
        "from webhook_service import Router\n\nrouter = Router()\n\n\n"
        "@router.on('conversation.propertyChange', property='status', to='CLOSED')\n"
        "def thread_closed(event):\n    pass\n")
    # When a process starts with it
    result = subprocess.run([sys.executable, "-m", "webhook_service.cli", *args],
                            env={**env, "HUBHOOK_HANDLERS": "thread_hooks:router", "PORT": str(free_port()),
                                 "HUBHOOK_WEBHOOK_TYPES": "contact,deal"},
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    # Then it stops at once with one line naming the handler, why it could never fire, and the fix
    line = one_line_error(result)
    assert "'thread_hooks.thread_closed'" in line and "no CRM search or property history" in line
    assert "add conversation to HUBHOOK_WEBHOOK_TYPES" in line
