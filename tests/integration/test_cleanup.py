"""Retention: old finished executions and events go in batches; unresolved dead letters, their
executions, active executions and the latest execution of each logical key stay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from dlq.models import DeadLetter
from executions import cleanup
from executions.models import CleanupStat, Execution, ExecutionEvent, Status
from spine_project.metrics import build_registry

OLD = timedelta(days=45)


@pytest.fixture
def ledger(make_execution):
    """A ledger with one row of every case; returns their ids by name."""
    now = timezone.now()

    def make(name, status, age, logical_key=None, created_offset=timedelta(0)):
        execution = make_execution()
        when = now - age
        Execution.objects.filter(pk=execution.pk).update(
            status=status,
            logical_key=logical_key,
            created_at=when - timedelta(minutes=5) + created_offset,
            finished_at=when if status not in ("pending", "queued", "running") else None,
        )
        ExecutionEvent.objects.filter(execution=execution).update(at=when)
        return execution.pk

    rows = {
        "old_completed": make("old_completed", Status.COMPLETED, OLD),
        "old_failed": make("old_failed", Status.FAILED, OLD),
        "old_key_superseded": make("k1", Status.COMPLETED, OLD + timedelta(days=2), "key-1"),
        "old_key_latest": make("k1b", Status.COMPLETED, OLD, "key-1"),
        "old_dead_unresolved": make("dlu", Status.DEAD_LETTERED, OLD),
        "old_dead_resolved": make("dlr", Status.DEAD_LETTERED, OLD),
        "recent_completed": make("recent", Status.COMPLETED, timedelta(days=3)),
        "old_pending": make("pending", Status.PENDING, OLD),
    }
    DeadLetter.objects.create(
        execution_id=rows["old_dead_unresolved"],
        pipeline="diagnostics.sleep",
        reason="max_attempts",
    )
    DeadLetter.objects.create(
        execution_id=rows["old_dead_resolved"],
        pipeline="diagnostics.sleep",
        reason="max_attempts",
        resolved_at=now - OLD,
        resolution="ignored",
        note="known outage",
    )
    return rows


def snapshot():
    return (
        sorted(str(pk) for pk in Execution.objects.values_list("pk", flat=True)),
        ExecutionEvent.objects.count(),
        DeadLetter.objects.count(),
        CleanupStat.objects.count(),
    )


def test_dry_run_counts_and_changes_nothing(ledger):
    before = snapshot()
    out = StringIO()
    call_command("spine_cleanup", "--dry-run", "--no-progress", stdout=out)
    assert snapshot() == before
    lines = out.getvalue().splitlines()
    # events of finished, unprotected executions: old_completed, old_failed, both key-1 rows,
    # old_dead_resolved (one `created` event each)
    assert lines[0].startswith("events: would delete 5 (older than 30 days")
    assert lines[1].startswith("executions: would delete 4 (older than 30 days")


def test_cleanup_keeps_protected_rows_and_deletes_the_rest_in_batches(ledger):
    reports = {r.kind: r for r in cleanup.run_cleanup(batch_size=2)}

    remaining = set(Execution.objects.values_list("pk", flat=True))
    assert remaining == {
        ledger["old_key_latest"],
        ledger["old_dead_unresolved"],
        ledger["recent_completed"],
        ledger["old_pending"],
    }
    assert reports["events"].deleted == 5
    assert reports["events"].batches == 3
    assert reports["executions"].deleted == 4
    assert reports["executions"].batches == 2
    assert reports["executions"].cascaded == {"dlq.DeadLetter": 1}
    # the unresolved dead letter and its audit trail stay; the resolved one went with its run
    assert list(DeadLetter.objects.values_list("execution_id", flat=True)) == [
        ledger["old_dead_unresolved"]
    ]
    assert ExecutionEvent.objects.filter(execution_id=ledger["old_dead_unresolved"]).count() == 1
    assert ExecutionEvent.objects.filter(execution_id=ledger["old_key_latest"]).count() == 0
    assert ExecutionEvent.objects.filter(execution_id=ledger["old_pending"]).count() == 1

    stats = {s.kind: (s.deleted_total, s.last_deleted) for s in CleanupStat.objects.all()}
    assert stats == {
        "events": (5, 5),
        "executions": (4, 4),
        "otc_raw": (0, 0),
        "otc_raw_captures": (0, 0),
    }

    # a second run finds nothing and the totals stay
    again = {r.kind: r.deleted for r in cleanup.run_cleanup()}
    assert again == {"events": 0, "executions": 0, "otc_raw": 0, "otc_raw_captures": 0}
    assert (
        build_registry().get_sample_value("spine_cleanup_deleted_total", {"kind": "executions"})
        == 4
    )


def test_retention_is_configurable_per_kind(ledger, settings):
    settings.SPINE_RETENTION_DAYS = {"executions": 60}
    reports = {r.kind: r for r in cleanup.run_cleanup(kinds=["executions"], dry_run=True)}
    assert reports["executions"].days == 60
    assert reports["executions"].candidates == 0


def test_other_apps_register_their_own_kinds(ledger):
    seen = []

    def candidates(cutoff):
        seen.append(cutoff)
        return ExecutionEvent.objects.none()

    cleanup.register_target(cleanup.RetentionTarget("tests_raw", 180, candidates))
    try:
        [report] = cleanup.run_cleanup(kinds=["tests_raw"])
    finally:
        cleanup._targets.pop("tests_raw")
    assert report.days == 180
    assert report.deleted == 0
    assert timezone.now() - timedelta(days=181) < seen[0] < timezone.now() - timedelta(days=179)


def test_unknown_kind_is_refused(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown cleanup kinds"):
        call_command("spine_cleanup", "--kind", "nope", "--no-progress")


def test_raw_otc_rows_are_kept_180_days(db):
    from otc.models import RawBlock, RawCapture

    now = timezone.now()
    for n, age in enumerate((181, 200, 179, 1), start=1):
        capture = RawCapture.objects.create(
            source="file",
            source_name=f"otc-{n}.csv",
            tier="OTCE",
            venue_type="ats",
            week="2025-11-17",
            content_hash=f"h{n}",
            line_count=2,
            captured_at=now - timedelta(days=age),
        )
        for first in (1, 2):
            RawBlock.objects.create(
                capture=capture, first_line=first, line_count=1, data=b"%d.%d\n" % (n, first)
            )

    dry = cleanup.run_cleanup(kinds=["otc_raw", "otc_raw_captures"], dry_run=True)
    # A capture is deletable once its blocks are gone: a dry run does not delete them.
    assert [(r.days, r.candidates) for r in dry] == [(180, 4), (180, 0)]
    assert (RawCapture.objects.count(), RawBlock.objects.count()) == (4, 8)

    blocks, captures = cleanup.run_cleanup(kinds=["otc_raw", "otc_raw_captures"], batch_size=1_000)
    assert (blocks.deleted, captures.deleted) == (4, 2)
    assert blocks.batches == 1
    assert sorted(bytes(d) for d in RawBlock.objects.values_list("data", flat=True)) == [
        b"3.1\n",
        b"3.2\n",
        b"4.1\n",
        b"4.2\n",
    ]
    assert sorted(RawCapture.objects.values_list("source_name", flat=True)) == [
        "otc-3.csv",
        "otc-4.csv",
    ]


def test_raw_blocks_are_deleted_in_batches_of_at_most_a_hundred(db):
    from otc.models import RawBlock, RawCapture

    capture = RawCapture.objects.create(
        source="file",
        source_name="big.csv",
        tier="OTCE",
        venue_type="ats",
        week="2025-11-17",
        content_hash="h",
        line_count=250,
        captured_at=timezone.now() - timedelta(days=181),
    )
    RawBlock.objects.bulk_create(
        RawBlock(capture=capture, first_line=n, line_count=1, data=b"x\n") for n in range(1, 251)
    )

    [report] = cleanup.run_cleanup(kinds=["otc_raw"], batch_size=10_000)

    assert (report.deleted, report.batches, RawBlock.objects.count()) == (250, 3, 0)
