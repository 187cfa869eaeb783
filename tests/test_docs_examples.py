"""Every example in the README and in docs/ runs: Python blocks are imported, shell blocks are run.

Why: a first example that crashes (a ``KeyError`` under the fake, a command missing a setting) loses a
new user in the first minutes. Running every block in ``make test`` means the docs can only show what
works. One test per block, named ``page:line`` of its opening fence, so a failure names the example.

Conventions for the pages (markers are HTML comments: the rendered page and GitHub do not show them):

- Blocks fenced ```` ```python ````, ```` ```sh ````, ```` ```bash ```` or ```` ```console ```` are run.
  Every other fence names its language too (```` ```yaml ````, ```` ```text ````), so no example escapes
  this test by having none.
- ``<!-- not run: REASON -->`` directly above a fence skips that block; the reason is required and shows
  in the test report. Keep these few.
- ``<!-- file: PATH -->`` directly above a fence: the block is the file PATH of the page's project.
- ``<!-- exit status: N -->`` directly above a shell fence: its commands must exit N instead of 0.
- Each page runs in a project directory of its own: it holds ``myapp/hooks.py`` (the README's first
  example, the handlers module the pages' commands name, unless the page writes its own) and the page's
  ``file:`` blocks, all written before any block of the page runs. It is on ``PYTHONPATH`` and is the
  working directory of the page's commands (``make`` targets run in the repository: they are its own).
- Python: a ``file:`` block named ``test_*.py`` is run with pytest in the project (hubhook's pytest
  plugin gives it its fixtures); every other block is imported as a module.
- Shell: in ```` ```console ```` lines starting with ``$ `` are commands and the others are output; in
  ```` ```sh ````/```` ```bash ```` every line is a command. A line ending in ``\\`` continues on the next.
  Each command runs with bash, with the test's Redis (``REDIS_URL``), a fake HubSpot
  (``HUBSPOT_API_BASE_URL``, any token), a client secret and a free ``PORT``; the ports the pages spell
  (8000, 8900, 9181) become free ports, the same ones throughout a page. It must exit 0.
- Long-running commands (``hubhook run|web|dev|worker``, ``hubhook poll`` without ``--once`` or
  ``--backfill``, the standalone fake HubSpot, rq-dashboard) are started, checked to come up (the port
  they serve accepts connections; with no port, they print a line and are still running), and kept
  running for the page's later blocks (a terminal the page opened); they are stopped when the page is
  done. A block run alone (``-k``) first runs the earlier shell blocks of its page.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis

from webhook_service.devstack import RedisProcess, free_port
from webhook_service.testing import FakeHubSpot, make_event
from webhook_service.testing.fake_hubspot.demo import seed_demo

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "sh", "bash", "console"}
SHELL_LANGUAGES = {"sh", "bash", "console"}
#: Ports the pages spell out; each becomes a free port, the same one for the whole page.
DOC_PORTS = ("8000", "8900", "9181")
MARKER = re.compile(r"^<!--\s*([a-z][a-z ]*?)\s*(?::\s*(.*?))?\s*-->$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
LONG_RUNNING = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:"
                          r"hubhook (?:run|web|dev|worker)\b"
                          r"|hubhook poll\b(?!.*--(?:once|backfill))"
                          r"|python -m webhook_service\.testing\.fake_hubspot\b"
                          r"|rq-dashboard\b)")
SERVES_PORT_ENV = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*hubhook (?:run|web|dev)\b")
COMMAND_TIMEOUT = 180
START_TIMEOUT = 60


@dataclass(frozen=True)
class Block:
    page: str  # path from the repository root
    line: int  # the opening fence's line
    lang: str
    code: str
    not_run: str | None = None
    file: str | None = None
    exit_status: int = 0

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Parsed:
    blocks: list[Block] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse(text: str, page: str) -> Parsed:
    """The fenced blocks of one Markdown page with their markers, and what breaks the conventions."""
    parsed, lines, i = Parsed(), text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            if MARKER.match(lines[i].strip()) and not (i + 1 < len(lines) and (
                    FENCE.match(lines[i + 1]) or MARKER.match(lines[i + 1].strip()))):
                parsed.errors.append(f"{page}:{i + 1}: a marker must be directly above a fence: {lines[i].strip()}")
            i += 1
            continue
        indent, lang = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            parsed.errors.append(f"{page}:{i + 1}: fence never closed")
            break
        body = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:end])
        markers: dict[str, str] = {}
        k = i - 1
        while k >= 0 and (found := MARKER.match(lines[k].strip())):
            markers[found.group(1)] = (found.group(2) or "").strip()
            k -= 1
        where = f"{page}:{i + 1}"
        if not lang:
            parsed.errors.append(f"{where}: a fence without a language (```text for output, ```console for "
                                 "commands): every example is run or says why not")
        for key in set(markers) - {"not run", "file", "exit status"}:
            parsed.errors.append(f"{where}: unknown marker {key!r} (not run: REASON, file: PATH, exit status: N)")
        if "not run" in markers and not markers["not run"]:
            parsed.errors.append(f"{where}: '<!-- not run -->' needs a reason: <!-- not run: why -->")
        if "exit status" in markers and not markers["exit status"].isdigit():
            parsed.errors.append(f"{where}: exit status must be a number")
        parsed.blocks.append(Block(page, i + 1, lang, body + "\n", markers.get("not run") or None,
                                   markers.get("file") or None, int(markers.get("exit status") or 0)
                                   if markers.get("exit status", "0").isdigit() else 0))
        i = end + 1
    return parsed


def parse_pages() -> tuple[list[Block], list[str]]:
    blocks, errors = [], []
    for path in PAGES:
        parsed = parse(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
        blocks += parsed.blocks
        errors += parsed.errors
    return blocks, errors


BLOCKS, ERRORS = parse_pages()
RUN = [b for b in BLOCKS if b.lang in RUN_LANGUAGES]
FIRST_EXAMPLE = next(b for b in BLOCKS if b.page == "README.md" and b.lang == "python")


def commands(block: Block) -> list[str]:
    """The commands of a shell block, continuation lines joined (``\\`` + newline), output lines left out."""
    found, current = [], None
    for line in block.code.splitlines():
        if current is None:
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            elif not line.strip() or line.strip().startswith("#"):
                continue
        current = line if current is None else f"{current[:-1].rstrip()} {line.strip()}"
        if not current.rstrip().endswith("\\"):
            found.append(current.strip())
            current = None
    return found


# -- one page's project, environment and background processes ---------------------------------------

#: Pages whose commands need a PostgreSQL: they get HUBHOOK_MIRROR_URL (and the fake's portal id).
DATABASE_PAGES = {"docs/mirror.md"}


class PageRun:
    """A page's project directory, environment, fake HubSpot and the long-running commands it started."""

    def __init__(self, page: str, directory: Path, redis_url: str, database_url: str | None = None) -> None:
        self.page, self.dir = page, directory
        self.ports = {port: str(free_port()) for port in DOC_PORTS}
        self.fake = FakeHubSpot().start()
        seed_demo(self.fake)  # the records `hubhook dev`'s own fake holds, which the pages' commands name
        self.processes: list[tuple[str, subprocess.Popen, Path]] = []
        self.ran: set[str] = set()
        if directory.exists():
            shutil.rmtree(directory)
        self._write("myapp/hooks.py", FIRST_EXAMPLE.code)
        for block in BLOCKS:
            if block.page == page and block.file:
                self._write(block.file, block.code)
        Redis.from_url(redis_url).flushall()
        self.env = {**os.environ,
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONPATH": str(directory), "REDIS_URL": redis_url, "PORT": str(free_port()),
                    "HUBSPOT_API_BASE_URL": self.fake.url, "HUBSPOT_CLIENT_SECRET": "docs-secret",
                    "HUBSPOT_ACCESS_TOKEN": "docs-token", "HUBHOOK_HANDLER_RETRIES": "1,2",
                    "HUBHOOK_LOG_FORMAT": "text", "PYTHONUNBUFFERED": "1"}
        for name in ("HUBHOOK_HANDLERS", "HUBHOOK_WEBHOOK_URL", "HUBSPOT_CLIENT_ID"):
            self.env.pop(name, None)
        if database_url:  # the mirror's page: a throw-away database of the suite's, a schema of the page's own
            self.env.update(HUBHOOK_MIRROR_URL=database_url, HUBHOOK_MIRROR_SCHEMA="docs_" + re.sub(r"\W", "_", page),
                            HUBSPOT_PORTAL_ID="62515")

    def _write(self, relative: str, code: str) -> None:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")
        if path.suffix == ".py" and not path.name.startswith("test_"):
            for parent in path.relative_to(self.dir).parents:
                if parent != Path("."):
                    (self.dir / parent / "__init__.py").touch()

    def localize(self, command: str) -> str:
        """The command with the page's free ports in place of the ones it spells."""
        return re.sub(r"(?<![\d.])(" + "|".join(DOC_PORTS) + r")(?!\d)", lambda m: self.ports[m.group(1)], command)

    def run_shell_block(self, block: Block) -> None:
        for command in commands(block):
            command = self.localize(command)
            if LONG_RUNNING.match(command):
                self.start(block, command)
                continue
            cwd = ROOT if command.startswith("make ") else self.dir
            result = subprocess.run(["bash", "-c", command], cwd=cwd, env=self.env, capture_output=True,
                                    text=True, timeout=COMMAND_TIMEOUT)
            assert result.returncode == block.exit_status, (
                f"{block.id}: `{command}` exited {result.returncode}, not {block.exit_status}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        self.ran.add(block.id)

    def start(self, block: Block, command: str) -> None:
        """Start a long-running command in a session of its own and wait until it is up."""
        log = self.dir / f".process-{len(self.processes)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(["bash", "-c", command], cwd=self.dir, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append((command, process, log))
        port = self._served_port(command)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{block.id}: `{command}` exited {process.returncode} instead of running:\n"
                                     + log.read_text(errors="replace")[-3000:])
            if (port is not None and _accepts(int(port))) or (port is None and log.read_text(errors="replace").strip()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{block.id}: `{command}` did not come up in {START_TIMEOUT} s:\n"
                                     + log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)  # polling with a deadline: the process's readiness is the event

    def _served_port(self, command: str) -> str | None:
        if found := re.search(r"--port[ =](\d+)", command):
            return found.group(1)
        if found := re.match(r"^(?:[A-Za-z_]\w*=\S*\s+)*?PORT=(\d+)\s", command):
            return found.group(1)
        return self.env["PORT"] if SERVES_PORT_ENV.match(command) else None

    def stop(self) -> None:
        for _command, process, _log in reversed(self.processes):
            _stop_group(process)
        self.processes.clear()
        self.fake.stop()


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the command's whole session (hubhook run's children too), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the session is left
    except ProcessLookupError:
        pass
    process.wait()


@pytest.fixture(scope="module")
def docs_redis(tmp_path_factory) -> Iterator[str]:
    """A Redis of the module's own, so the pages' flushes touch no other test's keys."""
    server = RedisProcess(tmp_path_factory.mktemp("docs-redis"), appendonly=False).start()
    yield server.url
    server.stop()


class Pages:
    """One page runs at a time: opening another stops the current one (its processes, its fake)."""

    def __init__(self, base: Path, redis_url: str, request: pytest.FixtureRequest) -> None:
        self.base, self.redis_url, self.request = base, redis_url, request
        self.current: PageRun | None = None

    def open(self, page: str) -> PageRun:
        if self.current is not None and self.current.page != page:
            self.close()
        if self.current is None:
            # PostgreSQL starts only for the pages that need one (the suite's session cluster)
            database = self.request.getfixturevalue("postgres_server").url if page in DATABASE_PAGES else None
            self.current = PageRun(page, self.base / re.sub(r"\W", "_", page), self.redis_url, database)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture(scope="module")
def pages(docs_redis: str, tmp_path_factory, request) -> Iterator[Pages]:
    opened = Pages(tmp_path_factory.mktemp("docs-pages"), docs_redis, request)
    yield opened
    opened.close()
    # Then the report lists the examples that ran (past pytest's capture, which holds fixture output)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and RAN:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\ndocs examples run ({len(RAN)}): " + ", ".join(RAN))


#: The blocks that ran in this session, in order, for the closing summary.
RAN: list[str] = []


# -- the examples --------------------------------------------------------------------------------

@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_the_example_runs(block: Block, pages: Pages) -> None:
    # Given an example of the README or docs/, in its page's project
    if block.not_run:
        pytest.skip(f"not run: {block.not_run}")
    run = pages.open(block.page)
    # When it runs (earlier shell blocks of its page first, when it is run alone)
    if block.lang in SHELL_LANGUAGES:
        for earlier in RUN:
            if (earlier.page == block.page and earlier.line < block.line and earlier.lang in SHELL_LANGUAGES
                    and not earlier.not_run and earlier.id not in run.ran):
                run.run_shell_block(earlier)
        run.run_shell_block(block)
    elif block.file and Path(block.file).name.startswith("test_"):
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", block.file],
                                cwd=run.dir, env=run.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        # Then its tests pass under hubhook's pytest plugin
        assert result.returncode == 0, f"{block.id}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    else:
        _import_block(block, run)
    # Then it exited as the page says (shell) or imported without an error (Python)
    RAN.append(block.id)


def _import_block(block: Block, run: PageRun) -> None:
    """Import the block as a module of the page's project (its own file, or the ``file:`` it names)."""
    if block.file:
        name = block.file.removesuffix(".py").replace("/", ".")
    else:
        slug = re.sub(r"\W", "_", block.page)
        name = f"docs_example_{slug}_{block.line}"
        (run.dir / f"{name}.py").write_text(block.code, encoding="utf-8")
    sys.path.insert(0, str(run.dir))
    _forget_modules(run.dir)
    try:
        importlib.invalidate_caches()
        importlib.import_module(name)
    finally:
        sys.path.remove(str(run.dir))
        _forget_modules(run.dir)


def _forget_modules(directory: Path) -> None:
    """Drop the modules imported from a page's project, so the next page's ``myapp`` is its own."""
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None) or ""
        paths = list(getattr(module, "__path__", None) or [])
        if location.startswith(str(directory)) or any(str(p).startswith(str(directory)) for p in paths):
            del sys.modules[name]


def test_the_readmes_first_example_runs_under_the_pytest_plugin(run_handlers, capsys, tmp_path) -> None:
    # Given the README's first example, as a user copies it (no properties=), imported as a module
    module_path = tmp_path / "first_example.py"
    module_path.write_text(FIRST_EXAMPLE.code, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("first_example", module_path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # When a deal with a name and a contact changes stage, through the plugin's run_handlers and fake
    run = run_handlers(module.router, make_event("deal.propertyChange", 7, property="dealstage", value="closedwon"),
                       records={"deals": {7: {"dealname": "Big", "dealstage": "closedwon"}},
                                "contacts": {1: {"email": "ada@example.com"}}},
                       associations=[("deals", 7, "contacts", 1)])
    # Then the handler ran without a KeyError and printed the deal's name and its contact
    assert run.called == ["first_example.stage_changed"]
    assert capsys.readouterr().out == "Big ['1']\n"
    # And the deal's other default properties are there, unset, as HubSpot returns them
    properties = run.event("stage_changed").record["properties"]
    assert properties["amount"] is None and properties["pipeline"] is None


# -- the conventions themselves ----------------------------------------------------------------------

def test_the_pages_follow_the_conventions() -> None:
    # Given every fence of the README and docs/
    # Then each names its language, and every marker is known, directly above a fence, with its reason
    assert ERRORS == [], "\n".join(ERRORS)
    # And the README's first example is a Python handlers module, run as myapp/hooks.py
    assert FIRST_EXAMPLE.lang == "python" and "Router()" in FIRST_EXAMPLE.code
    # And skipped blocks stay the exception: each is an install or a deployment on infrastructure the
    # suite cannot be (systemd units, a Redis Cluster or Sentinel at your addresses), named with its reason
    skipped = [b for b in RUN if b.not_run]
    assert len(skipped) <= 7, f"{len(skipped)} examples are not run: {[b.id for b in skipped]}"


def test_the_conventions_catch_what_they_are_for() -> None:
    # Given a page with a reasonless skip, a fence without a language, an unknown and a stray marker
    page = ("<!-- not run -->\n```sh\nhubhook web\n```\n\n```\n$ hubhook status\n```\n"
            "<!-- skip: later -->\n```python\nx = 1\n```\n<!-- not run: stray -->\n\ntext\n")
    # When it is parsed
    errors = parse(page, "p.md").errors
    # Then each is reported with its line
    assert any("p.md:2" in e and "needs a reason" in e for e in errors), errors
    assert any("p.md:6" in e and "without a language" in e for e in errors), errors
    assert any("p.md:10" in e and "unknown marker 'skip'" in e for e in errors), errors
    assert any("p.md:13" in e and "directly above a fence" in e for e in errors), errors


def test_commands_are_the_lines_a_user_types() -> None:
    # Given a console block with output lines and a continued command, and an sh block with comments
    console = Block("p.md", 1, "console",
                    "$ A=1 hubhook send-test-event x \\\n    --value y\nsent: 200\n$ hubhook status\n")
    sh = Block("p.md", 5, "sh", "# a comment\nmake demo   # the demo\n\nhubhook replay --dry-run\n")
    # Then only the typed commands are run, continuations joined, output lines left out
    assert commands(console) == ["A=1 hubhook send-test-event x --value y", "hubhook status"]
    assert commands(sh) == ["make demo   # the demo", "hubhook replay --dry-run"]
    # And the long-running ones are told apart from those that finish
    assert LONG_RUNNING.match("HUBSPOT_CLIENT_SECRET=s PORT=1 hubhook run")
    assert LONG_RUNNING.match("python -m webhook_service.testing.fake_hubspot --port 8900 --seed-demo")
    assert not LONG_RUNNING.match("hubhook poll --once") and not LONG_RUNNING.match("hubhook replay")
