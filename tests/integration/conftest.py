"""Real `spine_worker` and `spine_reconcile` processes against the test database and a real broker.

The test process dispatches through a `DramatiqBackend` bound to the broker under test; the
subprocesses read the same database (the test database, committed by `transactional_db`) and a
queue prefix of their own, so parallel runs on one broker never share queues.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from executions import dispatcher
from executions.backends.dramatiq import DramatiqBackend
from executions.models import TERMINAL_STATUSES, Execution, ExecutionEvent

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3
RECONCILE_INTERVAL = 1
QUEUED_GRACE = 4


def database_url() -> str:
    """DATABASE_URL of the test database, for the subprocesses."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.1, stack=None):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = stack.logs() if stack is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{logs}")
        time.sleep(interval)


class Proc:
    """A subprocess in its own process group (so kill -9 takes its Dramatiq children too)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks, no lease release."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill9()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit {self.popen.poll()}) ---\n" + "\n".join(text)


class Stack:
    """A broker, its queues, and the worker and reconciler processes of one test."""

    def __init__(self, broker_url: str, broker, tmp_path: Path, monkeypatch):
        self.broker_url = broker_url
        self.prefix = f"spine-test-{uuid.uuid4().hex[:8]}"
        self.backend = DramatiqBackend(broker=broker, queue_prefix=self.prefix)
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []
        for module in ("executions.dispatcher", "executions.services", "executions.reconcile"):
            monkeypatch.setattr(f"{module}.get_backend", lambda: self.backend)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPINE_")}
        env.update(
            DATABASE_URL=database_url(),
            SPINE_BROKER_URL=broker_url,
            SPINE_QUEUE_PREFIX=self.prefix,
            SPINE_LEASE_SECONDS=str(LEASE_SECONDS),
            SPINE_HEARTBEAT_SECONDS="1",
            SPINE_CANCEL_POLL_SECONDS="0.25",
            SPINE_RECONCILE_INTERVAL_SECONDS=str(RECONCILE_INTERVAL),
            SPINE_RECONCILE_PENDING_GRACE_SECONDS="2",
            SPINE_RECONCILE_QUEUED_GRACE_SECONDS=str(QUEUED_GRACE),
            SPINE_CANCEL_GRACE_SECONDS="10",
            SPINE_LOG_LEVEL="WARNING",
            DJANGO_DEBUG="1",
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    # --- processes --------------------------------------------------------------------------

    def start(self, name: str, *args: str, **env: str) -> Proc:
        proc = Proc(name, list(args), {**self.env, **env}, self.tmp_path / f"{name}.log")
        self.procs.append(proc)
        return proc

    def worker(self, lanes: str = "normal,backfill", *, processes: int = 1, threads: int = 4):
        name = f"worker-{len(self.procs)}-{lanes.replace(',', '+')}"
        return self.start(
            name,
            *("spine_worker", "--lanes", lanes, "--processes", str(processes)),
            *("--threads", str(threads), "--shutdown-timeout", "2"),
        )

    def reconciler(self) -> Proc:
        return self.start("reconciler", "spine_reconcile", "--loop")

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop()

    # --- ledger -----------------------------------------------------------------------------

    def dispatch(self, pipeline: str = "diagnostics.sleep", params=None, **kwargs) -> Execution:
        kwargs.setdefault("trigger_source", "cli")
        return dispatcher.dispatch(pipeline, params or {}, **kwargs).execution

    def wait_status(self, execution_id, statuses, *, timeout: float = 30) -> Execution:
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)
        return wait_for(
            lambda: Execution.objects.filter(pk=execution_id, status__in=statuses).first(),
            timeout=timeout,
            what=f"{execution_id} to reach {sorted(statuses)}",
            stack=self,
        )

    def wait_all_terminal(self, ids, *, timeout: float) -> None:
        wait_for(
            lambda: (
                not Execution.objects.filter(pk__in=ids)
                .exclude(status__in=TERMINAL_STATUSES)
                .exists()
            ),
            timeout=timeout,
            interval=0.25,
            what=f"all {len(ids)} executions to finish: {self.status_counts(ids)}",
            stack=self,
        )

    @staticmethod
    def status_counts(ids) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in Execution.objects.filter(pk__in=ids).values_list("status", flat=True):
            counts[status] = counts.get(status, 0) + 1
        return counts

    @staticmethod
    def event_kinds(execution_id) -> list[str]:
        return list(
            ExecutionEvent.objects.filter(execution_id=execution_id)
            .order_by("at", "id")
            .values_list("kind", flat=True)
        )


@pytest.fixture
def redis_stack(transactional_db, postgres, redis_url, tmp_path, monkeypatch):
    """Workers on Redis (the test's own Redis database, flushed before and after)."""
    import redis
    from dramatiq.brokers.redis import RedisBroker

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    stack = Stack(redis_url, RedisBroker(url=redis_url, middleware=[]), tmp_path, monkeypatch)
    stack.redis = client
    yield stack
    stack.close()
    client.flushdb()


@pytest.fixture
def rabbit_stack(transactional_db, postgres, amqp_url, tmp_path, monkeypatch):
    """Workers on RabbitMQ (queues of this test's own prefix, deleted afterwards)."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=amqp_url, confirm_delivery=True, middleware=[])
    stack = Stack(amqp_url, broker, tmp_path, monkeypatch)
    yield stack
    stack.close()
    channel = broker.channel
    for lane in ("normal", "backfill"):
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(f"{stack.prefix}.{lane}{suffix}")
    broker.close()
