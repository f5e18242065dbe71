"""Errors of dead-letter handling."""

from executions.errors import DomainError


class AlreadyResolved(DomainError):
    """Raised when replaying or resolving a dead letter that is already resolved."""

    code = "already_resolved"
    http_status = 409


class NoteRequired(DomainError):
    """Raised when a dead letter is resolved without a note."""

    code = "note_required"
    http_status = 400


class DeadLetterNotFound(DomainError):
    """Raised when a dead letter id does not exist."""

    code = "not_found"
    http_status = 404
