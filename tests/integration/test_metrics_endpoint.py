"""`/metrics` in this process: the ledger gauges are read at scrape time and promtool accepts it."""

import shutil
import subprocess
from datetime import timedelta

from django.utils import timezone

from dlq.models import DeadLetter
from executions.models import Execution, Status
from spine_project.metrics import build_registry
from tests.conftest import missing_service


def test_ledger_gauges_are_read_at_scrape_time(client, make_execution):
    now = timezone.now()
    for _ in range(2):
        make_execution()  # pending, normal lane
    waiting = make_execution(lane="backfill")
    Execution.objects.filter(pk=waiting.pk).update(
        status=Status.QUEUED, not_before=now + timedelta(minutes=5)
    )
    oldest = make_execution()
    Execution.objects.filter(pk=oldest.pk).update(created_at=now - timedelta(minutes=10))
    dead = make_execution()
    Execution.objects.filter(pk=dead.pk).update(status=Status.DEAD_LETTERED)
    DeadLetter.objects.create(execution=dead, pipeline=dead.pipeline, reason="max_attempts")

    registry = build_registry()
    value = registry.get_sample_value
    assert value("spine_pending_executions", {"lane": "normal"}) == 3
    assert value("spine_pending_executions", {"lane": "backfill"}) == 1
    assert value("spine_active_executions", {"lane": "backfill", "status": "queued"}) == 1
    assert value("spine_dlq_unresolved") == 1
    assert 600 <= value("spine_oldest_pending_age_seconds", {"lane": "normal"}) < 660
    assert value("spine_oldest_pending_age_seconds", {"lane": "backfill"}) == 0  # not due yet
    assert value("spine_lane_paused", {"lane": "normal"}) == 0

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert 'spine_pending_executions{lane="normal"} 3.0' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_service("needs promtool (Debian package `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr


def test_a_scrape_answers_when_the_database_does_not(monkeypatch, db):
    def broken(*args, **kwargs):
        raise RuntimeError("database is down")

    monkeypatch.setattr("executions.models.Execution.objects.filter", broken)
    registry = build_registry()
    assert registry.get_sample_value("spine_pending_executions", {"lane": "normal"}) is None
    assert registry.get_sample_value("spine_dlq_unresolved") == 0
