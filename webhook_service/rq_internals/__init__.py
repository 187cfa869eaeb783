"""Every place hubhook overrides or copies RQ's private internals, and nothing else.

- ``lean_worker``: fewer Redis round trips per job than RQ's SimpleWorker.
- ``recovery``: RQ's recovery passes retuned so a killed worker's job runs again quickly.
"""
