"""`otc.totals.SymbolTotals`: each symbol's totals over its venues, from runs of parsed rows."""

from otc.totals import COLUMNS, SymbolTotals

# (symbol, mpid, venue name, shares, trades), as the positions below say
POSITIONS = {"symbol": 0, "mpid": 1, "venue_name": 2, "shares": 3, "trades": 4}


def totals_of(venue_type, *runs):
    totals = SymbolTotals(venue_type, **POSITIONS)
    for run in runs:
        totals.add(run)
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in totals.rows()}


def test_a_symbols_runs_add_up_and_the_top_venue_is_the_first_mpid_of_the_most_shares():
    # A file in another order than by symbol gives a symbol in several runs of lines.
    found = totals_of(
        "ats",
        [("TIE", "BBBB", "Bee", 500, 5), ("TIE", "CCCC", "Cee", 100, 1)],
        [("NIL", "XXXX", "Ex", 0, 0)],
        [("TIE", "AAAA", "Ay", 500, 7)],  # as many shares as BBBB, and the first MPID
        [("DUO", "QQQQ", "Cue", 10, 1), ("DUO", "PPPP", "Pea", 10, 1)],  # a tie within a run
    )

    assert found == {
        "TIE": {
            "symbol": "TIE",
            "total_shares": 1100,
            "total_trades": 13,
            "ats_shares": 1100,
            "venue_count": 3,
            "top_mpid": "AAAA",
            "top_name": "Ay",
            "top_shares": 500,
            "squares": 510_000,
            "both_types": False,
        },
        "NIL": {
            "symbol": "NIL",
            "total_shares": 0,
            "total_trades": 0,
            "ats_shares": 0,
            "venue_count": 1,
            "top_mpid": "XXXX",
            "top_name": "Ex",
            "top_shares": 0,
            "squares": 0,
            "both_types": False,
        },
        "DUO": {
            "symbol": "DUO",
            "total_shares": 20,
            "total_trades": 2,
            "ats_shares": 20,
            "venue_count": 2,
            "top_mpid": "PPPP",
            "top_name": "Pea",
            "top_shares": 10,
            "squares": 200,
            "both_types": False,
        },
    }


def test_a_later_run_with_fewer_shares_keeps_the_top_venue_and_non_ats_rows_have_no_ats_shares():
    found = totals_of(
        "non_ats",
        [("TWO", "EEEE", "Eee", 300, 3)],
        [("TWO", "DDDD", "Dee", 299, 2)],
    )

    assert (found["TWO"]["top_mpid"], found["TWO"]["top_shares"]) == ("EEEE", 300)
    assert (found["TWO"]["total_shares"], found["TWO"]["ats_shares"]) == (599, 0)


def test_squares_are_summed_exactly():
    # 2**53 + 1 is no double: reckoned in floats, the sum of squares would come out lower. The
    # SQL sums them exactly too (NUMERIC), so both give the same HHI (`otc.metrics`).
    shares = 2**53 + 1
    found = totals_of("ats", [("BIG", f"M{i}", "m", shares, 1) for i in range(3)])

    assert found["BIG"]["squares"] == 3 * shares * shares
    assert len(SymbolTotals("ats", **POSITIONS)) == 0
