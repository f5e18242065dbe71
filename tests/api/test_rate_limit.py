"""The rate limit in one process: headers on every answer, 429 with Retry-After past the budget,
health exempt, one budget per credential."""

import pytest


@pytest.fixture
def tight(settings, monkeypatch):
    settings.SPINE_RATE_LIMIT = (3, 60)
    # 10 s into a window, and frozen: a test can never straddle two windows
    monkeypatch.setattr("spine_project.middleware._clock", lambda: 1_800_000_010.0)


def test_budget_headers_then_429_with_retry_after(tight, api_client_for):
    client = api_client_for("viewer")

    answers = [client.get("/api/v1/lanes/") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a["X-RateLimit-Limit"] for a in answers} == {"3"}
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert set(refused.json()) == {"code", "message", "details"}
    assert refused["Retry-After"] == "50"
    assert refused["X-RateLimit-Reset"] == "1800000060"
    assert refused["X-Request-ID"]


def test_health_is_exempt(tight, client):
    answers = [client.get("/health/live") for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert "X-RateLimit-Limit" not in answers[0]


def test_each_credential_has_its_own_budget(tight, api_client_for):
    viewer, operator = api_client_for("viewer"), api_client_for("operator")
    for _ in range(3):
        viewer.get("/api/v1/lanes/")

    assert viewer.get("/api/v1/lanes/").status_code == 429
    assert operator.get("/api/v1/lanes/").status_code == 200


def test_a_refused_submission_creates_nothing(tight, api_client_for, recording_backend):
    from executions.models import Execution

    client = api_client_for("operator")
    body = {"pipeline": "diagnostics.noop"}
    codes = [client.post("/api/v1/executions/", body, format="json").status_code for _ in range(4)]

    assert codes == [202, 202, 202, 429]
    assert Execution.objects.count() == 3


def test_off_when_configured_so(settings, api_client_for):
    settings.SPINE_RATE_LIMIT = None

    response = api_client_for("viewer").get("/api/v1/lanes/")

    assert response.status_code == 200
    assert "X-RateLimit-Limit" not in response


def test_made_up_tokens_share_their_address_budget(tight, client, db):
    answers = [
        client.get("/api/v1/lanes/", HTTP_AUTHORIZATION=f"Token made-up-{n}") for n in range(4)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]


def test_one_token_has_one_budget_however_it_is_spelled(tight, db):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=User.objects.create_user("spelled")).key
    from django.test import Client

    client = Client()
    spellings = [f"Token {token}", f"token {token}", f"Token  {token}", f"TOKEN {token}"]
    answers = [client.get("/api/v1/lanes/", HTTP_AUTHORIZATION=s) for s in spellings]
    assert [a["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[-1].status_code == 429
