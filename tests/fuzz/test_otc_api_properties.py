"""Property-based fuzzing of an ingest from the FINRA API: whatever JSON values a record's fields
hold (text with NUL or lone surrogates, numbers of any size or sign, floats, booleans, nulls),
each record is landed raw as a JSON line and is either a normalized row or a rejected row with a
reason, exactly as the Python parser alone says; no value fails the ingest as a whole.

The API client is replaced by a stub at the edge (the HTTP exchange has tests of its own in
tests/integration/otc/test_finra_api.py); the real `FinraApiSource` turns records into lines.
"""

import json

import pytest
from django.db import transaction
from hypothesis import event, given, settings
from hypothesis import strategies as st

from otc.connectors.finra_api import FinraApiSource
from otc.errors import NoValidRows
from otc.services import ingest_week
from tests.fuzz.strategies import WEEK, examples
from tests.integration.otc.conftest import lines_verdict, loaded_tables

pytestmark = pytest.mark.django_db

# Every code point, surrogates and NUL included (JSON carries them all), the awkward ones often.
_AWKWARD = st.sampled_from(["\x00", "\ud800", "\udfff", "|", "\n", "\r", "\t", " ", "\u00e9"])
# Joined by hand: `st.text` leaves lone surrogates out, whatever its alphabet.
_ANY_TEXT = st.lists(st.one_of(st.characters(blacklist_categories=()), _AWKWARD), max_size=30).map(
    "".join
)
_GOOD = {
    "tierIdentifier": st.just("OTCE"),
    "issueSymbolIdentifier": st.sampled_from(["AABB", "ZZZZ", "A.B"]),
    # Names are free text: any of it loads, unless no text column can hold it.
    "issueName": st.one_of(st.text(max_size=20), _ANY_TEXT),
    "marketParticipantName": st.one_of(st.text(max_size=20), _ANY_TEXT),
    "MPID": st.sampled_from(["OTCX", "NITE"]),
    "totalWeeklyShareQuantity": st.integers(0, 2**63 - 1),
    "totalWeeklyTradeCount": st.integers(0, 2**40),
    "lastUpdateDate": st.just("2025-12-15"),
}
_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    _ANY_TEXT,
)


@st.composite
def records(draw):
    """A few venue records, each field good or, now and then, any JSON value at all."""
    made = []
    for _ in range(draw(st.integers(1, 6))):
        record = {
            name: draw(st.one_of(good, _ANY_VALUE) if draw(st.integers(0, 3)) == 0 else good)
            for name, good in _GOOD.items()
        }
        wrong_type = draw(st.integers(0, 5)) == 0  # a symbol total: rejected, never added
        record["summaryTypeCode"] = "ATS_W_SMBL" if wrong_type else "ATS_W_SMBL_FIRM"
        made.append(record)
    return made


class StubClient:
    def __init__(self, records):
        self.records = records

    def weekly_summary(self, *, tier, week, summary_type):
        return iter(self.records)


@settings(max_examples=examples(60), deadline=None)
@given(generated=records())
def test_every_api_record_is_landed_and_loaded_or_rejected(generated):
    source = FinraApiSource(tier="OTCE", week=WEEK, venue_type="ats", client=StubClient(generated))
    trades, rejects = lines_verdict(source.lines(), tier="OTCE", week=WEEK)
    with transaction.atomic():
        try:
            result = ingest_week(
                tier="OTCE", week=WEEK, venue_type="ats", source="finra_api", connector=source
            )
        except NoValidRows:
            event("no valid rows")
            assert trades == []
            assert loaded_tables(tier="OTCE", week=WEEK) == ([], [], b"")
            transaction.set_rollback(True)
            return
        event("some rejected" if rejects else "none rejected")
        raw = b"".join(
            json.dumps(r, sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"
            for r in generated
        )
        assert loaded_tables(tier="OTCE", week=WEEK) == (trades, rejects, raw)
        assert (result["rows_read"], result["rows_loaded"], result["rows_rejected"]) == (
            len(generated),
            len(trades),
            len(rejects),
        )
        transaction.set_rollback(True)
