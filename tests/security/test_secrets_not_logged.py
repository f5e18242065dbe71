"""Secrets in params never reach the logs (SPEC §8): a real API process and a real worker.

An operator submits `probe.credentials` through the REST API with a password, an API token and a
nested client secret; the worker runs it (a retry, then success) and its handler logs its params.
Both processes log JSON at DEBUG level; the secret values must appear in neither log, while the
masked params, the retry and the completion do.
"""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from executions.models import Execution, Status
from tests.e2e.conftest import database_url, free_port, reachable, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def start(args, env, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def json_lines(path: Path) -> list[dict]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        start_at = raw.find("{")
        if start_at >= 0:
            try:
                lines.append(json.loads(raw[start_at:]))
            except json.JSONDecodeError:
                continue
    return lines


@pytest.fixture
def services(transactional_db, postgres, redis_url, tmp_path):
    """gunicorn and `spine_worker`, JSON logs at DEBUG, on the test database and Redis."""
    from django.db import connection

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPINE_")},
        "DJANGO_DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "tests.security.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SPINE_BROKER_URL": redis_url,
        "SPINE_QUEUE_PREFIX": f"spine-sec-{uuid.uuid4().hex[:8]}",
        "SPINE_LOG_FORMAT": "json",
        "SPINE_LOG_LEVEL": "DEBUG",
        "SPINE_RATE_LIMIT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    api = start(
        [gunicorn, "spine_project.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env,
        api_log,
    )
    worker = start(
        [sys.executable, "manage.py", "spine_worker", "--lanes", "normal", "--threads", "2"],
        env,
        worker_log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: api.poll() is not None or reachable(f"{base}/health/live"), 60, "the API")
        assert api.poll() is None, api_log.read_text()[-3000:]
        yield base, api_log, worker_log
    finally:
        stop(api)
        stop(worker)


def test_secret_params_never_appear_in_api_or_worker_logs(services, role_user):
    from rest_framework.authtoken.models import Token

    base, api_log, worker_log = services
    # an admin: a superuser needs no group, and the role groups do not survive another
    # transactional test's flush
    token = Token.objects.create(user=role_user("admin")).key
    secrets = {
        "password": f"hunter2-{uuid.uuid4().hex}",
        "api_token": f"abc-{uuid.uuid4().hex}",
        "client_secret": f"shh-{uuid.uuid4().hex}",
        "rejected_password": f"nope-{uuid.uuid4().hex}",
    }
    params = {
        "password": secrets["password"],
        "api_token": secrets["api_token"],
        "connection": {"host": "db.internal", "client_secret": secrets["client_secret"]},
    }
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        accepted = client.post(
            "/api/v1/executions/", json={"pipeline": "probe.credentials", "params": params}
        )
        refused = client.post(
            "/api/v1/executions/",
            json={
                "pipeline": "diagnostics.sleep",
                "params": {"seconds": "soon", "password": secrets["rejected_password"]},
            },
        )
    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "invalid_params"
    execution_id = accepted.json()["id"]

    done = wait_for(
        lambda: Execution.objects.filter(pk=execution_id, status=Status.COMPLETED).first(),
        45,
        "the probe to complete",
        interval=0.2,
    )
    assert (done.attempt, done.result) == (2, {"host": "db.internal", "attempt": 2})

    def worker_logged_completion():
        lines = [ln for ln in json_lines(worker_log) if ln.get("execution_id") == execution_id]
        return lines if any(ln["event"] == "execution.completed" for ln in lines) else None

    lines = wait_for(worker_logged_completion, 15, "the worker's execution.completed line")
    events = [ln["event"] for ln in lines]
    assert events.count("probe.params") == 2
    assert "execution.retry_scheduled" in events
    masked = [ln["params"] for ln in lines if ln["event"] == "probe.params"]
    expected = {
        "password": "***",
        "api_token": "***",
        "connection": {"host": "db.internal", "client_secret": "***"},
        "fail_attempts": 1,
    }
    assert masked == [expected, expected]
    api_text, worker_text = api_log.read_text(errors="replace"), worker_log.read_text()
    assert any(ln.get("event") == "execution.created" for ln in json_lines(api_log))
    for name, value in secrets.items():
        assert value not in api_text, f"{name} leaked into the API log"
        assert value not in worker_text, f"{name} leaked into the worker log"
