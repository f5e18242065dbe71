"""`otc.backfill`: one ingest per week into the backfill lane, deduplicated by logical key."""

import pytest

from executions.errors import InvalidParams
from executions.models import Execution, Status

BACKFILL = {"tier": "OTCE", "first_week": "2025-09-29", "last_week": "2025-11-17"}


def test_a_backfill_of_eight_weeks_dispatches_eight_ingests_once(run_pipeline, recording_backend):
    first = run_pipeline("otc.backfill", BACKFILL)

    assert first.status == Status.COMPLETED, first.error_message
    assert first.lane == "backfill"
    assert (first.result["weeks"], first.result["dispatched"], first.result["already_active"]) == (
        8,
        8,
        0,
    )
    ingests = Execution.objects.filter(pipeline="otc.ingest_week")
    assert ingests.count() == 8
    assert sorted(e.params["week"] for e in ingests) == [
        "2025-09-29",
        "2025-10-06",
        "2025-10-13",
        "2025-10-20",
        "2025-10-27",
        "2025-11-03",
        "2025-11-10",
        "2025-11-17",
    ]
    assert {(e.lane, e.trigger_source, e.parent_id, e.status) for e in ingests} == {
        ("backfill", "system", first.id, Status.PENDING)
    }
    assert {e.params["source"] for e in ingests} == {"finra_api"}

    second = run_pipeline("otc.backfill", BACKFILL)

    assert second.status == Status.COMPLETED, second.error_message
    assert (second.result["dispatched"], second.result["already_active"]) == (0, 8)
    assert sorted(second.result["execution_ids"]) == sorted(str(e.id) for e in ingests)
    assert Execution.objects.filter(pipeline="otc.ingest_week").count() == 8


def test_an_overlapping_backfill_only_adds_the_new_weeks(run_pipeline, recording_backend):
    run_pipeline("otc.backfill", BACKFILL)
    later = run_pipeline(
        "otc.backfill", {**BACKFILL, "first_week": "2025-11-10", "last_week": "2025-12-01"}
    )
    assert (later.result["dispatched"], later.result["already_active"]) == (2, 2)
    assert Execution.objects.filter(pipeline="otc.ingest_week").count() == 10


def test_a_file_backfill_names_each_weeks_file(run_pipeline, recording_backend, settings, tmp_path):
    settings.SPINE_OTC_DATA_DIR = tmp_path
    execution = run_pipeline(
        "otc.backfill",
        {**BACKFILL, "last_week": "2025-10-06", "source": "file", "path_template": "w/{week}.csv"},
    )
    assert execution.status == Status.COMPLETED, execution.error_message
    paths = Execution.objects.filter(pipeline="otc.ingest_week").values_list("params", flat=True)
    assert sorted(p["path"] for p in paths) == ["w/2025-09-29.csv", "w/2025-10-06.csv"]


@pytest.mark.parametrize(
    "params",
    [
        {**BACKFILL, "first_week": "2025-11-18"},
        {**BACKFILL, "first_week": "2025-11-24"},
        {**BACKFILL, "first_week": "2015-01-05"},
        {**BACKFILL, "source": "file"},
        {**BACKFILL, "source": "file", "path_template": "../{week}.csv"},
    ],
)
def test_bad_backfill_params_are_refused(make_execution, params):
    with pytest.raises(InvalidParams):
        make_execution("otc.backfill", params)
    assert Execution.objects.count() == 0


def test_a_retried_backfill_does_not_run_finished_weeks_again(run_pipeline, settings):
    from django.utils import timezone

    from executions.runner import run_execution

    settings.SPINE_LANE_LIMITS = {"normal": 500, "backfill": 5}  # the backfill itself counts
    first = run_pipeline("otc.backfill", BACKFILL)

    # Four weeks were dispatched, then the lane was full: the backfill waits to retry.
    assert (first.status, first.attempt) == (Status.QUEUED, 1)
    done = Execution.objects.filter(pipeline="otc.ingest_week")
    assert done.count() == 4
    done.update(status=Status.COMPLETED)  # those four ingests finish meanwhile

    settings.SPINE_LANE_LIMITS = {"normal": 500, "backfill": 50}
    Execution.objects.filter(pk=first.pk).update(not_before=timezone.now())
    run_execution(first.id)

    first.refresh_from_db()
    assert (first.status, first.attempt) == (Status.COMPLETED, 2)
    assert (first.result["weeks"], first.result["dispatched"], first.result["already_active"]) == (
        8,
        4,
        4,
    )
    ingests = Execution.objects.filter(pipeline="otc.ingest_week")
    assert ingests.count() == 8
    assert len({e.params["week"] for e in ingests}) == 8


def test_a_remote_source_is_fetched_before_the_transaction_opens(db, monkeypatch):
    from datetime import date

    from django.db import connection

    from otc import services
    from otc.parser import SourceLine

    seen_in_transaction = []

    class FakeRemote:
        kind = "finra_api"

        def lines(self):
            header = "OTC|SYM{}|Some Issuer|OTCN OTC LINK|OTCN|{}|{}|2025-12-15"
            for n in range(1, 4):
                # pytest-django's own test transaction is the outer block: count deeper levels
                seen_in_transaction.append(len(connection.savepoint_ids))
                yield SourceLine("api", n, header.format(n, 100 * n, n).encode())

    summary = services.ingest_week(
        tier="OTCE", week=date(2025, 11, 17), venue_type="ats", connector=FakeRemote()
    )

    assert summary["rows_loaded"] == 3
    assert seen_in_transaction == [0, 0, 0]
