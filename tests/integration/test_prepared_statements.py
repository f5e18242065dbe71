"""The ledger's hot statements are server-side prepared statements (transitions.run_sql).

Django opens psycopg connections with preparing disabled, which had silently turned every
`prepare=True` of `run_sql` into a fresh parse and plan on the server (issue 8).
"""

import psycopg
import pytest
from django.db import connection, transaction

from executions import runner
from executions.models import Execution, Status

pytestmark = pytest.mark.postgres

CLAIM = "WITH moved AS (UPDATE executions_execution SET status = $1, attempt = attempt + 1"
FINISH = "WITH moved AS (UPDATE executions_execution SET status = $1, finished_at = $2"


def prepared() -> list[str]:
    """The texts of this session's prepared statements."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def count(texts: list[str], start: str) -> int:
    return sum(text.startswith(start) for text in texts)


def forget_prepared() -> None:
    """Drop this session's prepared statements (psycopg forgets its own on seeing this)."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")


def test_claim_and_finish_are_prepared_once_and_reused(postgres, queued):
    first, second = queued("diagnostics.noop"), queued("diagnostics.noop")

    assert runner.run_execution(first.id, worker_id="w") == "completed"
    assert runner.run_execution(second.id, worker_id="w") == "completed"

    texts = prepared()
    assert (count(texts, CLAIM), count(texts, FINISH)) == (1, 1)


def test_prepared_statements_can_be_turned_off(postgres, queued, settings):
    settings.SPINE_DB_PREPARED_STATEMENTS = False
    forget_prepared()
    execution = queued("diagnostics.noop")

    assert runner.run_execution(execution.id, worker_id="w") == "completed"

    texts = prepared()
    assert (count(texts, CLAIM), count(texts, FINISH)) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_migration_changing_a_returned_column_does_not_stop_the_runner(
    postgres, make_execution, recording_backend
):
    """Outside a transaction nothing rolls back, so psycopg alone would keep the stale plan."""
    ids = [make_execution("diagnostics.noop").id for _ in range(3)]  # submitted on commit
    assert runner.run_execution(ids[0], worker_id="w") == "completed"
    assert count(prepared(), CLAIM) == 1
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"],
        password=db["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip
    try:
        # what a migration in another process does: the claim returns worker_id
        other.execute("ALTER TABLE executions_execution ALTER COLUMN worker_id TYPE varchar(300)")

        assert runner.run_execution(ids[1], worker_id="w") == "completed"
        assert runner.run_execution(ids[2], worker_id="w") == "completed"
    finally:
        other.execute("ALTER TABLE executions_execution ALTER COLUMN worker_id TYPE varchar(200)")
        other.close()
        forget_prepared()  # the type is back: later tests on this connection start afresh

    assert (
        list(Execution.objects.filter(pk__in=ids).values_list("status", flat=True))
        == [Status.COMPLETED] * 3
    )


def test_hot_statements_are_counted_and_timed_like_djangos_own(postgres):
    from prometheus_client import REGISTRY

    from executions.transitions import run_sql

    labels = {"alias": "default", "vendor": "postgresql"}

    def sample(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    def samples() -> tuple[float, float, float]:
        return (
            sample("django_db_execute_total"),
            sample("django_db_query_duration_seconds_count"),
            sample("django_db_errors_total", type="UndefinedTable"),
        )

    before = samples()
    assert run_sql("SELECT 41 + %s", [1]) == (42,)
    assert samples() == (before[0] + 1, before[1] + 1, before[2])

    with pytest.raises(Exception, match="no_such_table"):
        run_sql("SELECT * FROM no_such_table WHERE id = %s", [1])
    assert samples() == (before[0] + 2, before[1] + 2, before[2] + 1)


def test_hot_statements_keep_one_cursor_per_connection(transactional_db, postgres):
    from executions.transitions import _hot_cursor, run_sql

    assert run_sql("SELECT 1 + %s", [1]) == (2,)
    first = _hot_cursor(connection)
    assert run_sql("SELECT 2 + %s", [1]) == (3,)
    assert _hot_cursor(connection) is first
    with pytest.raises(Exception, match="no_such_table"), transaction.atomic():
        run_sql("SELECT * FROM no_such_table WHERE id = %s", [1])
    assert run_sql("SELECT 3 + %s", [1]) == (4,)  # a failed statement leaves it usable

    connection.close()  # a new connection (as after a reconnect) gets a cursor of its own
    assert run_sql("SELECT 4 + %s", [1]) == (5,)
    assert _hot_cursor(connection) is not first
    assert _hot_cursor(connection).connection is connection.connection
