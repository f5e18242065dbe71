"""Query filters of the dead-letter list."""

import django_filters

from dlq.models import DeadLetter, Resolution


class DeadLetterFilter(django_filters.FilterSet):
    """`?resolved=false&pipeline=…&reason=…&resolution=…`"""

    resolved = django_filters.BooleanFilter(
        field_name="resolved_at", lookup_expr="isnull", exclude=True
    )
    pipeline = django_filters.CharFilter()
    reason = django_filters.CharFilter()
    resolution = django_filters.ChoiceFilter(choices=Resolution.choices)

    class Meta:
        model = DeadLetter
        fields = ["resolved", "pipeline", "reason", "resolution"]
