"""A PostgreSQL restart under load (SPEC §12): the API and the workers recover, nothing is lost.

The machine's PostgreSQL is shared, so the restart is simulated the way clients experience it:
`pg_terminate_backend` of every other connection to the test database, twice, while API clients
submit through a real gunicorn and a real worker runs them. A client whose request failed in the
cut retries with the same Idempotency-Key, as a client of the API should. Afterwards every key
has exactly one execution, every execution completed, and the API answers again at once.
"""

import threading
import time
import uuid

import httpx
import pytest
from django.db import connection

from executions.models import Execution, Status
from tests.e2e.conftest import serve_api
from tests.integration.conftest import LEASE_SECONDS, RECONCILE_INTERVAL

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

CLIENTS = 3
LOAD_SECONDS = 8.0


def kill_every_other_connection() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


class Client(threading.Thread):
    """Submits until told to stop; retries a failed submission under its Idempotency-Key."""

    def __init__(self, base: str, token: str, n: int):
        super().__init__(name=f"client-{n}", daemon=True)
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"})
        self.n = n
        self.stop = threading.Event()
        self.accepted: dict[str, str] = {}  # Idempotency-Key -> execution id
        self.failures: list[str] = []
        self.last_ok = 0.0
        self.error: BaseException | None = None

    def submit(self, key: str, i: int) -> None:
        body = {"pipeline": "diagnostics.sleep", "params": {"seconds": 0.3 if i % 5 == 0 else 0}}
        for _ in range(100):  # a bounded retry loop: ~30 s at most
            try:
                response = self.http.post(
                    "/api/v1/executions/", json=body, headers={"Idempotency-Key": key}, timeout=10
                )
            except httpx.HTTPError as exc:
                self.failures.append(type(exc).__name__)
            else:
                if response.status_code == 202:
                    self.accepted[key] = response.json()["id"]
                    self.last_ok = time.monotonic()
                    return
                self.failures.append(str(response.status_code))
            time.sleep(0.3)
        raise AssertionError(f"{key} was never accepted: {self.failures[-5:]}")

    def run(self) -> None:
        i = 0
        try:
            while not self.stop.is_set():
                self.submit(f"restart-{self.n}-{i}-{uuid.uuid4().hex[:6]}", i)
                i += 1
                time.sleep(0.05)
        except BaseException as exc:
            self.error = exc


@pytest.fixture
def api(redis_stack, tmp_path):
    """gunicorn for the stack: same database, broker and queue prefix as its workers."""
    env = {**redis_stack.env, "SPINE_RATE_LIMIT": "0"}
    with serve_api(env, tmp_path / "api.log", "--workers", "2", "--threads", "2") as base:
        yield base


def test_api_and_workers_recover_from_a_database_restart_under_load(redis_stack, api, role_user):
    from rest_framework.authtoken.models import Token

    stack = redis_stack
    stack.worker("normal", processes=1, threads=4)
    stack.reconciler()
    # an admin: a superuser needs no group, and the role groups do not survive another
    # transactional test's flush
    token = Token.objects.create(user=role_user("admin")).key
    clients = [Client(api, token, n) for n in range(CLIENTS)]
    for client in clients:
        client.start()

    time.sleep(LOAD_SECONDS / 4)
    killed = [kill_every_other_connection()]
    time.sleep(LOAD_SECONDS / 4)
    killed.append(kill_every_other_connection())
    cut_at = time.monotonic()
    time.sleep(LOAD_SECONDS / 2)
    for client in clients:
        client.stop.set()
    for client in clients:
        client.join(timeout=60)
        assert not client.is_alive()
        assert client.error is None, client.error

    assert min(killed) >= 3  # the API's, the worker's and the reconciler's connections at least
    assert all(client.last_ok > cut_at for client in clients), "the API did not recover"
    accepted = {key: eid for client in clients for key, eid in client.accepted.items()}
    assert len(accepted) >= 20
    ids = list(accepted.values())
    assert len(set(ids)) == len(ids)  # one execution per Idempotency-Key, retries included
    assert Execution.objects.filter(idempotency_key__in=list(accepted)).count() == len(accepted)
    stack.wait_all_terminal(ids, timeout=LEASE_SECONDS + RECONCILE_INTERVAL + 60)
    assert stack.status_counts(ids) == {Status.COMPLETED: len(ids)}
    assert httpx.get(f"{api}/health/ready", timeout=10).status_code == 200
