"""`timestamptz` values are read by psycopg's fastest loader, in UTC (spine_project.db)."""

from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from django.db import connection

from executions.models import Execution

pytestmark = pytest.mark.postgres

OID = psycopg.adapters.types["timestamptz"].oid


def test_connections_read_timestamptz_with_the_project_loader(postgres):
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(OID, psycopg.pq.Format.TEXT)
    assert loader.__name__ == "UtcTimestamptzLoader"
    with connection.cursor() as cursor:  # Django's cursor keeps it: its time zone is Django's
        assert cursor.cursor.adapters.get_loader(OID, psycopg.pq.Format.TEXT) is loader


def test_values_come_back_in_utc_with_the_same_instant(postgres, make_execution):
    when = datetime(2026, 3, 8, 6, 59, 59, 123456, tzinfo=timezone(timedelta(hours=-5)))
    execution = make_execution()
    Execution.objects.filter(pk=execution.id).update(created_at=when)
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/New_York'")  # a session someone changed
        try:
            cursor.execute(
                "SELECT created_at, %s::timestamptz FROM executions_execution WHERE id = %s",
                [when, execution.id],
            )
            stored, echoed = cursor.fetchone()
            read = Execution.objects.values_list("created_at", flat=True).get(pk=execution.id)
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")
    for value in (stored, echoed, read):
        assert value == when
        assert value.tzinfo is UTC
        assert value.isoformat() == "2026-03-08T11:59:59.123456+00:00"
