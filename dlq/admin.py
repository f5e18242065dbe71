"""The operations console for dead letters: browse, replay, resolve with a note (SPEC §7)."""

from django import forms
from django.contrib import admin

from dlq import services
from dlq.models import DeadLetter, Resolution
from executions.admin import ReadOnlyAdmin, admin_actor, admin_link, confirmed_action


class ReplayForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


class ResolveForm(forms.Form):
    resolution = forms.ChoiceField(
        choices=[(Resolution.IGNORED, "ignored"), (Resolution.FIXED_MANUALLY, "fixed manually")]
    )
    note = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: why this dead letter needs no replay.",
    )


class UnresolvedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("unresolved", "unresolved"), ("resolved", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "unresolved":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Dead letters: read-only rows; replay and resolve go through `dlq.services`."""

    list_display = [
        "id",
        "pipeline",
        "reason",
        "attempts",
        "created_at",
        "state",
        "resolved_by",
        "execution_link",
    ]
    list_filter = [UnresolvedFilter, "reason", "resolution", "pipeline"]
    search_fields = ["pipeline", "error_summary", "note"]
    list_select_related = ["resolved_by", "execution"]
    actions = ["replay_selected", "resolve_selected"]
    readonly_fields = [
        "id",
        "execution_link",
        "pipeline",
        "reason",
        "error_summary",
        "attempts",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "note",
        "replay_link",
    ]
    fields = list(readonly_fields)

    @admin.display(description="state", ordering="resolved_at")
    def state(self, obj):
        return obj.resolution or "unresolved"

    @admin.display(description="execution")
    def execution_link(self, obj):
        return admin_link(obj.execution, str(obj.execution_id)[:8])

    @admin.display(description="replay execution")
    def replay_link(self, obj):
        return admin_link(obj.replay_execution)

    def has_replay_permission(self, request, obj=None):
        return request.user.has_perm("dlq.replay_deadletter")

    def has_resolve_permission(self, request, obj=None):
        return request.user.has_perm("dlq.resolve_deadletter")

    @admin.action(description="Replay the selected dead letters…", permissions=["replay"])
    def replay_selected(self, request, queryset):
        result = confirmed_action(
            self,
            request,
            queryset,
            title="Replay dead letters",
            question="Each dead execution is dispatched again (its parent set) and its dead "
            "letter resolved as replayed; resolved ones are refused.",
            submit_label="Yes, replay",
            form_class=ReplayForm,
            perform=lambda letter, data: services.replay(
                letter.pk, actor=admin_actor(request, data["note"]), note=data["note"]
            ),
            action_name="replay_selected",
        )
        return None if isinstance(result, list) else result

    @admin.action(description="Resolve the selected dead letters…", permissions=["resolve"])
    def resolve_selected(self, request, queryset):
        result = confirmed_action(
            self,
            request,
            queryset,
            title="Resolve dead letters",
            question="Resolving closes each dead letter without running it again.",
            submit_label="Yes, resolve",
            form_class=ResolveForm,
            perform=lambda letter, data: services.resolve(
                letter.pk,
                resolution=data["resolution"],
                note=data["note"],
                actor=admin_actor(request, data["note"]),
            ),
            action_name="resolve_selected",
        )
        return None if isinstance(result, list) else result
