"""`spine_scheduler [--once] [--interval S]`: fire due schedules through the dispatcher."""

import signal
import threading

from django.core.management.base import BaseCommand

from executions.scheduler import Scheduler


class Command(BaseCommand):
    help = (
        "Run the scheduler: fire enabled schedules when due (cron, time zone, NYSE trading "
        "days, overlap policy). One scheduler is active at a time (a PostgreSQL advisory lock; "
        "on SQLite run a single process); others wait as standbys."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one tick, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            help="seconds between ticks (SPINE_SCHEDULER_INTERVAL_SECONDS)",
        )

    def handle(self, *args, once, interval, **opts):
        scheduler = Scheduler()
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        scheduler.run(interval=interval, stop=stop, max_ticks=1 if once else None)
