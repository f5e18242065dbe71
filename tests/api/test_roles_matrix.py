"""The roles matrix (SPEC §6): anonymous 401, viewer 200 on reads and 403 on every mutation,
operator allowed; every refused call leaves the ledger exactly as it was."""

import pytest

from dlq.models import DeadLetter
from executions.models import Execution, ExecutionEvent, Lane


def ledger_snapshot():
    return (
        list(Execution.objects.order_by("id").values()),
        list(ExecutionEvent.objects.order_by("id").values()),
        list(DeadLetter.objects.order_by("id").values()),
        list(Lane.objects.order_by("name").values()),
    )


@pytest.fixture
def world(execution_in, dead_letter, recording_backend):
    """One object of each kind the endpoints act on."""
    return {
        "pending": execution_in("pending"),
        "failed": execution_in("failed"),
        "letter": dead_letter(),
        "letter2": dead_letter(),
    }


READS = [
    ("/api/v1/executions/", None),
    ("/api/v1/executions/{failed}/", None),
    ("/api/v1/executions/{failed}/events/", None),
    ("/api/v1/pipelines/", None),
    ("/api/v1/pipelines/diagnostics.sleep/", None),
    ("/api/v1/lanes/", None),
    ("/api/v1/lanes/normal/", None),
    ("/api/v1/dead-letters/", None),
    ("/api/v1/dead-letters/{letter}/", None),
]

# (url, body, the status an operator gets)
MUTATIONS = [
    ("/api/v1/executions/", {"pipeline": "diagnostics.sleep", "params": {"seconds": 0}}, 202),
    ("/api/v1/executions/{pending}/cancel/", {"reason": "matrix"}, 200),
    ("/api/v1/executions/{failed}/retry/", {"reason": "matrix"}, 202),
    ("/api/v1/lanes/backfill/pause/", {"reason": "matrix"}, 200),
    ("/api/v1/lanes/normal/resume/", {"reason": "matrix"}, 200),
    ("/api/v1/dead-letters/{letter}/replay/", {"note": "matrix"}, 202),
    ("/api/v1/dead-letters/{letter2}/resolve/", {"resolution": "ignored", "note": "matrix"}, 200),
]


def url_for(template, world):
    return template.format(
        pending=world["pending"].id,
        failed=world["failed"].id,
        letter=world["letter"].pk,
        letter2=world["letter2"].pk,
    )


@pytest.mark.parametrize(("url", "_body"), READS)
@pytest.mark.parametrize(
    ("role", "expected"), [("anonymous", 401), ("viewer", 200), ("operator", 200), ("admin", 200)]
)
def test_reads(api_client_for, world, url, _body, role, expected):
    response = api_client_for(role).get(url_for(url, world))

    assert response.status_code == expected, response.content
    if expected == 401:
        assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("url", "body", "_allowed"), MUTATIONS)
@pytest.mark.parametrize(
    ("role", "expected", "code"),
    [("anonymous", 401, "not_authenticated"), ("viewer", 403, "permission_denied")],
)
def test_refused_mutations_change_nothing(
    api_client_for, world, url, body, _allowed, role, expected, code
):
    client = api_client_for(role)
    before = ledger_snapshot()

    response = client.post(url_for(url, world), body, format="json")

    assert response.status_code == expected, response.content
    assert response.json()["code"] == code
    assert set(response.json()) == {"code", "message", "details"}
    assert ledger_snapshot() == before


@pytest.mark.parametrize(("url", "body", "allowed"), MUTATIONS)
@pytest.mark.parametrize("role", ["operator", "admin"])
def test_operator_and_admin_may_mutate(api_client_for, world, url, body, allowed, role):
    client = api_client_for(role)
    before = ledger_snapshot()

    response = client.post(url_for(url, world), body, format="json")

    assert response.status_code == allowed, response.content
    assert ledger_snapshot() != before


def test_every_routed_endpoint_is_in_the_matrix():
    """A new endpoint must be added here, so that nobody forgets who may call it."""
    from django.urls import get_resolver

    from dlq.api.views import DeadLetterViewSet
    from executions.api.views import ExecutionViewSet, LaneViewSet, PipelineViewSet

    declared = set()
    for view in (ExecutionViewSet, LaneViewSet, PipelineViewSet, DeadLetterViewSet):
        declared |= {f"{view.__name__}.{a}" for a in view.action_permissions if a != "metadata"}
    assert declared == {
        "ExecutionViewSet.list",
        "ExecutionViewSet.retrieve",
        "ExecutionViewSet.events",
        "ExecutionViewSet.create",
        "ExecutionViewSet.cancel",
        "ExecutionViewSet.retry",
        "LaneViewSet.list",
        "LaneViewSet.retrieve",
        "LaneViewSet.pause",
        "LaneViewSet.resume",
        "PipelineViewSet.list",
        "PipelineViewSet.retrieve",
        "DeadLetterViewSet.list",
        "DeadLetterViewSet.retrieve",
        "DeadLetterViewSet.replay",
        "DeadLetterViewSet.resolve",
    }
    assert len(READS) + len(MUTATIONS) == len(declared)
    assert get_resolver()  # the URLconf loads
