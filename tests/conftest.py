"""Shared fixtures. Services (PostgreSQL, Redis, RabbitMQ) are used when configured.

Locally a missing service skips the tests that need it; with SPINE_REQUIRE_SERVICES=1 (CI) a
missing service fails them instead, so CI can never pass on skipped service tests.
"""

import os

import pytest

REQUIRE_SERVICES = os.environ.get("SPINE_REQUIRE_SERVICES") == "1"


def missing_service(reason: str):
    """Skip locally, fail in CI."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    """Require the test database to be PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://…")
    return connection


@pytest.fixture(scope="session")
def redis_url():
    """A reachable Redis URL (SPINE_TEST_REDIS_URL, default redis://127.0.0.1:6379/15)."""
    url = os.environ.get("SPINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        missing_service(f"needs Redis at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def amqp_url():
    """A reachable RabbitMQ URL (SPINE_TEST_AMQP_URL, default amqp://guest:guest@127.0.0.1:5672/%2F)."""
    url = os.environ.get("SPINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    import pika

    try:
        params = pika.URLParameters(url)
        params.socket_timeout = params.blocked_connection_timeout = 2
        pika.BlockingConnection(params).close()
    except Exception as exc:
        missing_service(f"needs RabbitMQ at {url}: {exc!r}")
    return url


@pytest.fixture
def actor():
    from executions.transitions import Actor

    return Actor.system("test")


@pytest.fixture
def make_execution(db):
    """Create `pending` executions through the dispatcher.

    In a `db` test the transaction never commits, so the after-commit submit does not run.
    """
    from executions import dispatcher

    def make(pipeline="diagnostics.sleep", params=None, **kwargs):
        kwargs.setdefault("trigger_source", "cli")
        return dispatcher.dispatch(pipeline, params or {}, **kwargs).execution

    return make


class RecordingBackend:
    """A backend that records submits instead of running them (unit tests drive the runner)."""

    name = "recording"

    def __init__(self):
        self.submitted = []
        self.fail_with = None

    def submit(self, execution_id, lane, delay_seconds):
        if self.fail_with is not None:
            raise self.fail_with
        self.submitted.append((str(execution_id), lane, delay_seconds))
        return f"run-{len(self.submitted)}"

    def cancel(self, execution_id, backend_run_id):
        return False

    def status(self, execution_id, backend_run_id):
        return {}

    def health(self):
        return {"status": "ok"}

    def queue_depths(self):
        return {}


@pytest.fixture
def recording_backend(monkeypatch):
    """Route the dispatcher's sends to a RecordingBackend."""
    backend = RecordingBackend()
    monkeypatch.setattr("executions.dispatcher.get_backend", lambda: backend)
    return backend


@pytest.fixture
def queued(make_execution, recording_backend):
    """Create an execution and submit it (pending -> queued) to the recording backend."""
    from executions import dispatcher

    def make(*args, **kwargs):
        execution = make_execution(*args, **kwargs)
        assert dispatcher.submit(execution.id)
        execution.refresh_from_db()
        return execution

    return make
