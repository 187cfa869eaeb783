"""Find the user's Router from ``module:attribute`` (``--handlers`` or HUBHOOK_HANDLERS)."""
from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback

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
        raise ConfigError(import_failure(module_name, exc)) from None
    except Exception as exc:  # a SyntaxError, a failing import or any error the module raised at import
        raise ConfigError(import_failure(module_name, exc)) from None
    router = getattr(module, attribute, None)
    if not isinstance(router, Router):
        found = type(router).__name__ if router is not None else "nothing"
        raise ConfigError(f"{spec} is {found}, not a webhook_service.Router; point HUBHOOK_HANDLERS at your Router")
    return router


def import_failure(module_name: str, exc: BaseException) -> str:
    """One line tying an error raised while importing the handlers module to HUBHOOK_HANDLERS, with
    the file and line to fix: the error's own place for a SyntaxError, else the traceback's last frame
    in the user's code (not in the standard library, an installed package or importlib)."""
    if isinstance(exc, SyntaxError):
        message, where = exc.msg, f"{_shown(exc.filename)}:{exc.lineno}" if exc.filename else "?"
    else:
        message, where = str(exc), _user_frame(exc)
    message = " ".join(message.split())[:300]  # one line, even when the error's text has several
    return (f"the handlers module {module_name!r} (HUBHOOK_HANDLERS or --handlers) failed to import: "
            f"{type(exc).__name__}: {message} at {where}; fix it there")


def _user_frame(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    libraries = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    libraries.add(os.path.dirname(os.path.abspath(__file__)) + os.sep)  # hubhook's own, e.g. a Router check
    own = [f for f in frames if not any(f.filename.startswith(path) for path in libraries if path)]
    chosen = own or frames
    return f"{_shown(chosen[-1].filename)}:{chosen[-1].lineno}" if chosen else "?"


def _shown(filename: str) -> str:
    """The file relative to the working directory when it is under it (as a user would type it)."""
    relative = os.path.relpath(filename)
    return filename if relative.startswith("..") else relative
