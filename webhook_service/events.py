"""The Event a handler receives: plain, read-only data, never a Flask or RQ object.

Handlers unit-test as plain functions: build an Event with ``Event.build(...)`` (or let
``webhook_service.testing`` do it) and call the function. The containers are dict and list
subclasses that refuse mutation, so ``json.dumps(event.record)`` and ``event.associations["contacts"]
== ["1", "2"]`` work while a handler cannot change what the next handler sees.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _readonly(*_: Any, **__: Any) -> None:
    raise TypeError("Event data is read-only; copy it (dict(...), list(...)) to change it")


class FrozenDict(dict):
    """A dict that refuses mutation; still a dict for json, equality and isinstance."""

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _readonly  # type: ignore

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=repr)))


class FrozenList(list):
    """A list that refuses mutation; still a list for json, equality and isinstance."""

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = _readonly  # type: ignore
    clear = sort = reverse = __iadd__ = __imul__ = _readonly  # type: ignore


def freeze(value: Any) -> Any:
    """Deep read-only copy of JSON-like data."""
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return FrozenList(freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Event:
    """One object's changes, enriched, as one handler sees them.

    ``subscription_type`` is the latest change that matched this handler; ``changes`` are all the
    validated HubSpot events behind this call (oldest first); ``record`` is the record as the CRM API
    returns it, or None once the object no longer exists; ``associations`` maps each association type
    the handler declared to the associated ids (strings).
    """

    object_type: str
    object_id: str
    portal_id: int
    subscription_type: str
    source: str
    changes: FrozenList
    record: FrozenDict | None
    associations: FrozenDict
    merged_object_ids: FrozenList = field(default_factory=FrozenList)
    handler: str = ""
    #: Type name -> associated id -> its association types (``typeId``, ``label``, ``category``).
    association_types: FrozenDict = field(default_factory=FrozenDict)
    hubspot: Any = field(default=None, repr=False, compare=False)
    _lock_factory: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, *, object_type: str, object_id: str | int, portal_id: int, subscription_type: str,
              changes: Iterable[Mapping] = (), record: Mapping | None = None,
              associations: Mapping[str, Iterable[str | int]] | None = None, source: str = "webhook",
              merged_object_ids: Iterable[str | int] = (), handler: str = "", hubspot: Any = None,
              lock_factory: Callable[..., Any] | None = None,
              association_types: Mapping[str, Mapping[str, Any]] | None = None) -> Event:
        """Build an Event from plain data, freezing every container."""
        return cls(
            object_type=object_type, object_id=str(object_id), portal_id=int(portal_id),
            subscription_type=subscription_type, source=source, changes=freeze(list(changes)),
            record=freeze(record) if record is not None else None,
            associations=FrozenDict({k: FrozenList(str(i) for i in v) for k, v in (associations or {}).items()}),
            merged_object_ids=FrozenList(str(i) for i in merged_object_ids), handler=handler,
            hubspot=hubspot, _lock_factory=lock_factory, association_types=freeze(association_types or {}),
        )

    @property
    def properties(self) -> Mapping[str, Any]:
        """The record's properties, or an empty mapping once the object is gone."""
        record: Mapping[str, Any] = self.record or {}
        return record.get("properties") or FrozenDict()

    def lock(self, name: str, timeout: float = 60.0, blocking_timeout: float | None = None) -> Any:
        """A Redis lock shared by every worker, for work that must not run twice at once."""
        if self._lock_factory is None:
            raise RuntimeError("event.lock() needs the worker's Redis; use webhook_service.testing to run handlers")
        return self._lock_factory(name, timeout=timeout, blocking_timeout=blocking_timeout)
