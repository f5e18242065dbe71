"""The state machine: one table of allowed transitions and the one function that applies them.

Every status change is a compare-and-set `UPDATE … WHERE id = %s AND status = %s` plus its event
row, in one transaction. A refused change raises `InvalidTransition` and changes nothing.
"""

import functools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, Q, QuerySet
from django.db.models.sql import UpdateQuery
from django.utils import timezone
from django_prometheus.db import errors_total, execute_total, query_duration_seconds

from executions.errors import ExecutionNotFound, InvalidTransition
from executions.models import Execution, ExecutionEvent, Status

S = Status

# from-status -> the statuses it may move to. `running -> running` is a lease takeover (a dead
# worker's run claimed again); `running -> queued` is a retry with backoff.
ALLOWED: Mapping[str, frozenset[str]] = {
    S.PENDING: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset(
        {S.COMPLETED, S.FAILED, S.DEAD_LETTERED, S.CANCELLED, S.QUEUED, S.RUNNING}
    ),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.DEAD_LETTERED: frozenset(),
    S.CANCELLED: frozenset(),
}

# A few optimistic re-reads are enough: a row only moves forward, so a race settles at once.
_MAX_CAS_TRIES = 4


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, or a named system component."""

    name: str
    user: AbstractBaseUser | None = None
    source: str = ""
    request_id: str = ""
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def system(cls, component: str, **kwargs: Any) -> "Actor":
        return cls(name=component, source="system", **kwargs)

    @classmethod
    def for_user(cls, user: AbstractBaseUser | None, *, source: str, **kwargs: Any) -> "Actor":
        if user is None or not user.is_authenticated:
            return cls(name="anonymous", source=source, **kwargs)
        return cls(name=user.get_username(), user=user, source=source, **kwargs)


def is_allowed(from_status: str, to_status: str) -> bool:
    """True when the table allows moving from `from_status` to `to_status`."""
    return to_status in ALLOWED.get(from_status, frozenset())


def transition(
    execution_id: UUID | str,
    *,
    to: str,
    kind: str,
    actor: Actor,
    frm: str | None = None,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    durable: bool = True,
    **fields: Any,
) -> str:
    """Move one execution to `to`, set `fields`, write the event; return the from-status.

    With `frm`, the update applies only from that status (and `where`, if given); without it, the
    current status is read and the update is conditional on it, re-read if another writer won.
    `durable=False` lets PostgreSQL acknowledge the enclosing transaction's commit before its WAL
    is flushed (`relaxed_commit_sql`): only for a transaction whose loss in a server crash is
    repaired anyway, and only when the caller owns that whole transaction.
    """
    if frm is not None and not is_allowed(frm, to):
        raise InvalidTransition(
            f"An execution cannot move from {frm} to {to}.",
            details={"from": frm, "to": to},
        )
    for _ in range(_MAX_CAS_TRIES):
        current = frm if frm is not None else _current_status(execution_id)
        if not is_allowed(current, to):
            raise InvalidTransition(
                f"Execution {execution_id} is {current}; it cannot move to {to}.",
                details={"execution_id": str(execution_id), "status": current, "to": to},
            )
        rows = Execution.objects.filter(pk=execution_id, status=current)
        if where is not None:
            rows = rows.filter(where)
        event = Event(kind, actor, current, to, data)
        if _compare_and_set(execution_id, rows, {"status": to, **fields}, event, durable=durable):
            return current
        if frm is not None:
            break
    now_status = _current_status(execution_id)
    raise InvalidTransition(
        f"Execution {execution_id} is {now_status}; it cannot move to {to} here.",
        details={"execution_id": str(execution_id), "status": now_status, "to": to},
    )


@dataclass(frozen=True)
class Sql:
    """A SQL expression as a `cas()` value, with its parameters: `Sql("attempt + 1")`."""

    expression: str
    params: tuple[Any, ...] = ()

    def __init__(self, expression: str, *params: Any) -> None:
        object.__setattr__(self, "expression", expression)
        object.__setattr__(self, "params", params)


def cas(
    execution_id: UUID | str,
    *,
    frm: str,
    to: str,
    kind: str,
    actor: Actor,
    values: Mapping[str, Any],
    guard: Mapping[str, Any] | None = None,
    condition: str = "",
    condition_params: tuple[Any, ...] = (),
    data: dict[str, Any] | None = None,
    durable: bool = True,
    returning: tuple[str, ...] = (),
) -> tuple[Any, ...] | None:
    """`transition()` for the hot paths (submit, claim, finish), in hand-written SQL.

    The same compare-and-set and event, checked against the same table, without the ORM: a
    Django query costs about 0.5 ms of CPU on the 2-core machine of the README's Performance
    section, several times the statement's own round trip. `guard` adds `column = value`
    conditions, `condition` one more SQL condition (with `condition_params`), `values` the
    columns to set (a `Sql` value is an expression). Returns the `returning` columns of the
    changed row (as the database gives them), `()` if none were asked, or None if nothing
    changed. On PostgreSQL it is one statement (a data-modifying CTE writes the event).
    """
    if not is_allowed(frm, to):
        raise InvalidTransition(
            f"An execution cannot move from {frm} to {to}.", details={"from": frm, "to": to}
        )
    values = {"status": to, **values}
    db = connections[DEFAULT_DB_ALIAS]  # looked up once: each lookup reads a thread-local
    params: list[Any] = []
    for column, value in values.items():
        if isinstance(value, Sql):
            params += [_db_value_any(v, db) for v in value.params]
        else:
            params.append(_db_value(column, value, db))
    params += [_db_value("id", execution_id, db), frm]
    params += [_db_value(column, value, db) for column, value in (guard or {}).items()]
    params += [_db_value_any(v, db) for v in condition_params]
    assigned = tuple((c, v.expression if isinstance(v, Sql) else None) for c, v in values.items())
    one_statement = one_statement_writes()
    update, columns, sql = _cas_sql(
        assigned, tuple(guard or ()), condition, returning, durable, one_statement
    )
    event = Event(kind, actor, frm, to, data)
    at = _db_value_any(timezone.now(), db)
    if one_statement:
        row = run_sql(sql, [*params, *event.values(at)], db)
        return None if row is None else _pick(columns, row, returning)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(update, params)
        row = cursor.fetchone()
        if row is None:
            return None
        cursor.execute(
            f"INSERT INTO {ExecutionEvent._meta.db_table} (execution_id, {EVENT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [row[0], *event.values(at)],
        )
    return _pick(columns, row, returning)


@functools.lru_cache(maxsize=256)
def _cas_sql(
    assigned: tuple[tuple[str, str | None], ...],
    guarded: tuple[str, ...],
    condition: str,
    returning: tuple[str, ...],
    durable: bool,
    one_statement: bool,
) -> tuple[str, tuple[str, ...], str]:
    """`cas()`'s statements for one shape of call: (the UPDATE, its columns, the one statement).

    `assigned` is each set column with its SQL expression (None: a parameter). A call site's
    shape never changes, so the text is built once (and, on PostgreSQL, prepared once per
    connection by `run_sql`); the parameters follow the text's order.
    """
    assignments = [f"{c} = {expression or '%s'}" for c, expression in assigned]
    conditions = ["id = %s", "status = %s", *(f"{c} = %s" for c in guarded)]
    if condition:
        conditions.append(f"({condition})")
    columns = tuple(dict.fromkeys(("id", *returning)))  # the event needs the id
    returned = ", ".join(columns)
    update = (
        f"UPDATE {Execution._meta.db_table} SET {', '.join(assignments)} "
        f"WHERE {' AND '.join(conditions)} RETURNING {returned}"
    )
    if not one_statement:
        return update, columns, ""
    relaxed = "" if durable else f", {relaxed_commit_sql()}"
    return (
        update,
        columns,
        f"WITH moved AS ({update}), event AS ({event_insert_sql('moved')}) "
        f"SELECT {returned}{relaxed} FROM moved",
    )


def _pick(columns: Sequence[str], row: Sequence[Any], wanted: tuple[str, ...]) -> tuple[Any, ...]:
    if tuple(columns) == wanted:
        return tuple(row[: len(wanted)])  # a relaxed commit's setting follows the columns
    by_name = dict(zip(columns, row, strict=False))
    return tuple(by_name[c] for c in wanted)


def cas_fetch(execution_id: UUID | str, **kwargs: Any) -> Execution | None:
    """`cas()` that returns the changed execution as it is now, or None if nothing changed."""
    fields = Execution._meta.concrete_fields
    row = cas(execution_id, returning=_all_columns(), **kwargs)
    if row is None:
        return None
    if not one_statement_writes():  # SQLite returns text for dates: let the ORM convert
        return Execution.objects.get(pk=execution_id)
    db = connections[DEFAULT_DB_ALIAS]
    values = [
        f.from_db_value(v, None, db) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, row, strict=True)
    ]
    return Execution.from_db(db.alias, [f.attname for f in fields], values)


@functools.cache
def _all_columns() -> tuple[str, ...]:
    return tuple(str(f.column) for f in Execution._meta.concrete_fields)


def _db_value(column: str, value: Any, db: Any) -> Any:
    field, plain = _column(column)
    if value is None or (plain and isinstance(value, str | int)):
        return value  # what the field's own conversion would return, without its cost
    if (isinstance(value, UUID) or (isinstance(value, datetime) and value.tzinfo)) and (
        one_statement_writes()
    ):
        return value  # the same: on PostgreSQL Django leaves these as they are for psycopg
    return field.get_db_prep_save(value, db)


_AS_IS = {"CharField", "TextField", "PositiveIntegerField", "IntegerField"}


@functools.cache
def _column(column: str) -> tuple["Field[Any, Any]", bool]:
    """A ledger column's field, and whether its str and int values go to the database as-is."""
    field = cast("Field[Any, Any]", Execution._meta.get_field(column))  # a column: concrete
    return field, field.get_internal_type() in _AS_IS


def _db_value_any(value: Any, db: Any) -> Any:
    if isinstance(value, datetime):
        return db.ops.adapt_datetimefield_value(value)
    return value


def update_fields(
    execution_id: UUID | str,
    *,
    kind: str,
    actor: Actor,
    where: Q | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Set non-status fields as a conditional update with its event; False if `where` failed."""
    rows = Execution.objects.filter(pk=execution_id)
    if where is not None:
        rows = rows.filter(where)
    return _compare_and_set(execution_id, rows, fields, Event(kind, actor, "", "", data))


def record_event(
    execution_id: UUID | str, *, kind: str, actor: Actor, data: dict[str, Any] | None = None
) -> ExecutionEvent:
    """Write an event that changes no field (an operator action, a failed submit)."""
    return write_event(execution_id, Event(kind, actor, "", "", data))


def renew_lease(execution_id: UUID | str, *, worker_id: str, attempt: int, **fields: Any) -> bool:
    """Extend a running execution's lease if this worker still holds it (no event: a heartbeat)."""
    return (
        Execution.objects.filter(
            pk=execution_id, status=S.RUNNING, worker_id=worker_id, attempt=attempt
        ).update(**fields)
        == 1
    )


def settled_status(execution_id: UUID | str) -> str | None:
    """An execution's status once no open transaction is changing its row (None: no such row).

    On PostgreSQL a share lock on the row waits for such a writer (a retry's requeue, a caller's
    transaction that submitted), so the status read is the one it committed; it is released as
    the statement ends. SQLite has one writer at a time.
    """
    lock = " FOR SHARE" if connection.features.has_select_for_update else ""
    row = run_sql(
        f"SELECT status FROM {Execution._meta.db_table} WHERE id = %s{lock}",
        [_db_value("id", execution_id, connections[DEFAULT_DB_ALIAS])],
    )
    return None if row is None else str(row[0])


def _current_status(execution_id: UUID | str) -> str:
    status = Execution.objects.filter(pk=execution_id).values_list("status", flat=True).first()
    if status is None:
        raise ExecutionNotFound(f"Execution {execution_id} does not exist.")
    return status


@dataclass(frozen=True)
class Event:
    """An event row to write with a change: what happened, who did it, and its data."""

    kind: str
    actor: Actor
    from_status: str
    to_status: str
    data: dict[str, Any] | None

    def values(self, at: datetime) -> list[Any]:
        """The event row's values in `EVENT_COLUMNS` order, after `execution_id`."""
        actor = self.actor
        return [
            at,
            self.kind,
            self.from_status,
            self.to_status,
            actor.name[:150],
            actor.user.pk if actor.user is not None else None,
            actor.source,
            actor.reason,
            actor.request_id,
            json.dumps({**actor.data, **(self.data or {})}, cls=DjangoJSONEncoder),
        ]


EVENT_COLUMNS = (
    "at, kind, from_status, to_status, actor, actor_user_id, source, reason, request_id, data"
)


def event_insert_sql(source: str) -> str:
    """`INSERT INTO <events> … SELECT <source>.id, %s, … FROM <source>` (`Event.values()`).

    The event half of a one-statement write on PostgreSQL: `source` is a CTE returning the
    changed (or created) execution's id.
    """
    return (
        f"INSERT INTO {ExecutionEvent._meta.db_table} (execution_id, {EVENT_COLUMNS}) "
        f"SELECT {source}.id, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb FROM {source}"
    )


@functools.cache
def one_statement_writes() -> bool:
    """True where a change and its event go to the server as one statement (PostgreSQL).

    A data-modifying `WITH` makes a compare-and-set, its event and the commit one round trip
    instead of four (BEGIN, UPDATE, INSERT, COMMIT) plus the ORM's work for each. SQLite (the
    embedded default, one writer at a time) keeps the ORM path. Asked once per process (the
    database's engine does not change; reading it goes through a thread-local each time).
    """
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


# psycopg's prepare threshold on a connection that runs the hot statements: a query is prepared
# when it asks (`prepare=True`), and never merely for being run this many times. Django opens
# connections with the threshold None, which disables preparing, even on request.
ONLY_WHEN_ASKED = 2**31 - 1


def run_sql(sql: str, params: Sequence[Any], db: Any = None) -> tuple[Any, ...] | None:
    """Run one of the ledger's hot-path statements; return its first row (None if none).

    On PostgreSQL it skips Django's cursor wrappers and binds parameters on the server (the
    client does not quote values into the text: a third of a dispatch's CPU), as a prepared
    statement unless `SPINE_DB_PREPARED_STATEMENTS` is off: the hot statements are a few fixed
    texts, so the server parses and plans each once per connection. Parsing and planning them
    on every call had been more than half of PostgreSQL's CPU per execution (perf, issue 8).
    psycopg forgets its prepared statements after a rollback and prepares them again; a
    statement whose plan a migration made stale is prepared again here (`_stale_plan`).
    Database errors still arrive as Django's (`IntegrityError`, …). django-prometheus counts and
    times each statement as its own cursor counts Django's (`django_db_*`), by hand: its
    context managers cost more than the counting (about 20 µs a statement on the README's
    Performance machine), as did a new psycopg cursor per statement (one is kept per
    connection, `_hot_cursor`). `db` is the thread's connection wrapper, if the caller has it.
    """
    if not one_statement_writes():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if cursor.description else None
    import psycopg

    if db is None:  # one lookup of the thread's connection, not four
        db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    prepare = settings.SPINE_DB_PREPARED_STATEMENTS
    if prepare and db.connection.prepare_threshold is None:
        db.connection.prepare_threshold = ONLY_WHEN_ASKED
    executed, duration, labels = _query_metrics(db.alias, db.vendor)
    executed.inc()
    started = time.perf_counter()
    try:
        with db.wrap_database_errors:  # psycopg's errors leave as Django's
            try:
                cursor = _execute(db, sql, params, prepare)
            except Exception as exc:  # counted by psycopg's type, as django-prometheus does
                errors_total.labels(**labels, type=type(exc).__name__).inc()
                raise
            result = cursor.pgresult
            rows = result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK
            return cursor.fetchone() if rows else None
    finally:
        duration.observe(time.perf_counter() - started)


def _execute(db: Any, sql: str, params: Sequence[Any], prepare: bool) -> Any:
    """Run `sql` on `db`'s kept cursor (`_hot_cursor`), preparing again a plan gone stale."""
    import psycopg

    cursor = _hot_cursor(db)
    try:
        cursor.execute(sql, params, prepare=prepare)
    except psycopg.errors.FeatureNotSupported as exc:
        if not (prepare and _stale_plan(exc)) or db.in_atomic_block:
            raise  # in a transaction, its rollback makes psycopg prepare again
        # Outside a transaction nothing rolls back, so psycopg would keep sending the stale
        # statement on every call of this connection's life. DEALLOCATE ALL drops them on the
        # server, and psycopg forgets its own on seeing it; then once more.
        cursor.execute("DEALLOCATE ALL")
        cursor.execute(sql, params, prepare=True)
    return cursor


def _hot_cursor(db: Any) -> Any:
    """The psycopg cursor `run_sql` uses on `db`'s current connection, made once per connection.

    Django's connection wrapper belongs to one thread, so its cursor does too; a new connection
    (after a close or a reconnect) gets a new cursor.
    """
    import psycopg

    kept = db.__dict__.get("_spine_hot_cursor")
    if kept is None or kept.connection is not db.connection or kept.closed:
        kept = db.__dict__["_spine_hot_cursor"] = psycopg.Cursor(db.connection)
    return kept


@functools.cache
def _query_metrics(alias: str, vendor: str) -> tuple[Any, Any, dict[str, str]]:
    """django-prometheus's statement counter and timer of a connection, and its error labels.

    `run_sql` bypasses the cursor that counts the others (`django_prometheus.db.common`), so
    without these the hottest statements were missing from `django_db_execute_total`.
    """
    labels = {"alias": alias, "vendor": vendor}
    return execute_total.labels(**labels), query_duration_seconds.labels(**labels), labels


def _stale_plan(exc: Exception) -> bool:
    """A prepared statement whose result columns a migration changed (ALTER … TYPE)."""
    return "cached plan must not change result type" in str(exc)


def relaxed_commit_sql() -> str:
    """A select-list item that turns `synchronous_commit` off for the current transaction.

    PostgreSQL then acknowledges the commit before its WAL reaches the disk (the benchmark
    records the durable commit's latency: 0.26 ms on a quiet disk of the README's Performance
    machine, 2 ms and more when it is busy). A server crash can forget such a commit; it never
    corrupts one. Callers use it only for changes whose loss is repaired anyway.
    """
    return "set_config('synchronous_commit', 'off', true)"


def _compare_and_set(
    execution_id: UUID | str,
    rows: QuerySet[Execution],
    values: dict[str, Any],
    event: Event,
    *,
    durable: bool = True,
) -> bool:
    """UPDATE `rows` (this execution, if it matches) with `values`; if it changed, add `event`.

    On PostgreSQL it is one statement: the ORM compiles the UPDATE (so `where` and F()
    expressions keep working) and a data-modifying CTE inserts the event. `durable=False`
    relaxes the commit of the transaction this statement runs in (`relaxed_commit_sql`).
    """
    if not one_statement_writes():
        with transaction.atomic():
            if rows.update(**values) != 1:
                return False
            write_event(execution_id, event)
        return True
    query = cast(UpdateQuery, rows.query.chain(UpdateQuery))  # chain(klass) returns a klass
    query.add_update_values(values)
    update_sql, update_params = query.get_compiler(rows.db).as_sql()
    sql = (
        f"WITH moved AS ({update_sql} RETURNING id), event AS ({event_insert_sql('moved')}) "
        f"SELECT (SELECT count(*) FROM moved){'' if durable else ', ' + relaxed_commit_sql()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*update_params, *event.values(timezone.now())])
        changed = cursor.fetchone()[0]
    return bool(changed == 1)


def write_event(execution_id: UUID | str, event: Event) -> ExecutionEvent:
    at, kind, from_status, to_status, actor, actor_user_id, source, reason, request_id, data = (
        event.values(timezone.now())
    )
    return ExecutionEvent.objects.create(
        execution_id=execution_id,
        at=at,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_user_id=actor_user_id,
        source=source,
        reason=reason,
        request_id=request_id,
        data=json.loads(data),
    )
