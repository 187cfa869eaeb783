"""The state ``hubhook dev`` keeps in ``.hubhook/``, so every other ``hubhook`` command finds its stack.

``.hubhook/`` is looked up the way git finds ``.git``: in the working directory, else in the nearest
parent that has one; ``hubhook dev`` creates it in the working directory when none is found. It holds:

- ``dev.json``: the dev Redis URL, the fake HubSpot's URL and the token it accepts, the receiver's URL
  and the portal id the dev loop uses. Nothing secret: the fake accepts any bearer token.
- ``secret``: a dev-only signing secret (mode 0600), made once when ``HUBSPOT_CLIENT_SECRET`` is unset.
  The secret a user sets is never written anywhere.
- ``redis/``: the dev Redis's data directory (AOF on), so queued jobs and dead letters survive a
  restart of ``hubhook dev``.

``supplied`` turns the state into the variables it stands in for. Precedence: a variable the
environment sets wins, then the dev state, then Config's defaults (``Config.from_env`` applies it).
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DIRECTORY = ".hubhook"
STATE_FILE = "dev.json"
SECRET_FILE = "secret"
#: The hub id of the dev loop's deliveries (``hubhook send-test-event``'s default).
DEV_PORTAL_ID = 62515
#: A token the fake HubSpot accepts (it accepts any): not a secret, and never a real one.
DEV_TOKEN = "hubhook-dev-token"


@dataclass(frozen=True)
class DevState:
    """What ``dev.json`` records. Empty strings: that part was not started by ``hubhook dev``."""

    redis_url: str = ""
    hubspot_url: str = ""
    hubspot_token: str = ""
    receiver_url: str = ""
    portal_id: int = DEV_PORTAL_ID
    #: The running ``hubhook dev`` and its processes (each leads a process group of its own), so a dev
    #: killed with SIGKILL leaves nothing running after the next start, and a second one is refused.
    pid: int = 0
    children: list[int] = field(default_factory=list)

    @property
    def redis_port(self) -> int | None:
        return urlsplit(self.redis_url).port if self.redis_url.startswith("redis://127.0.0.1:") else None

    @property
    def hubspot_port(self) -> int | None:
        return urlsplit(self.hubspot_url).port if self.hubspot_url else None

    @property
    def receiver_port(self) -> int | None:
        return urlsplit(self.receiver_url).port if self.receiver_url else None


def find(start: str | Path | None = None) -> Path | None:
    """The nearest ``.hubhook/`` directory from ``start`` (the working directory) upwards, or None."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DIRECTORY
        if candidate.is_dir():
            return candidate
    return None


def ensure(start: str | Path | None = None) -> Path:
    """The ``.hubhook/`` directory ``hubhook dev`` uses: the nearest existing one, else a new one here."""
    found = find(start)
    if found is not None:
        return found
    created = Path(start or Path.cwd()).resolve() / DIRECTORY
    created.mkdir(mode=0o700)
    (created / ".gitignore").write_text("# hubhook dev's local state: never commit it\n*\n")
    return created


def load(directory: Path) -> DevState:
    """The recorded state; an absent or unreadable file reads as nothing recorded."""
    try:
        data = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return DevState()
    if not isinstance(data, dict):
        return DevState()
    empty = DevState()
    return DevState(**{k: v for k, v in data.items()
                       if k in DevState.__dataclass_fields__ and isinstance(v, type(getattr(empty, k)))})


def save(directory: Path, state: DevState) -> None:
    """Write ``dev.json`` atomically (another command may read it at the same moment)."""
    path = directory / STATE_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n")
    partial.replace(path)


def read_secret(directory: Path) -> str | None:
    """The dev-only signing secret, if ``hubhook dev`` made one."""
    try:
        return (directory / SECRET_FILE).read_text().strip() or None
    except OSError:
        return None


def make_secret(directory: Path) -> str:
    """The dev-only signing secret, made once (mode 0600 from its creation, never printed)."""
    existing = read_secret(directory)
    if existing:
        return existing
    value = secrets.token_urlsafe(32)
    try:
        fd = os.open(directory / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # an empty file left by an interrupted start: replace it
        (directory / SECRET_FILE).unlink()
        fd = os.open(directory / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def supplied(env: Mapping[str, str], directory: Path | None) -> dict[str, str]:
    """The variables the dev state stands in for, among those ``env`` leaves unset (or empty)."""
    if directory is None:
        return {}
    state = load(directory)
    unset = [name for name in ("REDIS_URL", "HUBSPOT_API_BASE_URL", "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_CLIENT_ID",
                               "HUBSPOT_CLIENT_SECRET", "PORT") if not env.get(name, "").strip()]
    values: dict[str, str] = {}
    if state.redis_url and "REDIS_URL" in unset:
        values["REDIS_URL"] = state.redis_url
    if state.hubspot_url and "HUBSPOT_API_BASE_URL" in unset:
        values["HUBSPOT_API_BASE_URL"] = state.hubspot_url
    if state.hubspot_token and "HUBSPOT_ACCESS_TOKEN" in unset and "HUBSPOT_CLIENT_ID" in unset:
        values["HUBSPOT_ACCESS_TOKEN"] = state.hubspot_token
    if state.receiver_port and "PORT" in unset:
        values["PORT"] = str(state.receiver_port)
    if "HUBSPOT_CLIENT_SECRET" in unset and (secret := read_secret(directory)):
        values["HUBSPOT_CLIENT_SECRET"] = secret
    return values



def running(pid: int, *words: str) -> bool:
    """Whether ``pid`` runs a command line holding one of ``words`` (Linux's /proc; elsewhere: unknown,
    so False, and nothing is ever signalled on a guess)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return pid > 0 and any(word in command for word in words)
