"""Fuzz the live API with schemathesis (SPEC §6): a real gunicorn on 127.0.0.1, production
settings (DEBUG off), the test database, an admin's API token.

Checks: no server error, status codes, content types, headers and bodies as the OpenAPI document
says, and no operation that works without credentials (schemathesis' `ignored_auth`). Bounded
(a fixed seed, a few examples per operation) so `make test` stays fast and never flakes; run the
`explore` target of the README for a longer search. A second test calls every operation of the
schema without credentials and requires a 401 that changed nothing.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dlq.models import DeadLetter
from executions.models import Execution, ExecutionEvent, Lane, Schedule
from tests.e2e.conftest import database_url, serve_api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance,ignored_auth"
)
EXAMPLES = os.environ.get("SPINE_FUZZ_EXAMPLES", "12")
SEED = os.environ.get("SPINE_FUZZ_SEED", "1")


@pytest.fixture
def live_api(transactional_db, tmp_path):
    """gunicorn with production settings on a free loopback port, against the test database."""
    from django.db import connection

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPINE_", "DJANGO_"))},
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "fuzz-tests-only-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "SPINE_RATE_LIMIT": "0",  # the fuzzer sends thousands of requests a minute
        "SPINE_LOG_LEVEL": "WARNING",
        "SPINE_LOCAL_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "api.log"
    with serve_api(env, log, "--workers", "1", "--threads", "4", "--timeout", "60") as base:
        yield base, log


def admin_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from spine_project.roles import assign_role

    user = get_user_model().objects.create_user("fuzzer")
    assign_role(user, "admin")
    return Token.objects.create(user=user).key


def test_schemathesis_finds_no_failure_in_the_live_api(live_api, tmp_path):
    base, log = live_api
    result = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{base}/api/schema/"]
        + ["--header", f"Authorization: Token {admin_token()}", "--checks", CHECKS]
        + ["--max-examples", EXAMPLES, "--seed", SEED, "--phases", "examples,coverage,fuzzing"]
        + ["--workers", "2", "--request-timeout", "20", "--no-color"]
        + ["--report", "junit", "--report-junit-path", str(tmp_path / "schemathesis.xml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=150,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12_000:] + "\n--- server ---\n" + log.read_text()[-3000:]
    assert "Tested: 27" in output  # every operation of the schema was exercised


def ledger():
    return (
        Execution.objects.count(),
        ExecutionEvent.objects.count(),
        DeadLetter.objects.count(),
        list(Lane.objects.order_by("name").values_list("name", "paused")),
        Schedule.objects.count(),
    )


def test_every_operation_refuses_an_anonymous_caller_and_changes_nothing(live_api):
    base, _ = live_api
    schema = httpx.get(f"{base}/api/schema/", params={"format": "json"}, timeout=10).json()
    execution_id = "0b3f4c1e-8a2d-4e55-9c3a-1f2e3d4c5b6a"
    before = ledger()
    answers = {}
    with httpx.Client(base_url=base, timeout=10) as client:
        for path, operations in schema["paths"].items():
            uuid_ids = path.startswith("/api/v1/executions/")
            url = path.format(id=execution_id if uuid_ids else "1", name="normal")
            for method in operations:
                if method == "parameters":
                    continue
                response = client.request(method.upper(), url, json={})
                answers[f"{method.upper()} {path}"] = (
                    response.status_code,
                    response.json().get("code"),
                )
    assert len(answers) == 27
    assert {k: v for k, v in answers.items() if v != (401, "not_authenticated")} == {}
    assert ledger() == before
