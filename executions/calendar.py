"""The NYSE trading calendar (the `holidays` package's NYSE financial holidays).

One place for "is the market open on this day": the scheduler's trading-days-only schedules
and the OTC metrics' trading days per week both ask it.
"""

import functools
from datetime import date

import holidays


@functools.lru_cache(maxsize=64)
def _nyse_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays("NYSE", years=year))


def is_trading_day(day: date) -> bool:
    """A weekday on which the NYSE is open."""
    return day.weekday() < 5 and day not in _nyse_holidays(day.year)
