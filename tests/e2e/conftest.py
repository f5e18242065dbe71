"""Helpers for tests that run the project's commands as real processes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def database_url_of(connection) -> str:
    """A DATABASE_URL for the test database Django is using, so subprocesses share it."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def manage(transactional_db):
    """Run `manage.py …` in a subprocess against the test database."""
    from django.db import connection

    env = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection),
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
