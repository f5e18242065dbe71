"""The FINRA Query API connector: `otcMarket/weeklySummary`, paged, guarded (SPEC §5).

Each request waits for the per-source rate limit, passes through the shared circuit breaker,
and is retried with exponential backoff and jitter (tenacity) on transient errors: connection
failures, timeouts, 429 and 5xx. When the retries run out or the circuit is open, the ingest
raises `SourceUnavailable` and the ledger retries it later. Only the venue-level summary type
(`*_SMBL_FIRM`) is loaded: FINRA's `*_SMBL` rows are per-symbol totals over the same venues.
"""

import json
from collections.abc import Iterator
from datetime import date

import httpx
import pybreaker
import structlog
import tenacity
from django.conf import settings

from otc.connectors.circuit import breaker_for
from otc.connectors.ratelimit import RateLimit
from otc.errors import RemoteRequestRejected, SourceUnavailable, WeekNotPublished
from otc.models import RejectReason, VenueType
from otc.parser import HEADER, TIER_DESCRIPTIONS, SourceLine

log = structlog.get_logger(__name__)

SOURCE = "finra_api"
DATASET = "otcMarket/weeklySummary"
SUMMARY_TYPES = {VenueType.ATS: "ATS_W_SMBL_FIRM", VenueType.NON_ATS: "OTC_W_SMBL_FIRM"}


class TransientHTTPError(Exception):
    """A response worth retrying: 429 or 5xx."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"HTTP {status_code}: {body[:200]}")
        self.status_code = status_code


class RequestRejected(Exception):
    """A 4xx other than 429: the request itself is wrong; it does not count against the breaker."""


_TRANSIENT = (httpx.TransportError, TransientHTTPError)


class FinraApiClient:
    """Pages through one dataset of the FINRA Query API."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        page_size: int | None = None,
        timeout: float | None = None,
        retry_attempts: int | None = None,
        retry_wait: float | None = None,
        breaker: pybreaker.CircuitBreaker | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.base_url = (base_url or settings.SPINE_FINRA_API_URL).rstrip("/")
        self.page_size = page_size or settings.SPINE_FINRA_PAGE_SIZE
        self.timeout = timeout or settings.SPINE_FINRA_TIMEOUT_SECONDS
        self.retry_attempts = retry_attempts or settings.SPINE_FINRA_RETRY_ATTEMPTS
        self.retry_wait = retry_wait if retry_wait is not None else settings.SPINE_FINRA_RETRY_WAIT
        self.breaker = breaker or breaker_for(SOURCE, exclude=(RequestRejected,))
        self.rate_limit = rate_limit or RateLimit(SOURCE, settings.SPINE_FINRA_RATE_LIMIT)

    def weekly_summary(self, *, tier: str, week: date, summary_type: str) -> Iterator[dict]:
        """Every record of the tier-week and summary type, one page in memory at a time."""
        filters = [
            {"compareType": "EQUAL", "fieldName": "weekStartDate", "fieldValue": week.isoformat()},
            {"compareType": "EQUAL", "fieldName": "tierIdentifier", "fieldValue": tier},
            {"compareType": "EQUAL", "fieldName": "summaryTypeCode", "fieldValue": summary_type},
        ]
        offset = 0
        with httpx.Client(timeout=self.timeout, headers={"Accept": "application/json"}) as http:
            while True:
                body = {
                    "compareFilters": filters,
                    "sortFields": ["issueSymbolIdentifier", "MPID"],
                    "limit": self.page_size,
                    "offset": offset,
                }
                page = self._request(http, body)
                yield from page
                if len(page) < self.page_size:
                    return
                offset += self.page_size

    def _request(self, http: httpx.Client, body: dict) -> list[dict]:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry_attempts),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.retry_wait, jitter=self.retry_wait, max=30
            ),
            retry=tenacity.retry_if_exception_type(_TRANSIENT),
            before_sleep=lambda state: log.warning(
                "finra_api.retry",
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else "",
            ),
            reraise=True,
        )
        try:
            return retrying(self._guarded_post, http, body)
        except pybreaker.CircuitBreakerError as exc:
            raise SourceUnavailable(f"FINRA API circuit is open: {exc}") from exc
        except _TRANSIENT as exc:
            raise SourceUnavailable(
                f"FINRA API failed {self.retry_attempts} times: {type(exc).__name__}: {exc}"
            ) from exc
        except RequestRejected as exc:
            raise RemoteRequestRejected(f"FINRA API rejected the request: {exc}") from exc

    def _guarded_post(self, http: httpx.Client, body: dict) -> list[dict]:
        self.rate_limit.acquire()
        return self.breaker.call(self._post, http, body)

    def _post(self, http: httpx.Client, body: dict) -> list[dict]:
        response = http.post(f"{self.base_url}/data/group/otcMarket/name/weeklySummary", json=body)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientHTTPError(response.status_code, response.text)
        if response.status_code == 204 or not response.content.strip():
            return []
        if response.status_code >= 400:
            raise RequestRejected(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            records = response.json()
        except ValueError as exc:
            raise TransientHTTPError(response.status_code, f"not JSON: {exc}") from exc
        if not isinstance(records, list):
            raise RequestRejected(f"expected a JSON list, got {type(records).__name__}")
        return records


class FinraApiSource:
    """The venue-level weekly summary of one tier-week and venue type, as source lines."""

    kind = SOURCE

    def __init__(
        self, *, tier: str, week: date, venue_type: str, client: FinraApiClient | None = None
    ) -> None:
        self.tier = tier
        self.week = week
        self.summary_type = SUMMARY_TYPES[VenueType(venue_type)]
        self.client = client or FinraApiClient()

    def lines(self) -> Iterator[SourceLine]:
        count = 0
        records = self.client.weekly_summary(
            tier=self.tier, week=self.week, summary_type=self.summary_type
        )
        for count, record in enumerate(records, start=1):  # noqa: B007 - count is used below
            yield self._line(count, record)
        if count == 0:
            raise WeekNotPublished(
                f"FINRA has no {self.summary_type} data for tier {self.tier}, week {self.week} yet."
            )

    def _line(self, number: int, record: dict) -> SourceLine:
        raw = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()
        summary_type = record.get("summaryTypeCode")
        if summary_type not in (None, self.summary_type):
            return SourceLine(
                DATASET,
                number,
                raw,
                reject=(
                    RejectReason.WRONG_SUMMARY_TYPE,
                    f"summaryTypeCode {summary_type!r}: only {self.summary_type} venue rows are "
                    "loaded (symbol totals would count the volume twice)",
                ),
            )
        values = dict(record)
        if record.get("tierIdentifier") in TIER_DESCRIPTIONS:
            values["tierDescription"] = TIER_DESCRIPTIONS[record["tierIdentifier"]]
        return SourceLine(DATASET, number, raw, fields=[_text(values.get(c)) for c in HEADER])


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
