"""Find the user's Router from ``module:attribute`` (``--handlers`` or HUBHOOK_HANDLERS)."""
from __future__ import annotations

import importlib
import os
import sys

from webhook_service.errors import ConfigError
from webhook_service.router import Router


def load_router(spec: str | None) -> Router:
    """Import ``module:attribute`` and return the Router there; ConfigError says what to fix."""
    if not spec:
        raise ConfigError("no handlers configured: set HUBHOOK_HANDLERS=module:attribute "
                          "(e.g. myapp.hooks:router) or pass --handlers")
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"handlers must be given as module:attribute (e.g. myapp.hooks:router), got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like gunicorn and flask: the working directory is importable
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"cannot import handlers module {module_name!r}: run from the directory that "
                              f"contains it or add it to PYTHONPATH") from None
        raise
    router = getattr(module, attribute, None)
    if not isinstance(router, Router):
        found = type(router).__name__ if router is not None else "nothing"
        raise ConfigError(f"{spec} is {found}, not a webhook_service.Router; point HUBHOOK_HANDLERS at your Router")
    return router
