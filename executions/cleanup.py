"""Retention: delete ledger rows (and other apps' rows) past their kind's retention, in batches.

Kinds register a `RetentionTarget` (the ledger registers `events` and `executions` here; the OTC
app registers its raw rows), and apps may register conditions under which an execution must be
kept (the dlq app keeps executions with an unresolved dead letter), so `executions` never
imports them. Whatever the conditions, an active execution and the latest execution of each
logical key are never deleted.

Each batch is one short transaction that re-checks the conditions, so no lock is held long and
a row that stopped qualifying between the count and the delete survives.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from executions.models import TERMINAL_STATUSES, CleanupStat, Execution, ExecutionEvent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetentionTarget:
    """One kind of row with a retention period: `candidates(cutoff)` are the deletable rows."""

    kind: str
    default_days: int
    candidates: Callable[[datetime], QuerySet]
    description: str = ""
    max_batch: int | None = None  # rows per batch at most, for large rows (such as raw blocks)


@dataclass
class KindReport:
    """What cleanup found (and deleted, unless a dry run) for one kind."""

    kind: str
    days: int
    cutoff: datetime
    candidates: int
    deleted: int = 0
    batches: int = 0
    cascaded: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


_targets: dict[str, RetentionTarget] = {}
_keep_conditions: list[Callable[[], Any]] = []


def register_target(target: RetentionTarget) -> None:
    """Add (or replace, by kind) a retention target."""
    _targets[target.kind] = target


def keep_executions(condition: Callable[[], Any]) -> None:
    """Register `condition()`: a Q or Exists over Execution under which a row is never deleted."""
    if condition not in _keep_conditions:
        _keep_conditions.append(condition)


def targets() -> list[RetentionTarget]:
    """Registered targets in registration order."""
    return list(_targets.values())


def retention_days(kind: str) -> int:
    """The kind's retention: SPINE_RETENTION_DAYS, else the default its app registered."""
    return int(settings.SPINE_RETENTION_DAYS.get(kind, _targets[kind].default_days))


def protected_executions() -> QuerySet:
    """Executions that must be kept whatever their age (registered conditions)."""
    condition = Q(pk__in=[])
    for make in _keep_conditions:
        condition |= Q(make())
    return Execution.objects.filter(condition)


def run_cleanup(
    *,
    kinds: Iterable[str] | None = None,
    dry_run: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> list[KindReport]:
    """Delete (or with `dry_run` only count) every kind's rows past retention; report per kind.

    `progress(kind, total)` may return a bar with `update(n)` and `close()` (tqdm does).
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.SPINE_CLEANUP_BATCH_SIZE
    selected = list(kinds) if kinds else list(_targets)
    unknown = sorted(set(selected) - set(_targets))
    if unknown:
        raise ValueError(f"Unknown cleanup kinds {unknown}; known: {sorted(_targets)}")
    reports = []
    for kind in selected:
        target = _targets[kind]
        days = retention_days(kind)
        cutoff = now - timedelta(days=days)
        candidates = target.candidates(cutoff)
        report = KindReport(kind=kind, days=days, cutoff=cutoff, candidates=candidates.count())
        started = time.monotonic()
        if not dry_run and report.candidates:
            bar = progress(kind, report.candidates) if progress else None
            try:
                size = min(batch_size, target.max_batch or batch_size)
                _delete_in_batches(candidates, size, report, bar)
            finally:
                if bar is not None:
                    bar.close()
        report.seconds = time.monotonic() - started
        if not dry_run:
            _record(report, now)
        log.info(
            "cleanup.kind_done",
            kind=kind,
            days=days,
            candidates=report.candidates,
            deleted=report.deleted,
            batches=report.batches,
            dry_run=dry_run,
        )
        reports.append(report)
    return reports


def _delete_in_batches(candidates: QuerySet, batch_size: int, report: KindReport, bar) -> None:
    label = candidates.model._meta.label
    pk_name = candidates.model._meta.pk.name
    while True:
        ids = list(candidates.order_by(pk_name).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        with transaction.atomic():
            # Re-apply the conditions inside the batch's transaction: a row that stopped
            # qualifying since it was listed is left alone.
            _, per_model = candidates.filter(pk__in=ids).delete()
        deleted = per_model.get(label, 0)
        report.deleted += deleted
        report.batches += 1
        for other, count in per_model.items():
            if other != label and count:
                report.cascaded[other] = report.cascaded.get(other, 0) + count
        if bar is not None:
            bar.update(deleted)
        if deleted == 0:
            return  # everything listed stopped qualifying: stop rather than spin


def _record(report: KindReport, now: datetime) -> None:
    CleanupStat.objects.get_or_create(kind=report.kind)
    CleanupStat.objects.filter(kind=report.kind).update(
        deleted_total=F("deleted_total") + report.deleted,
        last_deleted=report.deleted,
        last_run_at=now,
        last_duration_seconds=report.seconds,
    )


# --- the ledger's own kinds -----------------------------------------------------------------------


def _execution_candidates(cutoff: datetime) -> QuerySet:
    newer_same_key = Execution.objects.filter(logical_key=OuterRef("logical_key")).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id"))
    )
    return (
        Execution.objects.filter(status__in=TERMINAL_STATUSES)
        .filter(Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff))
        # the latest execution of a logical key stays, however old
        .filter(Q(logical_key__isnull=True) | Exists(newer_same_key))
        .exclude(pk__in=protected_executions().values("pk"))
    )


def _event_candidates(cutoff: datetime) -> QuerySet:
    return ExecutionEvent.objects.filter(
        at__lt=cutoff, execution__status__in=TERMINAL_STATUSES
    ).exclude(execution__in=protected_executions().values("pk"))


register_target(
    RetentionTarget(
        "events",
        30,
        _event_candidates,
        "events of finished executions (the audit trail of kept dead letters stays)",
    )
)
register_target(
    RetentionTarget(
        "executions",
        30,
        _execution_candidates,
        "finished executions, except the latest per logical key and protected ones",
    )
)
