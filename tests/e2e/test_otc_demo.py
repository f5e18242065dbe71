"""`make run`'s set-up on an empty embedded database: the sample week loads through the pipeline.

Runs `spine_demo --no-serve` in a fresh process on its own SQLite file, so the SQLite landing
path is exercised even where the suite itself runs on PostgreSQL.
"""

import os
import sqlite3
import subprocess
import sys

import pytest
from django.conf import settings


def _demo(env):
    result = subprocess.run(
        [sys.executable, "manage.py", "spine_demo", "--no-serve"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_the_demo_loads_the_sample_week_and_a_rerun_changes_nothing(tmp_path):
    database = tmp_path / "demo.sqlite3"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SPINE_BROKER_URL", "SPINE_BACKEND", "REDIS_URL", "SPINE_OTC_DATA_DIR")
    }
    env.update(DATABASE_URL=f"sqlite:///{database}", DJANGO_DEBUG="1", SPINE_LOG_LEVEL="WARNING")

    first = _demo(env)
    assert "OTC sample week 2025-11-17 (OTCE): 5328 rows, 3111 symbols" in first
    with sqlite3.connect(database) as db:
        snapshot = {
            table: db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608
            for table in ("otc_trades", "otc_metrics_daily", "otc_trades_raw")
        }
        symbols = db.execute("SELECT COUNT(DISTINCT symbol) FROM otc_trades").fetchone()[0]
    assert (len(snapshot["otc_trades"]), len(snapshot["otc_metrics_daily"]), symbols) == (
        5328,
        3111,
        3111,
    )

    second = _demo(env)
    assert "5328 rows, 3111 symbols" in second
    with sqlite3.connect(database) as db:
        for table, rows in snapshot.items():
            assert db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall() == rows  # noqa: S608
        executions = db.execute(
            "SELECT status, COUNT(*) FROM executions_execution GROUP BY status"
        ).fetchall()
    assert executions == [("completed", 2)]
