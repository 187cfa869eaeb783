"""Run a Router's handlers on a change, synchronously, the way a worker would: ``run_handlers``.

The changes are validated by the receiver's schema, echo suppression and ``to=``/``from_=`` filters
apply, and records and associations are fetched by hubhook's real enrichment from a FakeHubSpot over
HTTP. The worker's own functions group the changes, match handlers, apply the filters and build each
Event (``jobs.delivery.dispatch``), so a test sees what production would. No Redis is needed: there
is no queue to go through, and ``event.lock()`` is a process-local lock. What is not reproduced is
the worker's isolation: by default a handler's exception propagates to the test
(``raise_errors=False`` records it instead, like a worker would before retrying).

    run = run_handlers(router, make_event("deal.propertyChange", 7, property="dealstage", value="won"),
                       records={"deals": {7: {"dealname": "Big", "dealstage": "won"}}}, hubspot=fake)
    assert run.event("stage_changed").record["properties"]["dealname"] == "Big"
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from webhook_service.config import Config
from webhook_service.events import Event
from webhook_service.receiver.schemas import parse_events
from webhook_service.router import Router
from webhook_service.testing.fake_hubspot.server import FakeHubSpot

TEST_TOKEN = "hubhook-testing-token"


@dataclass(frozen=True)
class Call:
    """One handler call: the Event it got and what it raised, if anything."""

    handler: str
    event: Event
    error: BaseException | None = None


@dataclass
class HandlerRun:
    """What ``run_handlers`` did: the calls in order, the changes suppressed, the handlers filtered out."""

    calls: list[Call] = field(default_factory=list)
    suppressed: list[dict] = field(default_factory=list)
    filtered: list[str] = field(default_factory=list)

    @property
    def called(self) -> list[str]:
        """Names of the handlers called, in order."""
        return [c.handler for c in self.calls]

    def events(self, name: str) -> list[Event]:
        """Every Event handler ``name`` got (full name, or the function's name when unambiguous)."""
        wanted = self._resolve(name)
        return [c.event for c in self.calls if c.handler == wanted]

    def event(self, name: str) -> Event:
        """The one Event handler ``name`` got; AssertionError says who ran instead."""
        found = self.events(name)
        assert len(found) == 1, f"{name!r} was called {len(found)} times; calls: {self.called or 'none'}"
        return found[0]

    def _resolve(self, name: str) -> str:
        names = list(dict.fromkeys(self.called))
        if name in names:
            return name
        matches = [n for n in names if n.rsplit(".", 1)[-1] == name]
        return matches[0] if len(matches) == 1 else name


class _LocalLock:
    """``event.lock()`` without Redis: one threading.Lock per name, same context-manager use."""

    _locks: ClassVar[dict[str, threading.Lock]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, timeout: float = 60.0, blocking_timeout: float | None = None) -> None:
        with self._guard:
            self._lock = self._locks.setdefault(name, threading.Lock())
        self.blocking_timeout = blocking_timeout

    def acquire(self, blocking: bool = True, blocking_timeout: float | None = None) -> bool:
        wait = blocking_timeout if blocking_timeout is not None else self.blocking_timeout
        return self._lock.acquire(blocking, -1 if wait is None or not blocking else wait)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Self:
        if not self.acquire():
            raise TimeoutError("lock is held elsewhere")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def seed(hubspot: FakeHubSpot, records: Mapping[str, Mapping[Any, Mapping]] | None,
         associations: Iterable[tuple[str, Any, str, Any]] = ()) -> None:
    """Put records (``{"deals": {7: {"dealname": "x"}}}``) and associations into the fake; existing
    records are updated, so the same test can seed twice."""
    for object_type, by_id in (records or {}).items():
        for object_id, properties in by_id.items():
            try:
                hubspot.update(object_type, object_id, dict(properties))
            except KeyError:
                hubspot.add(object_type, object_id, dict(properties))
    for from_type, from_id, to_type, to_id in associations:
        hubspot.associate(from_type, from_id, to_type, to_id)


def run_handlers(router: Router, changes: dict | Iterable[dict], *, hubspot: FakeHubSpot,
                 records: Mapping[str, Mapping[Any, Mapping]] | None = None,
                 associations: Iterable[tuple[str, Any, str, Any]] = (), ignore_sources: Iterable[str] = (),
                 source: str = "webhook", raise_errors: bool = True) -> HandlerRun:
    """Validate ``changes`` (one event or several), seed the fake, enrich and call the matching handlers."""
    # the test kit is one of the two entry points that reach jobs, and only when it runs handlers
    from jobs.delivery import dispatch, fetching
    from jobs.hubspot.client import HubSpotClient

    raw = [changes] if isinstance(changes, Mapping) else list(changes)
    events = parse_events(json.dumps(raw).encode())  # the receiver's validation, with its messages
    seed(hubspot, records, associations)
    hubspot.add_token(TEST_TOKEN)
    config = Config(api_base_url=hubspot.url, access_token=TEST_TOKEN, ignore_sources=tuple(ignore_sources))
    run = HandlerRun()
    kept, run.suppressed = dispatch.split_echoes(config, events, trace=False)
    work = [(item, hs) for item in fetching.group_changes(kept)
            if (hs := dispatch.handlers_for(router.handlers, item))]
    client = HubSpotClient(config)
    fetched = fetching.fetch(client, work) if work else {}
    for item, handlers in work:
        chosen = dispatch.selected(handlers, item, fetched[item.key], source, trace=False)
        run.filtered += [h.name for h in handlers if h not in chosen]
        for handler in chosen:
            event = dispatch.build_event(handler, item, fetched[item.key], source, client, _LocalLock)
            try:
                handler.fn(event)
            except Exception as exc:
                if raise_errors:
                    raise
                run.calls.append(Call(handler.name, event, exc))
            else:
                run.calls.append(Call(handler.name, event))
    return run
