"""``hubhook``: the command line.

- ``group``: the ``hubhook`` click group, assembled from the modules below, and ``main``.
- ``shared``: what every command shares (its Config, its logging, ``--handlers``).
- ``processes``: ``web``, ``worker``, ``poll``: the Procfile's processes.
- ``operator``: ``status``, ``inspect``, ``replay``.
- ``dev``: ``dev`` (the local loop), ``run`` (every process in one terminal), ``send-test-event``.
- ``devloop``: what ``hubhook dev`` runs: its state, its processes, reload on change.
- ``trigger``: ``trigger TYPE``: a change in the local HubSpot and the signed webhook HubSpot would send.
- ``oauth``: ``oauth rekey``.

Every error a user can fix is one line on stderr saying what to do, with exit status 2; nothing
prints a traceback for a bad setting or argument.
"""
from webhook_service.cli.group import cli, main

__all__ = ["cli", "main"]
