"""Query filters of the executions list."""

import django_filters

from executions.models import Execution, LaneName, Status, TriggerSource


class ExecutionFilter(django_filters.FilterSet):
    """`?status=failed&status=dead_lettered&pipeline=…&lane=…&trigger_source=…&created_after=…`"""

    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    pipeline = django_filters.CharFilter()
    lane = django_filters.ChoiceFilter(choices=LaneName.choices)
    trigger_source = django_filters.ChoiceFilter(choices=TriggerSource.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
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
