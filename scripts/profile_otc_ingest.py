"""Time one OTC week's ingest by phase and by SQL statement: where the seconds of issue 8 go.

    DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/spine \\
        .venv/bin/python scripts/profile_otc_ingest.py --rows 1000000
    ... --explain    # also EXPLAIN (ANALYZE, BUFFERS, WAL) the two biggest statements

Writes the benchmark's synthetic NMS Tier 2 week (`tests/benchmarks/test_otc_ingest.py`: rows /
50 symbols at 50 venues each) to a temporary data directory, empties that week in the database
(and on PostgreSQL vacuums the OTC tables, as the benchmark does), runs `ingest_week` once, and
prints the phases (landing, normalizing, metrics and commit) and the slowest statements. Run
`manage.py migrate` on the database first. It changes the week 2025-01-13 of tier T2 only.

`--explain` runs each `INSERT INTO otc_trades` and metrics upsert once more, first, under
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
EXPLAINED = ("INSERT INTO otc_trades", "WITH venue AS")


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

    def marking(name, function):
        def wrapper(*a, **kw):
            result = function(*a, **kw)
            marks[name] = time.perf_counter()
            return result

        return wrapper

    loader.land_raw = marking("landed", loader.land_raw)
    loader.normalize = marking("normalized", loader.normalize)
    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        result = ingest_week(tier="T2", week=WEEK, venue_type="ats", path=path.name)
    total = time.perf_counter() - started
    path.unlink()
    data_dir.rmdir()

    print(f"{args.rows:,} rows on {connection.vendor}: {result['rows_loaded']:,} loaded")
    print(f"  landing               {marks['landed'] - started:7.2f} s")
    print(f"  normalizing           {marks['normalized'] - marks['landed']:7.2f} s")
    print(f"  metrics and commit    {started + total - marks['normalized']:7.2f} s")
    print(f"  total                 {total:7.2f} s")
    sql_seconds = sum(s for s, _ in statements)
    print(f"  through Django's cursor {sql_seconds:.2f} s in {len(statements)} statements")
    print("  (the COPYs go through psycopg directly and count with their phase only)")
    for seconds, sql in sorted(statements, reverse=True)[: args.top]:
        print(f"  {seconds:7.2f}  {sql[:100]}")


if __name__ == "__main__":
    main()
