"""The baseline of the executions benchmarks: a bare Dramatiq no-op actor on the same Redis.

Run as `python -m dramatiq tests.benchmarks.bare_actors --queues <prefix>.bare ...` with
BENCH_REDIS_URL and BENCH_QUEUE_PREFIX set. The actor only records when its message was sent
and when it ran (one RPUSH), the least a benchmark can observe.
"""

import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["BENCH_REDIS_URL"]
PREFIX = os.environ["BENCH_QUEUE_PREFIX"]
LATENCIES = f"{PREFIX}:bare:latency"

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)
client = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name=f"{PREFIX}.bare", max_retries=0)
def noop(sent_at: float) -> None:
    client.rpush(LATENCIES, f"{sent_at} {time.time()}")
