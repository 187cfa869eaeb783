"""``hubhook``: the command line.

- ``processes``: ``web``, ``worker``, ``poll``: the Procfile's processes.
- ``operator``: ``status``, ``inspect``, ``replay``.
- ``dev``: ``run`` (every process in one terminal).
"""
from webhook_service.cli.processes import cli, main

__all__ = ["cli", "main"]
