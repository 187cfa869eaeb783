"""Structured logs: one JSON object per line, with hubhook's own fields and never a secret.

Operators grep and ship logs by field (portal, type, object id, event ids), so every process logs
the same shape: ``{"ts", "level", "logger", "msg", ...fields}``. Fields travel in
``extra=fields(...)``; nothing else a record carries is printed, because libraries put job arguments
(property values) in their ``extra``. As a last guard, every configured secret (client secrets,
access token, each portal's OAuth tokens once this process loaded them) is replaced by ``[redacted]``
in the final line, whatever code wrote it. ``redact`` is the same guard for text hubhook stores in
Redis (handler errors, failed jobs) and ``for_terminal`` for what the operator's commands print.

``HUBHOOK_LOG_FORMAT=text`` prints the same records as ``time level logger: msg key=value ...``;
``HUBHOOK_LOG_FORMAT=dev`` (``hubhook dev``'s default) one short sentence per delivery received and per
handler call (ok in N ms, failed with the one-line error and where, retry in N s, parked), without the
per-job summary line.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from webhook_service.config import Config

FIELDS = "hubhook"
#: One encoder: json.dumps with options builds a new one per call, a third of a line's cost.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_secrets: set[str] = set()
_owned: dict[str, frozenset[str]] = {}
#: C0 controls but tab and newline, DEL and C1 (0x9b is a one-byte CSI): what moves a terminal's cursor.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """``log.info("msg", extra=fields(portal=1, object_id="7"))``: the structured part of a line."""
    return {FIELDS: values}


def describe_events(events: Iterable[dict]) -> dict[str, Any]:
    """The identifying fields of a list of HubSpot events, for one log line (no property values)."""
    portals: dict = {}
    types: dict = {}
    object_ids: dict = {}
    event_ids = []
    for event in events:  # one pass: this runs on the receiver's request path
        get = event.get
        portals[get("portalId")] = types[get("subscriptionType")] = object_ids[get("objectId")] = None
        event_ids.append(get("eventId"))
    return {"portals": [p for p in portals if p is not None], "types": [t for t in types if t],
            "object_ids": [str(i) for i in object_ids], "event_ids": event_ids}


def add_secrets(values: Iterable[str | None], *, owner: str | None = None) -> None:
    """Register values that must never appear in a log line (min. 6 characters, to keep lines readable).

    With ``owner`` (``"oauth:<portal>"``), the values replace that owner's earlier ones, so a
    long-running worker refreshing tokens every 30 minutes keeps one set per portal, not every token.
    """
    fresh = frozenset(v for v in values if v and len(v) >= 6)
    if owner is not None:
        _secrets.difference_update(_owned.get(owner, frozenset()) - fresh)
        _owned[owner] = fresh
    _secrets.update(fresh)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``: before it is logged, stored or
    printed."""
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text



def for_terminal(text: object) -> str:
    """What an operator command may print: secrets redacted, and control characters shown as ``\\x1b``
    instead of reaching the terminal (an error text carrying ``ESC[2J`` must not clear the screen)."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", redact(str(text)))


class JSONFormatter(logging.Formatter):
    """One JSON object per record; exceptions as one ``exc`` string so a line stays a line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        extra = getattr(record, FIELDS, None)
        if isinstance(extra, dict):
            data.update({k: v for k, v in extra.items() if k not in data})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return redact(_ENCODER.encode(data))


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: ``time level logger: msg key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = getattr(record, FIELDS, None)
        if isinstance(extra, dict) and extra:
            head, sep, tail = line.partition("\n")
            head += " " + " ".join(f"{k}={_short(v)}" for k, v in extra.items() if v not in (None, [], ""))
            line = head + sep + tail
        return redact(line)


class DevFormatter(logging.Formatter):
    """One readable sentence per delivery and per handler call, for the terminal of ``hubhook dev``.

    The records are the same as in the other formats; only their rendering differs. A handler's
    failure is one line (its error and the file:line in your code where it was raised), not a traceback.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, FIELDS, None)
        sentence = _dev_sentence(record.getMessage(), extra) if isinstance(extra, dict) else None
        if sentence is None:  # any other record: as the text format says it, with a shorter time
            line = f"{self.formatTime(record, self.datefmt)} {record.levelname.lower()} {record.name}: " \
                   f"{record.getMessage()}"
            if isinstance(extra, dict) and extra:
                line += " " + " ".join(f"{k}={_short(v)}" for k, v in extra.items() if v not in (None, [], ""))
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
            return redact(line)
        if record.getMessage() == "handler failed" and record.exc_info and record.exc_info[1] is not None:
            sentence += f" at {_raised_at(record.exc_info[1])}"
        return redact(f"{self.formatTime(record, self.datefmt)} {sentence}")


def _dev_sentence(msg: str, f: dict[str, Any]) -> str | None:
    what = f"{f.get('type')} {f.get('object_id')}"
    if msg == "delivery accepted":
        count = f.get("events", 0)
        extra = "".join(f", {f[k]} {k}" for k in ("duplicates", "stale") if f.get(k))
        return (f"received {count} event{'' if count == 1 else 's'} ({_short(f.get('types', []))}; "
                f"object {_short(f.get('object_ids', []))}): {f.get('enqueued', 0)} enqueued{extra}")
    if msg == "delivery rejected":
        return f"refused a delivery: {f.get('status')} {f.get('reason')}: {f.get('error')}"
    if msg == "handler ok":
        again = " (retry)" if f.get("attempt") == "retry" else ""
        return f"handler {f.get('handler')} ok in {f.get('ms')} ms for {what}{again}"
    if msg == "handler failed":
        again = " (retry)" if f.get("attempt") == "retry" else ""
        return f"handler {f.get('handler')} failed in {f.get('ms')} ms for {what}{again}: {f.get('error')}"
    if msg == "handler retry scheduled":
        wait = f.get("retry_in")
        return f"handler {f.get('handler')} for {what}: retry in {wait:g} s" if isinstance(wait, (int, float)) \
            else f"handler {f.get('handler')} for {what}: retry scheduled"
    return None


def _raised_at(exc: BaseException) -> str:
    """file:line of the innermost frame outside hubhook and the installed libraries."""
    from webhook_service.loading import _user_frame

    return _user_frame(exc)


class _DevQuiet(logging.Filter):
    """What the ``dev`` format leaves out: the per-job summary and RQ's own bookkeeping lines (hubhook's
    lines say the same per handler call), and RQ's traceback of a failing handler's retry job (the
    handler's line says the error and where)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("rq."):
            from webhook_service.keys import RUN_HANDLER

            return record.levelno >= logging.WARNING and f"({RUN_HANDLER})" not in record.getMessage()
        return record.getMessage() != "job done"


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        shown = ",".join(map(str, value[:10]))
        return shown + (f",...(+{len(value) - 10})" if len(value) > 10 else "")
    return str(value)


def formatter(fmt: str = Config.log_format) -> logging.Formatter:
    """The formatter for ``HUBHOOK_LOG_FORMAT`` (``json``, the default, ``text`` or ``dev``)."""
    chosen = (fmt or Config.log_format).lower()
    return TextFormatter() if chosen == "text" else DevFormatter() if chosen == "dev" else JSONFormatter()


def configure(level: str = Config.log_level, fmt: str = Config.log_format) -> None:
    """Send every logger's records to stderr in one format (worker, poller, CLI).

    RQ attaches its own handler to ``rq.worker`` unless that logger already has one: give it ours.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    if (fmt or "").lower() == "dev":
        handler.addFilter(_DevQuiet())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or Config.log_level).upper())
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.handlers = [handler]
    rq_logger.propagate = False


def gunicorn_logconfig(level: str = Config.log_level, fmt: str = Config.log_format) -> dict[str, Any]:
    """``logconfig_dict`` for gunicorn: its own loggers and the app's, all in our format on stderr."""
    factory = {"text": "webhook_service.logs.TextFormatter", "dev": "webhook_service.logs.DevFormatter"}.get(
        (fmt or "").lower(), "webhook_service.logs.JSONFormatter")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hubhook": {"()": factory}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "hubhook",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": (level or Config.log_level).upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": (level or Config.log_level).upper(), "handlers": ["stderr"],
                               "propagate": False},
            # no access log: the receiver logs each delivery itself, with more than an access log knows
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
