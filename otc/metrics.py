"""Domain metrics per symbol, tier and week, computed with set-based SQL from each symbol's totals.

The totals (per symbol: volume, trades, venues, the top venue, the sum of squared venue volumes)
come from `otc_trades` by SQL, or from the loader, which reckons them as it parses when its rows
are the tier-week's first (`otc.totals`); the statement that turns them into metrics is the same.

(Prometheus metrics of the OTC connectors live in `otc.connectors.circuit`.)

Volumes are normalized per NYSE trading day of the week (`otc.calendar`). Venue concentration is
the Herfindahl-Hirschman index over each venue's share of the symbol's weekly volume, on the usual
0-10,000 scale. `ats_share` needs both the ATS and the non-ATS file of the week; without them it
stays empty rather than claiming 100 %. Upserts make a recompute idempotent; symbols that left
the week lose their row; the next week's week-over-week change is refreshed too.
"""

from datetime import date, timedelta

from django.db import connection

from otc import totals
from otc.calendar import trading_days
from otc.loader import copy_rows, drop_temporary, plan_for_bulk
from otc.models import MetricsDaily

# Each symbol's totals over the tier-week's venues (`otc.totals.COLUMNS`), read from `otc_trades`:
# one pass over the week's rows, in the order of the unique index (symbol, then venue): venue
# totals, each symbol's top volume (a window over rows already in symbol order: no sort), then
# one row per symbol. Issue 8: ranking the venues by volume with ROW_NUMBER() sorted every venue
# row and took two windows: 4.0 s of a 1M-row week, against 2.3 s now (or nothing, when the
# loader reckoned the totals as it parsed: `otc.totals`). Freshly loaded rows have no
# statistics yet, so PostgreSQL plans them as a few rows: `loader.plan_for_bulk` rules out the
# nested loops that made such plans quadratic.
_TOTALS_TABLE = """
CREATE TEMP TABLE otc_symbol_totals (
    symbol TEXT, total_shares BIGINT, total_trades BIGINT, ats_shares BIGINT,
    venue_count INTEGER, top_mpid TEXT, top_name TEXT, top_shares BIGINT,
    squares {exact}, both_types BOOLEAN
)
"""
# Per database: the type the squared volumes are summed in, and HHI from their sum. PostgreSQL
# sums them exactly (NUMERIC), as the loader's totals do (Python integers), so both ways give
# the same HHI to the last bit (summed as doubles, a recompute of a loaded week changed the HHI
# of 23 of 50 symbols of 10^7 to 3 x 10^8 shares a venue: a helper's review, issue 8), and one
# venue exactly 10,000. SQLite has no exact type that large, and its totals always come from
# the SQL: it sums doubles and divides before it scales (one venue: 10,000 too).
_SQUARES = {
    "postgresql": (
        "NUMERIC",
        "CAST(s.squares * 10000 / (CAST(s.total_shares AS NUMERIC) * s.total_shares)"
        " AS DOUBLE PRECISION)",
    ),
    "sqlite": (
        "DOUBLE PRECISION",
        "s.squares / (CAST(s.total_shares AS DOUBLE PRECISION) * s.total_shares) * 10000",
    ),
}
_TOTALS_TYPES = dict(
    zip(
        totals.COLUMNS,
        ("text", "int8", "int8", "int8", "int4", "text", "text", "int8", "numeric", "bool"),
        strict=True,
    )
)

_TOTALS_FROM_TRADES = """
WITH venue AS (
    SELECT symbol, venue_mpid, MAX(venue_name) AS venue_name,
           SUM(shares) AS shares, SUM(trades) AS trades,
           SUM(CASE WHEN venue_type = 'ats' THEN shares ELSE 0 END) AS ats_shares,
           MAX(CASE WHEN venue_type = 'ats' THEN 1 ELSE 0 END) AS has_ats,
           MAX(CASE WHEN venue_type = 'ats' THEN 0 ELSE 1 END) AS has_non_ats
    FROM otc_trades WHERE week = %(week)s AND tier = %(tier)s
    GROUP BY symbol, venue_mpid
), topped AS (
    SELECT venue.*, MAX(shares) OVER (PARTITION BY symbol) AS top_shares FROM venue
), named AS (
    -- The top venue: the most shares, and of venues with as many, the first MPID.
    SELECT topped.*,
           MIN(venue_mpid) FILTER (WHERE shares = top_shares) OVER (PARTITION BY symbol)
               AS top_mpid
    FROM topped
), sym AS (
    -- Grouped by symbol alone (the window values are the same on each of its rows), so the
    -- rows arrive in group order: grouping by them too re-sorted every venue row on disk.
    -- HHI is the sum of the squared venue shares (in per cent): sum(shares^2) * 10^4 / total^2.
    SELECT symbol, SUM(shares) AS total_shares, SUM(trades) AS total_trades,
           SUM(ats_shares) AS ats_shares, COUNT(*) AS venue_count,
           MAX(top_mpid) AS top_mpid,
           MAX(CASE WHEN venue_mpid = top_mpid THEN venue_name END) AS top_name,
           MAX(top_shares) AS top_shares,
           SUM(CAST(shares AS {exact}) * shares) AS squares,
           MAX(has_ats) AS has_ats, MAX(has_non_ats) AS has_non_ats
    FROM named
    GROUP BY symbol
)
INSERT INTO otc_symbol_totals (
    symbol, total_shares, total_trades, ats_shares, venue_count, top_mpid, top_name,
    top_shares, squares, both_types
)
-- ATS share only where the week has both ATS and non-ATS rows (both files were loaded).
SELECT symbol, total_shares, total_trades, ats_shares, venue_count, top_mpid, top_name,
       top_shares, squares, MAX(has_ats) OVER () + MAX(has_non_ats) OVER () = 2
FROM sym
"""

_UPSERT_METRICS = """
WITH previous AS MATERIALIZED (
    -- Read once, before the first row goes in. As a subquery per symbol it was planned as a
    -- scan of the whole table (planned as empty when last analyzed small), rescanned for each
    -- symbol while this statement made it longer: 5 s of a 1M-row week's 11 (issue 8).
    SELECT symbol, total_shares FROM otc_metrics_daily
    WHERE week = %(previous)s AND tier = %(tier)s
)
INSERT INTO otc_metrics_daily (
    week, tier, symbol, total_shares, total_trades, trading_days, avg_daily_shares,
    avg_daily_trades, avg_trade_size, venue_count, top_venue_mpid, top_venue_name,
    top_venue_share, hhi, ats_shares, ats_share, wow_change
)
SELECT %(week)s, %(tier)s, s.symbol, s.total_shares, s.total_trades, %(days)s,
       CASE WHEN %(days)s > 0 THEN s.total_shares * 1.0 / %(days)s END,
       CASE WHEN %(days)s > 0 THEN s.total_trades * 1.0 / %(days)s END,
       CASE WHEN s.total_trades > 0 THEN s.total_shares * 1.0 / s.total_trades END,
       s.venue_count, s.top_mpid, s.top_name,
       CASE WHEN s.total_shares > 0 THEN s.top_shares * 1.0 / s.total_shares END,
       CASE WHEN s.total_shares > 0 THEN {hhi} END,
       s.ats_shares,
       CASE WHEN s.both_types AND s.total_shares > 0
            THEN s.ats_shares * 1.0 / s.total_shares END,
       CASE WHEN p.total_shares > 0
            THEN (s.total_shares - p.total_shares) * 1.0 / p.total_shares END
FROM otc_symbol_totals s LEFT JOIN previous p ON p.symbol = s.symbol
WHERE true
ON CONFLICT (week, tier, symbol) DO UPDATE SET
    total_shares = excluded.total_shares, total_trades = excluded.total_trades,
    trading_days = excluded.trading_days, avg_daily_shares = excluded.avg_daily_shares,
    avg_daily_trades = excluded.avg_daily_trades, avg_trade_size = excluded.avg_trade_size,
    venue_count = excluded.venue_count, top_venue_mpid = excluded.top_venue_mpid,
    top_venue_name = excluded.top_venue_name, top_venue_share = excluded.top_venue_share,
    hhi = excluded.hhi, ats_shares = excluded.ats_shares, ats_share = excluded.ats_share,
    wow_change = excluded.wow_change
"""

# Symbols that left the week: not among the totals (which hold every symbol with trades).
_DELETE_GONE = """
DELETE FROM otc_metrics_daily
WHERE week = %(week)s AND tier = %(tier)s
  AND symbol NOT IN (SELECT symbol FROM otc_symbol_totals)
"""

# A join, not a subquery per row, for the reason given at `previous` above. The target's own
# week and tier let it read the next week through the index, not the whole table.
_REFRESH_NEXT_WOW = """
UPDATE otc_metrics_daily SET wow_change = changed.wow_change
FROM (
    SELECT n.id, CASE WHEN p.total_shares > 0
                      THEN (n.total_shares - p.total_shares) * 1.0 / p.total_shares END
                 AS wow_change
    FROM otc_metrics_daily n
    LEFT JOIN otc_metrics_daily p
        ON p.week = %(week)s AND p.tier = %(tier)s AND p.symbol = n.symbol
    WHERE n.week = %(next)s AND n.tier = %(tier)s
) changed
WHERE otc_metrics_daily.week = %(next)s AND otc_metrics_daily.tier = %(tier)s
  AND otc_metrics_daily.id = changed.id
"""


def compute_week(tier: str, week: date, reckoned: totals.SymbolTotals | None = None) -> int:
    """Recompute the metrics of every symbol of the tier-week; return how many rows it has.

    `reckoned`: the totals of the tier-week's rows, if the caller has them (the loader, when
    the rows it just loaded are the week's only ones); else, and on SQLite, they are read from
    `otc_trades`.
    """
    prep = MetricsDaily._meta.get_field("week").get_db_prep_value
    params = {
        "tier": tier,
        "week": prep(week, connection),
        "previous": prep(week - timedelta(weeks=1), connection),
        "next": prep(week + timedelta(weeks=1), connection),
        "days": trading_days(week),
    }
    postgres = connection.vendor == "postgresql"
    exact, hhi = _SQUARES[connection.vendor]
    plan_for_bulk()
    with connection.cursor() as cursor:
        drop_temporary(cursor, "otc_symbol_totals", postgres)
        table = _TOTALS_TABLE.format(exact=exact)
        cursor.execute(table + (" ON COMMIT DROP" if postgres else ""))
        if reckoned is not None and postgres:
            copy_rows("otc_symbol_totals", _TOTALS_TYPES, reckoned.rows())
        else:  # SQLite's squares are doubles (`_SQUARES`): it reads its totals from the rows
            cursor.execute(_TOTALS_FROM_TRADES.format(exact=exact), params)
        if postgres:  # a few thousand rows: statistics for the join to `previous`
            cursor.execute("ANALYZE otc_symbol_totals")
        cursor.execute(_DELETE_GONE, params)
        cursor.execute(_UPSERT_METRICS.format(hhi=hhi), params)
        cursor.execute(_REFRESH_NEXT_WOW, params)
        drop_temporary(cursor, "otc_symbol_totals", postgres)
    return MetricsDaily.objects.filter(tier=tier, week=week).count()
