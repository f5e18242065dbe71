"""Content negotiation where an unknown `?format=` is the client's error (400), not a 404.

A format suffix in the path (`/api/v1/schedules/1.xml`) names no resource and stays a 404.
"""

from django.http import Http404
from rest_framework.negotiation import DefaultContentNegotiation

from executions.errors import DomainError


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation; a `?format=` that no renderer offers answers 400 `invalid_format`."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Http404:
            if format_suffix:
                raise
            param = self.settings.URL_FORMAT_OVERRIDE
            offered = sorted({r.format for r in renderers})
            raise DomainError(
                f"Unknown format {request.query_params.get(param)!r}; this endpoint offers "
                f"{', '.join(offered)}.",
                details={param: [f"Must be one of {offered}."]},
                code="invalid_format",
            ) from None
