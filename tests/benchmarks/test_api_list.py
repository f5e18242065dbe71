"""API list latency at 32 concurrent clients with 1M executions in the ledger (SPEC §11).

The rows are made with one set-based INSERT (not the dispatcher: this measures reads). gunicorn
runs with production settings on a free loopback port; 32 clients (asyncio, one process) loop
for a fixed time over the list's common queries: the first page, a status filter, a pipeline
filter, lane + status, a created range and the second page by cursor. The baseline is the same
server answering `GET /health/live` to the same 32 clients.
"""

import asyncio
import os
import time

import httpx
import pytest
from django.db import connection

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


async def load(base: str, token: str, paths: list[str], seconds: float) -> list[float]:
    timings: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"Authorization": f"Token {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def one_client(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get(paths[i % len(paths)], timeout=30)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:500]
                i += 1

        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
    return timings


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
    with serve_api(env, tmp_path / "api.log", "--workers", "2", "--threads", "8") as base:
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

    asyncio.run(load(server, token, paths, 2))  # warm up both gunicorn workers
    listed = asyncio.run(load(server, token, paths, SECONDS))
    live = asyncio.run(load(server, "", ["/health/live"], SECONDS))

    details = {
        "rows": ROWS,
        "clients": CLIENTS,
        "seconds": SECONDS,
        "requests": len(listed),
        "p50_ms": round(percentile(listed, 50), 1),
        "generate_seconds": round(generated_s, 1),
        "server": "gunicorn 2 workers x 8 threads",
    }
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
