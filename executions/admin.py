"""The operations console for the ledger (SPEC §7): read-only rows, actions through services.

Every action asks for confirmation on a page that says how many rows it will touch, checks its
own permission, and calls the same service as the API with an `admin` actor, so the audit trail
names the user, the reason and the request id.
"""

import json
import uuid
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from executions import scheduler, services
from executions.errors import DomainError
from executions.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Execution,
    Lane,
    Schedule,
    Status,
)
from executions.transitions import Actor

CONFIRM_TEMPLATE = "admin/executions/confirm_action.html"
_SHOWN_ROWS = 50  # rows listed by name on a confirmation page; the count covers all of them

STATUS_COLOURS = {
    Status.PENDING: "#777",
    Status.QUEUED: "#2a6ebb",
    Status.RUNNING: "#c68a00",
    Status.COMPLETED: "#2e8540",
    Status.FAILED: "#b3261e",
    Status.DEAD_LETTERED: "#7b1fa2",
    Status.CANCELLED: "#555",
}


class ReasonForm(forms.Form):
    """What an operator gives with an action: a reason for the audit trail."""

    reason = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


def admin_actor(request, reason: str = "") -> Actor:
    """The audit actor of an admin action: the user, the request id and the reason given."""
    return Actor.for_user(
        request.user, source="admin", request_id=getattr(request, "request_id", ""), reason=reason
    )


def confirmed_action(
    modeladmin: admin.ModelAdmin,
    request,
    queryset,
    *,
    title: str,
    question: str,
    submit_label: str,
    perform: Callable[[Any, dict], Any],
    form_class: type[forms.Form] = ReasonForm,
    action_name: str = "",
    form_action: str = "",
    cancel_url: str = "",
):
    """Show a confirmation page with the row count; on confirm, run `perform` on each row.

    Returns None after performing (the caller redirects) or the confirmation page. A row the
    service refuses (a `DomainError`) is reported by name and the others still run.
    """
    confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
    form = form_class(request.POST if confirmed else None)
    if confirmed and form.is_valid():
        done, refused, results = 0, [], []
        for obj in queryset:
            try:
                results.append(perform(obj, form.cleaned_data))
                done += 1
            except DomainError as exc:
                refused.append(f"{obj}: {exc.message}")
        if done:
            modeladmin.message_user(request, f"{title}: {done} done.", messages.SUCCESS)
        for line in refused:
            modeladmin.message_user(request, f"{title} refused for {line}", messages.ERROR)
        return results
    rows = list(queryset)
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "submit_label": submit_label,
        "opts": opts,
        "queryset": rows,
        "count": len(rows),
        "shown": rows[:_SHOWN_ROWS],
        "hidden_count": max(0, len(rows) - _SHOWN_ROWS),
        "form": form,
        "action_name": action_name,
        "form_action": form_action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "cancel_url": cancel_url or reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        "media": modeladmin.media,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger rows are never added, edited or deleted here: actions call services instead."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def admin_link(obj, label=None) -> str:
    if obj is None:
        return "—"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or obj)


def _pretty_json(value) -> str:
    if value in (None, "", {}, []):
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def _age(since) -> str:
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86_400}d {seconds % 86_400 // 3600}h"


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    """Executions: list, filters, search, a detail page with timeline and lineage, actions."""

    list_display = [
        "short_id",
        "pipeline",
        "status_badge",
        "lane",
        "attempts",
        "trigger_source",
        "created_by",
        "age",
        "duration",
    ]
    list_filter = [
        "status",
        "lane",
        "trigger_source",
        ("pipeline", admin.AllValuesFieldListFilter),
        "created_at",
    ]
    search_fields = ["pipeline", "logical_key", "request_id", "idempotency_key"]
    search_help_text = "An execution id, or part of a pipeline name, logical key or request id."
    list_select_related = ["created_by"]
    list_per_page = 50
    show_full_result_count = False  # counting a million rows on every page load is wasted work
    actions = ["retry_selected", "cancel_selected"]
    fieldsets = [
        (None, {"fields": ["id", "pipeline", "status_badge", "lane", "trigger_source"]}),
        ("Lineage", {"fields": ["lineage"]}),
        ("Params and result", {"fields": ["params_json", "result_json"]}),
        ("Error", {"fields": ["error_type", "error_message", "traceback"]}),
        (
            "Run",
            {
                "fields": [
                    ("attempt", "max_attempts"),
                    ("created_at", "queued_at", "started_at", "finished_at"),
                    ("not_before", "deadline_at", "lease_expires_at"),
                    ("backend", "backend_run_id", "worker_id"),
                    ("created_by", "request_id"),
                    ("logical_key", "idempotency_key"),
                    ("cancel_requested_at", "cancel_requested_by", "cancel_reason"),
                ]
            },
        ),
        ("Event timeline", {"fields": ["timeline"]}),
    ]
    readonly_fields = [
        "id",
        "pipeline",
        "status_badge",
        "lane",
        "trigger_source",
        "lineage",
        "params_json",
        "result_json",
        "error_type",
        "error_message",
        "traceback",
        "attempt",
        "max_attempts",
        "created_at",
        "queued_at",
        "started_at",
        "finished_at",
        "not_before",
        "deadline_at",
        "lease_expires_at",
        "backend",
        "backend_run_id",
        "worker_id",
        "created_by",
        "request_id",
        "logical_key",
        "idempotency_key",
        "cancel_requested_at",
        "cancel_requested_by",
        "cancel_reason",
        "timeline",
    ]

    # --- list columns and detail fields ---------------------------------------------------------

    @admin.display(description="id", ordering="id")
    def short_id(self, obj):
        return str(obj.id)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="spine-status spine-status-{}" style="color:{};font-weight:bold">'
            "{}</span>",
            obj.status,
            STATUS_COLOURS.get(obj.status, "#000"),
            obj.status,
        )

    @admin.display(description="attempt")
    def attempts(self, obj):
        return f"{obj.attempt}/{obj.max_attempts}"

    @admin.display(description="age", ordering="created_at")
    def age(self, obj):
        return _age(obj.created_at)

    @admin.display(description="duration")
    def duration(self, obj):
        seconds = obj.duration_seconds
        return "—" if seconds is None else f"{seconds:.1f}s"

    @admin.display(description="params")
    def params_json(self, obj):
        return _pretty_json(obj.params)

    @admin.display(description="result")
    def result_json(self, obj):
        return _pretty_json(obj.result)

    @admin.display(description="traceback")
    def traceback(self, obj):
        return format_html("<pre>{}</pre>", obj.error_traceback) if obj.error_traceback else "—"

    @admin.display(description="lineage")
    def lineage(self, obj):
        rows = [("parent", admin_link(obj.parent))]
        if obj.root_id and obj.root_id != obj.parent_id:
            rows.append(("root", admin_link(obj.root)))
        children = list(obj.children.order_by("created_at"))
        rows.append(
            (
                "retries and replays",
                format_html_join(", ", "{}", ((admin_link(c),) for c in children)) or "—",
            )
        )
        try:
            letter = obj.dead_letter  # reverse relation from `dlq`; no import of that app
        except ObjectDoesNotExist:
            letter = None
        if letter is not None:
            rows.append(("dead letter", admin_link(letter)))
        return format_html(
            '<table class="spine-lineage">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="events")
    def timeline(self, obj):
        events = obj.events.order_by("at", "id")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td><code>{}</code></td><td><code>{}</code></td></tr>",
            (
                (
                    timezone.localtime(e.at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                    e.kind,
                    f"{e.from_status} → {e.to_status}" if e.to_status else "",
                    e.actor,
                    e.source,
                    e.reason,
                    e.request_id,
                    json.dumps(e.data, sort_keys=True, default=str) if e.data else "",
                )
                for e in events
            ),
        )
        return format_html(
            '<table id="event-timeline"><thead><tr><th>time</th><th>event</th><th>status</th>'
            "<th>actor</th><th>source</th><th>reason</th><th>request id</th><th>data</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    def get_search_results(self, request, queryset, search_term):
        """An exact execution id finds that row; other terms search the text columns."""
        try:
            return queryset.filter(Q(id=uuid.UUID(search_term.strip()))), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    # --- permissions per action -----------------------------------------------------------------

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm("executions.retry_execution")

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm("executions.cancel_execution")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The buttons follow the status of the very row this page shows.
        context["can_retry_object"] = (
            obj is not None
            and obj.status in TERMINAL_STATUSES
            and self.has_retry_permission(request)
        )
        context["can_cancel_object"] = (
            obj is not None
            and obj.status in ACTIVE_STATUSES
            and self.has_cancel_permission(request)
        )
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    # --- actions --------------------------------------------------------------------------------

    @admin.action(description="Retry the selected executions…", permissions=["retry"])
    def retry_selected(self, request, queryset):
        result = self._retry(request, queryset, action_name="retry_selected")
        return None if isinstance(result, list) else result

    @admin.action(description="Cancel the selected executions…", permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        result = self._cancel(request, queryset, action_name="cancel_selected")
        return None if isinstance(result, list) else result

    def _retry(self, request, queryset, **kwargs):
        def perform(obj, data):
            return services.retry(
                obj.id,
                actor=admin_actor(request, data["reason"]),
            ).execution

        return confirmed_action(
            self,
            request,
            queryset,
            title="Retry executions",
            question="Retry runs each finished execution again as a new execution whose parent "
            "is the old one; executions still active are refused.",
            submit_label="Yes, retry",
            perform=perform,
            **kwargs,
        )

    def _cancel(self, request, queryset, **kwargs):
        def perform(obj, data):
            return services.cancel(obj.id, actor=admin_actor(request, data["reason"]))

        return confirmed_action(
            self,
            request,
            queryset,
            title="Cancel executions",
            question="Pending and queued executions are cancelled at once; running ones are "
            "asked to stop. Finished executions are refused.",
            submit_label="Yes, cancel",
            perform=perform,
            **kwargs,
        )

    # --- one-object action pages (the buttons on the detail page) -------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<uuid:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name="{}_{}_retry".format(*info),
            ),
            path(
                "<uuid:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="{}_{}_cancel".format(*info),
            ),
            *super().get_urls(),
        ]

    def retry_view(self, request, object_id):
        if not self.has_retry_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:executions_execution_change", args=[object_id])
        result = self._retry(
            request,
            Execution.objects.filter(pk=object_id),
            form_action=request.path,
            cancel_url=change_url,
        )
        if isinstance(result, list):  # done: show the new execution, or the old one if refused
            target = result[0].pk if result else object_id
            return HttpResponseRedirect(reverse("admin:executions_execution_change", args=[target]))
        return result

    def cancel_view(self, request, object_id):
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        change_url = reverse("admin:executions_execution_change", args=[object_id])
        result = self._cancel(
            request,
            Execution.objects.filter(pk=object_id),
            form_action=request.path,
            cancel_url=change_url,
        )
        if isinstance(result, list):
            return HttpResponseRedirect(change_url)
        return result


@admin.register(Lane)
class LaneAdmin(ReadOnlyAdmin):
    """Lanes: pause and resume (a paused lane holds new work as `pending`)."""

    readonly_fields = ("name", "paused", "changed_at", "changed_by", "reason")
    list_display = readonly_fields
    actions = ["pause_selected", "resume_selected"]

    def has_pause_permission(self, request, obj=None):
        return request.user.has_perm("executions.pause_lane")

    @admin.action(description="Pause the selected lanes…", permissions=["pause"])
    def pause_selected(self, request, queryset):
        return self._set_paused(request, queryset, True, "pause_selected")

    @admin.action(description="Resume the selected lanes…", permissions=["pause"])
    def resume_selected(self, request, queryset):
        return self._set_paused(request, queryset, False, "resume_selected")

    def _set_paused(self, request, queryset, paused: bool, action_name: str):
        verb = "Pause" if paused else "Resume"
        result = confirmed_action(
            self,
            request,
            queryset,
            title=f"{verb} lanes",
            question="A paused lane accepts new executions as pending and submits none."
            if paused
            else "Resuming submits the lane's held pending executions.",
            submit_label=f"Yes, {verb.lower()}",
            perform=lambda lane, data: services.set_lane_paused(
                lane.name, paused, actor=admin_actor(request, data["reason"])
            ),
            action_name=action_name,
        )
        return None if isinstance(result, list) else result


# --- Schedules (issue 6) ---------------------------------------------------------------------


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """Schedules are edited here; saving validates them and computes the next run."""

    list_display = [
        "name",
        "pipeline",
        "cron",
        "time_zone",
        "trading_days_only",
        "overlap_policy",
        "enabled",
        "next_run_at",
        "last_run_at",
        "last_outcome",
    ]
    list_filter = ["enabled", "trading_days_only", "overlap_policy", "pipeline"]
    search_fields = ["name", "pipeline", "description"]
    readonly_fields = [
        "next_run_at",
        "last_run_at",
        "last_outcome",
        "last_execution",
        "created_at",
        "updated_at",
    ]

    def save_model(self, request, obj, form, change):
        try:
            scheduler.save_schedule(obj)
        except DomainError as exc:
            # form validation (below) catches this first; kept as a guard for races
            self.message_user(request, exc.message, messages.ERROR)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class ValidatingForm(form):  # type: ignore[valid-type,misc]  # built at run time
            def clean(self):
                cleaned = super().clean()
                candidate = Schedule(**{k: v for k, v in cleaned.items() if hasattr(Schedule, k)})
                try:
                    scheduler.validate(candidate)
                except DomainError as exc:
                    for field, errors in exc.details.items():
                        target = field if field in self.fields else None
                        for error in errors:
                            self.add_error(target, error)
                return cleaned

        return ValidatingForm
