"""`manage.py check --deploy` is clean with the production environment of .env.example."""

import os
import re
import secrets
import subprocess
import sys
import tempfile

from tests.deploy.conftest import ROOT

SPEC_VARIABLES = {  # SPEC §3
    "DATABASE_URL",
    "SPINE_BROKER_URL",
    "SPINE_BACKEND",
    "REDIS_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "SPINE_LOG_FORMAT",
    "SPINE_LANE_LIMITS",
    "SPINE_MAX_PENDING",
}


def env_example() -> dict[str, str]:
    """The active KEY=value lines of .env.example."""
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def check_deploy(overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SPINE_", "DATABASE_", "REDIS_", "GUNICORN_"))
    }
    env.update(overrides)
    if "PROMETHEUS_MULTIPROC_DIR" in env:  # the image's path; a scratch folder here
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="spine-metrics-")
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_example_documents_every_configuration_variable():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `([A-Z_]+)`", readme, flags=re.MULTILINE))
    assert table, "README configuration table not found"
    assert SPEC_VARIABLES - documented == set()
    assert table - documented == set()


def test_check_deploy_is_clean_with_the_production_environment():
    env = env_example() | {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
    assert env["DJANGO_DEBUG"] == "false"
    result = check_deploy(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_refuses_the_placeholder_secret_and_plain_http():
    env = env_example() | {"DJANGO_SECURE_SSL_REDIRECT": "false"}
    assert env["DJANGO_SECRET_KEY"] == "change-me"
    result = check_deploy(env)
    assert result.returncode == 1
    assert "security.W009" in result.stderr  # the weak SECRET_KEY
    assert "security.W008" in result.stderr  # SECURE_SSL_REDIRECT off


def run_unconfigured(*args: str) -> subprocess.CompletedProcess:
    """Python with `args` in the project, DEBUG on and no other Django or database variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env | {"DJANGO_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_mode_still_runs_with_nothing_configured():
    """`make run` keeps working: DEBUG on, no other variable, plain check passes."""
    result = run_unconfigured("manage.py", "check")
    assert result.returncode == 0, result.stderr


def test_the_wsgi_application_takes_what_it_loaded_out_of_the_collectors_reach():
    """gunicorn's workers collect only what requests made (spine_project/wsgi.py, issue 8)."""
    result = run_unconfigured("-c", "import gc, spine_project.wsgi; print(gc.get_freeze_count())")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 50_000  # Django, DRF and the apps: about 117k objects on 2026-12-05
