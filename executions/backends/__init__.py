"""Backends run executions somewhere: in-process (`local`), on Dramatiq, or via a plugin.

Built-in backends load by name; others from the `market_spine.backends` entry-point group.
"""

import functools
import inspect
from importlib import import_module
from importlib.metadata import entry_points

import structlog
from django.conf import settings

from executions.backends.base import Backend
from executions.errors import BackendUnavailable

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "market_spine.backends"

BUILTIN = {
    "local": "executions.backends.local:LocalBackend",
    "dramatiq": "executions.backends.dramatiq:DramatiqBackend",
}

# Orchestrators with a known adapter design but no working adapter yet: selecting one fails at
# start-up with a message that names what is missing (SPEC §4.5).
NOT_YET_AVAILABLE = {
    "prefect": "a Prefect adapter (install a package that provides the 'prefect' entry point)",
    "dagster": "a Dagster adapter (install a package that provides the 'dagster' entry point)",
    "temporal": "a Temporal adapter (install a package that provides the 'temporal' entry point)",
}

REQUIRED_METHODS = ("submit", "cancel", "status", "health", "queue_depths")


def load_backend(name: str) -> Backend:
    """Instantiate the backend called `name`, checking it offers the whole interface."""
    target = BUILTIN.get(name)
    if target is not None:
        module_name, _, attr = target.partition(":")
        factory = getattr(import_module(module_name), attr)
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            missing = NOT_YET_AVAILABLE.get(name)
            if missing:
                raise BackendUnavailable(f"Backend {name!r} is not available: it needs {missing}.")
            known = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
            raise BackendUnavailable(
                f"Unknown backend {name!r}. Known backends: {', '.join(known)}. Plugins register "
                f"in the {ENTRY_POINT_GROUP!r} entry-point group."
            )
        try:
            factory = found[0].load()
        except Exception as exc:  # a broken plugin must name itself at start-up
            raise BackendUnavailable(f"Backend {name!r} failed to load: {exc}") from exc
    backend = factory()
    check_interface(backend)
    return backend


def check_interface(backend: object) -> None:
    """Raise `BackendUnavailable` unless `backend` has every method of `Backend` with its shape."""
    name = getattr(backend, "name", None)
    if not isinstance(name, str) or not name:
        raise BackendUnavailable(f"{backend!r} has no `name`.")
    for method in REQUIRED_METHODS:
        func = getattr(backend, method, None)
        if not callable(func):
            raise BackendUnavailable(f"Backend {name!r} lacks the method {method}().")
        expected = inspect.signature(getattr(Backend, method))
        actual = inspect.signature(func)
        want = [p for p in expected.parameters if p != "self"]
        if list(actual.parameters) != want:
            raise BackendUnavailable(
                f"Backend {name!r}: {method}{actual} does not match {method}{expected}."
            )


@functools.cache
def get_backend() -> Backend:
    """The process-wide backend selected by `SPINE_BACKEND`."""
    return load_backend(settings.SPINE_BACKEND)


def withdraw(backend: Backend, execution_id: str, backend_run_id: str) -> None:
    """Withdraw a submitted run where the backend still holds it; best effort, never raises.

    A message left behind is harmless: the runner's claim drops a run that is not `queued`.
    """
    try:
        backend.cancel(execution_id, backend_run_id)
    except Exception as exc:
        log.warning("execution.withdraw_failed", execution_id=execution_id, error=str(exc))
