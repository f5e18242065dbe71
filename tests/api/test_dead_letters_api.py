"""The dead-letter API: list with filters, replay (a child execution), resolve (a note is
required); who and why are recorded, and refusals change nothing."""

from dlq.models import DeadLetter
from executions.models import Execution, ExecutionEvent


def snapshot():
    return (
        list(DeadLetter.objects.order_by("id").values()),
        list(Execution.objects.order_by("id").values()),
        ExecutionEvent.objects.count(),
    )


def test_list_filters_unresolved(api_client_for, dead_letter):
    client = api_client_for("viewer")
    open_letter, closed = dead_letter(), dead_letter()
    DeadLetter.objects.filter(pk=closed.pk).update(
        resolution="ignored", resolved_at=closed.created_at
    )

    unresolved = client.get("/api/v1/dead-letters/?resolved=false").json()["results"]
    resolved = client.get("/api/v1/dead-letters/?resolved=true").json()["results"]

    assert [r["id"] for r in unresolved] == [open_letter.pk]
    assert [r["id"] for r in resolved] == [closed.pk]


def test_replay_dispatches_a_child_and_resolves_as_replayed(
    api_client_for, dead_letter, recording_backend
):
    letter = dead_letter()

    response = api_client_for("operator").post(
        f"/api/v1/dead-letters/{letter.pk}/replay/", {"note": "upstream back"}, format="json"
    )

    assert response.status_code == 202
    letter.refresh_from_db()
    child = letter.replay_execution
    assert response.json()["replay_execution"] == str(child.id)
    assert (child.parent_id, child.trigger_source) == (letter.execution_id, "replay")
    assert (letter.resolution, letter.resolved_by.username, letter.note) == (
        "replayed",
        "operator",
        "upstream back",
    )
    event = letter.execution.events.get(kind="replayed")
    assert (event.actor, event.source, event.reason) == ("operator", "api", "upstream back")


def test_resolve_needs_a_note_and_changes_nothing_without_one(api_client_for, dead_letter):
    letter = dead_letter()
    before = snapshot()

    response = api_client_for("operator").post(
        f"/api/v1/dead-letters/{letter.pk}/resolve/",
        {"resolution": "ignored", "note": "  "},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "note_required"
    assert snapshot() == before


def test_resolve_records_who_and_why_and_refuses_twice(api_client_for, dead_letter):
    client = api_client_for("operator")
    letter = dead_letter()
    url = f"/api/v1/dead-letters/{letter.pk}/resolve/"

    response = client.post(
        url, {"resolution": "fixed_manually", "note": "loaded by hand"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["resolution"], body["resolved_by"], body["note"], body["is_resolved"]) == (
        "fixed_manually",
        "operator",
        "loaded by hand",
        True,
    )
    event = letter.execution.events.get(kind="dead_letter_resolved")
    assert (event.actor, event.reason) == ("operator", "loaded by hand")
    before = snapshot()
    again = client.post(url, {"resolution": "ignored", "note": "again"}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "already_resolved"
    assert snapshot() == before
