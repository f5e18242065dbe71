"""Cleanup of 1M events: rows per second and the longest lock held (SPEC §11).

10,000 finished executions 60 days old with 100 events each. `executions.cleanup.run_cleanup`
deletes the events in its batches (each batch one transaction: the longest batch is the longest
any row lock is held); the baseline deletes the same rows with bare batched SQL of the same size.
"""

import contextlib
import os
import time

import pytest
from django.db import connection, transaction

from executions import cleanup
from tests.benchmarks.conftest import percentile

pytestmark = [pytest.mark.postgres]

EXECUTIONS = 10_000
EVENTS_EACH = int(os.environ.get("SPINE_BENCH_EVENTS_EACH", "100"))
BATCH = 1000

EXECUTIONS_SQL = """
INSERT INTO executions_execution (
    id, pipeline, params, lane, status, trigger_source, request_id, attempt, max_attempts,
    backend, backend_run_id, worker_id, cancel_reason, created_at, started_at, finished_at,
    result, error_type, error_message, error_traceback)
SELECT md5('old' || i)::uuid, 'diagnostics.noop', '{}'::jsonb, 'normal', 'completed', 'cli',
       'bench-old', 1, 1, 'dramatiq', '', '', '', now() - interval '60 days',
       now() - interval '60 days', now() - interval '60 days', '{}'::jsonb, '', '', ''
FROM generate_series(1, %s) AS i
"""
EVENTS_SQL = """
INSERT INTO executions_executionevent (
    at, kind, from_status, to_status, actor, source, reason, request_id, data, execution_id)
SELECT now() - interval '60 days' + make_interval(secs => j), 'bench', '', '', 'bench',
       'system', '', '', '{}'::jsonb, e.id
FROM executions_execution e CROSS JOIN generate_series(1, %s) AS j
WHERE e.request_id = 'bench-old'
"""
BARE_BATCH = """
DELETE FROM executions_executionevent WHERE id IN (
    SELECT id FROM executions_executionevent WHERE at < now() - interval '30 days'
    ORDER BY id LIMIT %s)
"""


def make_events() -> int:
    with connection.cursor() as cursor:
        cursor.execute(EVENTS_SQL, [EVENTS_EACH])
        cursor.execute("ANALYZE executions_executionevent")
        return EXECUTIONS * EVENTS_EACH


class TimedTransactions:
    """Stands in for `django.db.transaction` in `executions.cleanup`: times each atomic block."""

    def __init__(self):
        self.seconds: list[float] = []

    @contextlib.contextmanager
    def atomic(self, *args, **kwargs):
        started = time.perf_counter()
        with transaction.atomic(*args, **kwargs):
            yield
        self.seconds.append(time.perf_counter() - started)


def test_cleanup_of_a_million_events(transactional_db, postgres, bench, monkeypatch):
    with connection.cursor() as cursor:
        cursor.execute(EXECUTIONS_SQL, [EXECUTIONS])
    rows = make_events()

    timed = TimedTransactions()
    monkeypatch.setattr(cleanup, "transaction", timed)
    started = time.perf_counter()
    (report,) = cleanup.run_cleanup(kinds=["events"], batch_size=BATCH)
    spine_s = time.perf_counter() - started
    assert report.deleted == rows

    make_events()
    bare_batches = []
    started = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            batch_started = time.perf_counter()
            cursor.execute(BARE_BATCH, [BATCH])
            bare_batches.append(time.perf_counter() - batch_started)
            if cursor.rowcount == 0:
                break
    bare_s = time.perf_counter() - started

    bench.record(
        "cleanup of 1M events",
        rows / spine_s,
        "rows/s",
        "bare batched DELETE",
        rows / bare_s,
        rows=rows,
        batch_size=BATCH,
        batches=len(timed.seconds),
        seconds=round(spine_s, 1),
    )
    bench.record(
        "cleanup longest lock held (batch tx)",
        max(timed.seconds) * 1000,
        "ms",
        "bare batched DELETE longest",
        max(bare_batches) * 1000,
        "<= 1000 ms",
        p50_ms=round(percentile(timed.seconds, 50) * 1000, 2),
    )
