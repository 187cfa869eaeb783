"""The JSON text an event's identity is hashed from, with CPython's C encoder built once.

The receiver's dedupe digest (``webhook_service.receiver.intake``) hashes each event as the JSON text
``json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)`` would give: a pure function
of what HubSpot sent, in every process and version, whatever order the keys came in.
``JSONEncoder.encode`` builds a new C encoder for every call, half a digest's cost; here it is built
once, by calling CPython's private ``json.encoder.c_make_encoder`` with the arguments
``JSONEncoder.iterencode`` passes it. That call is only made on the CPython source it was written
against (``written_against``); elsewhere, or with ``HUBHOOK_FAST_PATHS=0``, the stock
``JSONEncoder.encode`` runs: the same bytes (tests/test_private_apis.py checks both agree).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable

from webhook_service.private_apis import written_against

log = logging.getLogger("hubhook")

_stock = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
#: The stock path: ``JSONEncoder.encode``, public and documented.
stock_encode: Callable[[list], str] = _stock.encode


def _built_once() -> Callable[[list], str] | None:
    """The C encoder ``_stock.iterencode`` would build, built once; None when this CPython has no C
    accelerator (the stock path is then all there is) or its ``iterencode`` is not the source this
    call was copied from (one warning)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    changed = written_against.changed(written_against.JSON_ENTRIES)
    if changed:
        log.warning("this Python's json.encoder differs from the source hubhook's event-identity encoder "
                    "was written against (%s): using the stock JSONEncoder.encode (same bytes, slower)",
                    ", ".join(entry.name for entry in changed))
        return None
    # markers=None: no cycle check, which parsed JSON cannot need; then the arguments iterencode
    # passes: default, the ASCII string encoder, indent, separators, sort_keys, skipkeys, allow_nan.
    encoder = make(None, _stock.default, json.encoder.encode_basestring_ascii, None, ":", ",",
                   True, False, True)
    return lambda value: "".join(encoder(value, 0))


_fast: Callable[[list], str] | None = None
_checked = False
#: What the intake calls; ``select`` sets it to the fast or the stock encoder.
encode: Callable[[list], str] = stock_encode


def fast_encoder() -> Callable[[list], str] | None:
    """The encoder built once, or None where this CPython does not allow it; checked on first use."""
    global _fast, _checked
    if not _checked:
        _fast, _checked = _built_once(), True
    return _fast


def select(fast: bool) -> bool:
    """Make ``encode`` the encoder built once when ``fast`` and this CPython allows it, else the stock
    one; return whether it is the fast one."""
    global encode
    encode = (fast and fast_encoder()) or stock_encode
    return encode is not stock_encode
