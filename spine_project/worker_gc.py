"""Dramatiq middleware: a worker process's loaded modules out of the garbage collector's reach.

The same as `spine_project/wsgi.py` does for the API: once a worker process has booted
(Django, the apps, the actors), `gc.freeze()` moves what it loaded into the permanent
generation, so that a full collection scans only what runs made. A collection stalls every
thread of the process.
"""

import gc

import dramatiq


class FreezeAfterBoot(dramatiq.Middleware):
    """`gc.freeze()` in each worker process, once it has booted."""

    def after_process_boot(self, broker):
        gc.freeze()
