"""Helpers shared by the quota, OAuth, write-back and batching tests."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from webhook_service.config import Config
from webhook_service.connection import queue as build_queue
from webhook_service.receiver.intake import enqueue_delivery

from .quota_handlers import LEDGER

HUBHOOK = str(Path(sys.executable).with_name("hubhook"))


def deliver(config: Config, redis: Redis, events: list[dict]):
    """Accept one delivery the way the receiver does."""
    return enqueue_delivery(redis, build_queue(config, redis), events)


def ledger(redis: Redis) -> list[dict]:
    return [json.loads(x) for x in redis.lrange(LEDGER, 0, -1)]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def spawn_workers(n: int, env: dict[str, str], logs: Path) -> list[subprocess.Popen]:
    """``n`` real ``hubhook worker`` processes; each one's stderr goes to a file in ``logs``."""
    processes = []
    for i in range(n):
        with open(logs / f"worker-{i}.log", "w") as stderr:
            processes.append(subprocess.Popen([HUBHOOK, "worker", "--name", f"quota-{i}"], env=env,
                                              stdout=subprocess.DEVNULL, stderr=stderr, text=True))
    return processes


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def max_in_window(times: list[float], seconds: float) -> int:
    """The most requests any rolling window of ``seconds`` held."""
    times, most, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most
