"""The Flask app factory: ``gunicorn 'webhook_service.receiver.app:create_app()'``.

Tests pass a Config; processes read it from the environment once. Every error, including Flask's
own 404/405/413 and anything unexpected, leaves as one JSON sentence: no HTML, no traceback.
"""
from __future__ import annotations

import logging

from flask import Flask
from werkzeug.exceptions import HTTPException

from webhook_service import logs
from webhook_service.config import Config
from webhook_service.receiver.metrics import bp as metrics_bp
from webhook_service.receiver.routes import bp, error, refuse

log = logging.getLogger("hubhook.receiver")


def create_app(config: Config | None = None) -> Flask:
    """Build the receiver for ``config`` (default: the environment) and connect it to Redis."""
    from webhook_service.connection import queue, redis_client

    config = (config or Config.from_env()).require_secret()
    if config.client_id:
        from webhook_service.oauth.flow import redirect_uri
        redirect_uri(config)  # an OAuth app without a public address stops here, naming the setting
    app = Flask("webhook_service")
    # The cap + 1: a chunked body is cut there silently, so the view can tell "at the cap" from "over it".
    app.config.update(HUBHOOK=config, MAX_CONTENT_LENGTH=config.max_body_bytes + 1, JSON_SORT_KEYS=False)
    redis = redis_client(config)
    app.extensions["hubhook.redis"] = redis
    app.extensions["hubhook.queue"] = queue(config, redis)
    app.register_blueprint(bp)
    app.register_blueprint(metrics_bp)
    logs.add_secrets([*config.client_secrets, config.access_token, config.metrics_token])
    if config.client_id:  # an OAuth app: /oauth/install and /oauth/callback
        from webhook_service.oauth.routes import bp as oauth_bp
        app.register_blueprint(oauth_bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            return refuse(413, "too_large", f"body is larger than {config.max_body_bytes} bytes")
        return error(exc.code or 500, exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error while handling a request")
        return error(500, "internal error; the delivery was not accepted")

    return app
