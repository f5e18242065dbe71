"""The operations console (SPEC §7): read-only ledger pages, actions behind a confirmation page
with a count, a permission per action, the same services and audit trail as the API."""

import pytest
from django.utils import timezone

from dlq.models import DeadLetter
from executions.models import Execution, ExecutionEvent, Lane

CHANGELIST = "/admin/executions/execution/"


def snapshot():
    return (
        list(Execution.objects.order_by("id").values()),
        list(ExecutionEvent.objects.order_by("id").values()),
        list(DeadLetter.objects.order_by("id").values()),
        list(Lane.objects.order_by("name").values()),
    )


@pytest.fixture
def console(client, role_user, recording_backend):
    def login(role):
        client.force_login(role_user(role))
        return client

    return login


def test_list_and_detail_show_status_timeline_and_lineage(console, execution_in):
    client = console("viewer")
    parent = execution_in("failed")
    child = execution_in("pending")
    Execution.objects.filter(pk=child.pk).update(parent=parent, root=parent)

    listing = client.get(CHANGELIST).content.decode()
    detail = client.get(f"{CHANGELIST}{child.pk}/change/").content.decode()
    parent_page = client.get(f"{CHANGELIST}{parent.pk}/change/").content.decode()

    assert "spine-status-failed" in listing and "spine-status-pending" in listing
    assert f'href="{CHANGELIST}{parent.pk}/change/"' in detail  # parent link
    assert f'href="{CHANGELIST}{child.pk}/change/"' in parent_page  # retries link
    assert 'id="event-timeline"' in parent_page and "test_failed" in parent_page
    assert 'id="action-retry"' not in parent_page  # a viewer gets no action buttons
    assert client.get(f"{CHANGELIST}?q={parent.pk}").content.decode().count("spine-status-") == 1


def test_ledger_rows_cannot_be_added_changed_or_deleted(console, execution_in):
    client = console("admin")
    execution = execution_in("failed")
    before = snapshot()

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert (
        client.post(f"{CHANGELIST}{execution.pk}/change/", {"status": "completed"}).status_code
        == 403
    )
    assert client.post(f"{CHANGELIST}{execution.pk}/delete/", {"post": "yes"}).status_code == 403
    assert snapshot() == before


def test_bulk_retry_asks_with_a_count_then_retries_through_the_service(console, execution_in):
    client = console("operator")
    failed = [execution_in("failed"), execution_in("dead_lettered")]
    ids = [str(e.pk) for e in failed]
    before = snapshot()

    page = client.post(CHANGELIST, {"action": "retry_selected", "_selected_action": ids})

    assert page.status_code == 200
    assert 'id="confirm-count">2<' in page.content.decode()
    assert snapshot() == before  # asking changes nothing

    done = client.post(
        CHANGELIST,
        {"action": "retry_selected", "_selected_action": ids, "confirm": "yes", "reason": "bulk"},
    )

    assert done.status_code == 302
    for old in failed:
        child = Execution.objects.get(parent=old)
        assert (child.trigger_source, child.created_by.username) == ("retry", "operator")
        created = child.events.get(kind="created")
        assert (created.actor, created.source) == ("operator", "admin")
        event = old.events.get(kind="retried")
        assert (event.actor, event.source, event.reason) == ("operator", "admin", "bulk")
        assert event.request_id  # the request id of the confirming request


def test_a_refused_row_is_reported_and_the_others_still_run(console, execution_in):
    client = console("operator")
    done, running = execution_in("completed"), execution_in("running")

    response = client.post(
        CHANGELIST,
        {
            "action": "retry_selected",
            "_selected_action": [done.pk, running.pk],
            "confirm": "yes",
            "reason": "",
        },
        follow=True,
    )

    text = response.content.decode()
    assert "Retry executions: 1 done." in text
    assert f"refused for {running}" in text
    assert Execution.objects.filter(parent=done).count() == 1
    assert Execution.objects.filter(parent=running).count() == 0


def test_viewer_has_no_actions_and_cannot_force_one(console, execution_in):
    client = console("viewer")
    failed = execution_in("failed")
    before = snapshot()

    listing = client.get(CHANGELIST).content.decode()
    assert "retry_selected" not in listing and "cancel_selected" not in listing
    client.post(
        CHANGELIST, {"action": "retry_selected", "_selected_action": [failed.pk], "confirm": "yes"}
    )
    assert client.get(f"{CHANGELIST}{failed.pk}/retry/").status_code == 403
    assert client.post(f"{CHANGELIST}{failed.pk}/retry/", {"confirm": "yes"}).status_code == 403
    assert snapshot() == before


def test_cancel_from_the_detail_page(console, execution_in):
    client = console("operator")
    queued = execution_in("queued")
    url = f"{CHANGELIST}{queued.pk}/cancel/"

    assert 'id="confirm-count">1<' in client.get(url).content.decode()
    response = client.post(url, {"confirm": "yes", "reason": "not needed"})

    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    event = queued.events.get(kind="cancelled")
    assert (event.actor, event.source, event.reason) == ("operator", "admin", "not needed")


def test_resolve_needs_a_note(console, dead_letter):
    client = console("operator")
    letter = dead_letter()
    url = "/admin/dlq/deadletter/"
    before = snapshot()

    page = client.post(
        url,
        {
            "action": "resolve_selected",
            "_selected_action": [letter.pk],
            "confirm": "yes",
            "resolution": "ignored",
        },
    )
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    assert snapshot() == before

    client.post(
        url,
        {
            "action": "resolve_selected",
            "_selected_action": [letter.pk],
            "confirm": "yes",
            "resolution": "ignored",
            "note": "duplicate of a good run",
        },
    )
    letter.refresh_from_db()
    assert (letter.resolution, letter.resolved_by.username, letter.note) == (
        "ignored",
        "operator",
        "duplicate of a good run",
    )


def test_replay_from_the_console(console, dead_letter):
    client = console("operator")
    letter = dead_letter()

    client.post(
        "/admin/dlq/deadletter/",
        {
            "action": "replay_selected",
            "_selected_action": [letter.pk],
            "confirm": "yes",
            "note": "retry now",
        },
    )

    letter.refresh_from_db()
    assert letter.resolution == "replayed"
    assert letter.replay_execution.parent_id == letter.execution_id


def test_pause_a_lane_from_the_console(console):
    client = console("operator")

    client.post(
        "/admin/executions/lane/",
        {
            "action": "pause_selected",
            "_selected_action": ["backfill"],
            "confirm": "yes",
            "reason": "vendor outage",
        },
    )

    lane = Lane.objects.get(name="backfill")
    assert (lane.paused, lane.changed_by.username, lane.reason) == (
        True,
        "operator",
        "vendor outage",
    )
    assert Lane.objects.get(name="normal").paused is False


def test_dashboard_counts_and_chart(console, execution_in, dead_letter):
    client = console("viewer")
    for status in ("completed", "completed", "failed", "pending"):
        execution_in(status)
    Execution.objects.filter(status__in=["completed", "failed"]).update(finished_at=timezone.now())
    dead_letter()

    page = client.get("/admin/dashboard/")

    assert page.status_code == 200
    lanes = {row["lane"]: row for row in page.context["lanes"]}
    assert lanes["normal"]["total"] == 5
    assert lanes["backfill"]["total"] == 0
    assert page.context["unresolved_dead_letters"] == 1
    assert [p["lane"] for p in page.context["oldest_pending"]] == ["normal"]
    assert len(page.context["recent_failures"]) == 2  # the failed one and the dead-lettered one
    last_hour = page.context["hourly"][-1]["counts"]
    assert last_hour == {"completed": 2, "failed": 1, "dead_lettered": 1, "cancelled": 0}
    html = page.content.decode()
    assert html.count('class="bar"') == 3  # one rect per non-empty outcome in the last hour
    assert 'id="chart-hourly"' in html
    assert client.get("/admin/").content.decode().count('href="/admin/dashboard/"') == 1


def test_dashboard_needs_staff(client):
    assert client.get("/admin/dashboard/").status_code == 302  # to the login page


def make_trades(rows):
    from datetime import date

    from otc.models import Trade

    for week, symbol, venue, shares in rows:
        Trade.objects.create(
            week=date.fromisoformat(week),
            tier="OTCE",
            symbol=symbol,
            venue_mpid=venue,
            venue_name=f"{venue} ATS",
            venue_type="ats",
            shares=shares,
            trades=shares // 100,
        )


def test_dashboard_charts_a_symbols_weekly_volume_by_venue(console):
    make_trades(
        [
            ("2025-11-10", "AABB", "OTCN", 600),
            ("2025-11-10", "AABB", "OTCX", 400),
            ("2025-11-17", "AABB", "OTCN", 900),
            ("2025-11-17", "ZZZZ", "OTCN", 50),
        ]
    )
    response = console("viewer").get("/admin/dashboard/")

    assert response.status_code == 200
    assert response.context["symbol"] == "AABB"  # the top symbol of the latest week
    assert response.context["symbols"] == ["AABB", "ZZZZ"]
    page = response.content.decode()
    assert 'id="chart-venues"' in page
    assert "<title>week of 2025-11-10 OTCN: 600</title>" in page
    assert "<title>week of 2025-11-10 OTCX: 400</title>" in page
    assert "<title>week of 2025-11-17 OTCN: 900</title>" in page
    assert "ZZZZ" not in page.split('id="chart-venues"')[1].split("</svg>")[0]


def test_dashboard_venue_chart_for_a_chosen_symbol_and_an_unknown_one(console):
    make_trades([("2025-11-17", "AABB", "OTCN", 900), ("2025-11-17", "ZZZZ", "OTCX", 50)])
    client = console("viewer")

    chosen = client.get("/admin/dashboard/", {"symbol": "zzzz", "tier": "OTCE"}).content.decode()
    assert "<title>week of 2025-11-17 OTCX: 50</title>" in chosen

    unknown = client.get("/admin/dashboard/", {"symbol": "NOPE"}).content.decode()
    assert 'id="chart-venues"' not in unknown
    assert "No OTC data loaded for NOPE." in unknown


@pytest.mark.django_db
def test_venue_chart_groups_venues_beyond_the_top_six_as_other():
    from spine_project.dashboard import venue_volume

    make_trades([("2025-11-17", "AABB", f"V{i}", 100 * (i + 1)) for i in range(8)])
    columns, series = venue_volume("AABB")

    assert [name for name, _ in series] == ["V7", "V6", "V5", "V4", "V3", "V2", "other"]
    ((label, tip, values),) = columns
    assert (label, tip) == ("11-17", "week of 2025-11-17")
    assert values["other"] == 100 + 200  # V0 and V1
    assert sum(values.values()) == sum(100 * (i + 1) for i in range(8))
