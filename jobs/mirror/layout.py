"""What the mirror settings name: object types, their tables, and the association pairs to keep.

Tables are named after HubSpot's API names (``contacts``, ``deals``); a custom object given by type id
(``2-123``) becomes ``object_2_123``, one given by name (``p_widgets``) keeps it. Views add ``_typed``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from webhook_service import objects
from webhook_service.config import Config
from webhook_service.errors import ConfigError

#: The fixed columns of every record table; a property with one of these names gets a ``p_`` prefix in views.
FIXED_COLUMNS = ("portal_id", "object_id", "created_at", "updated_at", "archived", "archived_at", "merged_into",
                 "version", "synced_at", "properties")


@dataclass(frozen=True)
class MirroredType:
    """One mirrored object type and where it lives."""

    otype: objects.ObjectType

    @property
    def name(self) -> str:
        """The singular name events use (``contact``), or the type id / custom name."""
        return self.otype.name

    @property
    def api_name(self) -> str:
        return self.otype.api_name

    @property
    def table(self) -> str:
        api = self.otype.api_name.lower()
        return f"object_{re.sub(r'[^a-z0-9]', '_', api)}" if api[0].isdigit() else re.sub(r"[^a-z0-9_]", "_", api)

    @property
    def view(self) -> str:
        return f"{self.table}_typed"


def mirrored_types(config: Config) -> list[MirroredType]:
    """The types HUBHOOK_MIRROR_OBJECTS names, each once; ConfigError naming a bad one."""
    found: dict[str, MirroredType] = {}
    for name in config.mirror_objects:
        try:
            otype = objects.lookup(name.strip())
        except KeyError:
            known = ", ".join(t.api_name for t in objects.KNOWN_TYPES)
            raise ConfigError(f"HUBHOOK_MIRROR_OBJECTS names {name!r}, which is no HubSpot object type hubhook can "
                              f"read; use {known}, or a custom object as 2-<id> or p_<name>") from None
        if otype.name in objects.UNSEARCHABLE:
            raise ConfigError(f"HUBHOOK_MIRROR_OBJECTS: {name} has no CRM records to mirror; remove it")
        found.setdefault(otype.api_name, MirroredType(otype))
    return list(found.values())


def lookup(config: Config, name: str) -> MirroredType:
    """The mirrored type ``name`` (any spelling) stands for, or ConfigError listing the mirrored ones."""
    types = mirrored_types(config)
    try:
        wanted = objects.lookup(name).api_name
    except KeyError:
        wanted = name
    for mirrored in types:
        if mirrored.api_name == wanted:
            return mirrored
    raise ConfigError(f"{name!r} is not mirrored; HUBHOOK_MIRROR_OBJECTS is {','.join(t.api_name for t in types)}")


def association_pairs(config: Config) -> dict[str, tuple[str, ...]]:
    """From-type API name -> to-type API names whose associations the mirror keeps: HUBHOOK_MIRROR_ASSOCIATIONS,
    else every ordered pair of distinct mirrored types."""
    types = [t.api_name for t in mirrored_types(config)]
    pairs: dict[str, list[str]] = {t: [] for t in types}
    if config.mirror_associations:
        for pair in config.mirror_associations:
            source, _, target = pair.partition(":")
            try:
                a, b = objects.lookup(source.strip()).api_name, objects.lookup(target.strip()).api_name
            except KeyError:
                raise ConfigError(f"HUBHOOK_MIRROR_ASSOCIATIONS: {pair!r} names a type hubhook does not know; "
                                  f"use API names such as contacts:companies") from None
            if a not in pairs:
                raise ConfigError(f"HUBHOOK_MIRROR_ASSOCIATIONS: {a} is not in HUBHOOK_MIRROR_OBJECTS; add it there "
                                  f"or drop {pair!r}")
            pairs[a].append(b)
    else:
        for a in types:
            pairs[a] = [b for b in types if b != a]
    return {a: tuple(dict.fromkeys(b)) for a, b in pairs.items()}
