"""OTC services: ingest a week, recompute its metrics, fan a backfill out through the dispatcher.

The pipelines in `otc.pipelines` call these; so do the demo command and the tests.
"""

import functools
import pickle  # noqa: S403 - spools our own objects to a private temp file
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypedDict, TypeVar
from uuid import UUID

import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from executions import dispatcher
from executions.dispatcher import DispatchResult
from executions.errors import KeyBusy
from executions.models import TERMINAL_STATUSES, Execution, LaneName, TriggerSource
from otc import loader, metrics
from otc.calendar import weeks_between
from otc.connectors import Source, open_source
from otc.errors import BadSourceFile, NoValidRows, SourceChanged
from otc.parser import SourceLine, line_blocks

log = structlog.get_logger(__name__)

_CHECK_EVERY = 10_000  # lines between cancellation checks
_CHECK_BLOCKS = 40  # blocks of raw landing between them (about 10 MiB)
_T = TypeVar("_T")

# data/otc_sample.csv: FINRA's OTC-tier ATS file published 2025-12-15 (lastUpdateDate). OTC weeks
# are published about four weeks after the week, so it covers the week of Monday 2025-11-17.
SAMPLE_FILE = "otc_sample.csv"
SAMPLE_PARAMS = {"tier": "OTCE", "week": "2025-11-17", "venue_type": "ats", "path": SAMPLE_FILE}


class _WeekSource(TypedDict):
    """The arguments `loader.land_raw` and `loader.normalize` share for one ingest."""

    tier: str
    week: date
    venue_type: str
    source: str
    execution_id: UUID | None


def ingest_week(
    *,
    tier: str,
    week: date,
    venue_type: str,
    source: str = "file",
    path: str | None = None,
    execution_id: UUID | None = None,
    check_cancelled: Callable[[], None] | None = None,
    connector: Source | None = None,
) -> dict[str, Any]:
    """Land, normalize and compute metrics for one tier-week in one transaction; return counts.

    The source is read twice: once to land it raw (a file's own bytes, or else its lines), once
    to parse it (a remote source is fetched once, into a temporary spool, before the
    transaction opens).
    """
    connector = connector or open_source(
        tier=tier, week=week, venue_type=venue_type, source=source, path=path
    )
    lines: Callable[[], Iterable[SourceLine]] = connector.lines
    # A file source can change under us; its fingerprint tells (other sources have none).
    fingerprint: Callable[[], tuple] = getattr(connector, "fingerprint", tuple)
    if connector.kind != "file":
        # Fetch a remote source completely before the transaction opens: its paging, retries
        # and rate-limit waits must not hold a write transaction (and SQLite's database lock).
        lines = _Spool(connector.lines())
    # What raw landing stores: a file's own bytes, or else the source's lines.
    source_lines = lines
    blocks: Callable[[], Iterable[tuple[str, int, bytes]]] = getattr(
        connector, "blocks", lambda: line_blocks(source_lines())
    )
    if check_cancelled is not None:
        lines = functools.partial(_with_checks, lines, check_cancelled)
        blocks = functools.partial(_with_checks, blocks, check_cancelled, every=_CHECK_BLOCKS)
    common: _WeekSource = {
        "tier": tier,
        "week": week,
        "venue_type": venue_type,
        "source": connector.kind,
        "execution_id": execution_id,
    }
    with transaction.atomic():
        _lock_week(tier, week)
        read = fingerprint()
        changed = SourceChanged(
            f"{path}: the source changed while it was being ingested; nothing was kept, "
            "and the ingest is retried."
        )
        raw_lines_new = loader.land_raw(blocks(), **common, now=timezone.now())
        try:
            summary = loader.normalize(lines, **common)
        except BadSourceFile as exc:  # say, truncated since the first read
            if fingerprint() != read:
                raise changed from exc
            raise
        if fingerprint() != read:  # the raw lines and the parsed rows might disagree
            raise changed
        if summary.rows_loaded == 0:
            raise NoValidRows(
                f"No line of the source could be loaded ({summary.rows_read} read; rejected: "
                f"{_reasons(summary.rejected_by_reason)}); the week was left unchanged."
            )
        metric_rows = metrics.compute_week(tier, week, summary.totals)
    result = {
        "tier": tier,
        "week": week.isoformat(),
        "venue_type": venue_type,
        "source": connector.kind,
        "rows_read": summary.rows_read,
        "rows_loaded": summary.rows_loaded,
        "rows_rejected": summary.rows_rejected,
        "rejected_by_reason": summary.rejected_by_reason,
        "raw_lines_new": raw_lines_new,
        "trades_written": summary.trades_written,
        "trades_removed": summary.trades_removed,
        "metric_rows": metric_rows,
    }
    log.info("otc.week_ingested", **result)
    return result


def recompute_metrics(*, tier: str, week: date) -> dict[str, Any]:
    """Recompute a tier-week's metrics from the normalized rows."""
    with transaction.atomic():
        _lock_week(tier, week)
        rows = metrics.compute_week(tier, week)
    return {"tier": tier, "week": week.isoformat(), "metric_rows": rows}


def backfill(
    *,
    tier: str,
    first_week: date,
    last_week: date,
    venue_type: str,
    source: str,
    path_template: str | None,
    parent_id: UUID | None,
) -> dict[str, Any]:
    """Dispatch one `otc.ingest_week` per week into the backfill lane.

    The ingest's logical key (tier, week, venue type) deduplicates: a week whose ingest is still
    active is returned, not dispatched again, so submitting a backfill twice adds nothing.
    """
    parent = Execution.objects.get(pk=parent_id) if parent_id else None
    created: list[str] = []
    existing: list[str] = []
    for week in weeks_between(first_week, last_week):
        params: dict[str, Any] = {"tier": tier, "week": week.isoformat(), "venue_type": venue_type}
        if path_template:
            params["path"] = path_template.format(week=week.isoformat())
        else:
            params["source"] = source
        result = _dispatch_week(params, parent)
        (created if result.created else existing).append(str(result.execution.id))
    return {
        "weeks": len(created) + len(existing),
        "dispatched": len(created),
        "already_active": len(existing),
        "execution_ids": created + existing,
    }


def load_sample_week(*, wait_seconds: float = 120.0) -> Execution | None:
    """Dispatch `otc.ingest_week` for the sample file and wait for it to finish (the demo).

    Idempotent: a re-run re-ingests the same rows and leaves the tables as they were. Returns
    None when the sample is not in the data directory; the execution as it stands otherwise.
    """
    if not (Path(settings.SPINE_OTC_DATA_DIR) / SAMPLE_FILE).is_file():
        return None
    execution = dispatcher.dispatch(
        "otc.ingest_week", SAMPLE_PARAMS, trigger_source=TriggerSource.SYSTEM
    ).execution
    deadline = time.monotonic() + wait_seconds
    while execution.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(0.2)
        execution.refresh_from_db()
    return execution


def _dispatch_week(params: dict[str, Any], parent: Execution | None) -> DispatchResult:
    """Dispatch one week's ingest; the logical key returns the week's active ingest instead."""
    try:
        return _dispatch_ingest(params, parent)
    except KeyBusy:  # the active ingest finished between the insert and the lookup: try again
        return _dispatch_ingest(params, parent)


def _dispatch_ingest(params: dict[str, Any], parent: Execution | None) -> DispatchResult:
    # Keyed by the backfill's own root: when the backfill is retried (say after a 429 half-way)
    # the weeks it already dispatched come back as they are instead of running again.
    key = None
    if parent is not None:
        root = parent.root_id or parent.id
        key = f"otc.backfill:{root}:{params['tier']}:{params['venue_type']}:{params['week']}"
    return dispatcher.dispatch(
        "otc.ingest_week",
        params,
        lane=LaneName.BACKFILL,
        trigger_source=TriggerSource.SYSTEM,
        parent=parent,
        idempotency_key=key,
    )


def _lock_week(tier: str, week: date) -> None:
    """Serialize writers of one tier-week (its ATS and non-ATS ingests, a recompute).

    The metrics of a week read both venue types, so two concurrent ingests would each compute
    from a snapshot without the other's rows and the later upsert would win with stale totals.
    SQLite already serializes writers; PostgreSQL takes a transaction-scoped advisory lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"otc:{tier}:{week}"])


class _Spool:
    """A source's lines, read once into a temporary file (memory stays flat), replayed on call."""

    def __init__(self, lines: Iterable[SourceLine]):
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the spool
        self._count = 0
        for line in lines:
            pickle.dump(line, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._count += 1

    def __call__(self) -> Iterator[SourceLine]:
        self._file.seek(0)
        for _ in range(self._count):
            yield pickle.load(self._file)  # noqa: S301 - our own file, written above

    def __del__(self):
        self._file.close()


def _with_checks(
    items: Callable[[], Iterable[_T]], check: Callable[[], None], every: int | None = None
) -> Iterator[_T]:
    every = every or _CHECK_EVERY
    for n, item in enumerate(items(), start=1):
        if n % every == 0:
            check()
        yield item


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.items()) or "none"
