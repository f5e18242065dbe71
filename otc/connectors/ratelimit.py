"""A per-source rate limit (the `limits` package), shared through Redis when `REDIS_URL` is set.

Every process calling the same source counts against one moving window, so adding workers does
not multiply the request rate a remote source sees.
"""

import threading
import time
from collections.abc import Callable

from django.conf import settings
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

_lock = threading.Lock()
_limiters: dict[str, MovingWindowRateLimiter] = {}


class RateLimit:
    """At most `rate` (e.g. `10/second`) calls to `source`, across every process sharing Redis."""

    def __init__(self, source: str, rate: str) -> None:
        self.source = source
        self.item = parse(rate)
        self.limiter = _limiter(settings.REDIS_URL or "memory://")

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until a call is allowed; return the seconds waited."""
        waited = 0.0
        while not self.limiter.hit(self.item, "spine", self.source):
            reset_at = self.limiter.get_window_stats(self.item, "spine", self.source).reset_time
            pause = min(max(reset_at - time.time(), 0.01), 5.0)
            sleep(pause)
            waited += pause
        return waited


def _limiter(url: str) -> MovingWindowRateLimiter:
    with _lock:
        if url not in _limiters:
            _limiters[url] = MovingWindowRateLimiter(storage_from_string(url))
        return _limiters[url]
