"""The operator's commands: ``hubhook status``, ``hubhook inspect TYPE ID``, ``hubhook replay``.

They read Redis as it is; a queue, registry or key that does not exist yet reads as empty, never as
an error. An unreachable Redis, an unknown object type or a bad argument is one line saying what to
do (``cli.group.main`` prints HubhookError that way). Everything they print from Redis passes through
``logs.for_terminal``: secrets redacted, control characters escaped (stored text is not trusted).
"""
from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click
from redis.exceptions import RedisError

from webhook_service import logs, objects
from webhook_service.cli.shared import require_redis
from webhook_service.config import Config
from webhook_service.errors import ConfigError, HubhookError
from webhook_service.timestamps import iso_utc

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str | None, option: str) -> float | None:
    """``90``, ``90s``, ``15m``, ``2h``, ``3d`` -> seconds; ConfigError names the option otherwise."""
    if text is None:
        return None
    found = _DURATION.match(text)
    if not found:
        raise ConfigError(f"{option} takes a duration such as 90s, 15m, 2h or 3d, got {text!r}")
    return float(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]


def safe_url(url: str) -> str:
    """The Redis URL without its password, in ``user:pass@`` or ``?password=`` (redis-py reads both)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user_info, _, host = netloc.rpartition("@")
        netloc = f"{user_info.split(':', 1)[0]}:***@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in pairs):
        query = urlencode([(name, "***" if name.lower() == "password" else value) for name, value in pairs],
                          safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def operator_config() -> Config:
    """The config of an operator command, its secrets registered so that no printed line shows them."""
    config = Config.from_env()
    logs.add_secrets(config.secrets())
    if "REDIS_URL" in config.dev_supplied:
        require_redis(config)  # a dev Redis that is not running: one line saying to start `hubhook dev`
    return config


def _iso(epoch: float | None) -> str:
    return iso_utc(epoch * 1000, terminal=True) if epoch else "-"


def gather_status(config: Config) -> dict[str, Any]:
    """Everything ``hubhook status`` shows, as plain data (``--json`` prints it as is)."""
    from webhook_service import lanes
    from webhook_service.connection import queue as build_queue
    from webhook_service.connection import redis_client
    from webhook_service.operator import status_report

    redis = redis_client(config)
    queue = build_queue(config, redis)
    try:
        facts = status_report.queue_facts(redis, queue)
        status: dict[str, Any] = {
            "redis": safe_url(config.redis_url),
            "redis_from": config.origin("REDIS_URL"),
            "queue": {"name": facts.head.name, "queued": facts.head.queued, "started": facts.started,
                      "scheduled": facts.scheduled, "deferred": facts.deferred, "dead_letters": facts.dead_letters,
                      "pending_events": facts.head.pending_events, "max_pending_events": config.max_queue_depth,
                      "oldest_job_age_seconds": facts.head.oldest_age},
            "portals": lanes.rows(redis),
            "workers": status_report.workers(redis, queue),
            "dead_letters_by_handler": dict(status_report.dead_letters_by_handler(redis, queue).most_common()),
            "rate_budget": status_report.rate_budget(config, redis),
        }
        status["poll_cursors"] = status_report.poll_rows(config)
        status["journal"] = status_report.journal_row(config, redis)
    except RedisError as exc:
        raise HubhookError(f"cannot read Redis at {safe_url(config.redis_url)} ({type(exc).__name__}): is it "
                           f"running, and is REDIS_URL right?") from None
    return status


def render_status(status: dict[str, Any]) -> list[str]:
    q = status["queue"]
    limit = f"limit {q['max_pending_events']}" if q["max_pending_events"] else "no limit"
    oldest = f", oldest waiting {q['oldest_job_age_seconds']:.1f}s" if q["oldest_job_age_seconds"] is not None else ""
    queue_line = (f"queue    {q['name']}: {q['queued']} queued ({q['pending_events']} events pending, {limit})"
                  f"{oldest}; {q['started']} running, {q['scheduled']} scheduled, {q['deferred']} deferred, "
                  f"{q['dead_letters']} dead letter{'' if q['dead_letters'] == 1 else 's'}")
    origin = {"environment": "from REDIS_URL", "default": "the default; set REDIS_URL"}.get(
        status.get("redis_from", ""), f"from the {status.get('redis_from')}")
    lines = [f"redis    {status['redis']} ({origin})", queue_line]
    portals = status.get("portals") or []
    lines.append("portals" + ("" if portals else ": nothing waiting"))
    for p in portals:
        paused = f" (PAUSED: `hubhook portal resume {p['portal']}`)" if p["paused"] else ""
        lines.append(f"  portal {p['portal']:<12} {p['pending_events']} events pending, "
                     f"{p['waiting_jobs']} jobs in its lane{paused}")
    lines.append(f"workers  {len(status['workers'])}")
    for w in status["workers"]:
        lines.append(f"  {w['name']:<40} {w['state']:<10} ok={w['ok']} failed={w['failed']}"
                     + (f" job={w['job']}" if w["job"] else ""))
    lines.append("dead letters by handler" + ("" if status["dead_letters_by_handler"] else ": none"))
    for handler, count in status["dead_letters_by_handler"].items():
        lines.append(f"  {handler:<50} {count}")
    rows = status["poll_cursors"]
    if rows is None:
        lines.append("poll cursors: no poller in this installation")
    else:
        lines.append("poll cursors" + ("" if rows else ": none yet (no `hubhook poll` has run)"))
        for r in rows:
            lag = f"{r['lag_seconds']:.0f}s" if r.get("lag_seconds") is not None else "-"
            lines.append(f"  portal {r['portal']} {r['type']:<12} {r['stream']:<9} cursor {r.get('cursor') or '-'} "
                         f"lag {lag}, last poll {r.get('last_poll') or '-'}: {r.get('outcome')}")
        if rows and rows[0].get("leader"):
            lines.append(f"  leader: {rows[0]['leader']}")
    if status.get("journal") is not None:
        from webhook_service.cli.journal import render
        lines.extend(render(status["journal"]))
    lines.append("rate budget (burst window)" + ("" if status["rate_budget"] else ": unused in the current window"))
    for r in status["rate_budget"]:
        paused = f", paused {r['paused_for']:.0f}s more" if r.get("paused_for") else ""
        lines.append(f"  {r['scope']:<12} {r['used']}/{r['limit']} used{paused}")
    return lines


def render_entry(entry: dict[str, Any]) -> str:
    at = _iso(entry.get("at"))
    kind = entry.get("kind")
    if kind == "handler":
        text = f"handler {entry.get('handler')} {entry.get('outcome')} in {entry.get('ms')} ms"
        text += " (retry)" if entry.get("attempt") == "retry" else ""
        return f"{at}  {text}" + (f": {entry['error']}" if entry.get("error") else "")
    if kind == "parked":
        return (f"{at}  parked in the dead-letter registry: {entry.get('handler')} (job {entry.get('job')}); "
                f"`hubhook replay` runs it again")
    changes = "; ".join(_change(c) for c in entry.get("changes", []))
    if kind == "suppressed":
        return f"{at}  suppressed ({entry.get('reason')}), portal {entry.get('portal')}: {changes}"
    line = f"{at}  seen via {entry.get('source')}, portal {entry.get('portal')}: {changes}"
    line += f"\n{'':21}-> handlers: {', '.join(entry.get('handlers') or []) or 'none'}"
    for skip in entry.get("skipped") or ():
        when = f" at {iso_utc(skip['occurredAt'], terminal=True)}" if isinstance(skip.get("occurredAt"), int) else ""
        line += f"\n{'':21}   {skip.get('change')}{when}: {skip.get('handler')} skipped ({skip.get('filter')})"
    if entry.get("filtered") and not entry.get("skipped"):  # written by an earlier version: names only
        line += f"; skipped by from_=: {', '.join(entry['filtered'])}"
    return line


def _change(change: dict[str, Any]) -> str:
    text = str(change.get("subscriptionType"))
    if change.get("propertyName"):
        text += f" {change['propertyName']}={change.get('propertyValue', '')!r}"
    origin = " ".join(str(change[k]) for k in ("changeSource", "sourceId") if change.get(k))
    return text + f" (event {change.get('eventId')}{', ' + origin if origin else ''})"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(as_json: bool) -> None:
    """Queues, workers, dead letters by handler, poll cursors and lag, journal reader, rate budget used."""
    data = gather_status(operator_config())
    text = json.dumps(data, default=str) if as_json else "\n".join(render_status(data))
    click.echo(logs.for_terminal(text))


@click.group()
def portal() -> None:
    """Pause or resume one portal's work (its deliveries are still accepted and kept)."""


def _portal_change(portal_id: str, verb: str) -> None:
    from webhook_service import lanes
    from webhook_service.connection import queue as build_queue
    from webhook_service.connection import redis_client

    if not portal_id.isdigit():
        raise HubhookError(f"a portal is its hub id, digits only (e.g. 62515), got {portal_id!r}; "
                           f"`hubhook status` lists the portals with work")
    config = operator_config()
    require_redis(config)
    redis = redis_client(config)
    try:
        if verb == "pause":
            changed = lanes.pause(redis, portal_id)
        else:
            changed = lanes.resume(redis, build_queue(config, redis), portal_id)
    except RedisError as exc:
        raise HubhookError(f"cannot reach Redis at {safe_url(config.redis_url)} ({type(exc).__name__}): is it "
                           f"running, and is REDIS_URL right?") from None
    if verb == "pause":
        click.echo(f"portal {portal_id} paused: its deliveries are still accepted and wait in its lane; "
                   f"`hubhook portal resume {portal_id}` runs them" if changed else
                   f"portal {portal_id} was already paused")
    else:
        click.echo(f"portal {portal_id} resumed: workers take its waiting jobs again" if changed else
                   f"portal {portal_id} was not paused; nothing changed")


@portal.command()
@click.argument("portal_id")
def pause(portal_id: str) -> None:
    """Stop workers running PORTAL_ID's jobs; its events are still accepted and kept."""
    _portal_change(portal_id, "pause")


@portal.command()
@click.argument("portal_id")
def resume(portal_id: str) -> None:
    """Let workers run PORTAL_ID's jobs again, in turn with the other portals."""
    _portal_change(portal_id, "resume")


@click.command()
@click.argument("object_type")
@click.argument("object_id")
@click.option("--portal", type=int, help="Only what came from this portal (hub id).")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON lines.")
def inspect(object_type: str, object_id: str, portal: int | None, as_json: bool) -> None:
    """What hubhook last saw and did for one object, e.g. `hubhook inspect deal 123`."""
    from webhook_service.connection import redis_client
    from webhook_service.telemetry import object_history

    try:
        name = objects.lookup(object_type).name
    except KeyError:
        known = ", ".join(t.name for t in objects.KNOWN_TYPES)
        raise HubhookError(f"unknown object type {object_type!r}; use one of {known}, or a custom object "
                           f"as 2-<id> or p_<name>") from None
    config = operator_config()
    try:
        entries = object_history.read(redis_client(config), name, object_id.strip())
    except RedisError as exc:
        raise HubhookError(f"cannot read Redis at {safe_url(config.redis_url)} ({type(exc).__name__})") from None
    entries = [e for e in entries if portal is None or e.get("portal") == portal]
    if as_json:
        for entry in entries:
            click.echo(logs.for_terminal(json.dumps(entry)))
        return
    if not entries:
        days = config.history_ttl / 86400
        click.echo(f"hubhook has nothing recorded for {name} {object_id} (history is kept {days:g} days after an "
                   f"object's last change; HUBHOOK_HISTORY_TTL)")
        return
    click.echo(f"{name} {object_id}: last {len(entries)} entries, oldest first")
    for entry in entries:
        click.echo(logs.for_terminal(render_entry(entry)))


@click.command()
@click.option("--handler", "handler_name", help="Only dead letters of this handler.")
@click.option("--older-than", metavar="AGE", help="Only work that failed at least AGE ago (90s, 15m, 2h, 3d).")
@click.option("--newer-than", metavar="AGE", help="Only work that failed at most AGE ago.")
@click.option("--dry-run", is_flag=True, help="List what would be replayed.")
def replay(handler_name: str | None, older_than: str | None, newer_than: str | None, dry_run: bool) -> None:
    """Re-run what is in the dead-letter registry (all, one handler's, by age)."""
    from webhook_service.logs import for_terminal
    from webhook_service.operator.dead_letters import replay as do_replay

    ages = {"older_than": parse_duration(older_than, "--older-than"),
            "newer_than": parse_duration(newer_than, "--newer-than")}
    config = operator_config()
    require_redis(config)
    for line in do_replay(config, handler=handler_name, dry_run=dry_run, **ages):
        click.echo(for_terminal(line))
