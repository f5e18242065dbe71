"""The pipeline registry: pipelines register with `@pipeline(...)` and are discovered in `ready()`.

Each app's `pipelines` module is imported at start-up, so a duplicate or invalid registration
fails at import time rather than when the first execution runs.
"""

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pydantic import BaseModel, ConfigDict, ValidationError

from executions.errors import InvalidParams, PipelineNotFound
from executions.models import LaneName

Handler = Callable[..., dict[str, Any] | None]

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class NoParams(BaseModel):
    """Params of a pipeline that takes none."""

    model_config = ConfigDict(extra="forbid")


class KeyPolicy(StrEnum):
    """What the dispatcher does when the logical key already has an active execution."""

    REJECT = "reject"
    RETURN_ACTIVE = "return_active"


@dataclass(frozen=True)
class RetryPolicy:
    """How the ledger retries a retryable failure: exponential backoff with jitter, capped.

    Hand-written rather than tenacity's `wait_*` objects: the attempt counter lives in the ledger
    row, not in a retrying loop's state, and the formula is three lines.
    """

    max_attempts: int = 3
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    jitter: float = 0.25  # up to this fraction is taken off each delay; < 0.5 keeps delays growing

    def delay_for(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponential = self.backoff_base_seconds * (2 ** max(attempt - 1, 0))
        capped = min(self.backoff_max_seconds, exponential)
        return float(capped * (1 - self.jitter * (rng or random).random()))


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the dispatcher and runner need to know about one pipeline."""

    name: str
    handler: Handler
    params_model: type[BaseModel] = NoParams
    lane: str = LaneName.NORMAL
    timeout_seconds: float = 3600.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    logical_key: str | None = None
    on_key_collision: KeyPolicy = KeyPolicy.REJECT
    deadline: Callable[[BaseModel, datetime], datetime | None] | timedelta | None = None
    description: str = ""

    def validate(self, params: dict[str, Any] | None) -> BaseModel:
        """Validate raw params, raising `InvalidParams` with a message per field."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidParams(
                "params must be a JSON object.", details={"params": ["Expected an object."]}
            )
        try:
            return self.params_model.model_validate(params)
        except ValidationError as exc:
            details: dict[str, list[str]] = {}
            for err in exc.errors():
                name = ".".join(str(p) for p in err["loc"]) or "params"
                details.setdefault(name, []).append(err["msg"])
            fields = ", ".join(sorted(details))
            raise InvalidParams(
                f"Invalid params for {self.name}: {fields}.", details=details
            ) from None

    def logical_key_for(self, params: BaseModel) -> str | None:
        """The logical key of an execution with these params, or None if the pipeline has none."""
        if self.logical_key is None:
            return None
        return f"{self.name}:" + self.logical_key.format(**params.model_dump(mode="json"))

    def deadline_for(self, params: BaseModel, created_at: datetime) -> datetime | None:
        """When "not published yet" retries give up and the execution is dead-lettered."""
        if self.deadline is None:
            return None
        if isinstance(self.deadline, timedelta):
            return created_at + self.deadline
        return self.deadline(params, created_at)

    def params_schema(self) -> dict[str, Any]:
        """The params' JSON Schema, for the API and docs."""
        return self.params_model.model_json_schema()


class Registry:
    """Pipelines by name."""

    def __init__(self) -> None:
        self._specs: dict[str, PipelineSpec] = {}

    def register(self, spec: PipelineSpec) -> None:
        _check(spec)
        if spec.name in self._specs:
            raise ImproperlyConfigured(f"Pipeline {spec.name!r} is registered twice.")
        self._specs[spec.name] = spec

    def unregister(self, name: str) -> None:
        """Remove a pipeline (tests register throw-away pipelines)."""
        self._specs.pop(name, None)

    def get(self, name: str) -> PipelineSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise PipelineNotFound(
                f"Unknown pipeline {name!r}.", details={"pipeline": name, "known": self.names()}
            ) from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def all(self) -> list[PipelineSpec]:
        return [self._specs[n] for n in self.names()]


registry = Registry()


def pipeline(
    name: str,
    *,
    params: type[BaseModel] = NoParams,
    lane: str = LaneName.NORMAL,
    timeout_seconds: float = 3600.0,
    retry: RetryPolicy | None = None,
    logical_key: str | None = None,
    on_key_collision: KeyPolicy = KeyPolicy.REJECT,
    deadline: Callable[[Any, datetime], datetime | None] | timedelta | None = None,
    description: str | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as pipeline `name`, called as `handler(params, ctx)`."""

    def decorator(func: Handler) -> Handler:
        registry.register(
            PipelineSpec(
                name=name,
                handler=func,
                params_model=params,
                lane=lane,
                timeout_seconds=timeout_seconds,
                retry=retry or RetryPolicy(),
                logical_key=logical_key,
                on_key_collision=KeyPolicy(on_key_collision),
                deadline=deadline,
                description=description or (func.__doc__ or "").strip().split("\n")[0],
            )
        )
        return func

    return decorator


def _check(spec: PipelineSpec) -> None:
    problems = []
    if not _NAME.match(spec.name):
        problems.append("the name must look like 'domain.action' (lowercase, dotted)")
    if spec.lane not in LaneName.values:
        problems.append(f"lane {spec.lane!r} is not one of {LaneName.values}")
    if spec.timeout_seconds <= 0:
        problems.append("timeout_seconds must be positive")
    if spec.retry.max_attempts < 1:
        problems.append("retry.max_attempts must be at least 1")
    if not 0 <= spec.retry.jitter < 0.5:
        problems.append("retry.jitter must be in [0, 0.5)")
    if not (isinstance(spec.params_model, type) and issubclass(spec.params_model, BaseModel)):
        problems.append("params must be a pydantic model class")
    elif spec.logical_key is not None:
        fields = {f for _, f, _, _ in string.Formatter().parse(spec.logical_key) if f}
        unknown = fields - set(spec.params_model.model_fields)
        if unknown:
            problems.append(f"logical_key names unknown params {sorted(unknown)}")
    if problems:
        raise ImproperlyConfigured(f"Pipeline {spec.name!r} is invalid: " + "; ".join(problems))
