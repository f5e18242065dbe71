"""The plans of an ingest on PostgreSQL stay linear when the tables were analyzed empty.

A new install's first ingest meets tables whose statistics say "no rows". The anti-joins of the
ingest (now its staged way, `otc.loader._load_staged`) were then planned as nested loops that
rescan the target once per staged line, counting the rows the same statement adds: 100k lines
took 108 s instead of 2 (issue 8). Every
data-changing statement of an ingest (and of a metrics recompute) is explained, with its own
parameters, just before it runs.
"""

import json

import pytest
from django.db import connection

from executions.models import Status
from tests.integration.otc.conftest import SAMPLE_WEEK

pytestmark = pytest.mark.postgres

OTC_TABLES = ("otc_trades_raw", "otc_trades", "otc_metrics_daily", "otc_rejected_rows")


def node_types(plan: dict):
    yield plan["Node Type"]
    for child in plan.get("Plans", []):
        yield from node_types(child)


def test_no_ingest_statement_is_planned_as_a_nested_loop(postgres, data_dir, run_pipeline):
    with connection.cursor() as cursor:
        for table in OTC_TABLES:
            cursor.execute(f"ANALYZE {table}")  # empty: planned as empty
    plans = {}

    def explain_first(execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        if not many and verb in {"INSERT", "UPDATE", "DELETE", "WITH"} and "otc_" in sql:
            raw = context["cursor"].cursor  # psycopg's own cursor: no wrapper, no recursion
            raw.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = raw.fetchone()[0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            plans[" ".join(sql.split())[:60]] = set(node_types(plan[0]["Plan"]))
        return execute(sql, params, many, context)

    week = {"tier": "OTCE", "week": SAMPLE_WEEK, "path": "otc_sample.csv"}
    with connection.execute_wrapper(explain_first):
        runs = [
            run_pipeline("otc.ingest_week", week),
            # The week before, loaded later: refreshes the loaded week's week-over-week change.
            run_pipeline("otc.ingest_week", {**week, "week": "2025-11-10"}),
            run_pipeline("otc.recompute_metrics", {"tier": "OTCE", "week": SAMPLE_WEEK}),
            # Its rows are in now: the staged way, with the anti-joins.
            run_pipeline("otc.ingest_week", week),
        ]

    assert [run.status for run in runs] == [Status.COMPLETED] * 4, runs[-1].error_message
    assert any(sql.startswith("UPDATE otc_metrics_daily SET wow_change") for sql in plans)
    assert any(sql.startswith("INSERT INTO otc_trades ") for sql in plans)
    assert any(sql.startswith("WITH venue AS") for sql in plans)  # totals from otc_trades
    assert any(sql.startswith("WITH previous AS") for sql in plans)  # metrics from totals
    nested = {sql: nodes for sql, nodes in plans.items() if "Nested Loop" in nodes}
    assert nested == {}


def test_the_trades_codes_compare_bytes(postgres):
    # `otc.models.CodeField`: the columns that three of otc_trades' indexes compare are in the
    # "C" collation (a later AlterField that dropped it would slow every ingest's COPY).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, collation_name FROM information_schema.columns"
            " WHERE table_name = 'otc_trades' AND collation_name IS NOT NULL"
            " ORDER BY column_name"
        )
        collations = dict(cursor.fetchall())

    assert collations == {"symbol": "C", "tier": "C", "venue_mpid": "C", "venue_type": "C"}
