"""What the code, tests, benches, README and docs cite is something a reader of the public project can open.

Why: notes kept outside the repository (a fact sheet, research files, an issue tracker's numbers,
test-plan codes) mean nothing to someone who has only the repository. A fact about HubSpot cites
HubSpot's public documentation by URL, a fact about a library is stated (or cites the library's
own docs), and docs/performance.md reports measured figures with the command that prints them, not goals.

The patterns are assembled from pieces so that this file does not match them itself.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench.results import COMMAND

ROOT = Path(__file__).resolve().parent.parent
SCANNED_DIRS = ("webhook_service", "jobs", "tests", "bench", "examples", "docs")
SCANNED_FILES = ("README.md", "Makefile", "setup.cfg", "pyproject.toml", "Procfile", "mkdocs.yml")
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".txt", ".json", ".lua", ".sh", ".yml", ".yaml", ""}

_MD = r"\.md\b"
#: (what a match means, pattern): each names a reference the public repository cannot resolve.
FORBIDDEN = [
    ("a private fact sheet", re.compile("FACTS" + _MD)),
    ("a file outside the repository", re.compile(r"\.\." + "/shared")),
    ("a private research note", re.compile("rese" + r"arch/[\w-]+" + _MD)),
    ("a private research note", re.compile("(?:LIBRA" + "RIES|RELIABILITY_PERF|PEERS)" + _MD)),
    ("an issue number", re.compile(r"\bissue" + r"\s+#?\d+", re.IGNORECASE)),
    ("a scenario code", re.compile(r"\bscenario" + r"\s+\d+", re.IGNORECASE)),
    ("a test-plan code", re.compile(r"\(" + r"R\d+(?:,\s*R\d+)*\)")),
]


def tracked_files() -> list[Path]:
    """The repository's files under the scanned folders, new ones included (git's view when there is
    one, so ignored files such as ``.venv`` stay out)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
                                 *SCANNED_DIRS, *SCANNED_FILES],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        paths = [ROOT / name for name in listed]
    except (OSError, subprocess.CalledProcessError):  # no git, or an unpacked sdist: walk the folders
        paths = [ROOT / name for name in SCANNED_FILES]
        paths += [p for d in SCANNED_DIRS for p in (ROOT / d).rglob("*") if "__pycache__" not in p.parts]
    return sorted(p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES)


def test_the_scan_covers_the_product_tests_benches_and_readme():
    # Given the files the citation check reads
    names = {p.relative_to(ROOT).as_posix() for p in tracked_files()}
    # Then they include the packages, the tests, the benches, the examples, the README and docs (and this file)
    for expected in ("README.md", "docs/configuration.md", "webhook_service/receiver/signature.py",
                     "jobs/poller/search_walk.py", "bench/results.py", "tests/test_citations.py"):
        assert expected in names
    assert any(name.startswith("examples/") for name in names)


@pytest.mark.parametrize("meaning, pattern", FORBIDDEN, ids=[p.pattern for _, p in FORBIDDEN])
def test_no_file_cites_what_the_repository_does_not_hold(meaning, pattern):
    # Given every scanned file, When we look for the pattern
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in tracked_files()
            for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
            if pattern.search(line)]
    # Then none cites it: cite HubSpot's public docs by URL, or state the fact itself
    assert not hits, (f"{len(hits)} line(s) cite {meaning}; cite a public URL or state the fact:\n"
                      + "\n".join(hits))


def test_the_patterns_catch_what_they_are_for():
    # Given lines of the kinds this check exists to catch, and lines it must let through
    caught = ["see " + "FACTS" + ".md 3.5", "(" + ".." + "/shared" + "/hubspot)",
              "rese" + "arch/" + "LIBRA" + "RIES.md 7",
              "the worker's share of " + "iss" + "ue 6", "Sce" + "nario 6b", "(R" + "11)", "(R8, R" + "9)"]
    allowed = ["https://github.com/HubSpot/hubspot-api-php/issues/98", "a state we did not issue, that is",
               "README.md", "bench/results.md", "fault scenarios", "(RFC 6749)"]
    # Then each of the first is caught by some pattern and none of the second is
    for line in caught:
        assert any(p.search(line) for _, p in FORBIDDEN), line
    for line in allowed:
        assert not any(p.search(line) for _, p in FORBIDDEN), line


def performance_table() -> tuple[list[str], list[list[str]]]:
    """The header and rows of the results table in docs/performance.md."""
    section = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines]
    return cells[0], cells[2:]


def test_the_docs_report_measured_figures_with_the_command_that_prints_each():
    # Given the performance table of docs/performance.md
    header, rows = performance_table()
    # Then it reports results and same-run baselines, not goals
    assert header == ["Figure", "Result", "Baseline (same run)", "Command"]
    assert rows
    # And each row names a command that exists: the project's python running a bench script
    for row in rows:
        command = row[3].strip("`")
        assert command.startswith(f"{COMMAND} bench/"), row
        script = command.split()[1]
        assert (ROOT / script).is_file(), f"{script} (in the performance table of docs/performance.md) does not exist"
    # And the machine the figures were measured on is stated under the table
    assert re.search(r"\nMachine: .*vCPU", (ROOT / "docs" / "performance.md").read_text(encoding="utf-8"))
