"""The interface every backend offers (SPEC §4.5 and §10.4)."""

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """Runs executions: submits them, cancels them, and reports on itself."""

    name: str

    def submit(self, execution_id: str, lane: str, delay_seconds: float) -> str:
        """Hand the execution to the backend, after `delay_seconds`; return the backend run id."""
        ...

    def cancel(self, execution_id: str, backend_run_id: str) -> bool:
        """Withdraw a submitted run if the backend still holds it; True if it did."""
        ...

    def status(self, execution_id: str, backend_run_id: str) -> dict[str, Any]:
        """What the backend knows about one run (free-form, for operators)."""
        ...

    def health(self) -> dict[str, Any]:
        """`{"status": "ok" | "down", ...}`: whether the backend can take work now."""
        ...

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting per lane."""
        ...
