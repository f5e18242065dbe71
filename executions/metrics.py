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

# --- Reconciler (executions/reconcile.py) ---------------------------------------------------------
RECONCILE_ACTIONS = Counter(
    "spine_reconcile_actions_total",
    "Repairs attempted by the reconciler, by action and outcome.",
    ["action", "outcome"],
)
ORPHANS_RECOVERED = Counter(
    "spine_orphans_recovered_total",
    "Runs whose worker was lost (lease expired) that the reconciler settled, by outcome.",
    ["pipeline", "outcome"],
)
