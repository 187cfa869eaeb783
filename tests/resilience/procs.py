"""Process supervisors for the resilience suite: start hubhook's real processes, kill them, restart them.

Each process runs in a session of its own, so ``kill9`` takes the whole process group down the way a
crashed container or an OOM kill does: the RQ worker *and* the scheduler it forks. Killing only the
worker pid would leave an orphaned scheduler holding RQ's scheduler lock, which is not a crash anyone
sees in production. Output goes to a log file per process (a full pipe would block the process), and
every process is stopped by the fixture that started it, by its own pid.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

HUBHOOK = str(Path(sys.executable).with_name("hubhook"))


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll ``predicate`` until it is true; return the seconds it took, or fail naming ``what``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


def children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (gunicorn's workers), read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Proc:
    """One ``hubhook`` command in its own process group."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.log = args, log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen([HUBHOOK, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole group (worker plus its forked scheduler)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL whatever of the group is left."""
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill9()


class Web:
    """``hubhook web`` (gunicorn master + workers) answering /healthz."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['PORT']}/webhooks/hubspot"
        self.proc = Proc(["web"], env, log)
        wait_until(self.healthy, 30, "hubhook web to answer /healthz")
        wait_until(lambda: len(self.worker_pids()) >= int(env.get("WEB_CONCURRENCY", "2")), 30,
                   "gunicorn's workers to start")

    def healthy(self) -> bool:
        try:
            return requests.get(self.url.replace("/webhooks/hubspot", "/healthz"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def kill_worker(self, rng: random.Random) -> int:
        """SIGKILL one gunicorn worker (not the master, which starts a replacement); return its pid."""
        pid = rng.choice(self.worker_pids())
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        self.proc.stop()


class WorkerPool:
    """``size`` x ``hubhook worker``, with a supervisor thread that restarts any that dies."""

    def __init__(self, size: int, env: dict[str, str], log_dir: Path, *, args: tuple[str, ...] = ()) -> None:
        self.env, self.log_dir, self.args = env, log_dir, list(args)
        self.slots: list[Proc] = []
        self.kills: list[float] = []          # time.monotonic() of each kill
        self.killed: set[int] = set()         # pids killed
        self.restarts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for slot in range(size):
            self.slots.append(self._spawn(slot))
        self._thread = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, slot: int) -> Proc:
        return Proc(["worker", *self.args], self.env, self.log_dir / f"worker-{slot}.log")

    def _supervise(self) -> None:
        """Restart dead workers, each at most every 0.5 s (a worker that cannot start must not spin)."""
        not_before = [0.0] * len(self.slots)
        while not self._stop.wait(0.1):
            with self._lock:
                for slot, proc in enumerate(self.slots):
                    if not proc.alive() and time.monotonic() >= not_before[slot]:
                        self.slots[slot] = self._spawn(slot)
                        self.restarts += 1
                        not_before[slot] = time.monotonic() + 0.5

    def kill_random(self, rng: random.Random) -> int:
        """SIGKILL one live worker's process group; the supervisor restarts it. Returns its pid."""
        with self._lock:
            victim = rng.choice([p for p in self.slots if p.alive()] or self.slots)
            victim.kill9()
            self.kills.append(time.monotonic())
            self.killed.add(victim.pid)
            return victim.pid

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for proc in self.slots:  # all at once: warm shutdowns overlap
                if proc.alive():
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in self.slots:
                proc.stop(timeout=15)
