"""One measured ingest, run in its own process by `test_otc_ingest.py`; prints a JSON line.

Usage: python tests/benchmarks/otc_ingest_child.py FILE WEEK
"""

import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(path: str, week: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spine_project.settings")
    import django

    django.setup()
    from django.db import connection

    from otc.models import MetricsDaily, RawTrade, RejectedRow, Trade
    from otc.services import ingest_week

    # Raw landing ends when the statement putting the week's lines into otc_trades_raw returns.
    landed = {}

    def watch(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().startswith("INSERT INTO otc_trades_raw"):
            landed["at"] = time.perf_counter()
        return result

    monday = date.fromisoformat(week)
    for model in (RawTrade, Trade, MetricsDaily, RejectedRow):  # a fresh week every run
        model.objects.filter(tier="T2", week=monday).delete()
    if connection.vendor == "postgresql":
        # ... and no dead index entries of the previous run's rows for the inserts to step over
        # (autovacuum may be off, or not have got round to it yet).
        with connection.cursor() as cursor:
            for model in (RawTrade, Trade, MetricsDaily, RejectedRow):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")

    baseline = rss_kib()
    started = time.perf_counter()
    with connection.execute_wrapper(watch):
        result = ingest_week(tier="T2", week=monday, venue_type="ats", path=Path(path).name)
    seconds = time.perf_counter() - started
    landing_seconds = landed["at"] - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    copy_seconds = None
    if connection.vendor == "postgresql":  # the baseline of SPEC §11: a bare COPY of the file
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE bare (a text, b text, c text, d text, e text, f text, g text,"
                " h text)"
            )
        raw = connection.connection
        started = time.perf_counter()
        sql = "COPY bare FROM STDIN (FORMAT text, DELIMITER '|', HEADER)"
        with raw.cursor() as cur, open(path, "rb") as f, cur.copy(sql) as copy:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        copy_seconds = time.perf_counter() - started
        raw.rollback()

    print(
        json.dumps(
            {
                "rows_loaded": result["rows_loaded"],
                "metric_rows": result["metric_rows"],
                "seconds": round(seconds, 3),
                "landing_seconds": round(landing_seconds, 3),
                "baseline_rss_mib": round(baseline / 1024, 1),
                "peak_rss_mib": round(peak / 1024, 1),
                "bare_copy_seconds": round(copy_seconds, 3) if copy_seconds else None,
                "database": connection.vendor,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
