"""One line per figure, so `bench/run_all.py` can build the results table from any bench's output.

Why a line format and not return values: every bench runs as its own process (a crashed or leaking
bench cannot spoil the next one), so the figures cross a pipe. A bench calls ``emit()``; the runner
calls ``parse()`` on the captured output. Each figure carries the baseline measured in the same run,
because this box is shared and noisy: ratios travel between machines, absolute numbers do not.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass

PREFIX = "BENCH-RESULT "
#: How docs/performance.md and bench/README.md run a bench: the project's virtualenv, from the repository root.
COMMAND = ".venv/bin/python"


@dataclass(frozen=True)
class Figure:
    """One measured figure and the same-run baseline it should be read against.

    ``source`` is the bench script and its arguments (``"poller.py --records 100000"``): the command
    that printed the figure, so a reader can run it again.
    """

    figure: str
    value: str
    baseline: str = ""
    source: str = ""


def emit(figure: str, value: str, *, baseline: str = "") -> None:
    """Print one figure as a machine-readable line (and it stays readable to a person)."""
    print(PREFIX + json.dumps(asdict(Figure(figure, value, baseline))), flush=True)


def parse(text: str, source: str = "") -> list[Figure]:
    """Every figure a bench printed, in order; lines that are not figures are ignored."""
    figures = []
    for line in text.splitlines():
        if line.startswith(PREFIX):
            data = json.loads(line[len(PREFIX):])
            figures.append(Figure(data["figure"], data["value"], data.get("baseline", ""),
                                  data.get("source") or source))
    return figures


def machine() -> str:
    """What the numbers were measured on, e.g. "2 vCPU AMD EPYC, shared (app + Redis + load generator)"."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {model}, shared by app, Redis and load generator; loopback"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def command(source: str) -> str:
    """The command that prints a figure again, run from the repository root."""
    return f"{COMMAND} bench/{source}"


def table(figures: list[Figure], machine_text: str) -> str:
    """The Markdown results table of docs/performance.md: figure, result, same-run baseline, the command that
    printed it, and the machine under the table (every row was measured on it)."""
    lines = ["| Figure | Result | Baseline (same run) | Command |", "|---|---|---|---|"]
    for f in figures:
        cells = [f.figure, f.value, f.baseline or "-", f"`{command(f.source)}`" if f.source else "-"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    lines.append(f"Machine: {machine_text}.")
    return "\n".join(lines)
