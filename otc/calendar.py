"""Trading weeks: NYSE trading days (the `holidays` package's NYSE calendar) and publication lag."""

from datetime import date, timedelta

from executions.calendar import is_trading_day
from otc.models import Tier

# FINRA publishes Tier 1 weeks about 2 weeks after the week, Tier 2 and OTC about 4 (SPEC §5).
PUBLICATION_LAG = {
    Tier.T1: timedelta(weeks=2),
    Tier.T2: timedelta(weeks=4),
    Tier.OTCE: timedelta(weeks=4),
}


def trading_days(week: date) -> int:
    """How many NYSE trading days the week starting on Monday `week` has (0 to 5)."""
    return sum(is_trading_day(week + timedelta(days=i)) for i in range(5))


def monday_of(day: date) -> date:
    """The Monday of the week containing `day`."""
    return day - timedelta(days=day.weekday())


def expected_publication(tier: str, week: date) -> date:
    """When FINRA usually publishes the tier's data for the week starting `week`."""
    return week + PUBLICATION_LAG[Tier(tier)]


def weeks_between(first: date, last: date) -> list[date]:
    """The Mondays from `first` to `last`, both included."""
    return [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
