"""Fixtures of the OTC tests: the sample file, a data directory, a pipeline run, a fake FINRA."""

import json
import shutil
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings

SAMPLE = Path(settings.BASE_DIR) / "data" / "otc_sample.csv"
SAMPLE_WEEK = "2025-11-17"


@pytest.fixture
def data_dir(tmp_path, settings):
    """A fresh OTC data directory holding a copy of the sample file."""
    settings.SPINE_OTC_DATA_DIR = tmp_path
    shutil.copy(SAMPLE, tmp_path / "otc_sample.csv")
    return tmp_path


@pytest.fixture
def run_pipeline(queued):
    """Dispatch, submit (recording backend) and run one execution in this thread."""
    from executions.runner import run_execution

    def run(pipeline, params, **kwargs):
        execution = queued(pipeline, params, **kwargs)
        run_execution(execution.id)
        execution.refresh_from_db()
        return execution

    return run


def table_snapshot():
    """Every row of the five OTC tables, in id order, all columns."""
    from otc.models import MetricsDaily, RawBlock, RawCapture, RejectedRow, Trade

    return {
        model._meta.db_table: list(model.objects.order_by("id").values_list())
        for model in (RawCapture, RawBlock, Trade, MetricsDaily, RejectedRow)
    }


class FakeFinra:
    """A local stand-in for FINRA's Query API `otcMarket/weeklySummary` on 127.0.0.1."""

    def __init__(self, records):
        self.records = records
        self.failures = deque()  # status codes answered (in order) before real answers
        self.always_fail = None  # a status code answered to every request while set
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                fake.requests.append((self.path, body))
                status = fake.always_fail or (fake.failures.popleft() if fake.failures else None)
                if status:
                    self._send(status, b'{"error": "unavailable"}')
                    return
                rows = [r for r in fake.records if _matches(r, body.get("compareFilters", []))]
                offset, limit = body.get("offset", 0), body.get("limit", 5000)
                self._send(200, json.dumps(rows[offset : offset + limit]).encode())

            def _send(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _matches(record, filters):
    return all(str(record.get(f["fieldName"])) == str(f["fieldValue"]) for f in filters)


def api_records(count, *, week=SAMPLE_WEEK, tier="OTCE", summary_type="ATS_W_SMBL_FIRM"):
    """`count` venue-level records as the FINRA API returns them."""
    return [
        {
            "tierIdentifier": tier,
            "tierDescription": "OTC",
            "issueSymbolIdentifier": f"SYM{i // 2:03d}",
            "issueName": f"Issue {i // 2}, Inc",
            "marketParticipantName": f"VENUE {i % 2}",
            "MPID": f"VEN{i % 2}",
            "totalWeeklyShareQuantity": 1000 * (i + 1),
            "totalWeeklyTradeCount": i + 1,
            "lastUpdateDate": "2025-12-15",
            "weekStartDate": week,
            "summaryTypeCode": summary_type,
        }
        for i in range(count)
    ]


def parser_verdict(data: bytes, *, tier: str, week, source_name: str = "week.csv"):
    """What an ingest of the file `data` must leave, worked out by the Python parser alone.

    (normalized rows as (symbol, mpid, issue, venue, shares, trades, published), sorted;
    rejects as (line number, reason, detail), sorted; the raw bytes, which are the file's):
    the oracle that the loader's SQL, on either database, is checked against.
    """
    import io

    from otc.parser import read_file

    lines = read_file(io.BytesIO(data), source_name)
    return (*lines_verdict(lines, tier=tier, week=week), data)  # every byte as received


def lines_verdict(lines, *, tier: str, week):
    """`parser_verdict`'s normalized rows and rejects, from source lines (any connector's)."""
    from otc.models import RejectReason
    from otc.parser import STAGE_COLUMNS, stage_rows

    rows = [
        dict(zip(STAGE_COLUMNS, row, strict=True))
        for row in stage_rows(lines, tier=tier, week=week)
    ]
    trades, rejects, seen = [], [], set()
    for r in rows:
        if r["reject_reason"] is not None:
            rejects.append((r["line_number"], r["reject_reason"], r["reject_detail"]))
        elif (r["symbol"], r["mpid"]) in seen:
            detail = "symbol and MPID appear more than once; the first line was loaded"
            rejects.append((r["line_number"], RejectReason.DUPLICATE.value, detail))
        else:
            seen.add((r["symbol"], r["mpid"]))
            trades.append(
                tuple(
                    r[c]
                    for c in (
                        "symbol",
                        "mpid",
                        "issue_name",
                        "venue_name",
                        "shares",
                        "trades",
                        "publication_date",
                    )
                )
            )
    return sorted(trades), sorted(rejects)


def loaded_tables(*, tier: str, week):
    """The tier-week's rows in the shape of `parser_verdict`."""
    from otc.models import RawBlock, RejectedRow, Trade

    trades = Trade.objects.filter(tier=tier, week=week).values_list(
        "symbol", "venue_mpid", "issue_name", "venue_name", "shares", "trades", "publication_date"
    )
    rejects = RejectedRow.objects.filter(tier=tier, week=week).values_list(
        "line_number", "reason", "detail"
    )
    blocks = RawBlock.objects.filter(capture__tier=tier, capture__week=week)
    ordered = blocks.order_by("capture_id", "first_line")
    raw = b"".join(bytes(data) for data in ordered.values_list("data", flat=True))
    return sorted(trades), sorted(rejects), raw
