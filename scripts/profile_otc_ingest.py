"""Time one OTC week's ingest by phase and by SQL statement: where the seconds of issue 8 go.

    DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/spine \\
        .venv/bin/python scripts/profile_otc_ingest.py --rows 1000000
    ... --explain    # also EXPLAIN (ANALYZE, BUFFERS, WAL) the two biggest statements

Writes the benchmark's synthetic NMS Tier 2 week (`tests/benchmarks/test_otc_ingest.py`: rows /
50 symbols at 50 venues each) to a temporary data directory, empties that week in the database
(and on PostgreSQL vacuums the OTC tables, as the benchmark does), runs `ingest_week` once, and
prints the phases (landing, normalizing, metrics and commit) and the slowest statements. Run
`manage.py migrate` on the database first. It changes the week 2025-01-13 of tier T2 only.

`--explain` runs each `INSERT INTO otc_trades`, the metrics' totals from `otc_trades` (not run
for a week's first file: the loader reckons them) and the metrics upsert once more, first, under
EXPLAIN ANALYZE inside a savepoint that is rolled back: the timings printed then include both.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEEK = date(2025, 1, 13)
EXPLAINED = ("INSERT INTO otc_trades", "WITH venue AS", "WITH previous AS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="data lines (1000000)")
    parser.add_argument("--top", type=int, default=10, help="statements to list (10)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the big two")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="spine-otc-profile-"))
    os.environ["SPINE_OTC_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("SPINE_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spine_project.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        name = connection.settings_dict["NAME"]
        sys.exit(f"{name}: migrations are pending; run manage.py migrate first")

    from otc import loader
    from otc.services import ingest_week
    from tests.benchmarks.otc_ingest_child import empty_week
    from tests.benchmarks.test_otc_ingest import write_week

    path = data_dir / "week.csv"
    write_week(path, args.rows)
    empty_week(WEEK)

    statements: list[tuple[float, str]] = []

    def timed(execute, sql, params, many, context):
        if args.explain and sql.lstrip().startswith(EXPLAINED):
            with context["connection"].cursor() as cursor:
                cursor.execute("SAVEPOINT profile_explain")
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, WAL) " + sql, params)
                print("\n".join(row[0] for row in cursor.fetchall()), end="\n\n")
                cursor.execute("ROLLBACK TO SAVEPOINT profile_explain")
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, " ".join(sql.split())))

    marks: dict[str, float] = {}
    cpu: dict[str, tuple[float, float]] = {}  # (this process, the PostgreSQL backend) CPU seconds

    def cpu_now() -> tuple[float, float]:
        backend = 0.0
        if connection.vendor == "postgresql" and backend_pid:  # the server on this machine
            stat = Path(f"/proc/{backend_pid}/stat")
            if stat.exists():
                fields = stat.read_text().rsplit(")", 1)[1].split()
                backend = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return time.process_time(), backend

    def marking(name, function):
        def wrapper(*a, **kw):
            result = function(*a, **kw)
            marks[name] = time.perf_counter()
            cpu[name] = cpu_now()
            return result

        return wrapper

    backend_pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend_pid = cursor.fetchone()[0]

    loader.land_raw = marking("landed", loader.land_raw)
    loader.normalize = marking("normalized", loader.normalize)
    started, cpu["started"] = time.perf_counter(), cpu_now()
    with connection.execute_wrapper(timed):
        result = ingest_week(tier="T2", week=WEEK, venue_type="ats", path=path.name)
    total, cpu["committed"] = time.perf_counter() - started, cpu_now()
    path.unlink()
    data_dir.rmdir()

    print(f"{args.rows:,} rows on {connection.vendor}: {result['rows_loaded']:,} loaded")
    phases = ("started", "landed", "normalized", "committed")
    names = ("landing", "normalizing", "metrics and commit")
    print(f"  {'phase':<20} {'wall s':>7} {'Python CPU s':>13} {'PostgreSQL CPU s':>17}")
    walls = {**marks, "started": started, "committed": started + total}
    for name, first, last in zip(names, phases[:-1], phases[1:], strict=True):
        python, server = (cpu[last][i] - cpu[first][i] for i in (0, 1))
        print(f"  {name:<20} {walls[last] - walls[first]:7.2f} {python:13.2f} {server:17.2f}")
    print(f"  {'total':<20} {total:7.2f}")
    print("  (PostgreSQL CPU: this connection's backend, read from /proc on this machine)")
    sql_seconds = sum(s for s, _ in statements)
    print(f"  through Django's cursor {sql_seconds:.2f} s in {len(statements)} statements")
    print("  (the COPYs go through psycopg directly and count with their phase only)")
    for seconds, sql in sorted(statements, reverse=True)[: args.top]:
        print(f"  {seconds:7.2f}  {sql[:100]}")


if __name__ == "__main__":
    main()
