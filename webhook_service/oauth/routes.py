"""The OAuth install routes, registered only when ``HUBSPOT_CLIENT_ID`` is set.

``GET /oauth/install`` sends the browser to HubSpot's consent screen; HubSpot sends it back to
``GET /oauth/callback?code=...&state=...``, where the state is checked and used up, the code is
exchanged, and the portal's tokens are stored (encrypted) for the workers. These routes call
HubSpot, unlike the webhook route; they run once per installation, never per delivery. Both are
public, so neither lets a client grow Redis (see ``oauth``) or choose the redirect URI.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from webhook_service.errors import HubSpotAPIError, TransientAPIError
from webhook_service.oauth import flow as oauth
from webhook_service.oauth.token_store import TokenStore
from webhook_service.receiver.routes import error

log = logging.getLogger("hubhook.oauth")
bp = Blueprint("oauth", __name__, url_prefix="/oauth")


@bp.get("/install")
def install() -> ResponseReturnValue:
    config = current_app.config["HUBHOOK"]
    redirect_uri = oauth.redirect_uri(config)  # checked at start (create_app): from configuration only
    return redirect(oauth.authorize_url(config, oauth.issue_state(config), redirect_uri), code=302)


@bp.get("/callback")
def callback() -> tuple[Response, int]:
    config = current_app.config["HUBHOOK"]
    redis = current_app.extensions["hubhook.redis"]
    denied = request.args.get("error")
    if denied:
        return error(400, f"HubSpot did not authorize the app: {denied[:100]}")
    code = request.args.get("code")
    if not code:
        return error(400, "the callback carries no code; start again at /oauth/install")
    try:
        checked = oauth.consume_state(redis, config, request.args.get("state"))
    except RedisError as exc:
        log.error("OAuth callback refused: Redis unavailable (%s)", type(exc).__name__)
        return error(503, "Redis is unavailable; start again at /oauth/install shortly")
    if checked is oauth.StateCheck.BUSY:
        log.warning("OAuth callback refused: %s installs in the last %s s", oauth.MAX_OPEN_INSTALLS,
                    oauth.STATE_TTL)
        response, status = error(429, "too many installs in progress; start again at /oauth/install in a few "
                                      "minutes")
        response.headers["Retry-After"] = str(oauth.STATE_TTL)
        return response, status
    if checked is not oauth.StateCheck.OK:
        log.warning("OAuth callback refused: unknown, expired or already used state")
        return error(400, "unknown, expired or already used state; start again at /oauth/install")
    redirect_uri = oauth.redirect_uri(config)
    try:
        tokens = oauth.exchange_code(config, code, redirect_uri)
        TokenStore(redis, config).save(tokens)
    except TransientAPIError as exc:
        log.error("OAuth install failed: %s", exc)
        return error(502, "HubSpot's token endpoint did not answer; start again at /oauth/install")
    except HubSpotAPIError as exc:
        log.warning("OAuth install refused: %s", exc)
        return error(400, "HubSpot refused the authorization code (expired or already used); "
                          "start again at /oauth/install")
    except RedisError as exc:
        log.error("OAuth install failed: Redis unavailable (%s)", type(exc).__name__)
        return error(503, "Redis is unavailable; start again at /oauth/install shortly")
    log.info("OAuth app installed for portal %s (scopes: %s)", tokens.portal_id, " ".join(tokens.scopes) or "-")
    return jsonify({"installed": True, "portal_id": tokens.portal_id, "scopes": list(tokens.scopes)}), 200
