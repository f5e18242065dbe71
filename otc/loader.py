"""Land a week's source lines and normalize them with set-based SQL (SPEC §5).

Every line goes into a temporary staging table first: PostgreSQL with psycopg 3 `COPY`, SQLite
with batched inserts (slower, same result). From there set-based statements do the work, in
this order: raw lines are appended (only those not landed before), duplicates are marked, then
normalized venue-week rows are brought in line with the file (rows it no longer has removed,
changed values updated, new rows inserted) and so are rejected rows. Re-running a file changes
nothing. Run inside the caller's transaction: a failure leaves every table as it was.

Where the time goes on PostgreSQL (1M lines, issue 8): parsing in Python and the COPY into the
stage are a minority; most of it is inserting into `otc_trades_raw` and `otc_trades`, each
with four indexes and WAL, and the metrics. Plain inserts behind anti-joins replaced
`ON CONFLICT` there, and the stage is hash-joined rather than indexed.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from uuid import UUID

from django.db import connection

from otc.models import RawTrade, RejectReason
from otc.parser import STAGE_COLUMNS, SourceLine, stage_rows

_SQLITE_BATCH = 5_000
_WORK_MEM = "64MB"  # per sort or hash, for the ingest's transaction on PostgreSQL

_STAGE_DDL = """
CREATE TEMP TABLE otc_stage (
    seq bigint, source_name text, line_number integer, line_hash text, raw_line text,
    symbol text, issue_name text, venue_name text, mpid text, shares bigint, trades bigint,
    publication_date date, reject_reason text, reject_detail text
){on_commit}
"""

_MARK_DUPLICATES = """
UPDATE otc_stage
SET reject_reason = %(reason)s,
    reject_detail = 'symbol and MPID appear more than once; the first line was loaded'
WHERE seq IN (
    SELECT seq FROM (
        SELECT seq, ROW_NUMBER() OVER (PARTITION BY symbol, mpid ORDER BY seq) AS n
        FROM otc_stage WHERE reject_reason IS NULL
    ) ranked
    WHERE n > 1
)
"""

# Plain inserts with an anti-join, not `ON CONFLICT`: every writer of a tier-week holds its
# advisory lock (`otc.services._lock_week`), so no other transaction can add these keys meanwhile,
# and PostgreSQL's speculative insertion cost more than a third of the landing on 1M lines. The
# unique constraints stay, as the guard they were.
_LAND_RAW = """
INSERT INTO otc_trades_raw (tier, week, venue_type, source, source_name, line_number, line_hash,
                            raw_line, execution_id, captured_at)
SELECT %(tier)s, %(week)s, %(venue_type)s, %(source)s, s.source_name, s.line_number, s.line_hash,
       s.raw_line, %(execution_id)s, %(now)s
FROM otc_stage s
WHERE NOT EXISTS (
    SELECT 1 FROM otc_trades_raw r
    WHERE r.tier = %(tier)s AND r.week = %(week)s AND r.venue_type = %(venue_type)s
      AND r.source_name = s.source_name AND r.line_number = s.line_number
      AND r.line_hash = s.line_hash
)
"""

# Stale rows go first, so that a fresh week's anti-joins below look at no rows of the week.
_DELETE_STALE_TRADES = """
DELETE FROM otc_trades
WHERE week = %(week)s AND tier = %(tier)s AND venue_type = %(venue_type)s
  AND NOT EXISTS (
    SELECT 1 FROM otc_stage s
    WHERE s.reject_reason IS NULL AND s.symbol = otc_trades.symbol
      AND s.mpid = otc_trades.venue_mpid
  )
"""

_UPDATE_TRADES = """
UPDATE otc_trades SET
    issue_name = s.issue_name, venue_name = s.venue_name, shares = s.shares, trades = s.trades,
    publication_date = s.publication_date
FROM otc_stage s
WHERE s.reject_reason IS NULL
  AND otc_trades.week = %(week)s AND otc_trades.tier = %(tier)s
  AND otc_trades.venue_type = %(venue_type)s
  AND otc_trades.symbol = s.symbol AND otc_trades.venue_mpid = s.mpid
  AND (otc_trades.issue_name {distinct} s.issue_name
       OR otc_trades.venue_name {distinct} s.venue_name
       OR otc_trades.shares {distinct} s.shares
       OR otc_trades.trades {distinct} s.trades
       OR otc_trades.publication_date {distinct} s.publication_date)
"""

_INSERT_TRADES = """
INSERT INTO otc_trades (week, tier, symbol, issue_name, venue_mpid, venue_name, venue_type,
                        shares, trades, publication_date)
SELECT %(week)s, %(tier)s, s.symbol, s.issue_name, s.mpid, s.venue_name, %(venue_type)s,
       s.shares, s.trades, s.publication_date
FROM otc_stage s
WHERE s.reject_reason IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM otc_trades t
    WHERE t.week = %(week)s AND t.tier = %(tier)s AND t.venue_type = %(venue_type)s
      AND t.symbol = s.symbol AND t.venue_mpid = s.mpid
  )
"""

_UPSERT_REJECTS = """
INSERT INTO otc_rejected_rows (tier, week, venue_type, source, source_name, line_number, reason,
                               detail, raw_line, execution_id)
SELECT %(tier)s, %(week)s, %(venue_type)s, %(source)s, source_name, line_number, reject_reason,
       reject_detail, raw_line, %(execution_id)s
FROM otc_stage WHERE reject_reason IS NOT NULL
ON CONFLICT (tier, week, venue_type, source_name, line_number) DO UPDATE SET
    source = excluded.source, reason = excluded.reason, detail = excluded.detail,
    raw_line = excluded.raw_line, execution_id = excluded.execution_id
WHERE otc_rejected_rows.reason {distinct} excluded.reason
   OR otc_rejected_rows.detail {distinct} excluded.detail
   OR otc_rejected_rows.raw_line {distinct} excluded.raw_line
   OR otc_rejected_rows.source {distinct} excluded.source
"""

_DELETE_REJECTS = """
DELETE FROM otc_rejected_rows
WHERE week = %(week)s AND tier = %(tier)s AND venue_type = %(venue_type)s
"""

_DELETE_STALE_REJECTS = """
DELETE FROM otc_rejected_rows
WHERE week = %(week)s AND tier = %(tier)s AND venue_type = %(venue_type)s
  AND NOT EXISTS (
    SELECT 1 FROM otc_stage s
    WHERE s.reject_reason IS NOT NULL AND s.source_name = otc_rejected_rows.source_name
      AND s.line_number = otc_rejected_rows.line_number
  )
"""


@dataclass
class LoadSummary:
    """What one landing did: lines read, rows loaded, lines rejected by reason."""

    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    raw_lines_new: int = 0
    trades_written: int = 0
    trades_removed: int = 0


def land_and_normalize(
    lines: Iterable[SourceLine],
    *,
    tier: str,
    week: date,
    venue_type: str,
    source: str,
    execution_id: UUID | None,
    now: datetime,
) -> LoadSummary:
    """Stage `lines`, then land raw lines, upsert normalized rows and rejects for the tier-week.

    Must run inside a transaction. If no line is valid it returns (`rows_loaded` 0) before
    touching normalized rows and rejects, having landed only raw lines: the caller must then
    roll back (`ingest_week` raises `NoValidRows`), so a wrong file never empties a loaded week.
    """
    postgres = connection.vendor == "postgresql"
    rows = stage_rows(lines, tier=tier, week=week)
    params = _params(tier, week, venue_type, source, execution_id, now)
    distinct = "IS DISTINCT FROM" if postgres else "IS NOT"
    with connection.cursor() as cursor:
        if postgres:
            # Sorts of a million rows (duplicates here, the metrics after us in the same
            # transaction) spilled to disk with the default 4 MB; this lasts to the commit.
            cursor.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
            # No nested loops, to the commit. A table that was empty when last analyzed (a new
            # install, or a week loaded since autovacuum last looked) is planned as empty, and
            # the anti-joins below then rescan it once per staged line, including the rows this
            # very statement is adding: 100k lines into an empty database took 108 s instead
            # of 2. Every statement of an ingest is a bulk one, where hash joins are right.
            cursor.execute("SET LOCAL enable_nestloop = off")
        _drop_stage(cursor, postgres)
        cursor.execute(_STAGE_DDL.format(on_commit=" ON COMMIT DROP" if postgres else ""))
        if postgres:
            _copy_stage(rows)
            # Statistics instead of indexes: PostgreSQL then hash-joins the stage, which costs
            # less than building two indexes over it (SQLite has no hash joins: it gets them).
            cursor.execute("ANALYZE otc_stage")
        else:
            _insert_stage(cursor, rows)
            cursor.execute("CREATE INDEX otc_stage_key ON otc_stage (symbol, mpid)")
            cursor.execute("CREATE INDEX otc_stage_line ON otc_stage (source_name, line_number)")
        # Raw lines are landed first, valid or not. When no line is valid the caller rolls the
        # transaction back (`ingest_week` raises `NoValidRows` inside it), so they go again.
        cursor.execute(_LAND_RAW, params)
        raw_lines_new = cursor.rowcount
        cursor.execute(_MARK_DUPLICATES, {"reason": RejectReason.DUPLICATE.value})

        cursor.execute("SELECT reject_reason, COUNT(*) FROM otc_stage GROUP BY reject_reason")
        counts = Counter({reason: n for reason, n in cursor.fetchall()})
        summary = LoadSummary(
            rows_read=sum(counts.values()),
            rows_loaded=counts.pop(None, 0),
            rows_rejected=sum(counts.values()),
            rejected_by_reason=dict(sorted(counts.items())),
            raw_lines_new=raw_lines_new,
        )
        if summary.rows_loaded == 0:
            _drop_stage(cursor, postgres)
            return summary

        cursor.execute(_DELETE_STALE_TRADES, params)
        summary.trades_removed = cursor.rowcount
        cursor.execute(_UPDATE_TRADES.format(distinct=distinct), params)
        summary.trades_written = cursor.rowcount
        cursor.execute(_INSERT_TRADES, params)
        summary.trades_written += cursor.rowcount
        if summary.rows_rejected:
            cursor.execute(_UPSERT_REJECTS.format(distinct=distinct), params)
            cursor.execute(_DELETE_STALE_REJECTS, params)
        else:  # nothing rejected this time: no need to read the stage for it
            cursor.execute(_DELETE_REJECTS, params)
        _drop_stage(cursor, postgres)
    return summary


def _params(tier, week, venue_type, source, execution_id, now) -> dict:
    """Query parameters prepared the way Django stores them on this database."""
    fields = {f.name: f for f in RawTrade._meta.get_fields()}
    return {
        "tier": tier,
        "week": fields["week"].get_db_prep_value(week, connection),
        "venue_type": venue_type,
        "source": source,
        "execution_id": fields["execution_id"].get_db_prep_value(execution_id, connection),
        "now": fields["captured_at"].get_db_prep_value(now, connection),
    }


def _drop_stage(cursor, postgres: bool) -> None:
    # Qualified with the temporary schema so a real table of that name is never touched.
    cursor.execute(f"DROP TABLE IF EXISTS {'pg_temp' if postgres else 'temp'}.otc_stage")


def _copy_stage(rows) -> None:
    """Stream rows into the staging table with `COPY` on Django's own psycopg connection."""
    raw = connection.connection  # the psycopg 3 connection, inside Django's transaction
    columns = ", ".join(STAGE_COLUMNS)
    with raw.cursor() as cur, cur.copy(f"COPY otc_stage ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_stage(cursor, rows) -> None:
    """The SQLite path: executemany in batches (dates as ISO text, as Django stores them)."""
    columns, values = ", ".join(STAGE_COLUMNS), ", ".join(["%s"] * len(STAGE_COLUMNS))
    sql = f"INSERT INTO otc_stage ({columns}) VALUES ({values})"  # noqa: S608 - constant names
    date_at = STAGE_COLUMNS.index("publication_date")
    rows = iter(rows)
    while batch := list(islice(rows, _SQLITE_BATCH)):
        for i, row in enumerate(batch):
            if row[date_at] is not None:
                batch[i] = (*row[:date_at], row[date_at].isoformat(), *row[date_at + 1 :])
        cursor.executemany(sql, batch)
