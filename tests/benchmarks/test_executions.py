"""Executions on Dramatiq and Redis against bare Dramatiq (SPEC §11).

- dispatch rate: `dispatcher.dispatch()` (row, event, after-commit send, `queued`) against a bare
  `broker.enqueue()` of a message, no worker running, with the same number of threads on both
  sides: 8 (the figure with the target: the API's gunicorn threads, the scheduler and backfills
  dispatch concurrently) and 1 (for reference: one thread waits for every durable commit, an
  fsync of the write-ahead log, while Redis here keeps nothing on disk);
- end to end: N `diagnostics.noop` dispatched by 8 threads and run by `spine_worker` until the
  ledger says completed, against N bare no-op messages sent by 8 threads and processed by a plain
  Dramatiq worker with the same processes and threads on the same Redis. Both workers run with
  production settings (`DJANGO_DEBUG=0`). Each side's time ends at its last run's own finish
  time (the ledger's `finished_at`, the bare actor's clock), not when a poll noticed it, and
  both are polled at the same slow pace, so polling neither costs CPU nor adds time;
- start latency (created -> started) p50 and p99, under that flood (heavy) and one at a time
  (light), against the bare message's sent -> processed time.

Each side floods `SPINE_BENCH_ROUNDS` times (3) in a row and keeps the median rate: one flood
of either side varies by several per cent from one run to the next on a small machine. The
dispatch rates are medians of as many rounds too, the two sides taking turns.
"""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import redis
from django.db import connections
from django.db.models import Max

from executions import dispatcher
from executions.models import Execution, Status
from tests.benchmarks.conftest import ROOT, percentile
from tests.integration.conftest import redis_stack, wait_for  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PROCESSES, THREADS = 2, 4
SENDERS = 8  # threads dispatching (Spine) or sending (bare) at once
DISPATCHES = int(os.environ.get("SPINE_BENCH_DISPATCHES", "1000"))
FLOOD = int(os.environ.get("SPINE_BENCH_FLOOD", "2000"))
LIGHT = int(os.environ.get("SPINE_BENCH_LIGHT", "100"))
LIGHT_GAP = 0.03
ROUNDS = int(os.environ.get("SPINE_BENCH_ROUNDS", "3"))  # floods per side; the median is kept


@pytest.fixture
def stack(redis_stack, settings):  # noqa: F811 (the imported fixture)
    settings.SPINE_LANE_LIMITS = {"normal": 10**7, "backfill": 10**7}
    settings.SPINE_MAX_PENDING = 10**7
    # Caps of 10 million: with a count on every dispatch, counting the growing backlog would be
    # most of what is measured. Reuse a count for up to a second (README configuration table).
    settings.SPINE_BACKPRESSURE_RECOUNT_SECONDS = 1.0
    redis_stack.env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-only-" + "x" * 50,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SPINE_LANE_LIMITS="normal=10000000,backfill=10000000",
        SPINE_MAX_PENDING=str(10**7),
    )
    return redis_stack


class BareWorker:
    def __init__(self, stack):
        self.stack = stack
        self.latencies = f"{stack.prefix}:bare:latency"
        env = {
            **stack.env,
            "BENCH_REDIS_URL": stack.broker_url,
            "BENCH_QUEUE_PREFIX": stack.prefix,
            "PYTHONPATH": str(ROOT),
        }
        self.log = open(stack.tmp_path / "bare-worker.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "tests.benchmarks.bare_actors"]
            + ["--processes", str(PROCESSES), "--threads", str(THREADS)]
            + ["--queues", f"{stack.prefix}.bare"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


def send_bare(stack, count: int, gap: float = 0.0) -> None:
    import dramatiq

    broker = stack.backend.broker
    for _ in range(count):
        message = dramatiq.Message(
            queue_name=f"{stack.prefix}.bare",
            actor_name="noop",
            args=(time.time(),),
            kwargs={},
            options={},
        )
        broker.enqueue(message)
        if gap:
            time.sleep(gap)


def dispatch_noops(count: int, gap: float = 0.0) -> list:
    ids = []
    for _ in range(count):
        ids.append(dispatcher.dispatch("diagnostics.noop", {}, trigger_source="cli").execution.id)
        if gap:
            time.sleep(gap)
    return ids


def in_threads(threads: int, count: int, work) -> tuple[float, list]:
    """Run `work(n)` in `threads` threads for `count` items in all; (items per second, results)."""

    def share(n: int):
        try:
            return work(n)
        finally:
            connections.close_all()  # this thread's own database connection

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        results = list(pool.map(share, shares))
        rate = count / (time.perf_counter() - started)
    return rate, [item for result in results for item in (result or [])]


POLL = 0.25  # seconds between polls for completion, on both sides


def wait_completed(ids, timeout=600, *, created_since: float | None = None) -> float:
    """Wait until every execution of `ids` completed; the wall-clock time the last one finished.

    `created_since` (a `time.time()` taken before `ids` were dispatched, with nothing else
    dispatched since) makes each poll count the completed rows created since then, a range of
    one index, instead of looking up every id: a count over 2,000 ids cost 13 ms of this
    process's CPU and about as much of PostgreSQL's, four times a second, while the flood's
    dispatching threads shared this process (the bare side polls one Redis `LLEN`).
    """
    done = Execution.objects.filter(status=Status.COMPLETED)
    if created_since is None:
        done = done.filter(pk__in=ids)
    else:
        done = done.filter(created_at__gte=datetime.fromtimestamp(created_since, UTC))
    wait_for(
        lambda: done.count() >= len(ids),
        timeout=timeout,
        interval=POLL,
        what=f"{len(ids)} executions to complete",
    )
    flood = Execution.objects.filter(pk__in=ids)
    assert flood.filter(status=Status.COMPLETED).count() == len(ids)
    return flood.aggregate(last=Max("finished_at"))["last"].timestamp()


def vacuum_the_ledger() -> None:
    """What autovacuum would have done by now on a default server.

    This machine's PostgreSQL runs with autovacuum off. Every run leaves three dead versions of
    its row (queued, running, completed), so without it each flood ran slower than the one
    before (537, 460, 444 /s).
    """
    with connections["default"].cursor() as cursor:
        for table in (Execution._meta.db_table, "executions_executionevent"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def bare_runs(client, key) -> list[tuple[float, float]]:
    """(sent, ran) wall-clock times the bare actor recorded."""
    return [tuple(map(float, v.split())) for v in client.lrange(key, 0, -1)]


def start_latencies_ms(ids) -> list[float]:
    rows = Execution.objects.filter(pk__in=ids).values_list("created_at", "started_at")
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def commit_and_round_trip_ms(samples: int = 300) -> tuple[float, float]:
    """Median ms of a durable one-row INSERT commit and of a `SELECT 1`, on this server.

    Context for the dispatch figures: every dispatch waits for one durable commit (the created
    row must survive a crash), which on this machine's disk is an fsync of the WAL.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_commit (n integer)")
        commits, trips = [], []
        for n in range(samples):
            started = time.perf_counter()
            cursor.execute("INSERT INTO bench_commit VALUES (%s)", [n])
            commits.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            trips.append((time.perf_counter() - started) * 1000)
        cursor.execute("DROP TABLE bench_commit")
    return percentile(commits, 50), percentile(trips, 50)


def test_executions_against_bare_dramatiq(stack, bench):
    client = redis.Redis.from_url(stack.broker_url)
    latencies_key = f"{stack.prefix}:bare:latency"

    commit_ms, round_trip_ms = commit_and_round_trip_ms()
    bench.record(
        "PostgreSQL durable commit, p50", commit_ms, "ms", "SELECT 1 round trip p50", round_trip_ms
    )

    # --- dispatch rate: no worker runs, so nothing competes for the CPU ------------------------
    # Each side runs ROUNDS times, the two sides taking turns, and keeps its median: one round
    # of the bare side lasts a fraction of a second, so a single one swung by a third.
    backlog = []
    for threads in (SENDERS, 1):
        bare_rates, spine_rates = [], []
        for _ in range(ROUNDS):
            bare_rates.append(in_threads(threads, DISPATCHES, lambda n: send_bare(stack, n))[0])
            rate, ids = in_threads(threads, DISPATCHES, dispatch_noops)
            assert Execution.objects.filter(pk__in=ids, status=Status.QUEUED).count() == DISPATCHES
            spine_rates.append(rate)
            backlog += ids
        bench.record(
            f"dispatch rate, {threads} thread{'s' if threads > 1 else ''}",
            percentile(spine_rates, 50),
            "/s",
            "bare broker.enqueue()",
            percentile(bare_rates, 50),
            ">= 0.25" if threads > 1 else "",
            count=DISPATCHES,
            threads=threads,
            rounds=[round(r) for r in spine_rates],
            bare_rounds=[round(r) for r in bare_rates],
        )

    # --- Spine end to end ----------------------------------------------------------------------
    stack.worker("normal", processes=PROCESSES, threads=THREADS)
    wait_completed(backlog)  # the dispatch benchmark's backlog, and the worker is warm
    rates, heavy = [], []
    for _ in range(ROUNDS):
        vacuum_the_ledger()
        started = time.time()
        _, flood = in_threads(SENDERS, FLOOD, dispatch_noops)
        rates.append(FLOOD / (wait_completed(flood, created_since=started) - started))
        heavy += start_latencies_ms(flood)
    spine_e2e = percentile(rates, 50)
    light_ids = dispatch_noops(LIGHT, gap=LIGHT_GAP)
    wait_completed(light_ids)
    light = start_latencies_ms(light_ids)
    for proc in stack.procs:
        proc.stop()

    # --- bare Dramatiq end to end --------------------------------------------------------------
    bare = BareWorker(stack)
    try:
        wait_for(
            lambda: client.llen(latencies_key) >= 2 * ROUNDS * DISPATCHES,  # the dispatch rounds
            timeout=120,
            what="the bare worker to drain its backlog",
        )
        bare_rates, bare_heavy = [], []
        for _ in range(ROUNDS):
            client.delete(latencies_key)
            started = time.time()
            in_threads(SENDERS, FLOOD, lambda n: send_bare(stack, n))
            wait_for(
                lambda: client.llen(latencies_key) >= FLOOD,
                timeout=600,
                interval=POLL,
                what="bare flood",
            )
            runs = bare_runs(client, latencies_key)
            bare_rates.append(FLOOD / (max(ran for _, ran in runs) - started))
            bare_heavy += [(ran - sent) * 1000 for sent, ran in runs]
        bare_e2e = percentile(bare_rates, 50)
        client.delete(latencies_key)
        send_bare(stack, LIGHT, gap=LIGHT_GAP)
        wait_for(lambda: client.llen(latencies_key) >= LIGHT, timeout=60, what="bare light")
        bare_light = [(ran - sent) * 1000 for sent, ran in bare_runs(client, latencies_key)]
    finally:
        bare.stop()

    workers = f"{PROCESSES} processes x {THREADS} threads"
    bench.record(
        "end-to-end executions",
        spine_e2e,
        "/s",
        "bare Dramatiq no-op actor",
        bare_e2e,
        ">= 0.25",
        count=FLOOD,
        workers=workers,
        senders=SENDERS,
        rounds=[round(r) for r in rates],
        bare_rounds=[round(r) for r in bare_rates],
    )
    for label, spine_ms, bare_ms in (("heavy", heavy, bare_heavy), ("light", light, bare_light)):
        for q in (50, 99):
            bench.record(
                f"start latency {label} p{q}",
                percentile(spine_ms, q),
                "ms",
                f"bare Dramatiq p{q}",
                percentile(bare_ms, q),
                count=len(spine_ms),
                workers=workers,
            )
