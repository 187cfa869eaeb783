"""The receiver: ``hubhook web``, the Flask app HubSpot posts deliveries to.

- ``app``: ``create_app``, the app factory (``gunicorn 'webhook_service.receiver.app:create_app()'``).
- ``routes``: ``POST /webhooks/hubspot`` and ``/healthz``: verify, validate, dedupe, enqueue, answer.
- ``signature``: HubSpot's v1/v2/v3 signatures, pure functions over raw bytes, with ``sign()``.
- ``schemas``: the guarded JSON parse and the marshmallow schema of HubSpot's events.
- ``intake``: one delivery becomes at most one durable RQ job; where a redelivery is dropped.
- ``metrics``: ``GET /metrics``.
- ``metrics_dir``: the Prometheus multiprocess folder, created before prometheus_client opens it.
- ``gunicorn_conf``: gunicorn settings (log format, Prometheus multiprocess directory).
"""
