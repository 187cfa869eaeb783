"""``hubhook mirror status|check|backfill``: see, verify and fill the Postgres mirror.

Each needs HUBHOOK_MIRROR_URL (and Redis); the work is in ``jobs.mirror``, reached by the dotted
paths in ``webhook_service.keys``. Errors are one line saying what to do; the database URL's password
is never printed (``jobs.mirror.database.describe``).
"""
from __future__ import annotations

import json
from typing import Any

import click

from webhook_service import keys, logs
from webhook_service.cli.operator import operator_config
from webhook_service.cli.shared import require_redis
from webhook_service.config import Config
from webhook_service.errors import ConfigError


def _mirror_config() -> Config:
    config = operator_config()
    if not config.mirror_url:
        raise ConfigError("the mirror is off: set HUBHOOK_MIRROR_URL=postgresql://user@host/db (the database the "
                          "worker writes to)")
    require_redis(config)
    return config


@click.group()
def mirror() -> None:
    """The Postgres mirror of HubSpot's records (HUBHOOK_MIRROR_URL)."""


@mirror.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(as_json: bool) -> None:
    """Rows per type, the newest change, the lag and the last error."""
    from webhook_service.connection import redis_client

    config = _mirror_config()
    facts: dict[str, Any] = keys.load(keys.MIRROR_STATUS)(config, redis_client(config))
    if as_json:
        click.echo(logs.for_terminal(json.dumps(facts)))
        return
    click.echo(f"mirror in {facts['database']}, schema {facts['schema']}")
    if not facts.get("migrated"):
        click.echo("  no tables yet: start `hubhook worker` (it creates them) or run `hubhook mirror backfill`")
        return
    click.echo(f"  {'type':<14}{'live':>10}{'archived':>10}{'merged':>8}  {'newest change':<27}{'lag':>9}")
    for row in facts["types"]:
        lag = "-" if row["lag_seconds"] is None else f"{row['lag_seconds']:.1f}s"
        click.echo(f"  {row['type']:<14}{row['live']:>10}{row['archived']:>10}{row['merged']:>8}  "
                   f"{row['newest_change'] or '-':<27}{lag:>9}")
    click.echo(f"  associations: {facts.get('associations', 0)}")
    error = facts.get("last_error")
    if error:
        click.echo(logs.for_terminal(f"  last error ({error.get('age_seconds')}s ago, {error.get('handler')}): "
                                     f"{error.get('error')}"))
    else:
        click.echo("  last error: none")


@mirror.command()
@click.argument("type_name", metavar="[TYPE]", required=False)
@click.option("--sample", type=click.IntRange(min=1), help="Check N random live rows per type instead of all.")
def check(type_name: str | None, sample: int | None) -> None:
    """Compare the mirror with HubSpot (batch reads); print each drifted row; exit 1 on drift."""
    config = _mirror_config()
    drifted = checked = 0
    for found in keys.load(keys.MIRROR_CHECK)(config, type_name, sample):
        if isinstance(found, int):
            checked = found
            continue
        drifted += 1
        click.echo(logs.for_terminal(f"drift: {found}"))
    click.echo(f"checked {checked} rows: {drifted} drifted")
    if drifted:
        click.echo("to repair: `hubhook replay --handler hubhook.mirror.<type>` for parked mirror work, or "
                   "`hubhook mirror backfill --restart <type>`", err=True)
        raise SystemExit(1)


@mirror.command()
@click.argument("types", nargs=-1, metavar="[TYPE...]")
@click.option("--portal", type=int, help="The portal (Hub ID) the token reads (default: $HUBSPOT_PORTAL_ID).")
@click.option("--restart", is_flag=True, help="Start from the first record instead of the saved cursor.")
def backfill(types: tuple[str, ...], portal: int | None, restart: bool) -> None:
    """Load every existing record (list endpoints); resumable; live changes keep flowing meanwhile."""
    config = _mirror_config().require_hubspot_auth()
    portal_id = portal if portal is not None else config.portal_id
    if not portal_id:
        raise ConfigError("the backfill needs the portal its rows belong to: set HUBSPOT_PORTAL_ID (your Hub ID) "
                          "or pass --portal <hub id>")
    from jobs.mirror.backfill import Progress  # cli/ may import jobs (tests/test_layout.py)

    bars: dict[str, Any] = {}

    def start(mirrored, total: int | None, resumed: bool) -> None:
        for open_bar in bars.values():
            open_bar.render_finish()
        label = f"{mirrored.api_name}{' (resumed)' if resumed else ''}"
        bars[mirrored.api_name] = click.progressbar(length=total or 0, label=label, show_pos=True,
                                                    show_percent=bool(total), show_eta=bool(total))

    def page(mirrored, records: int) -> None:
        bars[mirrored.api_name].update(records)

    written = keys.load(keys.MIRROR_BACKFILL)(config, list(types) or None, portal_id=portal_id, restart=restart,
                                              progress=Progress(start, page))
    for open_bar in bars.values():
        open_bar.render_finish()
    for name, count in written.items():
        click.echo(f"{name}: {count} records written")
