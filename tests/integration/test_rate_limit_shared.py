"""Two real server processes sharing one Redis draw on one rate-limit budget (SPEC §6)."""

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT, WINDOW = 10, 3600


def start_server(env, log_path):
    """gunicorn on 127.0.0.1 port 0; the port it got is read from its own log line."""
    log = open(log_path, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "spine_project.wsgi:application",
            "-b",
            "127.0.0.1:0",
            "-w",
            "1",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", Path(log_path).read_text())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"gunicorn did not start: {Path(log_path).read_text()[-2000:]}")


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:  # noqa: S310
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def wait_until_live(port):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(port, "/health/live")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server on port {port} never answered /health/live")


@pytest.mark.redis
@pytest.mark.slow
def test_two_processes_share_one_budget(redis_url, tmp_path):
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("spine:*ratelimit*"):
        client.delete(key)
    # Stay clear of a window boundary, which would reset the budget mid-test.
    while WINDOW - time.time() % WINDOW < 30:
        time.sleep(0.5)

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SPINE_"))},
        "DJANGO_DEBUG": "1",
        "REDIS_URL": redis_url,
        "SPINE_RATE_LIMIT": f"{LIMIT}/{WINDOW}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "SPINE_LOG_FORMAT": "json",
    }
    servers = [start_server(env, tmp_path / f"server{i}.log") for i in range(2)]
    try:
        ports = [port for _, port in servers]
        assert ports[0] != ports[1]
        for port in ports:
            wait_until_live(port)

        answers = [(port, *get(port, "/api/v1/lanes/")) for _ in range(8) for port in ports]
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            proc.wait(timeout=30)

    statuses = [status for _, status, _ in answers]
    assert statuses == [401] * LIMIT + [429] * (len(answers) - LIMIT)  # anonymous: 401 until 429
    remaining = [int(h["X-RateLimit-Remaining"]) for _, _, h in answers]
    assert remaining == [LIMIT - n for n in range(1, LIMIT + 1)] + [0] * (len(answers) - LIMIT)
    # both processes took part in counting down the one budget, and both refused past it
    assert {port for port, status, _ in answers if status == 401} == set(ports)
    assert {port for port, status, _ in answers if status == 429} == set(ports)
    assert all(int(h["Retry-After"]) >= 1 for _, s, h in answers if s == 429)
