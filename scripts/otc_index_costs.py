"""What each of `otc_trades`' indexes costs a week's `COPY` on this server (issue 8).

    DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/spine \\
        .venv/bin/python scripts/profile_otc_ingest.py          # loads the week 2025-01-13, T2
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spine \\
        .venv/bin/python scripts/otc_index_costs.py [--history 4] [--runs 2]

Exports one loaded tier-week of `otc_trades` (binary `COPY … TO STDOUT`, to a scratch file), then
for each variant below creates a table `LIKE otc_trades` (its columns, collations, defaults and
identity), adds the variant's indexes, optionally fills it with `--history` earlier copies of
the week (the week moved back 7 days each), and times a binary `COPY` of the week into it, in
a transaction that is rolled back. Variants take turns, `--runs` rounds; the median is printed.
PostgreSQL's work alone: no parsing, landing or metrics, so "all four" is the floor of any
loader into this schema. `make bench` measures that floor too ("the schema's COPY floor").
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.benchmarks.otc_ingest_child import export_week, timed_copy  # noqa: E402

# The columns the loader copies (`otc.loader._TRADE_TYPES`), without loading Django for them.
COLUMNS = (
    "week, tier, symbol, issue_name, venue_mpid, venue_name, venue_type, shares, trades,"
    " publication_date"
)
COUNT = "SELECT count(*) FROM otc_trades WHERE week = %s AND tier = %s"
HISTORY = sql.SQL(
    "INSERT INTO costs ({}) SELECT week - 7 * n, tier, symbol, issue_name, venue_mpid, venue_name,"
    " venue_type, shares, trades, publication_date"
    " FROM otc_trades, generate_series(%s, 1, -1) AS n"
    " WHERE week = %s AND tier = %s ORDER BY n DESC, id"
).format(sql.SQL(COLUMNS))
PRIMARY_KEY = "ALTER TABLE costs ADD PRIMARY KEY (id)"
UNIQUE_KEY = "ALTER TABLE costs ADD UNIQUE (week, tier, symbol, venue_mpid, venue_type)"
SYMBOL = "CREATE INDEX ON costs (symbol, week)"
VENUE = "CREATE INDEX ON costs (venue_mpid, week)"
VARIANTS = {
    "no index": [],
    "primary key": [PRIMARY_KEY],
    "unique key": [UNIQUE_KEY],
    "symbol index": [SYMBOL],
    "venue index": [VENUE],
    "all four (otc_trades)": [PRIMARY_KEY, UNIQUE_KEY, SYMBOL, VENUE],
    "symbol-led key + BRIN week": [
        PRIMARY_KEY,
        "ALTER TABLE costs ADD UNIQUE (symbol, week, tier, venue_mpid, venue_type)",
        VENUE,
        "CREATE INDEX ON costs USING brin (week, tier, venue_type)",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--week", default="2025-01-13", help="the loaded week (2025-01-13)")
    parser.add_argument("--tier", default="T2", help="its tier (T2)")
    parser.add_argument("--history", type=int, default=0, help="earlier weeks in the table (0)")
    parser.add_argument("--runs", type=int, default=2, help="rounds of every variant (2)")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        parser.error("DATABASE_URL must name a PostgreSQL database")
    with psycopg.connect(url) as conn, tempfile.TemporaryDirectory() as scratch:
        rows = Path(scratch) / "week.copy"
        export_week(conn, COLUMNS, args.week, args.tier, rows)
        with conn.cursor() as cur:
            count = cur.execute(COUNT, [args.week, args.tier]).fetchone()[0]
        conn.commit()
        if not count:
            parser.error(f"otc_trades has no rows of {args.tier} {args.week}: load it first")
        print(f"{count:,} rows of {args.tier} {args.week}, {args.history} earlier weeks")

        seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for _ in range(args.runs):
            for name, ddl in VARIANTS.items():
                seconds[name].append(costs_copy(conn, rows, ddl, args))
                print(f"  {name:<28} {seconds[name][-1]:6.2f} s", flush=True)
        print("median of each:")
        for name, runs in seconds.items():
            print(f"  {name:<28} {statistics.median(runs):6.2f} s")


def costs_copy(conn: psycopg.Connection, rows: Path, ddl: list[str], args) -> float:
    """Seconds to copy the week into a table `costs` with `ddl`'s indexes (and any history)."""
    setup = [("CREATE TABLE costs (LIKE otc_trades INCLUDING DEFAULTS INCLUDING IDENTITY)", [])]
    setup += [(statement, []) for statement in ddl]
    if args.history:
        setup += [(HISTORY, [args.history, args.week, args.tier]), ("ANALYZE costs", [])]
    return timed_copy(conn, rows, "costs", COLUMNS, setup)


if __name__ == "__main__":
    main()
