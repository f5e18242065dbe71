"""The quick start's server: `spine_demo` sets up an empty database and serves /health/live."""

import json
import subprocess
import sys
import time
import urllib.request

from tests.e2e.conftest import ROOT, free_port


def test_spine_demo_serves_health_on_a_fresh_database(tmp_path):
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "spine_demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:
                    body = (r.status, json.loads(r.read()))
                    break
            except OSError:
                time.sleep(0.3)
        assert body == (200, {"status": "ok"}), (
            proc.stdout.read() if proc.poll() is not None else ""
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as r:
            ready = json.loads(r.read())
        assert ready["status"] == "ok"
        assert ready["checks"]["backend"] == {"status": "ok", "backend": "local", "workers": 4}
    finally:
        proc.terminate()
        proc.wait(10)
