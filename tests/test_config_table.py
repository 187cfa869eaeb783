"""The table of docs/configuration.md and ``Config`` say the same thing, and Config alone reads the environment.

A default is written once, as the dataclass field's default; ``ENVIRONMENT`` maps each variable to its
field and parser. The table's default cell is either a literal in backticks, read with the variable's
own parser as if a user had set it (so ``604800`` (7 days), ``10,30,60,300,900`` and ``60`` for a float
compare as values), or words ("(off)", "a fresh temporary directory", empty) for a field whose default
is nothing (None or an empty tuple).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from webhook_service.config import ENVIRONMENT, Config

ROOT = Path(__file__).resolve().parent.parent
#: Fields no variable sets: fixed by hubhook (the queue's name, the request cap, the dedupe window the
#: receiver's contract promises) or bookkeeping of from_env itself.
NOT_SETTINGS = {"queue_name", "max_body_bytes", "dedupe_ttl", "variables_set", "dev_state", "dev_supplied"}
#: Who else may touch os.environ, and why: process plumbing, never a user's setting.
ENVIRONMENT_PLUMBING = {
    "webhook_service/config.py": "the one reader of the user's settings",
    "webhook_service/receiver/metrics_dir.py": "sets PROMETHEUS_MULTIPROC_DIR for prometheus_client in "
                                               "gunicorn's workers",
    "webhook_service/receiver/metrics.py": "asks prometheus_client's own mode, which it reads from there",
    "webhook_service/receiver/gunicorn_conf.py": "the flag hubhook web sets for the gunicorn it execs",
    "webhook_service/cli/dev.py": "passes the environment on to the processes hubhook run starts",
    "webhook_service/keys.py": "reads RQ_KEY_PREFIX as RQ itself does when imported, for hubhook's keys to share "
                               "its hash tag",
    "webhook_service/testing/netns.py": "passes the environment on to the processes a test starts in its namespaces",
}
UNITS = {"s": 1, "min": 60, "h": 3600, "day": 86400, "days": 86400}


def _table() -> dict[str, str]:
    """Variable -> its default cell, from the table of docs/configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*?) ?\| .* \|$", text, flags=re.M)
    assert rows, "no configuration table found in docs/configuration.md"
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), f"listed twice: {sorted({n for n in names if names.count(n) > 1})}"
    return {name: cell.strip() for name, cell in rows}


def _default(name: str) -> object:
    found = {f.name: f for f in dataclasses.fields(Config)}[name]
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    return found.default


TABLE = _table()


def test_every_variable_config_reads_is_in_the_table_and_nothing_else_is():
    read = [v.name for v in ENVIRONMENT]
    assert len(read) == len(set(read)), "a variable is read twice"
    assert sorted(set(read) - set(TABLE)) == [], "read by Config but missing from the table in docs/configuration.md"
    assert sorted(set(TABLE) - set(read)) == [], "in the table of docs/configuration.md but not read by Config"


def test_every_setting_field_is_set_by_exactly_one_variable():
    fields = {f.name for f in dataclasses.fields(Config)}
    set_by = [v.field for v in ENVIRONMENT]
    assert set(set_by) <= fields
    assert len(set_by) == len(set(set_by)), "two variables set one field"
    assert sorted(fields - set(set_by) - NOT_SETTINGS) == [], "a field no variable sets (or add it to NOT_SETTINGS)"


@pytest.mark.parametrize("variable", ENVIRONMENT, ids=lambda v: v.name)
def test_the_tables_default_is_configs_default(variable):
    cell, default = TABLE[variable.name], _default(variable.field)
    if not cell.startswith("`"):  # words: the field has no value of its own until set
        assert default in (None, ()), (
            f"{variable.name}: docs/configuration.md says {cell!r}, Config's default is {default!r}")
        return
    found = re.fullmatch(r"`([^`]+)`(?: \((\d+(?:\.\d+)?) ([a-z]+)\))?", cell)
    assert found, f"{variable.name}: default cell {cell!r} is neither `literal`, `literal` (N unit) nor words"
    literal, amount, unit = found.groups()
    assert variable.parse(variable.name, literal) == default, (
        f"{variable.name}: docs/configuration.md says {literal}, Config's default is {default!r}")
    if amount is not None:
        assert float(amount) * UNITS[unit] == default, f"{variable.name}: ({amount} {unit}) is not {literal}"


def test_from_env_takes_every_default_from_the_dataclass():
    assert Config.from_env({}) == Config()
    # empty values count as unset, except the three whose emptiness validated() reports
    kept_empty = {"REDIS_URL", "HUBSPOT_API_BASE_URL", "HUBSPOT_API_VERSION"}
    assert Config.from_env({v.name: "" for v in ENVIRONMENT if v.name not in kept_empty}) == Config()


def test_a_set_variable_reaches_its_field_and_is_remembered_as_set():
    config = Config.from_env({"REDIS_URL": "redis://cache:6379/1", "WEB_CONCURRENCY": "4",
                              "HUBHOOK_LOG_FORMAT": "text", "PROMETHEUS_MULTIPROC_DIR": "/tmp/m"})
    assert (config.redis_url, config.web_concurrency, config.log_format, config.metrics_dir) == (
        "redis://cache:6379/1", 4, "text", "/tmp/m")
    assert config.variables_set == {"REDIS_URL", "WEB_CONCURRENCY", "HUBHOOK_LOG_FORMAT", "PROMETHEUS_MULTIPROC_DIR"}
    assert Config.from_env({}).variables_set == frozenset()


def test_only_config_reads_the_environment():
    touching = set()
    for package in ("webhook_service", "jobs"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"\bos\.environ\b|\bgetenv\(|from os import .*environ", path.read_text()):
                touching.add(path.relative_to(ROOT).as_posix())
    assert sorted(touching - set(ENVIRONMENT_PLUMBING)) == [], "read settings through Config.from_env"
