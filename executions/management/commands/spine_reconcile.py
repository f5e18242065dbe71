"""`spine_reconcile [--loop] [--interval S] [--dry-run]`: repair what crashes left behind."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from executions import reconcile
from executions.errors import DomainError


class Command(BaseCommand):
    help = (
        "Reconcile the ledger with the backend (SPEC 4.6): submit pending executions never sent, "
        "re-send queued ones the broker lost, settle running ones whose lease expired (retry or "
        "dead-letter), and finish cancel requests that outlived their grace period. Once, or "
        "with --loop every --interval seconds. --dry-run prints the plan and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until stopped (SIGTERM)")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between passes with --loop (default SPINE_RECONCILE_INTERVAL_SECONDS)",
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
        parser.add_argument(
            "--limit", type=int, default=500, help="at most this many actions of each kind a pass"
        )

    def handle(self, *args, loop, interval, dry_run, limit, **opts):
        interval = settings.SPINE_RECONCILE_INTERVAL_SECONDS if interval is None else interval
        if interval <= 0 or limit <= 0:
            raise CommandError("--interval and --limit must be positive")
        if not loop:
            try:
                report = reconcile.reconcile(
                    dry_run=dry_run, limit=limit, on_action=self._print_action
                )
            except DomainError as exc:
                raise CommandError(f"{exc.code}: {exc.message}") from None
            self._print_report(report, always=True)
            return

        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(
            f"reconciler: a pass every {interval:g}s"
            + (" (dry run)" if dry_run else "")
            + "; stop with SIGTERM or Ctrl-C"
        )
        reconcile.run_loop(
            interval=interval,
            stop=stop,
            dry_run=dry_run,
            limit=limit,
            on_action=self._print_action,
            on_report=lambda r: self._print_report(r, always=False),
        )
        self.stdout.write("reconciler: stopped")

    def _print_action(self, action: reconcile.Action, outcome: str) -> None:
        self.stdout.write(f"  {outcome:<14} {action.describe()}")

    def _print_report(self, report: reconcile.Report, *, always: bool) -> None:
        if not report.actions and not always:
            return  # a quiet loop prints only passes that found something
        stamp = timezone.localtime(report.started_at).strftime("%Y-%m-%d %H:%M:%S")
        if report.dry_run:
            for action in report.actions:
                self.stdout.write(f"  would {action.describe()}")
        self.stdout.write(f"{stamp} reconcile: {report.summary()}")
        self.stdout.flush()
