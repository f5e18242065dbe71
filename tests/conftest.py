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
def temp_pipeline():
    """Register throw-away pipelines for one test."""
    from executions.registry import PipelineSpec, registry

    names = []

    def register(name, handler, **kwargs):
        registry.register(PipelineSpec(name=name, handler=handler, **kwargs))
        names.append(name)

    yield register
    for name in names:
        registry.unregister(name)


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


# --- operations portal (issue 5): users per role, API clients, executions in a given state -----


@pytest.fixture(autouse=True)
def _fresh_rate_limit_budget():
    """Each test starts with a full rate-limit budget (the counters live in the cache)."""
    from django.conf import settings
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):  # never flush a real Redis
        cache.clear()


@pytest.fixture(autouse=True)
def _fresh_backpressure_counts():
    """Each test counts active executions afresh: its ledger is not the previous test's."""
    from executions.dispatcher import active_counts

    active_counts.forget()


def ensure_role_groups():
    """Recreate the role groups of the migrations if a transactional test's flush removed them.

    A flush re-creates permissions (post_migrate) but not the groups a data migration made, so
    a test running after a transactional one would otherwise see roles without permissions.
    """
    import importlib

    from django.contrib.auth.models import Group, Permission

    if Group.objects.filter(name__in=["viewer", "operator"]).count() == 2:
        return
    first = importlib.import_module("spine_project.migrations.0001_roles")
    grants = {"viewer": list(first.VIEWER), "operator": list(first.OPERATOR)}
    for name in ("0002_schedule_roles", "0003_otc_roles", "0004_raw_capture_roles"):
        for role, perms in importlib.import_module(
            f"spine_project.migrations.{name}"
        ).GRANTS.items():
            grants[role] += perms
    blocks = importlib.import_module("spine_project.migrations.0005_raw_block_roles")
    for role, perms in blocks.BLOCKS.items():  # raw blocks replaced raw lines
        grants[role] = [p for p in grants[role] if p not in blocks.LINES[role]] + perms
    for role, perms in grants.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


@pytest.fixture
def role_user(db):
    """`role_user("operator")`: a user with that role (the groups come from the migrations)."""
    from django.contrib.auth import get_user_model

    from spine_project.roles import assign_role

    ensure_role_groups()

    def make(role, username=None, password="pw-for-tests-only"):  # noqa: S107
        user = get_user_model().objects.create_user(username or role, password=password)
        assign_role(user, role)
        return user

    return make


@pytest.fixture
def api_client_for(role_user):
    """`api_client_for("viewer")`: a DRF client authenticated by that role's API token."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    def make(role):
        if role == "anonymous":
            return APIClient()
        token, _ = Token.objects.get_or_create(user=role_user(role))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def execution_in(make_execution, actor):
    """`execution_in("failed")`: an execution moved through the state machine to that status."""
    from executions.models import Status
    from executions.transitions import transition

    paths = {
        Status.PENDING: [],
        Status.QUEUED: [Status.QUEUED],
        Status.RUNNING: [Status.QUEUED, Status.RUNNING],
        Status.COMPLETED: [Status.QUEUED, Status.RUNNING, Status.COMPLETED],
        Status.FAILED: [Status.QUEUED, Status.RUNNING, Status.FAILED],
        Status.DEAD_LETTERED: [Status.QUEUED, Status.RUNNING, Status.DEAD_LETTERED],
        Status.CANCELLED: [Status.CANCELLED],
    }

    def make(status, **kwargs):
        from django.utils import timezone

        from executions.models import TERMINAL_STATUSES

        execution = make_execution(**kwargs)
        for step in paths[status]:
            # a terminal status comes with its finish time, as the runner and cancel set it
            finished = {"finished_at": timezone.now()} if step in TERMINAL_STATUSES else {}
            transition(execution.id, to=step, kind=f"test_{step}", actor=actor, **finished)
        execution.refresh_from_db()
        return execution

    return make


@pytest.fixture
def dead_letter(execution_in):
    """An unresolved dead letter of a dead-lettered `diagnostics.sleep` execution."""
    from dlq.services import record_dead_letter

    def make():
        execution = execution_in("dead_lettered")
        record_dead_letter(None, execution=execution, reason="max_attempts", error_summary="boom")
        return execution.dead_letter

    return make
