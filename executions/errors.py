"""Domain errors of the ledger. Each carries a machine code and an HTTP status.

The API's exception handler renders them as `{code, message, details}`; the admin shows the
message; management commands turn them into `CommandError`.
"""

from typing import Any


class DomainError(Exception):
    """Base of every error an interface may show to a user."""

    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str = ""):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers that go with this error."""
        return {}


class PipelineNotFound(DomainError):
    """Raised when a pipeline name is not registered."""

    code = "pipeline_not_found"
    http_status = 400


class InvalidParams(DomainError):
    """Raised when params fail the pipeline's schema; `details` maps field to messages."""

    code = "invalid_params"
    http_status = 400


class InvalidLane(DomainError):
    """Raised when a lane name is not one of the configured lanes."""

    code = "invalid_lane"
    http_status = 400


class InvalidTransition(DomainError):
    """Raised when a status change is not allowed from the execution's current status."""

    code = "invalid_transition"
    http_status = 409


class IdempotencyConflict(DomainError):
    """Raised when an idempotency key is reused with a different payload."""

    code = "idempotency_conflict"
    http_status = 409


class KeyBusy(DomainError):
    """Raised when an execution with the same logical key is already active (policy: reject)."""

    code = "key_busy"
    http_status = 409


class BackpressureRejected(DomainError):
    """Raised when a lane or the whole ledger is over its cap of active executions."""

    code = "backpressure"
    http_status = 429

    def __init__(
        self, message: str, *, reason: str, retry_after: int, details: dict | None = None
    ) -> None:
        super().__init__(message, details={"reason": reason, **(details or {})}, code=reason)
        self.reason = reason
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ExecutionNotFound(DomainError):
    """Raised when an execution id does not exist."""

    code = "not_found"
    http_status = 404


class BackendUnavailable(DomainError):
    """Raised when the configured backend cannot be loaded or reached."""

    code = "backend_unavailable"
    http_status = 503


# --- Errors raised by pipeline handlers: they tell the runner what to do next ------------------


class PipelineError(Exception):
    """Base of errors a pipeline handler raises on purpose."""


class RetryableError(PipelineError):
    """A transient failure: retry with backoff while attempts remain (the default for surprises)."""


class PermanentError(PipelineError):
    """Retrying the same input cannot help (bad params, a malformed source file): `failed`."""


class WorkerLost(RetryableError):
    """Recorded (never raised) when a run's worker stopped renewing its lease: a failed attempt."""


class NotPublishedYet(PipelineError):
    """The source has not published the data yet: retry until the pipeline's deadline."""


class ExecutionCancelled(BaseException):
    """Raised inside a handler when its execution's cancel was requested.

    A BaseException so that a handler's broad `except Exception` does not swallow it.
    """


class ExecutionTimeout(BaseException):
    """Raised inside a handler that outlived its pipeline's `timeout_seconds` (retryable)."""


class LeaseLost(BaseException):
    """Raised inside a handler whose lease was taken over by another worker or the reconciler."""


class InvalidSchedule(DomainError):
    """Raised when a schedule's cron, time zone, pipeline, lane or params are not valid."""

    code = "invalid_schedule"
    http_status = 400
