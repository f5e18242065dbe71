"""A real stack for end-to-end tests: an API process (gunicorn) and a Dramatiq worker process.

Both use the test database (committed data: the tests are transactional) and the test Redis as
broker. Each has its own PROMETHEUS_MULTIPROC_DIR, as separate pods would.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(method: str, url: str, body=None, headers=None, timeout: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (loopback)
        return response.status, dict(response.headers), response.read()


def reachable(url: str) -> bool:
    try:
        return http("GET", url, timeout=2)[0] == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve_api(env: dict, log: Path, *gunicorn_args: str):
    """Run the API under gunicorn on a free 127.0.0.1 port; yield its base URL once healthy."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "spine_project.wsgi"]
        + ["--bind", f"127.0.0.1:{port}", *gunicorn_args],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is not None or reachable(f"{base}/health/live"), 60, base)
        assert proc.poll() is None, log.read_text()[-3000:]
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def database_url(settings_dict) -> str:
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{settings_dict['HOST']}{port}/{settings_dict['NAME']}"


@dataclass
class Stack:
    api_url: str
    worker_metrics_url: str
    worker_log: Path

    def worker_lines(self) -> list[dict]:
        lines = []
        for raw in self.worker_log.read_text(errors="replace").splitlines():
            start = raw.find("{")
            if start < 0:
                continue
            try:
                lines.append(json.loads(raw[start:]))
            except json.JSONDecodeError:
                continue
        return lines


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, redis_url, tmp_path_factory):
    """Start gunicorn and `rundramatiq` on the test database and Redis; stop them afterwards."""
    from django.db import connection

    # No flush of the Redis db (it may be shared): a stale message names no execution of this
    # database, so the runner drops it.
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "api-prom").mkdir()
    (tmp / "worker-prom").mkdir()
    api_port, worker_port = free_port(), free_port()
    base_env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SPINE_BROKER_URL": redis_url,
        "SPINE_LOG_FORMAT": "json",
        "SPINE_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    base_env.pop("SPINE_TRACING", None)
    bin_dir = Path(sys.executable).parent
    api_log = open(tmp / "api.log", "wb")  # noqa: SIM115 (closed below)
    worker_log = open(tmp / "worker.log", "wb")  # noqa: SIM115
    api = subprocess.Popen(
        [
            str(bin_dir / "gunicorn"),
            "spine_project.wsgi",
            "--bind",
            f"127.0.0.1:{api_port}",
            "--workers",
            "2",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env={
            **base_env,
            "DJANGO_SETTINGS_MODULE": "tests.e2e.settings",
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "api-prom"),
        },
        stdout=api_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rundramatiq",
            "--processes",
            "1",
            "--threads",
            "2",
        ],
        cwd=ROOT,
        env={
            **base_env,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "worker-prom"),
            "SPINE_WORKER_METRICS_HOST": "127.0.0.1",
            "SPINE_WORKER_METRICS_PORT": str(worker_port),
        },
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(
        api_url=f"http://127.0.0.1:{api_port}",
        worker_metrics_url=f"http://127.0.0.1:{worker_port}/metrics",
        worker_log=tmp / "worker.log",
    )
    try:
        for proc, url, log in (
            (api, f"{stack.api_url}/health/live", tmp / "api.log"),
            (worker, stack.worker_metrics_url, tmp / "worker.log"),
        ):
            try:
                wait_for(lambda p=proc, u=url: p.poll() is not None or reachable(u), 60, url)
                assert proc.poll() is None, f"the process serving {url} exited"
            except AssertionError as exc:
                raise AssertionError(f"{exc}:\n{log.read_text()[-3000:]}")
        with django_db_blocker.unblock():
            yield stack
    finally:
        _stop(api)
        _stop(worker)
        api_log.close()
        worker_log.close()


@pytest.fixture
def manage(transactional_db):
    """Run `manage.py …` in a subprocess against the test database."""
    from django.db import connection

    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_DEBUG": "1",
        "SPINE_LOG_FORMAT": "json",
    }
    env.pop("SPINE_BROKER_URL", None)

    def run(*args, timeout=120, extra_env=None):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    run.env = env
    return run
