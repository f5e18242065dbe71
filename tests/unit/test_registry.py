"""The registry: registration by decorator, validated at import time."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel

from executions.errors import InvalidParams, PipelineNotFound
from executions.registry import KeyPolicy, NoParams, Registry, RetryPolicy, pipeline, registry


class Week(BaseModel):
    tier: str
    week: str


def test_diagnostic_pipelines_are_discovered_at_start_up():
    assert {"diagnostics.noop", "diagnostics.sleep"} <= set(registry.names())
    sleep = registry.get("diagnostics.sleep")
    assert (sleep.lane, sleep.retry.max_attempts, sleep.timeout_seconds) == ("normal", 3, 3600)
    assert set(sleep.params_schema()["properties"]) == {
        "seconds",
        "fail_attempts",
        "permanent_failure",
    }


def test_registering_a_name_twice_fails_at_import():
    with pytest.raises(ImproperlyConfigured, match="'diagnostics.noop' is registered twice"):

        @pipeline("diagnostics.noop")
        def again(params, ctx):
            return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "NoDots"}, "the name must look like 'domain.action'"),
        ({"name": "t.lane", "lane": "fast"}, "lane 'fast' is not one of"),
        ({"name": "t.timeout", "timeout_seconds": 0}, "timeout_seconds must be positive"),
        (
            {"name": "t.attempts", "retry": RetryPolicy(max_attempts=0)},
            "max_attempts must be at least 1",
        ),
        ({"name": "t.jitter", "retry": RetryPolicy(jitter=0.7)}, "jitter must be in [0, 0.5)"),
        (
            {"name": "t.key", "params": Week, "logical_key": "{tier}:{day}"},
            "unknown params ['day']",
        ),
    ],
)
def test_invalid_registrations_fail_with_a_reason(kwargs, message):
    local = Registry()
    name = kwargs.pop("name")
    from executions.registry import PipelineSpec

    spec_kwargs = {k if k != "params" else "params_model": v for k, v in kwargs.items()}
    with pytest.raises(ImproperlyConfigured) as excinfo:
        local.register(PipelineSpec(name=name, handler=lambda p, c: None, **spec_kwargs))
    assert message in str(excinfo.value)
    assert local.names() == []


def test_logical_key_and_deadline_come_from_params():
    from executions.registry import PipelineSpec

    spec = PipelineSpec(
        name="t.keyed",
        handler=lambda p, c: None,
        params_model=Week,
        logical_key="{tier}:{week}",
        on_key_collision=KeyPolicy.RETURN_ACTIVE,
        deadline=lambda params, created: (
            datetime.fromisoformat(params.week).replace(tzinfo=UTC) + timedelta(days=35)
        ),
    )
    params = spec.validate({"tier": "OTCE", "week": "2025-11-10"})
    assert spec.logical_key_for(params) == "t.keyed:OTCE:2025-11-10"
    assert spec.deadline_for(params, datetime.now(UTC)) == datetime(2025, 12, 15, tzinfo=UTC)


def test_validation_errors_map_fields_to_messages():
    spec = registry.get("diagnostics.sleep")
    with pytest.raises(InvalidParams) as excinfo:
        spec.validate({"seconds": -1, "fail_attempts": "x"})
    assert sorted(excinfo.value.details) == ["fail_attempts", "seconds"]
    with pytest.raises(InvalidParams, match="params must be a JSON object"):
        spec.validate([1, 2])


def test_unknown_pipeline_lists_the_known_ones():
    with pytest.raises(PipelineNotFound) as excinfo:
        registry.get("nope.nope")
    assert "diagnostics.noop" in excinfo.value.details["known"]


def test_no_params_refuses_extra_fields():
    with pytest.raises(InvalidParams):
        registry.get("diagnostics.noop").validate({"x": 1})
    assert NoParams.model_validate({}).model_dump() == {}
