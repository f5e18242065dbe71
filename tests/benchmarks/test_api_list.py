"""API list latency at 32 concurrent clients with 1M executions in the ledger (SPEC §11).

The rows are made with one set-based INSERT (not the dispatcher: this measures reads). gunicorn
runs with production settings on a free loopback port; 32 clients (the closed-loop keep-alive
HTTP/1.1 generator of tests/benchmarks/loadgen.py: one asyncio loop in this process) loop for a
fixed time over the list's common queries: the first page, a status filter, a pipeline filter,
lane + status, a created range and the second page by cursor. The baseline is the same server
answering `GET /health/live` to the same 32 clients of the same generator.
"""

import os
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.benchmarks import loadgen
from tests.benchmarks.conftest import percentile
from tests.e2e.conftest import database_url, serve_api

pytestmark = [pytest.mark.postgres]

ROWS = int(os.environ.get("SPINE_BENCH_API_ROWS", "1000000"))
CLIENTS = 32
SECONDS = float(os.environ.get("SPINE_BENCH_API_SECONDS", "15"))

GENERATE = """
INSERT INTO executions_execution (
    id, pipeline, params, lane, status, trigger_source, request_id, attempt, max_attempts,
    backend, backend_run_id, worker_id, cancel_reason, created_at, started_at, finished_at,
    result, error_type, error_message, error_traceback)
SELECT md5('bench' || i)::uuid,
       (ARRAY['diagnostics.noop', 'diagnostics.sleep', 'otc.ingest_week',
              'otc.backfill'])[1 + i %% 4],
       '{"seconds": 1}'::jsonb,
       CASE WHEN i %% 10 = 0 THEN 'backfill' ELSE 'normal' END,
       (ARRAY['completed', 'completed', 'completed', 'completed', 'failed', 'dead_lettered',
              'cancelled', 'completed', 'completed', 'completed'])[1 + i %% 10],
       (ARRAY['api', 'schedule', 'cli', 'retry'])[1 + i %% 4],
       md5(i::text), 1, 3, 'dramatiq', '', 'host:1:thread', '',
       now() - make_interval(secs => i * 2.5),
       now() - make_interval(secs => i * 2.5 - 1),
       now() - make_interval(secs => i * 2.5 - 2),
       '{"ok": true}'::jsonb, '', '', ''
FROM generate_series(1, %s) AS i
"""

QUERIES = [
    "/api/v1/executions/",
    "/api/v1/executions/?status=failed",
    "/api/v1/executions/?pipeline=otc.ingest_week",
    "/api/v1/executions/?lane=backfill&status=completed",
    "/api/v1/executions/?created_after=2020-01-01T00:00:00Z&status=dead_lettered",
    "NEXT",  # the second page of the unfiltered list, by its cursor
]


# gunicorn as the Helm chart runs it by default (values.yaml api.gunicorn: gthread, 2 workers x 4
# threads); the machine's 2 cores are shared with PostgreSQL and this load generator.
WORKERS = os.environ.get("SPINE_BENCH_API_WORKERS", "2")
THREADS = os.environ.get("SPINE_BENCH_API_THREADS", "4")


def server_cpu_seconds(base: str) -> float:
    """CPU seconds (user + system) used so far by the gunicorn processes serving `base`.

    Read from /proc (Linux): the master and its forked workers share the `--bind` command line.
    CPU per request is the figure that the other work on a shared machine does not move much.
    """
    bind = base.removeprefix("http://").encode()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and bind in (entry / "cmdline").read_bytes():
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:  # the process ended meanwhile
            continue
    return total / ticks


@pytest.fixture
def server(transactional_db, postgres, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SPINE_", "DJANGO_"))},
        "DATABASE_URL": database_url(connection.settings_dict),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-" + "x" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "SPINE_RATE_LIMIT": "0",
        "SPINE_LOG_LEVEL": "WARNING",
    }
    args = ("--workers", WORKERS, "--threads", THREADS)
    with serve_api(env, tmp_path / "api.log", *args) as base:
        yield base


def test_api_list_p99_at_32_clients_with_a_million_executions(server, bench, role_user):
    from rest_framework.authtoken.models import Token

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(GENERATE, [ROWS])
        cursor.execute("ANALYZE executions_execution")
    generated_s = time.perf_counter() - started
    token = Token.objects.create(user=role_user("admin")).key
    first = httpx.get(f"{server}/api/v1/executions/", headers={"Authorization": f"Token {token}"})
    paths = [first.json()["next"].removeprefix(server) if p == "NEXT" else p for p in QUERIES]

    auth = {"Authorization": f"Token {token}"}
    loadgen.run(server, paths, clients=CLIENTS, seconds=2, headers=auth)  # warm up the workers
    cpu_before = server_cpu_seconds(server)
    listed = loadgen.run(server, paths, clients=CLIENTS, seconds=SECONDS, headers=auth)
    cpu_listed = server_cpu_seconds(server) - cpu_before
    live = loadgen.run(server, ["/health/live"], clients=CLIENTS, seconds=SECONDS)
    cpu_live = server_cpu_seconds(server) - cpu_before - cpu_listed

    cpu_ms = cpu_listed * 1000 / max(1, len(listed))
    cores = min(len(os.sched_getaffinity(0)), int(WORKERS))
    details = {
        "rows": ROWS,
        "clients": CLIENTS,
        "seconds": SECONDS,
        "requests": len(listed),
        "p50_ms": round(percentile(listed, 50), 1),
        "generate_seconds": round(generated_s, 1),
        "server": f"gunicorn {WORKERS} workers x {THREADS} threads",
        "health_p50_ms": round(percentile(live, 50), 1),
        # gunicorn's own CPU per answer (PostgreSQL's and the generator's are not counted)
        "server_cpu_ms_per_request": round(cpu_ms, 2),
        "health_server_cpu_ms_per_request": round(cpu_live * 1000 / max(1, len(live)), 2),
        # Little's law for a closed loop with no think time: clients = throughput x mean
        # latency, and gunicorn answers at most `cores` / (its CPU per answer) a second, so its
        # CPU alone bounds the mean latency from below (PostgreSQL's and the generator's come on
        # top). Its workers can use at most one core each (the GIL), and no more than this
        # process may run on.
        "cores": cores,
        "mean_latency_floor_ms": round(CLIENTS * cpu_ms / cores, 1),
    }
    print(
        f"\n[bench] gunicorn CPU {cpu_ms:.3f} ms per list answer: on {cores} cores the mean"
        f" latency at {CLIENTS} clients cannot be below {details['mean_latency_floor_ms']} ms"
    )
    bench.record(
        "API list p99 (32 clients, 1M executions)",
        percentile(listed, 99),
        "ms",
        "GET /health/live p99",
        percentile(live, 99),
        "<= 50 ms",
        **details,
    )
    bench.record(
        "API list throughput",
        len(listed) / SECONDS,
        "req/s",
        "GET /health/live",
        len(live) / SECONDS,
        clients=CLIENTS,
    )
