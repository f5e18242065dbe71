"""The scheduler: cron in a time zone, NYSE trading days, overlap policy, exactly one fire."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from executions.errors import InvalidSchedule
from executions.models import Execution, Schedule, Status
from executions.scheduler import Scheduler, is_trading_day, next_run_after, save_schedule

# Thanksgiving 2026 (an NYSE holiday) is Thursday 26 November; New York is on EST (UTC-5).
WED_0900_NY = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
THANKSGIVING_0900_NY = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
FRI_0900_NY = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def make_schedule(name="daily", *, now=WED_0900_NY, **fields):
    fields = {
        "pipeline": "diagnostics.noop",
        "cron": "0 9 * * *",
        "time_zone": "America/New_York",
        **fields,
    }
    return save_schedule(Schedule(name=name, **fields), now=now)


def clock(at):
    return lambda: at


def runs(schedule):
    return Execution.objects.filter(
        trigger_source="schedule", idempotency_key__startswith=f"schedule:{schedule.pk}:"
    )


def test_nyse_calendar():
    assert is_trading_day(datetime(2026, 11, 25).date())
    assert not is_trading_day(datetime(2026, 11, 26).date())  # Thanksgiving
    assert not is_trading_day(datetime(2026, 11, 28).date())  # Saturday
    assert not is_trading_day(datetime(2026, 12, 25).date())  # Christmas


def test_cron_is_read_in_the_schedules_time_zone(db):
    schedule = make_schedule(now=WED_0900_NY + timedelta(minutes=1))
    assert schedule.next_run_at == THANKSGIVING_0900_NY
    summer = Schedule(cron="0 9 * * *", time_zone="America/New_York")
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert next_run_after(summer, after) == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)  # EDT


def test_trading_days_only_schedule_does_not_fire_on_an_nyse_holiday(db):
    schedule = make_schedule(trading_days_only=True, now=WED_0900_NY + timedelta(minutes=1))
    assert schedule.next_run_at == FRI_0900_NY  # Thursday is skipped

    assert Scheduler(clock=clock(THANKSGIVING_0900_NY + timedelta(seconds=30))).tick() == []
    assert runs(schedule).count() == 0

    [fire] = Scheduler(clock=clock(FRI_0900_NY + timedelta(seconds=30))).tick()
    assert (fire.outcome, fire.fire_at) == ("dispatched", FRI_0900_NY)
    assert runs(schedule).count() == 1


def test_a_holiday_fire_left_over_from_an_older_calendar_is_skipped(db):
    schedule = make_schedule(trading_days_only=True)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=THANKSGIVING_0900_NY)
    [fire] = Scheduler(clock=clock(THANKSGIVING_0900_NY + timedelta(seconds=30))).tick()
    assert fire.outcome == "skipped_holiday"
    assert runs(schedule).count() == 0
    schedule.refresh_from_db()
    assert schedule.next_run_at == FRI_0900_NY
    assert schedule.last_outcome == "skipped_holiday"


def test_every_day_schedule_fires_on_the_holiday(db):
    schedule = make_schedule(now=WED_0900_NY + timedelta(minutes=1))
    [fire] = Scheduler(clock=clock(THANKSGIVING_0900_NY + timedelta(seconds=1))).tick()
    assert fire.outcome == "dispatched"
    execution = runs(schedule).get()
    assert (execution.pipeline, execution.trigger_source, execution.lane) == (
        "diagnostics.noop",
        "schedule",
        "normal",
    )
    schedule.refresh_from_db()
    assert schedule.last_execution_id == execution.pk
    assert schedule.next_run_at == FRI_0900_NY


def test_missed_fires_are_coalesced_into_one_run(db):
    schedule = make_schedule(now=WED_0900_NY - timedelta(days=5))
    later = FRI_0900_NY + timedelta(hours=2)
    fires = Scheduler(clock=clock(later)).tick()
    assert len(fires) == 1
    assert runs(schedule).count() == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at == datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def test_overlap_policy_skip_and_allow(db):
    skip = make_schedule("skip", cron="* * * * *", overlap_policy="skip")
    allow = make_schedule("allow", cron="* * * * *", overlap_policy="allow")
    first = Scheduler(clock=clock(WED_0900_NY + timedelta(minutes=1, seconds=5))).tick()
    assert sorted(f.outcome for f in first) == ["dispatched", "dispatched"]
    # the first runs are still pending (never submitted in this transaction): overlapping
    second = Scheduler(clock=clock(WED_0900_NY + timedelta(minutes=2, seconds=5))).tick()
    assert {f.schedule: f.outcome for f in second} == {
        "skip": "skipped_overlap",
        "allow": "dispatched",
    }
    assert runs(skip).count() == 1
    assert runs(allow).count() == 2


def test_disabled_schedules_do_not_fire(db):
    schedule = make_schedule(enabled=False)
    assert schedule.next_run_at is None
    assert Scheduler(clock=clock(FRI_0900_NY + timedelta(minutes=1))).tick() == []


def test_two_schedulers_without_the_lock_still_fire_once(db):
    """Even two active schedulers (e.g. two SQLite processes, misconfigured) cannot double-fire:
    the fire is claimed by compare-and-set on next_run_at and keyed by its fire time."""
    schedule = make_schedule(now=WED_0900_NY + timedelta(minutes=1))
    stale_copy = Schedule.objects.get(pk=schedule.pk)
    at = THANKSGIVING_0900_NY + timedelta(seconds=5)
    first = Scheduler(clock=clock(at))
    assert [f.outcome for f in first.tick()] == ["dispatched"]
    second = Scheduler(clock=clock(at))
    assert second._fire(stale_copy, at) is None  # read before the first claimed it
    assert second.tick() == []
    assert runs(schedule).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_fire_each_due_schedule_exactly_once(postgres, recording_backend):
    schedules = [make_schedule(f"s{i}", now=WED_0900_NY + timedelta(minutes=1)) for i in range(5)]
    at = THANKSGIVING_0900_NY + timedelta(seconds=5)
    fires: dict[str, list] = {"a": [], "b": []}
    start = threading.Barrier(2)

    class Recording(Scheduler):
        def tick(self):
            result = super().tick()
            fires[self.name].extend(result)
            return result

    def run(name):
        try:
            start.wait(timeout=10)
            Recording(clock=clock(at), name=name).run(interval=0.05, max_ticks=10)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)

    for schedule in schedules:
        assert runs(schedule).count() == 1
    assert sorted(len(f) for f in fires.values()) == [0, 5]
    assert len(recording_backend.submitted) == 5
    assert set(Execution.objects.values_list("status", flat=True)) == {Status.QUEUED}


def test_invalid_schedules_are_refused_with_every_bad_field(db):
    with pytest.raises(InvalidSchedule) as raised:
        save_schedule(
            Schedule(
                name="bad",
                pipeline="diagnostics.sleep",
                params={"seconds": -1},
                cron="61 * * * *",
                time_zone="Mars/Olympus",
                lane="express",
            )
        )
    assert sorted(raised.value.details) == ["cron", "lane", "params", "time_zone"]
    assert Schedule.objects.count() == 0


def test_spine_scheduler_once_fires_what_is_due(db):
    from django.core.management import call_command

    schedule = make_schedule(cron="* * * * *", now=datetime.now(UTC) - timedelta(minutes=3))
    call_command("spine_scheduler", "--once")
    assert runs(schedule).count() == 1
