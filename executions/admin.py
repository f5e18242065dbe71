"""Admin registrations for the ledger (the operations console grows here)."""

# --- Schedules (issue 6) -------------------------------------------------------------------------

from django.contrib import admin, messages

from executions import scheduler
from executions.errors import DomainError
from executions.models import Schedule


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

        class ValidatingForm(form):
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
