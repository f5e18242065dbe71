"""`spine_cleanup [--dry-run] [--kind K] [--batch-size N]`: delete rows past retention."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from executions import cleanup


class Command(BaseCommand):
    help = (
        "Delete rows past their retention (SPINE_RETENTION_DAYS; executions and events 30 days "
        "by default) in short batches. Unresolved dead letters, their executions, active "
        "executions and the latest execution of each logical key are kept. --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
        parser.add_argument(
            "--kind",
            action="append",
            dest="kinds",
            help="only this kind (repeatable); known: "
            + ", ".join(t.kind for t in cleanup.targets()),
        )
        parser.add_argument("--batch-size", type=int, help="rows per transaction (default 1000)")
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="show a progress bar (default: only when stderr is a terminal)",
        )
        parser.add_argument("--no-progress", action="store_false", dest="progress")

    def handle(self, *args, dry_run, kinds, batch_size, progress, **opts):
        interactive = sys.stderr.isatty() if progress is None else progress
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")

        def bar(kind, total):
            return tqdm(total=total, desc=f"cleanup {kind}", unit="row", disable=not interactive)

        try:
            reports = cleanup.run_cleanup(
                kinds=kinds, dry_run=dry_run, batch_size=batch_size, progress=bar
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        verb = "would delete" if dry_run else "deleted"
        for r in reports:
            count = r.candidates if dry_run else r.deleted
            extra = "".join(f", {n} {label}" for label, n in sorted(r.cascaded.items()))
            self.stdout.write(
                f"{r.kind}: {verb} {count} (older than {r.days} days, before "
                f"{r.cutoff:%Y-%m-%d %H:%M} UTC; {r.batches} batches{extra})"
            )
