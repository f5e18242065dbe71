"""The `local` backend: a bounded in-process thread pool, for embedded mode and tests.

Delayed submits (retry backoff) wait on one timer thread. Nothing survives the process: the
reconciler re-submits what a stopped process held, and the runner's compare-and-set claim makes a
duplicate submit harmless.
"""

import heapq
import itertools
import os
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from django.conf import settings
from django.db import connections

log = structlog.get_logger(__name__)


class LocalBackend:
    """Runs executions on a pool of `SPINE_LOCAL_WORKERS` threads in this process."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or settings.SPINE_LOCAL_WORKERS
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="spine-local")
        self._lock = threading.Condition()
        self._delayed: list[tuple[float, int, str, str]] = []  # (due, seq, execution_id, lane)
        self._seq = itertools.count()
        self._waiting: Counter[str] = Counter()  # lane -> submitted but not yet started
        self._in_flight = 0
        self._timer: threading.Thread | None = None
        self._worker_prefix = f"{socket.gethostname()}:{os.getpid()}"

    # --- the Backend interface ------------------------------------------------------------------

    def submit(self, execution_id: str, lane: str, delay_seconds: float) -> str:
        with self._lock:
            self._in_flight += 1
            if delay_seconds > 0:
                due = time.monotonic() + delay_seconds
                heapq.heappush(self._delayed, (due, next(self._seq), str(execution_id), lane))
                self._ensure_timer()
                self._lock.notify_all()
            else:
                self._start(str(execution_id), lane)
        return uuid.uuid4().hex

    def cancel(self, execution_id: str, backend_run_id: str) -> bool:
        with self._lock:
            before = len(self._delayed)
            self._delayed = [d for d in self._delayed if d[2] != str(execution_id)]
            heapq.heapify(self._delayed)
            removed = before - len(self._delayed)
            self._in_flight -= removed
            self._lock.notify_all()
        return removed > 0

    def status(self, execution_id: str, backend_run_id: str) -> dict[str, Any]:
        with self._lock:
            delayed = any(d[2] == str(execution_id) for d in self._delayed)
        return {"backend": self.name, "delayed": delayed}

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "backend": self.name, "workers": self.workers}

    def queue_depths(self) -> dict[str, int]:
        with self._lock:
            depths = Counter(self._waiting)
            for _, _, _, lane in self._delayed:
                depths[lane] += 1
        return dict(depths)

    # --- lifecycle ------------------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> bool:
        """Block until every submitted execution (delayed ones too) has run; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining if remaining is not None else 1.0)
        return True

    # --- internals ------------------------------------------------------------------------------

    def _start(self, execution_id: str, lane: str) -> None:
        self._waiting[lane] += 1
        self._pool.submit(self._run, execution_id, lane)

    def _run(self, execution_id: str, lane: str) -> None:
        from executions.runner import run_execution

        with self._lock:
            self._waiting[lane] -= 1
        try:
            run_execution(
                execution_id, worker_id=f"{self._worker_prefix}:{threading.current_thread().name}"
            )
        except Exception:
            log.exception("local.run_failed", execution_id=execution_id)
        finally:
            connections.close_all()
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def _ensure_timer(self) -> None:
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Thread(
                target=self._timer_loop, name="spine-local-timer", daemon=True
            )
            self._timer.start()

    def _timer_loop(self) -> None:
        with self._lock:
            while True:
                if not self._delayed:
                    self._lock.wait(5.0)
                    if not self._delayed:
                        continue
                due, _, execution_id, lane = self._delayed[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                heapq.heappop(self._delayed)
                self._start(execution_id, lane)
