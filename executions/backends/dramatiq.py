"""The `dramatiq` backend: Redis or RabbitMQ, chosen by `SPINE_BROKER_URL`, one queue per lane."""

from typing import Any

import dramatiq
from django.conf import settings

from executions.errors import BackendUnavailable


class DramatiqBackend:
    """Sends executions to Dramatiq workers (`spine_worker`)."""

    name = "dramatiq"

    def __init__(self) -> None:
        if not settings.SPINE_BROKER_URL:
            raise BackendUnavailable(
                "Backend 'dramatiq' needs SPINE_BROKER_URL (redis://… or amqp://…)."
            )
        from executions.tasks import ACTORS_BY_LANE

        self._actors = ACTORS_BY_LANE

    @property
    def broker(self) -> dramatiq.Broker:
        return dramatiq.get_broker()

    def submit(self, execution_id: str, lane: str, delay_seconds: float) -> str:
        delay_ms = int(delay_seconds * 1000) if delay_seconds > 0 else None
        message = self._actors[lane].send_with_options(args=(str(execution_id),), delay=delay_ms)
        return message.message_id

    def cancel(self, execution_id: str, backend_run_id: str) -> bool:
        # Dramatiq cannot withdraw one message; the runner's compare-and-set claim drops a
        # message whose execution is no longer queued, which has the same effect.
        return False

    def status(self, execution_id: str, backend_run_id: str) -> dict[str, Any]:
        return {"backend": self.name, "message_id": backend_run_id}

    def health(self) -> dict[str, Any]:
        try:
            self.queue_depths()
        except Exception as exc:
            return {"status": "down", "backend": self.name, "error": str(exc)}
        return {"status": "ok", "backend": self.name}

    def queue_depths(self) -> dict[str, int]:
        broker = self.broker
        depths = {}
        for lane, actor in self._actors.items():
            depths[lane] = _queue_size(broker, actor.queue_name)
        return depths


def _queue_size(broker: dramatiq.Broker, queue_name: str) -> int:
    """Messages waiting in a queue and its delay queue, for Redis and RabbitMQ."""
    if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
        counts = broker.get_queue_message_counts()
        ready, delayed, _ = counts.get(queue_name, (0, 0, 0))
        return int(ready + delayed)
    client = getattr(broker, "client", None)
    if client is not None:  # Redis: a list of message ids per queue, plus its delay queue
        namespace = getattr(broker, "namespace", "dramatiq")
        total = 0
        for name in (queue_name, f"{queue_name}.DQ"):
            total += int(client.llen(f"{namespace}:{name}"))
        return total
    return 0
