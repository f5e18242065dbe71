"""Land a week's source lines raw, then normalize them with `COPY` and set-based SQL (SPEC §5).

Two passes over the lines, in the ingest's transaction (a failure leaves every table as it was):

1. `land_raw`: each source (a file, one API dataset) becomes a capture in `otc_raw_captures`
   and its bytes, as received, blocks of whole lines in `otc_trades_raw`, streamed with a binary
   psycopg 3 `COPY` on PostgreSQL (inserts on SQLite). A source whose bytes hash like a capture
   already landed for the same tier, week, venue type and name is rolled back to a savepoint: it
   was landed before.
2. `normalize`, one of two ways:
   - fresh (PostgreSQL, a tier-week and venue type with no normalized rows yet: a new week):
     the parser's valid rows are copied straight into `otc_trades` as they are parsed, and its
     rejects (held in memory, at most `FRESH_REJECTS`) into `otc_rejected_rows` afterwards. A
     duplicate symbol and MPID (the unique constraint stops the `COPY`) or more rejects undo it
     to a savepoint, and the source is read again the staged way.
   - staged (SQLite, a week loaded before, or what the fresh way gave up): the parser's rows go
     into a temporary table; from there set-based statements mark duplicates, then bring the
     normalized venue-week rows in line with the source (rows it no longer has removed, changed
     values updated, new rows inserted) and so the rejected rows. Re-running a source changes
     nothing.

Where the time goes on PostgreSQL (1M lines, issue 8; the README's Performance section has the
measurements): the upkeep of `otc_trades`' four indexes, which the fresh way runs on
PostgreSQL's core while Python parses on the other (staged, the insert from the stage took
9 to 10 s of a 21 s week on the VM of 2026-12-05, after the parse; fresh, the whole
normalizing takes 4.3 s, the server bound). A week's first source, loaded the fresh way, also
reckons each symbol's totals for the metrics as it goes (`otc.totals`), so the metrics do not
read the week's rows again. Landing raw takes less than a bare `COPY` of the file, as blocks.
Plain inserts behind anti-joins replaced `ON CONFLICT`, and the stage is hash-joined rather
than indexed.
"""

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import groupby, islice
from operator import itemgetter
from uuid import UUID

import psycopg
import structlog
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef

from otc.models import RawBlock, RawCapture, RejectReason
from otc.parser import STAGE_COLUMNS, SourceLine, stage_rows
from otc.totals import SymbolTotals

log = structlog.get_logger(__name__)

_SQLITE_BATCH = 5_000
FRESH_REJECTS = 10_000  # rejects `_load_fresh` holds in memory; a source with more is staged
_WORK_MEM = "64MB"  # per sort or hash, for the ingest's transaction on PostgreSQL

# The staging table: the parser's rows (`STAGE_COLUMNS`), and these types.
_STAGE_TYPES = {
    "seq": "bigint",
    "source_name": "text",
    "line_number": "integer",
    "raw_line": "text",
    "symbol": "text",
    "issue_name": "text",
    "venue_name": "text",
    "mpid": "text",
    "shares": "bigint",
    "trades": "bigint",
    "publication_date": "date",
    "reject_reason": "text",
    "reject_detail": "text",
}
_STAGE_DDL = (
    "CREATE TEMP TABLE otc_stage ("
    + ", ".join(f"{column} {_STAGE_TYPES[column]}" for column in STAGE_COLUMNS)
    + "){on_commit}"
)

# The fresh way's `COPY`s: each table's columns and their types, its constants first, then the
# stage row's fields (`STAGE_COLUMNS`) picked by an itemgetter.
_TRADE_TYPES = {
    "week": "date",
    "tier": "text",
    "venue_type": "text",
    "symbol": "text",
    "issue_name": "text",
    "venue_mpid": "text",
    "venue_name": "text",
    "shares": "int8",
    "trades": "int8",
    "publication_date": "date",
}
_REJECT_TYPES = {
    "tier": "text",
    "week": "date",
    "venue_type": "text",
    "source": "text",
    "execution_id": "uuid",
    "source_name": "text",
    "line_number": "int4",
    "raw_line": "text",
    "reason": "text",
    "detail": "text",
}
_REASON, _SYMBOL, _MPID, _LINE = (
    STAGE_COLUMNS.index(c) for c in ("reject_reason", "symbol", "mpid", "line_number")
)
_TRADE_STAGE = (
    "symbol", "issue_name", "mpid", "venue_name", "shares", "trades", "publication_date"
)  # fmt: skip
_TRADE_FIELDS = itemgetter(*(STAGE_COLUMNS.index(c) for c in _TRADE_STAGE))
_REJECT_STAGE = ("source_name", "line_number", "raw_line", "reject_reason", "reject_detail")
_REJECT_FIELDS = itemgetter(*(STAGE_COLUMNS.index(c) for c in _REJECT_STAGE))
_REJECT_REASON = _REJECT_STAGE.index("reject_reason")
# Where a fresh way's row (`(week, tier, venue_type, *_TRADE_STAGE)`) has each stage field.
_TRADE_AT = {name: 3 + i for i, name in enumerate(_TRADE_STAGE)}

# Whether the tier-week has rows of this venue type, and whether it has any.
_HAS_TRADES = """
SELECT EXISTS (
    SELECT 1 FROM otc_trades
    WHERE week = %(week)s AND tier = %(tier)s AND venue_type = %(venue_type)s
), EXISTS (SELECT 1 FROM otc_trades WHERE week = %(week)s AND tier = %(tier)s)
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


class _TakeTheStagedWay(Exception):
    """Raised inside `_load_fresh`'s `COPY` to give it up for the staged way."""


@dataclass
class LoadSummary:
    """What one landing did: lines read, rows loaded, lines rejected by reason."""

    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    trades_written: int = 0
    trades_removed: int = 0
    # The loaded rows' totals per symbol, when they are the tier-week's only rows (`otc.totals`)
    totals: SymbolTotals | None = None

    @classmethod
    def of(cls, loaded: int, rejected: Counter) -> "LoadSummary":
        """A summary of `loaded` rows and the `rejected` lines counted by reason."""
        return cls(
            rows_read=loaded + sum(rejected.values()),
            rows_loaded=loaded,
            rows_rejected=sum(rejected.values()),
            rejected_by_reason=dict(sorted(rejected.items())),
        )


def land_raw(
    blocks: Iterable[tuple[str, int, bytes]],
    *,
    tier: str,
    week: date,
    venue_type: str,
    source: str,
    execution_id: UUID | None,
    now: datetime,
) -> int:
    """Land each source among `blocks` as a capture and its blocks; return the lines landed.

    `blocks` are `(source name, number of the first line, whole lines as received)`, a source's
    blocks together and in order (`otc.parser.read_blocks`, `otc.parser.line_blocks`). Must run
    inside a transaction. A source whose bytes match a capture already landed for the tier-week
    (same name, same `content_hash`, blocks still kept) is undone to a savepoint and counts 0.
    """
    landed = 0
    for source_name, group in groupby(blocks, key=itemgetter(0)):
        key = {"tier": tier, "week": week, "venue_type": venue_type, "source_name": source_name}
        savepoint = transaction.savepoint()
        capture = RawCapture.objects.create(
            **key,
            source=source,
            content_hash="",  # known once every block is in
            line_count=0,
            execution_id=execution_id,
            captured_at=now,
        )
        digest = hashlib.sha256()
        write = _copy_blocks if connection.vendor == "postgresql" else _insert_blocks
        count = write(_block_rows(capture.pk, group, digest))
        content_hash = digest.hexdigest()
        same = RawCapture.objects.filter(**key, content_hash=content_hash)
        if same.filter(Exists(RawBlock.objects.filter(capture=OuterRef("pk")))).exists():
            transaction.savepoint_rollback(savepoint)
            continue
        # A capture of the same content whose blocks retention already deleted gives way.
        same.delete()
        RawCapture.objects.filter(pk=capture.pk).update(content_hash=content_hash, line_count=count)
        transaction.savepoint_commit(savepoint)
        landed += count
    return landed


def normalize(
    lines: Callable[[], Iterable[SourceLine]],
    *,
    tier: str,
    week: date,
    venue_type: str,
    source: str,
    execution_id: UUID | None,
) -> LoadSummary:
    """Bring the tier-week's normalized rows and rejects in line with the source's lines.

    `lines` reads the source's lines (each call from the start). Must run inside a transaction.
    If no line is valid it returns (`rows_loaded` 0) before touching normalized rows and
    rejects: the caller must then roll back (`ingest_week` raises `NoValidRows`), so a wrong
    file never empties a loaded week.

    On PostgreSQL a tier-week and venue type with no normalized rows yet (a new week: the
    usual case) is loaded the fresh way first (`_load_fresh`); a source it cannot take, or any
    other, goes the staged way (`_load_staged`).
    """
    postgres = connection.vendor == "postgresql"
    params = _params(tier, week, venue_type, source, execution_id)
    plan_for_bulk()
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute(_HAS_TRADES, params)
            has_type, has_any = cursor.fetchone()
        if not has_type:
            reckon = None if has_any else _symbol_totals(params["venue_type"])
            if (summary := _load_fresh(lines(), tier, week, params, reckon)) is not None:
                return summary
    return _load_staged(lines(), tier, week, params, postgres)


def _load_fresh(
    lines: Iterable[SourceLine],
    tier: str,
    week: date,
    params: dict,
    totals: SymbolTotals | None = None,
) -> LoadSummary | None:
    """`COPY` the valid rows straight into `otc_trades`, while the parser reads them.

    For a tier-week and venue type without rows: no stage, no anti-join, and PostgreSQL keeps
    the table's indexes up to date on one core while Python parses on the other (issue 8: about
    a third off a 1M-line week). The rejects, at most `FRESH_REJECTS`, wait in memory and go in
    afterwards. A source with more rejects, or with a symbol and MPID twice, is undone to a
    savepoint and returns None: the staged way then marks the duplicates and keeps memory flat.
    A repeat within one symbol's run of lines (FINRA's files come sorted by symbol) is seen
    here at once; any other stops the `COPY` at its end (the unique constraint: the server
    says so only then, so the whole source has been parsed once for nothing). An error from
    reading the source (a cancellation, a truncated file) propagates as it is.

    `totals`, if given, reckons the loaded rows per symbol as they go (one symbol's run of
    lines at a time), for the metrics; the summary then carries it.
    """
    loaded = 0
    rejects: list[tuple] = []  # what otc_rejected_rows needs of each (`_REJECT_FIELDS`)
    venue_type = params["venue_type"]

    def trades() -> Iterator[tuple]:
        nonlocal loaded
        symbol: str | None = None  # the symbol of the current run of lines
        mpids: set[str] = set()  # and its venues so far
        run: list[tuple] = []  # and its rows, for `totals`
        for row in stage_rows(lines, tier=tier, week=week):
            if row[_REASON] is None:
                if row[_SYMBOL] != symbol:
                    if totals is not None and run:
                        totals.add(run)
                        run = []
                    symbol, mpids = row[_SYMBOL], set()
                elif row[_MPID] in mpids:
                    line = row[_LINE]
                    raise _TakeTheStagedWay(f"line {line} repeats a symbol and MPID")
                mpids.add(row[_MPID])
                loaded += 1
                trade = (week, tier, venue_type, *_TRADE_FIELDS(row))
                if totals is not None:
                    run.append(trade)
                yield trade
            else:
                rejects.append(_REJECT_FIELDS(row))
                if len(rejects) > FRESH_REJECTS:
                    raise _TakeTheStagedWay(f"more than {FRESH_REJECTS} rejected lines")
        if totals is not None and run:
            totals.add(run)

    try:
        with transaction.atomic():
            copy_rows("otc_trades", _TRADE_TYPES, trades())
    except (IntegrityError, _TakeTheStagedWay) as exc:
        duplicate = isinstance(exc.__cause__, psycopg.errors.UniqueViolation)
        if isinstance(exc, IntegrityError) and not duplicate:
            raise
        log.info("otc.fresh_load_undone", reason=str(exc).splitlines()[0], week=str(week))
        return None
    summary = LoadSummary.of(loaded, Counter(str(reject[_REJECT_REASON]) for reject in rejects))
    summary.trades_written, summary.totals = loaded, totals
    if loaded == 0:
        return summary
    with connection.cursor() as cursor:  # none of the week's trades, but maybe older rejects
        cursor.execute(_DELETE_REJECTS, params)
    if rejects:
        constants = (tier, week, venue_type, params["source"], params["execution_id"])
        copy_rows("otc_rejected_rows", _REJECT_TYPES, ((*constants, *r) for r in rejects))
    return summary


def _symbol_totals(venue_type: str) -> SymbolTotals:
    """Totals per symbol of the fresh way's rows."""
    at = _TRADE_AT
    return SymbolTotals(
        venue_type,
        symbol=at["symbol"],
        mpid=at["mpid"],
        venue_name=at["venue_name"],
        shares=at["shares"],
        trades=at["trades"],
    )


def _load_staged(
    lines: Iterable[SourceLine], tier: str, week: date, params: dict, postgres: bool
) -> LoadSummary:
    """Stage the lines, then upsert the tier-week's normalized rows and rejects from the stage."""
    rows = stage_rows(lines, tier=tier, week=week)
    distinct = "IS DISTINCT FROM" if postgres else "IS NOT"
    with connection.cursor() as cursor:
        drop_temporary(cursor, "otc_stage", postgres)
        cursor.execute(_STAGE_DDL.format(on_commit=" ON COMMIT DROP" if postgres else ""))
        if postgres:
            copy_rows("otc_stage", {c: _STAGE_TYPES[c] for c in STAGE_COLUMNS}, rows)
            # Statistics instead of indexes: PostgreSQL then hash-joins the stage, which costs
            # less than building two indexes over it (SQLite has no hash joins: it gets them).
            cursor.execute("ANALYZE otc_stage")
        else:
            _insert_stage(cursor, rows)
            cursor.execute("CREATE INDEX otc_stage_key ON otc_stage (symbol, mpid)")
            cursor.execute("CREATE INDEX otc_stage_line ON otc_stage (source_name, line_number)")
        cursor.execute(_MARK_DUPLICATES, {"reason": RejectReason.DUPLICATE.value})

        cursor.execute("SELECT reject_reason, COUNT(*) FROM otc_stage GROUP BY reject_reason")
        counts = Counter({reason: n for reason, n in cursor.fetchall()})
        summary = LoadSummary.of(counts.pop(None, 0), counts)
        if summary.rows_loaded == 0:
            drop_temporary(cursor, "otc_stage", postgres)
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
        drop_temporary(cursor, "otc_stage", postgres)
    return summary


def plan_for_bulk() -> None:
    """Settings for the rest of the transaction (an ingest's, a recompute's), on PostgreSQL."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # Sorts of a million rows (duplicates, the metrics) spilled to disk with the default
        # 4 MB.
        cursor.execute(f"SET LOCAL work_mem = '{_WORK_MEM}'")
        # No nested loops. A table that was empty when last analyzed (a new install, or a week
        # loaded since autovacuum last looked) is planned as empty, and the anti-joins then
        # rescan it once per staged line, including the rows the same statement is adding:
        # 100k lines into an empty database took 108 s instead of 2. Every statement of an
        # ingest is a bulk one, where hash joins are right.
        cursor.execute("SET LOCAL enable_nestloop = off")


def _block_rows(
    capture_id: int, blocks: Iterable[tuple[str, int, bytes]], digest
) -> Iterator[tuple[int, int, int, bytes]]:
    """`otc_trades_raw` rows of a capture's blocks; hashes the bytes into `digest` on the way."""
    for _, first_line, data in blocks:
        digest.update(data)
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        yield capture_id, first_line, lines, data


_BLOCK_TYPES = {"capture_id": "int8", "first_line": "int4", "line_count": "int4", "data": "bytea"}


def _copy_blocks(rows: Iterable[tuple[int, int, int, bytes]]) -> int:
    """`COPY` block rows into `otc_trades_raw` (binary: the bytes go as they are); count lines."""
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += row[2]
            yield row

    copy_rows("otc_trades_raw", _BLOCK_TYPES, counted())
    return count


def _insert_blocks(rows: Iterable[tuple[int, int, int, bytes]]) -> int:
    """The SQLite path of `_copy_blocks`: one insert per block (a few per MiB)."""
    count = 0
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute(
                "INSERT INTO otc_trades_raw (capture_id, first_line, line_count, data)"
                " VALUES (%s, %s, %s, %s)",
                row,
            )
            count += row[2]
    return count


def _params(tier, week, venue_type, source, execution_id) -> dict:
    """Query parameters prepared the way Django stores them on this database."""
    fields = {f.name: f for f in RawCapture._meta.concrete_fields}
    return {
        "tier": tier,
        "week": fields["week"].get_db_prep_value(week, connection),
        "venue_type": venue_type,
        "source": source,
        "execution_id": fields["execution_id"].get_db_prep_value(execution_id, connection),
    }


def drop_temporary(cursor, table: str, postgres: bool) -> None:
    """Drop this session's temporary `table`, if it has one.

    Qualified with the temporary schema, so a real table of that name is never touched.
    """
    cursor.execute(f"DROP TABLE IF EXISTS {'pg_temp' if postgres else 'temp'}.{table}")


def copy_rows(table: str, types: dict[str, str], rows: Iterable[tuple]) -> None:
    """Stream `rows` into `table`'s columns `types` with a binary `COPY` on Django's connection.

    Binary: on 1M rows psycopg formats them in half the time it takes to write them as text
    (2 s against 4 s on the issue 8 VM).
    """
    raw = connection.connection  # the psycopg 3 connection, inside Django's transaction
    sql = f"COPY {table} ({', '.join(types)}) FROM STDIN (FORMAT binary)"
    # psycopg's errors leave as Django's, and mark the connection for Django's checks.
    with connection.wrap_database_errors, raw.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(list(types.values()))
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
