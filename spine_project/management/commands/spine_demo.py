"""`spine_demo`: the embedded quick start — migrate, load the sample data, serve with a worker."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Set up the database, load the sample data through the pipelines, and serve the portal "
        "with the in-process backend (the embedded default of `make run`)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
        parser.add_argument(
            "--no-serve", action="store_true", help="set up and load data, then exit"
        )

    def handle(self, *args, host, port, no_serve, **opts):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS("Database ready: " + _describe_db()))
        self._load_otc_sample()
        if no_serve:
            return
        self.stdout.write(
            f"Serving Market Spine on http://{host}:{port}/  (backend: {settings.SPINE_BACKEND})\n"
            f"  health  http://{host}:{port}/health/live\n"
            f"  admin   http://{host}:{port}/admin/\n"
            f"  API     http://{host}:{port}/api/v1/  (docs http://{host}:{port}/api/docs/; "
            "a user and token: manage.py spine_create_user NAME --role operator)\n"
        )
        _start_reconciler()
        call_command("runserver", f"{host}:{port}", use_reloader=False, use_threading=True)

    def _load_otc_sample(self) -> None:
        """Load data/otc_sample.csv through `otc.ingest_week` (idempotent on every run)."""
        from otc.services import load_sample_week

        execution = load_sample_week()
        if execution is None:
            self.stdout.write("OTC sample: not found in SPINE_OTC_DATA_DIR, skipped")
        elif execution.status == "completed":
            r = execution.result
            assert r is not None  # a completed ingest always records its counts
            self.stdout.write(
                self.style.SUCCESS(
                    f"OTC sample week {r['week']} ({r['tier']}): {r['rows_loaded']} rows, "
                    f"{r['metric_rows']} symbols (execution {execution.id})"
                )
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"OTC sample: execution {execution.id} is {execution.status} "
                    f"{execution.error_message}".rstrip()
                )
            )


def _start_reconciler() -> None:
    """Reconcile in a background thread: the local backend loses its in-memory work on restart."""
    import threading

    from executions.reconcile import run_loop

    threading.Thread(
        target=run_loop,
        kwargs={"interval": settings.SPINE_RECONCILE_INTERVAL_SECONDS, "stop": threading.Event()},
        name="spine-reconciler",
        daemon=True,
    ).start()


def _describe_db() -> str:
    db = settings.DATABASES["default"]
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}"
