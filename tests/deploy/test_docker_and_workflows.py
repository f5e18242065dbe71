"""The Dockerfile (hadolint), the image's entrypoint, compose and the GitHub workflows."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT, tool

DOCKER = ROOT / "deploy" / "docker"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(DOCKER / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_dockerfile_runs_as_non_root_from_constraints():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "USER ${SPINE_UID}:${SPINE_UID}" in runtime and "ARG SPINE_UID=10001" in runtime
    assert "pip install -c constraints.txt ." in dockerfile
    assert 'ENTRYPOINT ["/app/deploy/docker/entrypoint.sh"]' in runtime


def test_workflows_validate_against_the_github_schema():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "docker-build.yml", "helm-lint.yml"}
    result = subprocess.run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_workflow_runs_make_test_with_postgres_and_redis():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = ci["jobs"]["test"]
    assert {"postgres", "redis"} <= set(job["services"])
    assert job["env"]["SPINE_REQUIRE_SERVICES"] == "1"
    assert any("make test" in step.get("run", "") for step in job["steps"])


def test_compose_validates_and_has_every_role():
    compose_file = DOCKER / "docker-compose.yml"
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(compose_file.read_text())["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "prometheus",
        "migrate",
        "api",
        "worker-normal",
        "worker-backfill",
        "scheduler",
        "reconciler",
    }
    lanes = {
        name: services[name]["environment"]["SPINE_WORKER_LANES"]
        for name in ("worker-normal", "worker-backfill")
    }
    assert lanes == {"worker-normal": "normal", "worker-backfill": "backfill"}
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert targets == {"api:8000", "worker-normal:9191", "worker-backfill:9191"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entrypoint_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DJANGO_DEBUG"] = "1"
    env.update(extra)
    return env


def test_entrypoint_manage_role_runs_a_command():
    result = subprocess.run(
        [str(DOCKER / "entrypoint.sh"), "manage", "check"],
        cwd="/",  # the entrypoint finds the application root itself
        env=_entrypoint_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.slow
def test_entrypoint_api_role_serves_health_with_gunicorn(tmp_path):
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_4242.db").write_bytes(b"stale")
    process = subprocess.Popen(
        [str(DOCKER / "entrypoint.sh"), "api"],
        env=_entrypoint_env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="1",
            GUNICORN_CONTROL_SOCKET=str(tmp_path / "gunicorn.ctl"),
            GUNICORN_WORKER_TMP_DIR=str(tmp_path),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body, deadline = None, time.monotonic() + 45
        while body is None and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2) as r:
                    body = r.read()
            except OSError:
                time.sleep(0.2)
        assert body == b'{"status": "ok"}'
        assert not (metrics_dir / "counter_4242.db").exists()  # wiped at start
    finally:
        process.terminate()
        process.wait(timeout=30)
