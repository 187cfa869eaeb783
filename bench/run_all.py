"""`make bench`: every benchmark, one after another, then the results table (also bench/results.md).

Why one process per bench: each starts its own redis-server, gunicorn and workers, and a bench that
crashes or hangs must not spoil the next; an overrunning bench gets SIGTERM (the benches turn it
into a clean exit that stops their processes), so the whole run stays under 10 minutes. Figures
come from the ``BENCH-RESULT`` lines benches print (bench/results.py), each with its same-run
baseline and the command that reprints it; a bench that prints none gets a row that says so.

    .venv/bin/python bench/run_all.py [--only receiver.py memory.py]
"""
from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.results import Figure, machine, parse, table

#: (script, extra arguments, time limit in seconds); scripts that do not exist (yet) are skipped.
BENCHES = [
    ("api_calls.py", [], 60),
    ("quota.py", [], 150),
    ("stream.py", [], 90),
    ("poller.py", ["--records", "100000"], 180),
    ("polled_history.py", [], 120),  # 100k records: >= 100 s at the 1,000/s ceiling
    ("journal.py", [], 60),
    ("receiver.py", [], 150),
    ("ack_latency.py", ["--seconds", "15"], 120),
    ("latency.py", [], 80),
    ("latency.py", ["--seconds", "5", "--events-per-delivery", "1"], 70),
    ("memory.py", [], 60),
    ("worker_overhead.py", [], 60),
    ("mirror.py", [], 150),
    ("multihost.py", [], 60),
    ("replication_wait.py", [], 60),
    ("fairness.py", [], 300),  # 3 runs of a 3,000-event flood at 20 ms an object: ~70 s each
]
BUDGET = 570  # seconds: `make bench` must finish in under 10 minutes


def run(script: str, args: list[str], limit: float) -> tuple[int | None, str]:
    """Run one bench, echoing its output live; return its exit status (None: stopped) and output."""
    process = subprocess.Popen([sys.executable, "-u", str(HERE / script), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
    lines: list[str] = []

    def pump() -> None:
        for line in process.stdout:
            lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        status: int | None = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        print(f"\n[{script} overran its {limit:.0f} s: stopping it]", flush=True)
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        status = None
    reader.join(timeout=5)
    return status, "".join(lines)


def figures_of(label: str, status: int | None, output: str) -> list[Figure]:
    """The figures one bench printed, plus a row when it printed none or did not finish."""
    found = parse(output, source=label)
    if not found:
        found = [Figure(f"{label}: no figures printed", "see its output above", source=label)]
    if status != 0:
        why = "stopped: over its time limit" if status is None else f"failed: exit status {status}"
        found.append(Figure(f"{label} {why}", "-", source=label))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="run only these scripts")
    args = parser.parse_args()
    started = time.monotonic()
    figures: list[Figure] = []
    for script, extra, limit in BENCHES:
        label = " ".join([script, *extra])
        if not (HERE / script).exists() or (args.only and script not in args.only):
            continue
        left = BUDGET - (time.monotonic() - started)
        if left < 20:
            figures.append(Figure(f"{label} skipped: the 10-minute budget is spent", "-", source=label))
            continue
        print(f"\n=== {label} ({time.monotonic() - started:.0f} s into the run) ===", flush=True)
        figures.extend(figures_of(label, *run(script, extra, min(limit, left))))
    elapsed = time.monotonic() - started
    text = table(figures, machine())
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    (HERE / "results.md").write_text(f"# Benchmark results\n\n`make bench` on {stamp}, {elapsed:.0f} s in all. "
                                     f"Each bench's docstring says what it measures and why; each row's "
                                     f"command prints that figure again.\n\n{text}\n")
    print(f"\n=== results ({elapsed:.0f} s; also in bench/results.md) ===\n\n{text}")


if __name__ == "__main__":
    main()
