"""The `dramatiq` backend: Redis or RabbitMQ, chosen by `SPINE_BROKER_URL`, one queue per lane.

The broker is the one django-dramatiq builds from `settings.DRAMATIQ_BROKER` (with its
middleware), unless a broker is passed in. A send that fails raises, so the dispatcher leaves the
execution `pending` with a `submit_failed` event and the reconciler submits it later.
"""

from typing import Any

import dramatiq
from django.conf import settings
from dramatiq.common import dq_name

from executions.errors import BackendUnavailable
from executions.models import LaneName


class DramatiqBackend:
    """Sends executions to Dramatiq workers (`spine_worker`)."""

    name = "dramatiq"

    def __init__(self, broker: dramatiq.Broker | None = None, queue_prefix: str = "") -> None:
        if broker is None and not settings.SPINE_BROKER_URL:
            raise BackendUnavailable(
                "Backend 'dramatiq' needs SPINE_BROKER_URL (redis://… or amqp://…)."
            )
        from executions.tasks import ACTORS_BY_LANE

        self._actors = ACTORS_BY_LANE
        self._broker = broker
        self.queue_prefix = queue_prefix or settings.SPINE_QUEUE_PREFIX

    @property
    def broker(self) -> dramatiq.Broker:
        return self._broker or dramatiq.get_broker()

    def queue_name(self, lane: str) -> str:
        """The queue this backend sends a lane's executions to."""
        return f"{self.queue_prefix}.{lane}"

    # --- the Backend interface ------------------------------------------------------------------

    def submit(self, execution_id: str, lane: str, delay_seconds: float) -> str:
        message = (
            self._actors[lane]
            .message_with_options(args=(str(execution_id),))
            .copy(queue_name=self.queue_name(lane))
        )
        # A delayed message waits in the lane's delay queue (`<queue>.DQ`) until it is due: the
        # retry backoff of the ledger. Workers move it to the lane's queue when due.
        delay_ms = int(delay_seconds * 1000) if delay_seconds > 0 else None
        sent = self.broker.enqueue(message, delay=delay_ms)
        # Redis keys each send by its own id; keeping it lets cancel() find the message.
        return str(sent.options.get("redis_message_id") or sent.message_id)

    def cancel(self, execution_id: str, backend_run_id: str) -> bool:
        """Withdraw a message still held by Redis; RabbitMQ cannot withdraw one message.

        Either way the runner's compare-and-set claim drops a message whose execution is no longer
        `queued`, so a message that stays behind is harmless.
        """
        client = self._redis_client()
        if client is None or not backend_run_id:
            return False
        pipe = client.pipeline(transaction=True)
        for key in self._redis_keys():
            pipe.lrem(key, 0, backend_run_id)
            pipe.hdel(f"{key}.msgs", backend_run_id)
        return any(pipe.execute())

    def status(self, execution_id: str, backend_run_id: str) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "message_id": backend_run_id}
        client = self._redis_client()
        if client is not None and backend_run_id:
            pipe = client.pipeline(transaction=False)
            for key in self._redis_keys():
                pipe.hexists(f"{key}.msgs", backend_run_id)
            info["held_by_broker"] = any(pipe.execute())
        return info

    def health(self) -> dict[str, Any]:
        try:
            depths = self.queue_depths()
        except Exception as exc:
            return {"status": "down", "backend": self.name, "error": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok", "backend": self.name, "queue_depths": depths}

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per lane: ready ones plus delayed ones not yet due."""
        return {lane: self._depth(self.queue_name(lane)) for lane in LaneName.values}

    # --- internals ------------------------------------------------------------------------------

    def _depth(self, queue: str) -> int:
        broker = self.broker
        client = self._redis_client()
        if client is not None:
            # Redis: a list of ready message ids per queue; delayed messages are fetched early
            # by workers and held until due, so count the delay queue's stored messages instead.
            namespace = broker.namespace  # type: ignore[attr-defined]
            pipe = client.pipeline(transaction=False)
            pipe.llen(f"{namespace}:{queue}")
            pipe.hlen(f"{namespace}:{dq_name(queue)}.msgs")
            return int(sum(pipe.execute()))
        if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
            ready, delayed, _dead = broker.get_queue_message_counts(queue)
            return int(ready + delayed)
        queues = getattr(broker, "queues", {})  # the stub broker (unit tests, embedded mode)
        return sum(q.qsize() for n, q in queues.items() if n in (queue, dq_name(queue)))

    def _redis_client(self):
        from dramatiq.brokers.redis import RedisBroker

        broker = self.broker
        return broker.client if isinstance(broker, RedisBroker) else None

    def _redis_keys(self) -> list[str]:
        namespace = self.broker.namespace  # type: ignore[attr-defined]
        return [
            f"{namespace}:{name}"
            for lane in LaneName.values
            for name in (self.queue_name(lane), dq_name(self.queue_name(lane)))
        ]
