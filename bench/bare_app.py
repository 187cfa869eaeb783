"""The receiver baseline: the least a correct HubSpot endpoint can do, to measure hubhook against.

It checks the v3 signature (HMAC-SHA256 of method + URI + body + timestamp, and the timestamp's age),
parses the JSON and enqueues one RQ job with the events, under the same gunicorn settings as
`hubhook web` (bench/harness.py). Everything hubhook adds on top (schema validation, dedupe keys,
the atomic intake script, back-pressure, retries metadata, metrics, a log line, error handling)
shows up as the ratio between the two.

    BARE_SECRET=s BARE_SIGNED_URL=https://... REDIS_URL=redis://... gunicorn 'bench.bare_app:create_app()'
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

from flask import Flask, jsonify, request
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

QUEUE_NAME = "bare"


def noop(events: list) -> None:
    """The job's function; bare jobs are counted, never run."""


def create_app(secret: str | None = None, signed_url: str | None = None, redis_url: str | None = None) -> Flask:
    """The bare endpoint: arguments for in-process use (bench/memory.py), else the environment."""
    secret = (secret or os.environ["BARE_SECRET"]).encode()
    signed_url = signed_url or os.environ["BARE_SIGNED_URL"]
    redis = Redis.from_url(redis_url or os.environ["REDIS_URL"])
    queue = Queue(QUEUE_NAME, connection=redis, serializer=JSONSerializer)
    app = Flask("bare_app")

    @app.post("/webhooks/hubspot")
    def receive():
        body = request.get_data()
        timestamp = request.headers.get("X-HubSpot-Request-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp) / 1000) > 300:
            return jsonify(error="stale timestamp"), 401
        expected = base64.b64encode(hmac.new(secret, b"POST" + signed_url.encode() + body + timestamp.encode(),
                                             hashlib.sha256).digest())
        if not hmac.compare_digest(expected, request.headers.get("X-HubSpot-Signature-v3", "").encode()):
            return jsonify(error="bad signature"), 401
        try:
            events = json.loads(body)
        except ValueError:
            return jsonify(error="bad json"), 400
        job = queue.enqueue(noop, events)
        return jsonify(received=len(events), job=job.id), 200

    @app.get("/healthz")
    def healthz():
        redis.ping()
        return jsonify(status="ok"), 200

    return app
