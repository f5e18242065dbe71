"""`probe.credentials`: a pipeline whose params carry secrets, logged by its own handler.

Used only by the security tests (installed through `tests.security.settings`): it fails its
first attempt so the run goes through the retry path too.
"""

from pydantic import BaseModel, ConfigDict

from executions.errors import RetryableError
from executions.registry import RetryPolicy, pipeline


class Connection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    client_secret: str


class CredentialParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str
    api_token: str
    connection: Connection
    fail_attempts: int = 1


@pipeline(
    "probe.credentials",
    params=CredentialParams,
    timeout_seconds=60,
    retry=RetryPolicy(max_attempts=3, backoff_base_seconds=0.2, backoff_max_seconds=1.0),
)
def credentials(params: CredentialParams, ctx):
    """Log the params (masking must hide the secrets), fail once, then succeed."""
    ctx.logger.info("probe.params", params=params.model_dump())
    if ctx.attempt <= params.fail_attempts:
        raise RetryableError(f"probe failing attempt {ctx.attempt} on purpose")
    return {"host": params.connection.host, "attempt": ctx.attempt}
