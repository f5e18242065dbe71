"""Errors of the OTC domain. Pipeline errors subclass the ledger's, which decide retry or fail."""

from executions.errors import NotPublishedYet, PermanentError, RetryableError


class BadSourceFile(PermanentError):
    """Raised when a source file has a wrong header, no data rows, or cannot be read."""


class RemoteRequestRejected(PermanentError):
    """Raised when a remote source answers a request with a 4xx other than 429."""


class NoValidRows(PermanentError):
    """Raised when no line of a source could be loaded: the week's data is left as it was."""


class WeekNotPublished(NotPublishedYet):
    """Raised when the FINRA API has no data yet for the requested tier and week."""


class SourceChanged(RetryableError):
    """Raised when a source file changed between the ingest's two reads of it (landing, parsing)."""


class SourceUnavailable(RetryableError):
    """Raised when a remote source keeps failing, or its circuit breaker is open."""
