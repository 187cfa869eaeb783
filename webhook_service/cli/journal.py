"""``hubhook journal``: the Webhooks Journal reader process, its status and its subscriptions."""
from __future__ import annotations

import json
from typing import Any

import click

from webhook_service import keys
from webhook_service.cli.shared import _config, _logging, handlers_option, require_redis


@click.group(invoke_without_command=True)
@click.option("--once", is_flag=True, help="Read until the journal has nothing new, then exit.")
@click.pass_context
def journal(ctx: click.Context, once: bool) -> None:
    """Read HubSpot's Webhooks Journal into the queue (HUBHOOK_JOURNAL_MODE=intake or reconcile)."""
    if ctx.invoked_subcommand is not None:
        return
    from webhook_service.connection import redis_client
    from webhook_service.telemetry import stats

    config = _config()
    _logging(config)
    require_redis(config)
    stats.start_autoflush(redis_client(config))   # the reader's figures reach /metrics
    keys.load(keys.JOURNAL_RUN)(config, once=once)


def render(row: dict[str, Any] | None) -> list[str]:
    """``hubhook journal status`` (and its part of ``hubhook status``) as lines."""
    if row is None:
        return ["journal  no reader has run yet (`hubhook journal` with HUBHOOK_JOURNAL_MODE set)"]
    lag = f"{row['lag_seconds']:.0f}s" if row.get("lag_seconds") is not None else "-"
    age = f"{row['offset_age_seconds']:.0f}s ago" if row.get("offset_age_seconds") is not None else "-"
    lines = [f"journal  mode {row.get('mode') or '-'}, offset {row.get('offset') or '- (starts at the earliest)'} "
             f"(stored {age}), lag behind latest {lag}" + (" (at latest)" if row.get("at_latest") else ""),
             f"  files {row['files']}, events read {row['events_read']}, enqueued {row['events_enqueued']}, "
             f"duplicates dropped {row['duplicates']}, malformed files skipped {row['skipped_files']}, "
             f"offsets lost {row['offsets_lost']}",
             f"  last error: {row.get('last_error') or 'none'}"
             + (f" at {row['last_error_at']}" if row.get("last_error") and row.get("last_error_at") else "")]
    if row.get("leader"):
        lines.append(f"  reader: {row['leader']}")
    return lines


@journal.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def journal_status(as_json: bool) -> None:
    """Offset, its age, lag behind latest, files and events read, last error."""
    from redis.exceptions import RedisError

    from webhook_service.cli.operator import safe_url
    from webhook_service.errors import HubhookError

    config = _config()
    try:
        row = keys.load(keys.JOURNAL_STATUS)(config)
    except RedisError as exc:
        raise HubhookError(f"cannot read Redis at {safe_url(config.redis_url)} ({type(exc).__name__}): is it "
                           f"running, and is REDIS_URL right?") from None
    click.echo(json.dumps(row) if as_json else "\n".join(render(row)))


@journal.command("subscribe")
@handlers_option
@click.option("--portal", type=int, required=True, help="The HubSpot account (portal id) to subscribe.")
def journal_subscribe(handlers: str | None, portal: int) -> None:
    """Create the journal subscriptions the registered handlers need in one account (idempotent)."""
    from jobs.journal import format, subscriptions
    from jobs.journal.client import JournalClient
    from webhook_service.loading import load_router

    config = _config(handlers)
    router = load_router(config.handlers).check_against(config)
    client = JournalClient(config, scopes=format.SUBSCRIPTION_SCOPES)
    try:
        created, kept = subscriptions.subscribe(client, router, config, portal)
    finally:
        client.close()
    for request in created:
        click.echo(f"created  {_describe(request)}")
    for request in kept:
        click.echo(f"exists   {_describe(request)}")
    if not created and not kept:
        click.echo("no handler needs a journal subscription (conversation handlers cannot have one)")


@journal.command("subscriptions")
def journal_subscriptions() -> None:
    """List the app's journal subscriptions."""
    from jobs.journal import format
    from jobs.journal.client import JournalClient

    client = JournalClient(_config(), scopes=(format.SUBSCRIPTION_SCOPES[0],))
    try:
        found = client.subscriptions()
    finally:
        client.close()
    for sub in found:
        click.echo(f"{sub.get('id')!s:<10} {_describe(sub)}")
    if not found:
        click.echo("no journal subscriptions: create them with `hubhook journal subscribe --portal ID`")


def _describe(sub: dict) -> str:
    props = ",".join(sub.get("properties") or []) or "all"
    actions = ",".join(sub.get("actions") or []) or "-"
    text = f"portal {sub.get('portalId')} {sub.get('subscriptionType')} {sub.get('objectTypeId') or ''} {actions}"
    return text + (f" properties={props}" if sub.get("subscriptionType") == "OBJECT" else "")
