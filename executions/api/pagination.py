"""Cursor pagination whose bad cursor is the client's error (400), not a missing page (404)."""

from rest_framework import pagination

from executions.errors import DomainError


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pages; a cursor this API never returned answers 400 `invalid_cursor`."""

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except pagination.NotFound:
            raise DomainError(
                "The cursor is not one this API returned.",
                details={self.cursor_query_param: ["Invalid cursor."]},
                code="invalid_cursor",
            ) from None
