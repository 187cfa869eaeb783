"""Helpers for the operations tests: real `hubhook` processes, scraping and parsing /metrics."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

HUBHOOK = str(Path(sys.executable).with_name("hubhook"))


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def hubhook(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the CLI through its console entry point, as a user does."""
    return subprocess.run([HUBHOOK, *args], env=env, capture_output=True, text=True, timeout=timeout)


def spawn(*args: str, env: dict, log: Path) -> subprocess.Popen:
    """A long-running `hubhook ...` process whose stderr (its log) goes to ``log``."""
    return subprocess.Popen([HUBHOOK, *args], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def scrape(base: str, token: str | None = None) -> dict[tuple, float]:
    """/metrics (as the bearer of ``token``) parsed with prometheus_client's parser:
    {(sample name, sorted labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{base}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict[tuple, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def stack_env(env: dict, port: int, **extra: str) -> dict:
    return {**env, "PORT": str(port), "HUBHOOK_HANDLERS": "tests.ops_handlers:router",
            "HUBHOOK_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/hubspot", "PYTHONUNBUFFERED": "1", **extra}
