"""Trading days from the NYSE holiday calendar."""

from datetime import date

import pytest

from otc.calendar import expected_publication, monday_of, trading_days, weeks_between


@pytest.mark.parametrize(
    ("week", "days"),
    [
        (date(2025, 11, 17), 5),  # the sample week
        (date(2025, 11, 24), 4),  # Thanksgiving, Thursday 27th
        (date(2025, 12, 22), 4),  # Christmas
        (date(2025, 1, 6), 4),  # national day of mourning, Thursday 9th
        (date(2025, 4, 14), 4),  # Good Friday
    ],
)
def test_trading_days_follow_the_nyse_calendar(week, days):
    assert trading_days(week) == days


def test_weeks_and_publication():
    assert monday_of(date(2025, 11, 21)) == date(2025, 11, 17)
    assert expected_publication("OTCE", date(2025, 11, 17)) == date(2025, 12, 15)
    assert expected_publication("T1", date(2025, 11, 17)) == date(2025, 12, 1)
    assert weeks_between(date(2025, 1, 6), date(2025, 1, 20)) == [
        date(2025, 1, 6),
        date(2025, 1, 13),
        date(2025, 1, 20),
    ]
