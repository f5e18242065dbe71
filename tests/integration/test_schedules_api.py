"""`/api/v1/schedules/`: viewers read; writes need the schedule permissions; bad input is a 400."""

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from executions.models import Schedule

URL = "/api/v1/schedules/"
BODY = {
    "name": "nightly-noop",
    "pipeline": "diagnostics.noop",
    "cron": "30 18 * * 1-5",
    "time_zone": "America/New_York",
    "trading_days_only": True,
}


@pytest.fixture
def viewer(db):
    client = APIClient()
    client.force_authenticate(User.objects.create_user("viewer"))
    return client


@pytest.fixture
def operator(db):
    user = User.objects.create_user("operator")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_schedule", "change_schedule", "delete_schedule", "view_schedule"]
        )
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_anonymous_is_refused(db):
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_viewer_reads_but_cannot_write(viewer):
    assert viewer.get(URL).json() == {"next": None, "previous": None, "results": []}
    response = viewer.post(URL, BODY, format="json")
    assert response.status_code == 403
    assert Schedule.objects.count() == 0


def test_operator_creates_changes_and_deletes(operator):
    created = operator.post(URL, BODY, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["next_run_at"] is not None
    assert body["overlap_policy"] == "skip"
    schedule = Schedule.objects.get(name="nightly-noop")

    changed = operator.patch(f"{URL}{schedule.pk}/", {"enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["next_run_at"] is None

    assert operator.delete(f"{URL}{schedule.pk}/").status_code == 204
    assert Schedule.objects.count() == 0


def test_invalid_schedule_is_a_400_naming_the_fields(operator):
    response = operator.post(
        URL, {**BODY, "cron": "every day", "pipeline": "nope.missing"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_schedule"
    assert sorted(body["details"]) == ["cron", "pipeline"]
    assert Schedule.objects.count() == 0
