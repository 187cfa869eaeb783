"""``hubhook oauth rekey``: re-encrypt every stored OAuth token under the newest client secret.

HUBSPOT_CLIENT_SECRET takes comma-separated secrets, newest first: the newest encrypts, every one
decrypts. A token is re-encrypted when it is refreshed, so an idle portal's tokens stay under the old
secret, and removing that secret would make them unreadable. After a rotation the operator runs this
command with both secrets set, then removes the old one.
"""
from __future__ import annotations

import sys

import click

from webhook_service import logs
from webhook_service.config import Config
from webhook_service.errors import HubhookError


@click.group()
def oauth() -> None:
    """The OAuth app's stored tokens (per portal)."""


@oauth.command()
def rekey() -> None:
    """Re-encrypt every portal's stored tokens under the first secret of HUBSPOT_CLIENT_SECRET."""
    from redis.exceptions import RedisError

    from webhook_service.cli.operator import safe_url
    from webhook_service.connection import redis_client
    from webhook_service.oauth.token_store import TokenStore

    config = Config.from_env()
    if not config.client_secrets:
        raise HubhookError("set HUBSPOT_CLIENT_SECRET to the app's client secrets, newest first and "
                           "comma-separated (e.g. new,old), then run `hubhook oauth rekey` again")
    logs.add_secrets([*config.client_secrets, config.access_token])
    store = TokenStore(redis_client(config), config)
    counts = {"re-encrypted": 0, "current": 0, "missing": 0, "unreadable": 0}
    try:
        for done in store.rekey():
            counts[done.outcome] += 1
            click.echo(logs.for_terminal(f"portal {done.portal_id}: {done.outcome}"
                                         + (f" ({done.detail})" if done.detail else "")))
    except RedisError as exc:
        raise HubhookError(f"cannot reach Redis at {safe_url(config.redis_url)} ({type(exc).__name__}): is "
                           f"it running, and is REDIS_URL right? Portals listed above are done; run the "
                           f"command again to finish") from None
    total = sum(counts.values())
    click.echo(f"{total} portal(s): {counts['re-encrypted']} re-encrypted, {counts['current']} already under "
               f"the newest secret, {counts['missing']} without tokens, {counts['unreadable']} unreadable")
    if counts["unreadable"]:
        click.echo("some tokens could not be decrypted with any configured secret: add the secret they were "
                   "stored under to HUBSPOT_CLIENT_SECRET (after the newest) and run `hubhook oauth rekey` "
                   "again, or reinstall the app in those portals (/oauth/install); keep the old secret until "
                   "then", err=True)
        sys.exit(1)
    if len(config.client_secrets) > 1:
        click.echo("every stored token is under the newest secret: you can now remove the older ones from "
                   "HUBSPOT_CLIENT_SECRET")
