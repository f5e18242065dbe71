"""`spine_worker [--lanes normal,backfill] [--processes N] [--threads M]`: a Dramatiq worker.

A thin wrapper over django-dramatiq's `rundramatiq`, which replaces this process with
`dramatiq django_dramatiq.setup <tasks modules>`: the broker and its middleware come from
`settings.DRAMATIQ_BROKER`, and only the queues of the chosen lanes are consumed.
"""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from executions.models import LaneName
from executions.tasks import queue_name


class Command(BaseCommand):
    help = (
        "Run a Dramatiq worker for the executions of some lanes (default: all). Run one per lane "
        "to scale lanes separately, so a backfill flood cannot starve `normal`."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--lanes",
            default=",".join(LaneName.values),
            help=f"comma-separated lanes to serve (default {','.join(LaneName.values)})",
        )
        parser.add_argument("--processes", type=int, default=1, help="worker processes")
        parser.add_argument("--threads", type=int, default=8, help="threads per process")
        parser.add_argument(
            "--shutdown-timeout",
            type=float,
            default=30.0,
            help="seconds running executions get to finish on SIGTERM (default 30; an execution "
            "still running then is retried by the reconciler once its lease expires)",
        )

    def handle(self, *args, lanes, processes, threads, shutdown_timeout, **opts):
        chosen = [lane.strip() for lane in lanes.split(",") if lane.strip()]
        unknown = sorted(set(chosen) - set(LaneName.values))
        if not chosen or unknown:
            raise CommandError(
                f"--lanes: unknown lane(s) {', '.join(unknown) or '(none given)'}; "
                f"lanes are {', '.join(LaneName.values)}"
            )
        if processes < 1 or threads < 1:
            raise CommandError("--processes and --threads must be at least 1")
        if settings.SPINE_BACKEND != "dramatiq" or not settings.SPINE_BROKER_URL:
            raise CommandError(
                "spine_worker needs SPINE_BROKER_URL (redis://… or amqp://…) and the dramatiq "
                f"backend (SPINE_BACKEND is {settings.SPINE_BACKEND!r}); embedded mode runs "
                "executions inside the serving process instead"
            )
        queues = [queue_name(lane) for lane in dict.fromkeys(chosen)]
        self.stdout.write(
            f"spine_worker: lanes {', '.join(dict.fromkeys(chosen))} -> queues "
            f"{', '.join(queues)}; {processes} process(es) x {threads} thread(s)"
        )
        self.stdout.flush()
        call_command(
            "rundramatiq",
            processes=processes,
            threads=threads,
            queues=queues,
            path=[str(settings.BASE_DIR)],
            skip_logging=True,  # settings.py configured logging (structlog, JSON) already
            worker_shutdown_timeout=int(shutdown_timeout * 1000),
            verbosity=1,
        )
