"""One measured ingest, run in its own process by `test_otc_ingest.py`; prints a JSON line.

Usage: python tests/benchmarks/otc_ingest_child.py FILE WEEK [floor]

With `floor` (PostgreSQL only) it also times the schema's COPY floor (`schema_floor`).
"""

import json
import os
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

BASELINE_RUNS = 5  # bare COPYs of each kind; the median is the baseline
FLOOR_RUNS = 3  # COPYs of the week's normalized rows into a copy of otc_trades
bare_copies: list[list[float]] = []  # each kind's runs, for the JSON


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(path: str, week: str, floor: str = "") -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spine_project.settings")
    import django

    django.setup()
    from django.db import connection

    from otc import loader
    from otc.services import ingest_week

    # Raw landing ends when `land_raw` returns: the week's lines are in otc_trades_raw. The
    # normalizing follows until `normalize` returns, then the metrics and the commit.
    ends: dict[str, float] = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            result = function(*args, **kwargs)
            ends[name] = time.perf_counter()
            return result

        return wrapper

    loader.land_raw = timed("landed", loader.land_raw)
    loader.normalize = timed("normalized", loader.normalize)

    monday = date.fromisoformat(week)
    empty_week(monday)

    baseline = rss_kib()
    started = time.perf_counter()
    result = ingest_week(tier="T2", week=monday, venue_type="ats", path=Path(path).name)
    seconds = time.perf_counter() - started
    landing_seconds = ends["landed"] - started
    phases = {  # where the end-to-end seconds went
        "landing": round(landing_seconds, 3),
        "normalizing": round(ends["normalized"] - ends["landed"], 3),
        "metrics_and_commit": round(started + seconds - ends["normalized"], 3),
    }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    copy_seconds = logged_copy_seconds = floor_seconds = None
    floor_runs: list[float] = []
    if connection.vendor == "postgresql" and floor:
        # First, before the baselines' ten COPYs add their own pages for the server to write out.
        floor_seconds, floor_runs = schema_floor(
            connection.connection, monday, "T2", Path(path).with_suffix(".floor")
        )
    if connection.vendor == "postgresql":
        # The baseline of SPEC §11: a bare COPY of the file into an unindexed temporary table
        # (no WAL). For context, the same into a logged table, as a durable landing needs.
        copy_seconds = median_of(
            BASELINE_RUNS, bare_copy, connection.connection, path, "TEMP TABLE"
        )
        logged_copy_seconds = median_of(
            BASELINE_RUNS, bare_copy, connection.connection, path, "TABLE"
        )

    print(
        json.dumps(
            {
                "rows_loaded": result["rows_loaded"],
                "metric_rows": result["metric_rows"],
                "seconds": round(seconds, 3),
                "landing_seconds": round(landing_seconds, 3),
                "phase_seconds": phases,
                "baseline_rss_mib": round(baseline / 1024, 1),
                "peak_rss_mib": round(peak / 1024, 1),
                "bare_copy_seconds": round(copy_seconds, 3) if copy_seconds else None,
                "bare_logged_copy_seconds": (
                    round(logged_copy_seconds, 3) if logged_copy_seconds else None
                ),
                "bare_copy_runs": bare_copies,  # temporary table, then logged table
                "schema_floor_seconds": round(floor_seconds, 3) if floor_seconds else None,
                "schema_floor_runs": floor_runs,
                "database": connection.vendor,
            }
        )
    )


def empty_week(monday: date, tier: str = "T2") -> None:
    """A fresh week every run: the tier-week's OTC rows deleted (and the tables vacuumed)."""
    from django.db import connection

    from otc.models import MetricsDaily, RawBlock, RawCapture, RejectedRow, Trade

    week_blocks = RawBlock.objects.filter(capture__tier=tier, capture__week=monday)
    week_blocks._raw_delete(week_blocks.db)
    for model in (RawCapture, Trade, MetricsDaily, RejectedRow):
        model.objects.filter(tier=tier, week=monday).delete()
    if connection.vendor == "postgresql":
        # ... and no dead index entries of the previous run's rows for the inserts to step over
        # (autovacuum may be off, or not have got round to it yet).
        with connection.cursor() as cursor:
            for model in (RawCapture, RawBlock, Trade, MetricsDaily, RejectedRow):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def median_of(runs: int, measure, *args) -> float:
    """The median of `runs` calls of `measure(*args)`.

    One bare `COPY` straight after the ingest took anywhere from 0.75 to 1.3 s on the 2-core VM
    of 2026-12-05 (the server still writing out the ingest's pages), which moved the ratio by
    as much as the work on the ingest did.
    """
    seconds = [measure(*args) for _ in range(runs)]
    bare_copies.append([round(s, 3) for s in seconds])
    return statistics.median(seconds)


def bare_copy(raw, path: str, kind: str) -> float:
    """Seconds to COPY the file into a new unindexed `kind` of eight text columns (rolled back)."""
    with raw.transaction(force_rollback=True), raw.cursor() as cur:
        cur.execute(
            f"CREATE {kind} bench_bare (a text, b text, c text, d text, e text, f text, g text,"
            " h text)"
        )
        started = time.perf_counter()
        sql = "COPY bench_bare FROM STDIN (FORMAT text, DELIMITER '|', HEADER)"
        with open(path, "rb") as f, cur.copy(sql) as copy:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        return time.perf_counter() - started


def schema_floor(raw, monday: date, tier: str, scratch_file: Path) -> tuple[float, list[float]]:
    """PostgreSQL's own seconds for the week's rows in `otc_trades`' schema: (median, runs).

    The tier-week's normalized rows are exported, then `FLOOR_RUNS` times copied in the
    loader's binary format into a new table made `LIKE otc_trades INCLUDING ALL` (its columns,
    collations, identity and four indexes, kept up row by row; WAL-logged, as on any server
    whose `wal_level` is above `minimal`), each in a transaction that is rolled back, after a
    `CHECKPOINT` where the role may run one. One `COPY` into an empty copy of the table, with
    no parsing, landing or metrics: what the schema alone costs the server for these rows, which
    the loader's normalizing can at best match (issue 8).
    """
    from otc.loader import _TRADE_TYPES

    columns = ", ".join(_TRADE_TYPES)
    runs: list[float] = []
    try:
        export_week(raw, columns, monday, tier, scratch_file)
        for _ in range(FLOOR_RUNS):
            checkpoint(raw)
            create = ("CREATE TABLE bench_floor (LIKE otc_trades INCLUDING ALL)", [])
            runs.append(round(timed_copy(raw, scratch_file, "bench_floor", columns, [create]), 3))
    finally:
        scratch_file.unlink(missing_ok=True)
    return statistics.median(runs), runs


def export_week(raw, columns: str, monday: date, tier: str, scratch_file: Path) -> None:
    """Write the tier-week's `columns` of `otc_trades` to `scratch_file`, as a binary `COPY`."""
    export = (
        f"COPY (SELECT {columns} FROM otc_trades WHERE week = %s AND tier = %s ORDER BY id)"
        " TO STDOUT (FORMAT binary)"
    )
    with (
        raw.cursor() as cur,
        scratch_file.open("wb") as f,
        cur.copy(export, [monday, tier]) as copy,
    ):
        for chunk in copy:
            f.write(chunk)


def timed_copy(raw, scratch_file: Path, table: str, columns: str, setup) -> float:
    """Seconds to `COPY` `scratch_file` (from `export_week`) into `table`'s `columns`, once the
    `setup` statements (`(sql, params)` pairs, which make `table`) have run; all rolled back."""
    with raw.transaction(force_rollback=True), raw.cursor() as cur:
        for statement, params in setup:
            cur.execute(statement, params)
        started = time.perf_counter()
        sql = f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
        with scratch_file.open("rb") as f, cur.copy(sql) as copy:
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        return time.perf_counter() - started


def checkpoint(raw) -> None:
    """`CHECKPOINT`, so a run does not pay for writing out what came before it, if allowed."""
    import psycopg

    try:
        with raw.transaction(), raw.cursor() as cur:
            cur.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        pass


if __name__ == "__main__":
    main(*sys.argv[1:4])
