"""Prometheus metrics of the ledger (names from the seed design, SPEC §8)."""

from prometheus_client import Counter, Histogram

EXECUTIONS_SUBMITTED = Counter(
    "spine_executions_submitted_total",
    "Executions created by the dispatcher.",
    ["pipeline", "lane", "trigger_source"],
)
EXECUTIONS_COMPLETED = Counter(
    "spine_executions_completed_total",
    "Executions that reached a terminal status, by status.",
    ["pipeline", "status"],
)
EXECUTION_DURATION = Histogram(
    "spine_execution_duration_seconds",
    "Wall time of one attempt of a pipeline handler.",
    ["pipeline"],
    buckets=[1, 5, 10, 30, 60, 120, 300, 600],
)
QUEUE_WAIT = Histogram(
    "spine_execution_queue_wait_seconds",
    "Time from queued (and due) to claimed by a worker.",
    ["lane"],
    buckets=[0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
)
DISPATCH_REJECTED = Counter(
    "spine_dispatch_rejected_total",
    "Submissions the dispatcher refused, by reason.",
    ["pipeline", "lane", "reason"],
)
SUBMIT_FAILURES = Counter(
    "spine_submit_failures_total",
    "Sends to the backend that failed (the execution stays pending for the reconciler).",
    ["backend"],
)
RETRIES = Counter(
    "spine_execution_retries_total",
    "Attempts that failed and were scheduled again, by reason.",
    ["pipeline", "reason"],
)

# --- Scrape-time gauges and the rest of SPEC §8 (issue 6) ---------------------------------------
# Gauges are read from the ledger when `/metrics` is scraped, so every API replica reports the
# same, right values whichever process changed the rows. Other apps add their own scrape-time
# collectors (dlq: unresolved dead letters; otc: circuit breakers) without `executions`
# importing them.

ORPHANS_RECOVERED = Counter(
    "spine_orphans_recovered_total",
    "Running executions whose worker was lost, settled by the reconciler, by outcome.",
    ["pipeline", "outcome"],
)

_scrape_collectors: list = []


def register_scrape_collector(collector) -> None:
    """Add a collector (with `describe()` and `collect()`) that `/metrics` calls at scrape time."""
    if all(type(c) is not type(collector) for c in _scrape_collectors):
        _scrape_collectors.append(collector)


def scrape_collectors() -> list:
    """The collectors `/metrics` adds to the process-wide (or multiprocess) registry."""
    return list(_scrape_collectors)


def _families():
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    return {
        "pending": GaugeMetricFamily(
            "spine_pending_executions",
            "Executions waiting to run (pending or queued, including retry backoff), per lane.",
            labels=["lane"],
        ),
        "active": GaugeMetricFamily(
            "spine_active_executions",
            "Executions not yet finished, per lane and status.",
            labels=["lane", "status"],
        ),
        "oldest": GaugeMetricFamily(
            "spine_oldest_pending_age_seconds",
            "Age of the oldest execution that is due and waiting to run, per lane (0 if none).",
            labels=["lane"],
        ),
        "paused": GaugeMetricFamily(
            "spine_lane_paused", "1 when the lane is paused, else 0.", labels=["lane"]
        ),
        "cleanup": CounterMetricFamily(
            "spine_cleanup_deleted",
            "Rows deleted by spine_cleanup (recorded in the database), per kind.",
            labels=["kind"],
        ),
        "cleanup_last": GaugeMetricFamily(
            "spine_cleanup_last_run_timestamp_seconds",
            "When spine_cleanup last finished for a kind (Unix time).",
            labels=["kind"],
        ),
        "schedule_last": GaugeMetricFamily(
            "spine_schedule_last_run_timestamp_seconds",
            "When a schedule last fired (Unix time).",
            labels=["schedule"],
        ),
        "schedule_next": GaugeMetricFamily(
            "spine_schedule_next_run_timestamp_seconds",
            "When an enabled schedule fires next (Unix time): far in the past means no scheduler.",
            labels=["schedule"],
        ),
    }


class LedgerCollector:
    """Ledger gauges, queried at scrape time."""

    def describe(self):
        return list(_families().values())

    def collect(self):
        import structlog
        from django.db.models import Count, Min, Q
        from django.db.models.functions import Coalesce
        from django.utils import timezone

        from executions.models import ACTIVE_STATUSES, Execution, Lane, LaneName, Status

        families = _families()
        now = timezone.now()
        try:
            counts = {
                (row["lane"], row["status"]): row["n"]
                for row in Execution.objects.filter(status__in=ACTIVE_STATUSES)
                .values("lane", "status")
                .annotate(n=Count("id"))
                .order_by()
            }
            oldest = dict(
                Execution.objects.filter(status__in=(Status.PENDING, Status.QUEUED))
                .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
                .values("lane")
                .annotate(t=Min(Coalesce("not_before", "created_at")))
                .order_by()
                .values_list("lane", "t")
            )
            paused = dict(Lane.objects.values_list("name", "paused"))
            lanes = sorted({*LaneName.values, *(lane for lane, _ in counts)})
            for lane in lanes:
                waiting = counts.get((lane, Status.PENDING), 0) + counts.get(
                    (lane, Status.QUEUED), 0
                )
                families["pending"].add_metric([lane], waiting)
                for status in ACTIVE_STATUSES:
                    families["active"].add_metric([lane, status], counts.get((lane, status), 0))
                since = oldest.get(lane)
                age = max(0.0, (now - since).total_seconds()) if since else 0.0
                families["oldest"].add_metric([lane], age)
                families["paused"].add_metric([lane], 1 if paused.get(lane) else 0)
            _collect_operations(families)
        except Exception as exc:  # a scrape must answer even when the database does not
            structlog.get_logger(__name__).warning("metrics.ledger_scrape_failed", error=str(exc))
            return
        yield from families.values()


def _collect_operations(families) -> None:
    from executions.models import CleanupStat, Schedule

    for stat in CleanupStat.objects.all():
        families["cleanup"].add_metric([stat.kind], stat.deleted_total)
        if stat.last_run_at:
            families["cleanup_last"].add_metric([stat.kind], stat.last_run_at.timestamp())
    for name, last, nxt, enabled in Schedule.objects.values_list(
        "name", "last_run_at", "next_run_at", "enabled"
    ):
        if last:
            families["schedule_last"].add_metric([name], last.timestamp())
        if enabled and nxt:
            families["schedule_next"].add_metric([name], nxt.timestamp())


def initialise_series(specs) -> None:
    """Create every pipeline's rare-event series at 0, so they exist (and `rate()` works) before
    the first rejection, retry or orphan, in multiprocess mode as well."""
    for spec in specs:
        for reason in ("lane_full", "global_full", "key_busy"):
            DISPATCH_REJECTED.labels(spec.name, spec.lane, reason)
        for reason in ("error", "timeout", "busy", "not_published"):
            RETRIES.labels(spec.name, reason)
        for outcome in ("retried", "dead_lettered"):
            ORPHANS_RECOVERED.labels(spec.name, outcome)
        for status in ("completed", "failed", "dead_lettered", "cancelled"):
            EXECUTIONS_COMPLETED.labels(spec.name, status)


# --- Reconciler (executions/reconcile.py) -----------------------------------------------------
RECONCILE_ACTIONS = Counter(
    "spine_reconcile_actions_total",
    "Repairs attempted by the reconciler, by action and outcome.",
    ["action", "outcome"],
)
