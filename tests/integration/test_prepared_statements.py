"""The ledger's hot statements are server-side prepared statements (transitions.run_sql).

Django opens psycopg connections with preparing disabled, which had silently turned every
`prepare=True` of `run_sql` into a fresh parse and plan on the server (issue 8).
"""

import pytest
from django.db import IntegrityError, connection, transaction

from executions import runner
from executions.models import Execution
from executions.transitions import run_sql

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


def test_claim_and_finish_are_prepared_once_and_reused(postgres, queued):
    first, second = queued("diagnostics.noop"), queued("diagnostics.noop")

    assert runner.run_execution(first.id, worker_id="w") == "completed"
    assert runner.run_execution(second.id, worker_id="w") == "completed"

    texts = prepared()
    assert (count(texts, CLAIM), count(texts, FINISH)) == (1, 1)


def test_a_failed_statement_does_not_break_the_next_ones(postgres, queued):
    first, second = queued("diagnostics.noop"), queued("diagnostics.noop")
    assert runner.run_execution(first.id, worker_id="w") == "completed"

    with pytest.raises(IntegrityError), transaction.atomic():  # rolled back to a savepoint
        run_sql("INSERT INTO executions_execution (id) VALUES (%s)", [first.id])

    assert runner.run_execution(second.id, worker_id="w") == "completed"
    assert Execution.objects.get(pk=second.id).status == "completed"
    assert count(prepared(), CLAIM) == 1  # prepared again after the rollback


def test_prepared_statements_can_be_turned_off(postgres, queued, settings):
    settings.SPINE_DB_PREPARED_STATEMENTS = False
    execution = queued("diagnostics.noop")

    assert runner.run_execution(execution.id, worker_id="w") == "completed"

    texts = prepared()
    assert (count(texts, CLAIM), count(texts, FINISH)) == (0, 0)
