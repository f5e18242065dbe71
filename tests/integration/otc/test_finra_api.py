"""The FINRA Query API connector against a fake FINRA on 127.0.0.1: paging, retries, breaker."""

import os
import subprocess
import sys
import time
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from prometheus_client import generate_latest

from executions.models import Status
from otc.connectors import circuit
from otc.connectors.finra_api import FinraApiClient, FinraApiSource
from otc.connectors.ratelimit import RateLimit
from otc.errors import SourceUnavailable
from otc.models import RejectedRow, Trade
from spine_project.metrics import build_registry
from tests.integration.otc.conftest import SAMPLE_WEEK, FakeFinra, api_records

API_PARAMS = {"tier": "OTCE", "week": SAMPLE_WEEK, "source": "finra_api"}


@pytest.fixture(autouse=True)
def fresh_breakers(monkeypatch, settings):
    """Each test starts with closed, process-local breakers and fast retries."""
    monkeypatch.setattr(circuit, "_breakers", {})
    monkeypatch.setattr(circuit, "_storages", {})
    settings.REDIS_URL = ""
    settings.SPINE_FINRA_RETRY_WAIT = 0.01
    settings.SPINE_FINRA_RATE_LIMIT = "1000/second"


@pytest.fixture
def shared_redis(redis_url, settings):
    """Breaker and rate-limit state in the test Redis; this test's keys are removed after."""
    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter("spine:circuit:test-*"):
        client.delete(key)


def test_the_ingest_pages_through_the_api(db, run_pipeline, settings):
    settings.SPINE_FINRA_PAGE_SIZE = 5
    with FakeFinra(api_records(12)) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        execution = run_pipeline("otc.ingest_week", API_PARAMS)

    assert execution.status == Status.COMPLETED, execution.error_message
    assert (execution.result["source"], execution.result["rows_loaded"]) == ("finra_api", 12)
    assert execution.result["metric_rows"] == 6
    assert [body["offset"] for _, body in fake.requests] == [0, 5, 10]
    path, body = fake.requests[0]
    assert path == "/data/group/otcMarket/name/weeklySummary"
    assert body["limit"] == 5
    assert {(f["fieldName"], f["fieldValue"]) for f in body["compareFilters"]} == {
        ("weekStartDate", "2025-11-17"),
        ("tierIdentifier", "OTCE"),
        ("summaryTypeCode", "ATS_W_SMBL_FIRM"),
    }
    assert Trade.objects.get(symbol="SYM000", venue_mpid="VEN1").shares == 2000


def test_the_api_records_land_raw_as_json_lines_once(db, run_pipeline, settings):
    import json

    from otc.models import RawBlock, RawCapture
    from otc.selectors import raw_lines

    records = api_records(12)
    with FakeFinra(records) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        first = run_pipeline("otc.ingest_week", API_PARAMS)
        again = run_pipeline("otc.ingest_week", API_PARAMS)

    assert (first.result["raw_lines_new"], again.result["raw_lines_new"]) == (12, 0)
    capture = RawCapture.objects.get()
    assert (capture.source, capture.line_count) == ("finra_api", 12)
    assert [(n, json.loads(text)) for n, text in raw_lines(capture)] == [
        (n, json.loads(json.dumps(r, default=str))) for n, r in enumerate(records, start=1)
    ]
    assert RawBlock.objects.count() == 1


@pytest.mark.parametrize(
    "name, escaped, detail",
    [
        ("Bad\u0000Name", "Bad\\u0000Name", "a field contains NUL characters"),
        ("Bad\ud800Name", "Bad\\ud800Name", "a field contains a lone surrogate"),
    ],
)
def test_a_record_no_text_column_can_hold_is_rejected_and_the_rest_loads(
    db, run_pipeline, settings, name, escaped, detail
):
    from otc.models import RejectedRow

    records = api_records(4)
    records[2]["issueName"] = name  # JSON can carry it; no text column can
    with FakeFinra(records) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        execution = run_pipeline("otc.ingest_week", API_PARAMS)

    assert execution.status == Status.COMPLETED, execution.error_message
    assert (execution.result["rows_loaded"], execution.result["rejected_by_reason"]) == (
        3,
        {"bad_encoding": 1},
    )
    reject = RejectedRow.objects.get()
    assert (reject.line_number, reject.detail) == (3, detail)
    assert escaped in reject.raw_line
    assert sorted(Trade.objects.values_list("shares", flat=True)) == [1000, 2000, 4000]


def test_a_503_is_retried_and_the_ingest_succeeds(db, run_pipeline, settings):
    with FakeFinra(api_records(4)) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        fake.failures.extend([503, 502])
        execution = run_pipeline("otc.ingest_week", API_PARAMS)

    assert execution.status == Status.COMPLETED, execution.error_message
    assert execution.result["rows_loaded"] == 4
    assert len(fake.requests) == 3  # two failures, then the page


def test_no_data_yet_is_not_published_yet(db, run_pipeline, settings):
    with FakeFinra([]) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        execution = run_pipeline("otc.ingest_week", API_PARAMS)

    # NotPublishedYet: retried (until the pipeline's deadline), not failed.
    assert execution.status == Status.QUEUED
    assert execution.error_type == "WeekNotPublished"
    assert "no ATS_W_SMBL_FIRM data for tier OTCE, week 2025-11-17 yet" in execution.error_message
    assert Trade.objects.count() == 0


def test_symbol_totals_are_never_added_to_venue_rows(db):
    records = api_records(2) + api_records(1, summary_type="ATS_W_SMBL")
    source = FinraApiSource(tier="OTCE", week=_week(), venue_type="ats", client=_Canned(records))
    lines = list(source.lines())
    assert [line.reject for line in lines[:2]] == [None, None]
    assert lines[2].reject[0] == "wrong_summary_type"


def test_the_circuit_opens_is_seen_open_by_another_process_and_closes_after_recovery(
    db, shared_redis
):
    source = f"test-{uuid.uuid4().hex[:8]}"
    breaker = circuit.breaker_for(source, fail_max=3, reset_timeout=1)
    with FakeFinra(api_records(4)) as fake:
        client = FinraApiClient(fake.url, retry_attempts=2, retry_wait=0.01, breaker=breaker)
        fake.always_fail = 503

        with pytest.raises(SourceUnavailable, match="failed 2 times"):
            list(client.weekly_summary(tier="OTCE", week=_week(), summary_type="ATS_W_SMBL_FIRM"))
        with pytest.raises(SourceUnavailable, match="circuit is open"):
            list(client.weekly_summary(tier="OTCE", week=_week(), summary_type="ATS_W_SMBL_FIRM"))
        assert len(fake.requests) == 3  # the third failure tripped the breaker
        assert circuit.circuit_state(source) == "open"
        assert (
            f'spine_circuit_state{{source="{source}"}} 2.0'
            in generate_latest(build_registry()).decode()
        )

        # Another process, sharing only Redis, sees the circuit open and sends nothing.
        seen = _other_process(source, fake.url, shared_redis)
        assert seen == "open refused"
        assert len(fake.requests) == 3

        fake.always_fail = None
        records = _poll_until_closed(client)

    assert len(records) == 4
    assert circuit.circuit_state(source) == "closed"
    assert _other_process(source, None, shared_redis) == "closed"
    assert (
        f'spine_circuit_state{{source="{source}"}} 0.0'
        in generate_latest(build_registry()).decode()
    )


def test_the_pipeline_retries_later_when_the_circuit_is_open(db, run_pipeline, settings):
    settings.SPINE_CIRCUIT_FAIL_MAX = 2
    with FakeFinra(api_records(4)) as fake:
        settings.SPINE_FINRA_API_URL = fake.url
        fake.always_fail = 500
        execution = run_pipeline("otc.ingest_week", API_PARAMS)

    assert execution.status == Status.QUEUED  # the ledger retries with backoff
    assert execution.error_type == "SourceUnavailable"
    assert circuit.circuit_state("finra_api") == "open"
    assert RejectedRow.objects.count() == 0


def test_the_rate_limit_is_shared_through_redis(shared_redis):
    source = f"test-{uuid.uuid4().hex[:8]}"
    first, second = RateLimit(source, "2/minute"), RateLimit(source, "2/minute")
    assert first.acquire() == 0.0
    assert second.acquire() == 0.0
    # Two calls used the window, whichever process made them: a third must wait.
    assert second.limiter.hit(second.item, "spine", source) is False
    assert first.limiter.test(first.item, "spine", source) is False
    slept = []
    third = RateLimit(source, "2/second")  # a different rate has its own window
    assert third.acquire(sleep=slept.append) == 0.0
    assert slept == []
    for key in shared_redis.scan_iter(f"*{source}*"):
        shared_redis.delete(key)


def test_the_rate_limit_waits_when_the_window_is_full(settings):
    limit = RateLimit(f"test-{uuid.uuid4().hex[:8]}", "1/second")
    slept = []
    limit.acquire(sleep=slept.append)
    real_sleep_then_record = lambda s: (slept.append(s), time.sleep(s))  # noqa: E731
    waited = limit.acquire(sleep=real_sleep_then_record)
    assert 0 < waited <= 1.5
    assert slept


# --- helpers -------------------------------------------------------------------------------------


def _week():
    from datetime import date

    return date.fromisoformat(SAMPLE_WEEK)


class _Canned:
    def __init__(self, records):
        self.records = records

    def weekly_summary(self, **kwargs):
        return iter(self.records)


def _poll_until_closed(client, timeout=10.0):
    """After `reset_timeout`, one trial call is let through (half-open) and closes the circuit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(
                client.weekly_summary(tier="OTCE", week=_week(), summary_type="ATS_W_SMBL_FIRM")
            )
        except SourceUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


_CHILD = """
import sys
import django
django.setup()
from otc.connectors import circuit
from otc.connectors.finra_api import FinraApiClient
from otc.errors import SourceUnavailable
source, url = sys.argv[1], sys.argv[2]
state = circuit.circuit_state(source)
if url == "-":
    print(state)
    sys.exit(0)
breaker = circuit.breaker_for(source, fail_max=3, reset_timeout=60)
client = FinraApiClient(url, retry_attempts=1, breaker=breaker)
try:
    from datetime import date
    list(client.weekly_summary(tier="OTCE", week=date(2025, 11, 17), summary_type="x"))
    print(state, "sent")
except SourceUnavailable as exc:
    print(state, "refused" if "circuit is open" in str(exc) else f"failed: {exc}")
"""


def _other_process(source, url, _redis):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "spine_project.settings",
        "DJANGO_DEBUG": "1",
        "REDIS_URL": django_settings.REDIS_URL,
        "SPINE_LOG_LEVEL": "ERROR",
    }
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, source, url or "-"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_an_unreachable_redis_shows_the_circuit_as_unknown(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    assert circuit.circuit_state("finra_api") == "unknown"
    assert (
        'spine_circuit_state{source="finra_api"}' not in generate_latest(build_registry()).decode()
    )
