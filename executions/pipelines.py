"""Built-in diagnostic pipelines (SPEC §4.7): operators check a deployment end to end with them."""

from pydantic import BaseModel, ConfigDict, Field

from executions.errors import PermanentError, RetryableError
from executions.registry import NoParams, RetryPolicy, pipeline


@pipeline(
    "diagnostics.noop",
    params=NoParams,
    timeout_seconds=60,
    retry=RetryPolicy(max_attempts=1),
)
def noop(params, ctx):
    """Return at once (used by the benchmarks)."""
    return {"ok": True}


class SleepParams(BaseModel):
    """Params of `diagnostics.sleep`."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(default=1.0, ge=0, le=86_400, description="How long to sleep.")
    fail_attempts: int = Field(
        default=0, ge=0, le=1000, description="Retryable failures before the run succeeds."
    )
    permanent_failure: bool = Field(default=False, description="Fail permanently at once.")


@pipeline(
    "diagnostics.sleep",
    params=SleepParams,
    timeout_seconds=3600,
    retry=RetryPolicy(max_attempts=3, backoff_base_seconds=1.0, backoff_max_seconds=30.0),
)
def sleep(params: SleepParams, ctx):
    """Sleep, failing on the first `fail_attempts` attempts; cancellable at any moment."""
    if params.permanent_failure:
        raise PermanentError("diagnostics.sleep was asked to fail permanently")
    if ctx.attempt <= params.fail_attempts:
        raise RetryableError(
            f"diagnostics.sleep failing attempt {ctx.attempt} of {params.fail_attempts} on purpose"
        )
    ctx.wait(params.seconds)
    return {"slept_seconds": params.seconds, "attempt": ctx.attempt}
