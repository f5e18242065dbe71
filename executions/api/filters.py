"""Query filters of the executions list."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend

from executions.models import Execution, LaneName, Status, TriggerSource


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time read in UTC; one outside years 1-9999 in UTC is invalid.

    PostgreSQL refuses UTC offsets past ±15:59 that Python accepts (a 500 found by schemathesis),
    so the value is converted before it reaches a query.
    """

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range once converted to UTC.", code="invalid")


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class ExecutionFilter(django_filters.FilterSet):
    """`?status=failed&status=dead_lettered&pipeline=…&lane=…&trigger_source=…&created_after=…`"""

    # distinct=False: a status is a column of the row, so no join can repeat it; the default
    # SELECT DISTINCT made PostgreSQL sort every matching row (300 ms over 1M, `make bench`)
    status = django_filters.MultipleChoiceFilter(choices=Status.choices, distinct=False)
    pipeline = django_filters.CharFilter()
    lane = django_filters.ChoiceFilter(choices=LaneName.choices)
    trigger_source = django_filters.ChoiceFilter(choices=TriggerSource.choices)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    parent = django_filters.UUIDFilter(field_name="parent_id")
    root = django_filters.UUIDFilter(field_name="root_id")

    class Meta:
        model = Execution
        fields = [
            "status",
            "pipeline",
            "lane",
            "trigger_source",
            "created_after",
            "created_before",
            "parent",
            "root",
        ]

    def get_form_class(self):
        # django-filter builds the form class (labels and all) for every request: 0.3 ms of a
        # 4 ms list request (issue 8). It depends only on the filters declared above, so it is
        # built once; each form still deep-copies its fields, so no request sees another's.
        cls = type(self)
        if "_form_class" not in cls.__dict__:
            cls._form_class = super().get_form_class()
        return cls._form_class


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend; a request naming none of the filters skips the filter set.

    With no filter in the query string every filter is a no-op, but building the filter set
    and its form (deep copies of each filter and form field) still cost about 0.4 ms of a list
    request's 3 to 4 ms of CPU (issue 8): the unfiltered first page is what dashboards poll.
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and request.query_params.keys().isdisjoint(
            filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)
