"""HubSpot's two spellings of a time, epoch milliseconds and ISO-8601, read and written in one place.

Webhook events carry ``occurredAt`` in epoch ms; the CRM API writes dates as ISO-8601 UTC strings
(``2023-11-14T22:13:20.000Z``) and accepts either spelling in search filters. hubhook keeps times as
epoch ms and turns them into text only for people (logs, ``hubhook status``, ``hubhook inspect``).
"""
from __future__ import annotations

from datetime import UTC, datetime


def parse_ms(value: object) -> int:
    """Epoch ms from a number, ``"1700000000000"`` or ``"2023-11-14T22:13:20.000Z"``; ValueError otherwise."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return parse_iso_ms(text)


def parse_ms_or_none(value: object) -> int | None:
    """``parse_ms``, with None for a value that is neither spelling (stored data is not trusted)."""
    try:
        return parse_ms(value)
    except ValueError:
        return None


def parse_iso_ms(text: str) -> int:
    """Epoch ms from an ISO-8601 date or time (``2024-05-01``, ``...T12:00:00Z``), UTC unless it says
    otherwise; ValueError for anything else, digits included."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def iso_utc(ms: float, *, terminal: bool = False) -> str:
    """Epoch ms as ISO-8601 UTC to the second (``2026-11-22T08:40:03+00:00``); ``terminal``: the
    column form operator output uses (``2026-11-22 08:40:03``)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if terminal else moment.isoformat(timespec="seconds")
