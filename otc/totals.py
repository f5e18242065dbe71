"""Each symbol's totals over its venues, reckoned from rows as they are parsed (no database).

`otc.metrics` turns a tier-week's totals per symbol into its metrics. It usually reads them from
`otc_trades` with SQL (one pass over every venue row of the week: 2 of the 7 s of a 1M-row
week, issue 8). When one source's rows are the tier-week's only rows (its first file, loaded
the fresh way), the loader reckons them here instead while it parses, on the Python core that
waits for PostgreSQL's index upkeep anyway, and the metrics skip that pass.

The rows of one source hold each symbol and MPID at most once (the loader sees to it), so a
venue is one row: its shares are the venue's volume.
"""

from collections.abc import Iterator, Sequence
from operator import itemgetter, mul

# What `SymbolTotals.rows` yields, in order: the columns of `otc.metrics`' totals table.
COLUMNS = (
    "symbol",
    "total_shares",
    "total_trades",
    "ats_shares",
    "venue_count",
    "top_mpid",
    "top_name",
    "top_shares",
    "squares",
    "both_types",
)


class SymbolTotals:
    """Totals per symbol of one venue type's rows, fed one symbol's run of rows at a time.

    `symbol`, `mpid`, `venue_name`, `shares` and `trades` are the positions of those values in
    the rows given to `add`.
    """

    def __init__(
        self, venue_type: str, *, symbol: int, mpid: int, venue_name: int, shares: int, trades: int
    ) -> None:
        self.ats = venue_type == "ats"
        self._symbol, self._mpid, self._venue_name, self._shares_at = (
            symbol,
            mpid,
            venue_name,
            shares,
        )
        self._shares, self._trades = itemgetter(shares), itemgetter(trades)
        # symbol -> [total shares, total trades, venues, top shares, top MPID, top name, squares]
        self._totals: dict[str, list] = {}

    def add(self, rows: Sequence[tuple]) -> None:
        """Count rows of one symbol: a run of consecutive lines (a file sorted by symbol gives
        one run per symbol; another order, several, which add up)."""
        shares = list(map(self._shares, rows))
        top = max(shares)
        mpid, at = self._mpid, self._shares_at
        top_row = min((row for row in rows if row[at] == top), key=itemgetter(mpid))
        symbol = rows[0][self._symbol]
        totals = self._totals.get(symbol)
        if totals is None:
            totals = self._totals[symbol] = [0, 0, 0, -1, "", "", 0]
        totals[0] += sum(shares)
        totals[1] += sum(map(self._trades, rows))
        totals[2] += len(rows)
        if top > totals[3] or (top == totals[3] and top_row[mpid] < totals[4]):
            totals[3:6] = top, top_row[mpid], top_row[self._venue_name]
        totals[6] += sum(map(mul, shares, shares))  # exact, as the SQL's NUMERIC sum

    def rows(self) -> Iterator[tuple]:
        """One row per symbol (`COLUMNS`); `both_types` is False: the rows are of one type."""
        for symbol, (shares, trades, venues, top, mpid, name, squares) in self._totals.items():
            ats = shares if self.ats else 0
            yield (symbol, shares, trades, ats, venues, mpid, name, top, squares, False)

    def __len__(self) -> int:
        return len(self._totals)
