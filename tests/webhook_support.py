"""hubhook's real receiver over HTTP on loopback, for the tests of the fake's webhooks and `hubhook trigger`."""
from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from webhook_service.config import Config
from webhook_service.receiver.app import create_app

from .conftest import free_port

PATH = "/webhooks/hubspot"


@contextmanager
def running_receiver(config: Config, port: int | None = None) -> Iterator[tuple[str, Config]]:
    """The receiver's Flask app (werkzeug, threaded) on ``port`` (a free one by default); yields its URL
    and ``config`` with ``webhook_url`` set to it, the URL HubSpot signs."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    config = dataclasses.replace(config, webhook_url=url)
    server = make_server("127.0.0.1", port, create_app(config), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield url, config
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
