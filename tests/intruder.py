"""What someone with write access to Redis would ask a worker to run: each call leaves a file behind."""
import os
from pathlib import Path


def plant(path: str, *_: object) -> None:
    """Writes ``path``; a worker that imports and calls this from a job has run foreign code."""
    Path(path).write_text(f"ran in process {os.getpid()}")


def on_success(job, connection, result, *_: object) -> None:
    """An RQ success callback that writes the file named in the job's meta."""
    Path(job.meta["marker"]).write_text("callback ran")
