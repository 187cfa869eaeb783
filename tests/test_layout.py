"""The layout's one import rule: ``jobs`` may import ``webhook_service``, never the reverse.

Why: the receiver, OAuth, telemetry and operator code must be readable (and importable) without the
job side; they reach it only through the dotted paths of ``webhook_service.keys``. The two entry
points, ``webhook_service.cli`` (it starts the worker and the poller) and ``webhook_service.testing``
(the test kit runs jobs in-process), are the only exceptions.
"""
import ast
from pathlib import Path

import webhook_service

PACKAGE = Path(webhook_service.__file__).parent
ENTRY_POINTS = ("cli", "testing")


def imported_modules(source: str) -> list[str]:
    """Every absolute module name an ``import`` or ``from ... import`` names, at any depth."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_webhook_service_never_imports_jobs():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ENTRY_POINTS:
            continue
        offenders += [f"{relative}: {name}" for name in imported_modules(path.read_text())
                      if name == "jobs" or name.startswith("jobs.")]
    assert offenders == []


def test_the_scan_sees_imports_inside_functions():
    source = "def f():\n    from jobs.poller.main import run\n    import jobs.worker\n"
    assert imported_modules(source) == ["jobs.poller.main", "jobs.worker"]
