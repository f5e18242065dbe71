"""`spine_worker` runs django-dramatiq's worker on the queues of the chosen lanes."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.fixture
def rundramatiq(monkeypatch, settings):
    settings.SPINE_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.SPINE_BACKEND = "dramatiq"
    calls = []
    monkeypatch.setattr(
        "executions.management.commands.spine_worker.call_command",
        lambda name, **kwargs: calls.append((name, kwargs)),
    )
    return calls


def test_one_lane_runs_a_worker_on_its_queue_only(rundramatiq, settings):
    call_command("spine_worker", "--lanes", "backfill", "--processes", "2", "--threads", "3")

    [(name, kwargs)] = rundramatiq
    assert name == "rundramatiq"
    assert kwargs["queues"] == ["spine.backfill"]
    assert (kwargs["processes"], kwargs["threads"]) == (2, 3)
    assert kwargs["path"] == [str(settings.BASE_DIR)]


def test_default_serves_every_lane_with_the_configured_prefix(rundramatiq, settings):
    settings.SPINE_QUEUE_PREFIX = "blue"
    call_command("spine_worker")

    assert rundramatiq[0][1]["queues"] == ["blue.normal", "blue.backfill"]


def test_unknown_lane_is_refused(rundramatiq):
    with pytest.raises(CommandError, match="unknown lane"):
        call_command("spine_worker", "--lanes", "normal,fast")
    assert rundramatiq == []


def test_embedded_mode_has_no_worker_to_run(monkeypatch, settings):
    settings.SPINE_BROKER_URL = ""
    settings.SPINE_BACKEND = "local"
    with pytest.raises(CommandError, match="needs SPINE_BROKER_URL"):
        call_command("spine_worker")


def test_a_booted_worker_process_takes_what_it_loaded_out_of_the_collectors_reach(settings):
    import gc

    import dramatiq

    from spine_project.worker_gc import FreezeAfterBoot

    assert "spine_project.worker_gc.FreezeAfterBoot" in settings.DRAMATIQ_BROKER["MIDDLEWARE"]
    assert any(isinstance(m, FreezeAfterBoot) for m in dramatiq.get_broker().middleware)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        FreezeAfterBoot().after_process_boot(dramatiq.get_broker())
        assert gc.get_freeze_count() > 50_000  # this process's modules and objects
    finally:
        gc.unfreeze()
