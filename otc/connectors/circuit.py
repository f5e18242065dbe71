"""Circuit breakers for remote sources, their state shared across workers, and its gauge.

pybreaker keeps the state in Redis (`CircuitRedisStorage`) when `REDIS_URL` is set, so a breaker
opened by one worker process is open for all of them; without Redis each process has its own.
`spine_circuit_state{source}` is read from that storage at scrape time.
"""

import threading

import pybreaker
import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from executions.metrics import register_scrape_collector

STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}

_lock = threading.RLock()
_breakers: dict[tuple, pybreaker.CircuitBreaker] = {}
_storages: dict[tuple, pybreaker.CircuitBreakerStorage] = {}
_sources: set[str] = {"finra_api"}


def breaker_for(
    source: str,
    *,
    fail_max: int | None = None,
    reset_timeout: float | None = None,
    exclude: tuple[type[BaseException], ...] = (),
) -> pybreaker.CircuitBreaker:
    """The process's breaker for `source` (one per source and settings)."""
    fail_max = fail_max or settings.SPINE_CIRCUIT_FAIL_MAX
    reset_timeout = reset_timeout or settings.SPINE_CIRCUIT_RESET_SECONDS
    key = (source, settings.REDIS_URL, fail_max, reset_timeout, exclude)
    with _lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=fail_max,
                reset_timeout=reset_timeout,
                exclude=list(exclude),
                state_storage=_storage(source),
                name=source,
            )
            _breakers[key] = breaker
            _sources.add(source)
    return breaker


def circuit_state(source: str) -> str:
    """`closed`, `open` or `half-open`, as every process sharing the storage sees it.

    `unknown` when the shared storage cannot be reached (Redis down).
    """
    try:
        return _storage(source).state
    except redis.RedisError:
        return "unknown"


def known_sources() -> list[str]:
    """Remote sources with a circuit breaker in this process (always `finra_api`)."""
    return sorted(_sources)


def _storage(source: str) -> pybreaker.CircuitBreakerStorage:
    """One storage per source and Redis URL, shared by every breaker of the source here."""
    key = (source, settings.REDIS_URL)
    with _lock:
        storage = _storages.get(key)
        if storage is None:
            if settings.REDIS_URL:
                client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2
                )
                storage = pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED, client, namespace=f"spine:circuit:{source}"
                )
            else:
                storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
            _storages[key] = storage
    return storage


class CircuitStateCollector(Collector):
    """`spine_circuit_state{source}`: 0 closed, 1 half-open, 2 open."""

    def describe(self):
        yield GaugeMetricFamily("spine_circuit_state", self.__doc__ or "", labels=["source"])

    def collect(self):
        family = GaugeMetricFamily("spine_circuit_state", self.__doc__ or "", labels=["source"])
        for source in known_sources():
            state = circuit_state(source)
            if state in STATE_VALUES:  # an unreachable storage exports no sample
                family.add_metric([source], STATE_VALUES[state])
        yield family


COLLECTOR = CircuitStateCollector()
# Read at scrape time by /metrics (also in multiprocess mode, where REGISTRY is not exported).
register_scrape_collector(COLLECTOR)
