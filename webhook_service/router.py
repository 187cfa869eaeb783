"""Handler registration and matching.

``Router.on`` is thin sugar over ``Router.add`` and returns the function unchanged (Flask's
``route``/``add_url_rule``). Every registration is validated when it is made, at import, so a typo in
a subscription type or an option fails the deploy instead of silently never firing (dramatiq's
actor checks).
"""
from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webhook_service import filters, objects
from webhook_service.errors import RegistrationError

if TYPE_CHECKING:
    from webhook_service.config import Config

log = logging.getLogger("hubhook.router")
OPTIONS = ("name", "property", "properties", "associations", "to", "from_")


@dataclass(frozen=True)
class Handler:
    """One registered handler and what it asked to be fetched."""

    name: str
    fn: Callable
    pattern: str
    property_name: str | None = None
    properties: tuple[str, ...] = ()
    associations: tuple[str, ...] = ()
    to_values: frozenset[str] | None = None       # to=: the new value must be one of these
    from_values: frozenset[str] | None = None     # from_=: the old value (property history) must be one of these
    #: Set by hubhook's built-in handlers that buffer their calls (the Postgres mirror): called once after
    #: a job has called ``fn`` for each of its objects, so their writes take one round trip per job. If it
    #: raises, each object of those calls is retried alone, like any failing handler.
    flush: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def history_properties(self) -> tuple[str, ...]:
        """Properties whose history must be fetched for this handler (only for ``from_=``)."""
        return (self.property_name,) if self.from_values is not None and self.property_name else ()

    def accepts_transition(self, change: dict, record: dict | None) -> bool:
        """The ``from_=`` check, once the record and its property history are fetched."""
        return self.from_values is None or filters.old_value(record, change) in self.from_values

    @property
    def object_type(self) -> str | None:
        """The object type this handler is for, or None for "*"."""
        return None if self.pattern == "*" else self.pattern.split(".", 1)[0]

    def matches(self, change: dict) -> bool:
        """True when a validated HubSpot event should reach this handler."""
        return self.of_kind(change) and self.filtered_by(change) is None

    def of_kind(self, change: dict) -> bool:
        """True when ``change`` is of this handler's object type and action, before its ``property=``
        and ``to=`` filters (which ``filtered_by`` names)."""
        name = object_name(change)
        if name is None:  # the receiver drops these; a job enqueued before it did must not route them
            return False
        if self.property_name is None and change.get(filters.ORIGIN_FIELD) == filters.HISTORY_ORIGIN:
            return False  # the poller made it for property= handlers; the others get its polled event
        if self.pattern == "*":
            return True
        raw = change["subscriptionType"]
        prefix, action = self.pattern.split(".", 1)
        names = {raw.split(".", 1)[0], name}
        return prefix in names and (action == "*" or raw.split(".", 1)[1] == action)

    def filtered_by(self, change: dict) -> str | None:
        """The filter that keeps ``change`` from this handler, as written (``to='closedwon'``), or None
        when neither ``property=`` nor ``to=`` does; ``hubhook inspect`` shows it."""
        if self.property_name is not None and change.get("propertyName") != self.property_name:
            return f"property={self.property_name!r}"
        if self.to_values is not None and change.get("propertyValue") not in self.to_values:
            return f"to={shown(self.to_values)}"
        return None


def shown(values: frozenset[str]) -> str:
    """``to=``/``from_=`` values as a user wrote them: ``'closedwon'`` or ``['closedlost', 'closedwon']``."""
    return repr(next(iter(values))) if len(values) == 1 else repr(sorted(values))


def object_name(change: dict) -> str | None:
    """The object type of a change: "deal" for deal.* and for object.* with objectTypeId 0-3, the id or
    name HubSpot sent for types hubhook does not know ("0-421", "appointment"), and None when that is
    not a well-formed type name (``objects.event_type``): such a change reaches no handler."""
    return objects.event_type(change)


class Router:
    """The registry of a project's handlers; the processes find it via HUBHOOK_HANDLERS."""

    def __init__(self) -> None:
        self.handlers: list[Handler] = []

    def on(self, pattern: str, **options) -> Callable[[Callable], Callable]:
        """Decorator form of ``add``: ``@router.on("deal.propertyChange", property="dealstage")``."""
        def decorator(fn: Callable) -> Callable:
            self.add(fn, pattern, **options)
            return fn
        return decorator

    def add(self, fn: Callable, pattern: str, **options) -> Handler:
        """Register ``fn`` for ``pattern``; raise RegistrationError with the fix when anything is off."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise RegistrationError(f"unknown option {unknown[0]!r} for {pattern!r}; options are: {', '.join(OPTIONS)}")
        if not callable(fn):
            raise RegistrationError(f"handler for {pattern!r} must be callable, got {type(fn).__name__}")
        check_pattern(pattern)
        prop = options.get("property")
        if prop is not None and not pattern.endswith(".propertyChange"):
            raise RegistrationError(f"property= only works with <object>.propertyChange patterns, not {pattern!r}; "
                                    f"register for {pattern.split('.')[0]}.propertyChange instead")
        handler = Handler(
            name=options.get("name") or f"{fn.__module__}.{fn.__qualname__}",
            fn=fn, pattern=pattern, property_name=prop,
            properties=_names(options.get("properties"), "properties", pattern),
            associations=_association_names(options.get("associations"), pattern),
            to_values=_values(options, "to", pattern), from_values=_values(options, "from_", pattern),
        )
        if any(h.name == handler.name for h in self.handlers):
            raise RegistrationError(f"a handler named {handler.name!r} is already registered; "
                                    f"pass name='...' to give this one a different name")
        self.handlers.append(handler)
        return handler

    def matching(self, change: dict) -> list[Handler]:
        """The handlers one change should reach, in registration order."""
        return [h for h in self.handlers if h.matches(change)]

    def get(self, name: str) -> Handler:
        """The handler registered under ``name``; KeyError lists the names that exist."""
        for handler in self.handlers:
            if handler.name == name:
                return handler
        raise KeyError(f"no handler named {name!r}; registered: {', '.join(self.names()) or 'none'}")

    def names(self) -> list[str]:
        return [h.name for h in self.handlers]

    def check_against(self, config: Config) -> Router:
        """Raise RegistrationError, with the fix, for a handler that could never fire under ``config``;
        return the router. Called wherever a process loads the router with its config (worker, poller,
        ``hubhook run``), because registration at import cannot know which types are polled.

        A type not in HUBHOOK_WEBHOOK_TYPES is polled: the poller reads the history of the properties
        ``property=`` handlers watch and sends their changes as propertyChange events
        (``jobs.poller.property_changes``), so ``property=``, ``to=`` and ``from_=`` work there. Only a
        type the poller cannot walk at all (``objects.UNSEARCHABLE``: conversation threads have no
        CRM search and no property history) is refused, when HubSpot does not send its webhooks here."""
        webhook = {_canonical(name) for name in config.webhook_types}
        for handler in self.handlers:
            options = [option for option, used in (("property=", handler.property_name is not None),
                                                    ("to=", handler.to_values is not None),
                                                    ("from_=", handler.from_values is not None)) if used]
            otype = handler.object_type
            if not options or otype is None or otype == objects.GENERIC_PREFIX or not objects.is_known(otype):
                continue
            name = _canonical(otype)
            if name in webhook or name not in objects.UNSEARCHABLE:
                continue
            raise RegistrationError(
                f"handler {handler.name!r} uses {'/'.join(options)} on {handler.pattern!r}, but {name} is not in "
                f"HUBHOOK_WEBHOOK_TYPES={','.join(config.webhook_types)} and HubSpot has no CRM search or property "
                f"history for it, so the poller cannot see it change and the handler would never fire; subscribe "
                f"your app to {name} webhooks and add {name} to HUBHOOK_WEBHOOK_TYPES")
        return self

    def object_types(self) -> set[str]:
        """Every concrete object type some handler registered for whose records hubhook can read (for the
        poller): wildcards and plain names hubhook does not know (``appointment.*``) are left out."""
        return {h.object_type for h in self.handlers
                if h.object_type not in (None, objects.GENERIC_PREFIX) and objects.is_known(h.object_type)}


def check_pattern(pattern: str) -> None:
    """Raise RegistrationError, with the fix, unless ``pattern`` names events HubSpot can send
    (``deal.propertyChange``, ``deal.*``, ``*``...): ``Router.on`` checks every handler's pattern with
    it, and ``hubhook send-test-event`` its subscription type."""
    if pattern == "*":
        return
    prefix, dot, action = pattern.partition(".") if isinstance(pattern, str) else ("", "", "")
    if not dot or not action:
        raise RegistrationError(f"pattern {pattern!r} must be '<object>.<action>', '<object>.*' or '*', "
                                f"e.g. 'deal.propertyChange'")
    if prefix == objects.GENERIC_PREFIX:
        allowed: tuple[str, ...] = ("creation", "deletion", "merge", "restore", "propertyChange", "associationChange")
    elif objects.is_known(prefix):
        allowed = objects.lookup(prefix).actions
    elif action == "*" and objects.PLAIN_NAME.fullmatch(prefix) and not _close_to_known(prefix):
        # A type HubSpot may send that hubhook has no row for ("appointment.*"): its actions are unknown,
        # so only the wildcard; its events reach the handler with record None (no API path to read it).
        log.warning("handler pattern %r names an object type hubhook does not know; it will match events "
                    "HubSpot sends as '%s.<action>', with no record fetched", pattern, prefix)
        return
    else:
        known = ", ".join(t.name for t in objects.KNOWN_TYPES)
        close = _close_to_known(prefix)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise RegistrationError(f"unknown object type {prefix!r} in {pattern!r}; {hint}use one of {known}, "
                                f"'object', a type id as 0-<n> or 2-<n>, a custom object as p_<name>, "
                                f"or '<name>.*' for another type HubSpot sends as '<name>.<action>'")
    if action != "*" and action not in allowed:
        raise RegistrationError(f"HubSpot sends no {pattern!r} events; {prefix} actions are: {', '.join(allowed)}")


def _canonical(name: str) -> str:
    """The singular name for any spelling ``objects.lookup`` accepts (unknown names unchanged)."""
    try:
        return objects.lookup(name).name
    except KeyError:
        return name


def _close_to_known(name: str) -> list[str]:
    """Known type names a typo of ``name`` could be ("contcat" -> "contact"): those stay an error."""
    return difflib.get_close_matches(name, [t.name for t in objects.KNOWN_TYPES], n=1, cutoff=0.75)


def _values(options: dict, option: str, pattern: str) -> frozenset[str] | None:
    if option not in options:
        return None
    if options.get("property") is None:
        raise RegistrationError(f"{option}= compares the value of one property: add property='...' to {pattern!r}, "
                                f"e.g. property='dealstage', {option}='closedwon'")
    try:
        return filters.values(options[option])
    except TypeError:
        raise RegistrationError(f"{option}= for {pattern!r} must be a value or a non-empty list of values, "
                                f"e.g. {option}='closedwon' or {option}=['closedwon', 'closedlost']") from None


def _names(values: Iterable[str] | str | None, option: str, pattern: str) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise RegistrationError(f"{option}= for {pattern!r} must be a list of names, e.g. {option}=['dealname']")
    return tuple(dict.fromkeys(values))


def _association_names(values: Iterable[str] | None, pattern: str) -> tuple[str, ...]:
    names = _names(values, "associations", pattern)
    for name in names:
        if not objects.is_known(name):
            raise RegistrationError(f"unknown association type {name!r} for {pattern!r}; use object type names "
                                    f"such as 'contacts', 'companies', 'deals', 'tickets'")
    return names
