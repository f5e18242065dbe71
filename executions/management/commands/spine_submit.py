"""`spine_submit PIPELINE --params JSON [--lane L] [--wait]`: submit through the dispatcher."""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from executions import dispatcher
from executions.backends import get_backend
from executions.errors import DomainError
from executions.models import TERMINAL_STATUSES, Execution, LaneName, Status, TriggerSource


class Command(BaseCommand):
    help = (
        "Submit a pipeline execution and print its id. With --wait, wait for a terminal status "
        "and print it with the result summary as JSON; the exit code is 0 only for completed."
    )

    def add_arguments(self, parser):
        parser.add_argument("pipeline", help="registered pipeline name, e.g. diagnostics.sleep")
        parser.add_argument(
            "--params", default="{}", help="params as a JSON object, e.g. '{\"seconds\": 1}'"
        )
        parser.add_argument("--lane", choices=LaneName.values, help="default: the pipeline's lane")
        parser.add_argument("--idempotency-key", help="return the same execution when reused")
        parser.add_argument(
            "--wait", action="store_true", help="wait for a terminal status and print it"
        )
        parser.add_argument(
            "--timeout", type=float, default=3600.0, help="seconds to wait with --wait"
        )

    def handle(self, *args, **opts):
        try:
            params = json.loads(opts["params"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from None
        try:
            result = dispatcher.dispatch(
                opts["pipeline"],
                params,
                lane=opts["lane"],
                trigger_source=TriggerSource.CLI,
                idempotency_key=opts["idempotency_key"],
            )
        except DomainError as exc:
            detail = f" {json.dumps(exc.details)}" if exc.details else ""
            raise CommandError(f"{exc.code}: {exc.message}{detail}") from None
        execution = result.execution
        self.stdout.write(str(execution.id))
        backend = get_backend()
        if not opts["wait"]:
            if hasattr(backend, "drain"):
                # Embedded mode runs the work in this process: let it finish before exiting.
                backend.drain()
            return
        final = self._wait(execution.id, opts["timeout"])
        self.stdout.write(
            json.dumps(
                {
                    "id": str(final.id),
                    "pipeline": final.pipeline,
                    "status": final.status,
                    "attempt": final.attempt,
                    "result": final.result,
                    "error_type": final.error_type or None,
                    "error_message": final.error_message or None,
                },
                indent=2,
            )
        )
        if final.status != Status.COMPLETED:
            raise CommandError(f"execution {final.id} ended {final.status}")

    def _wait(self, execution_id, timeout: float) -> Execution:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            execution = Execution.objects.get(pk=execution_id)
            if execution.status in TERMINAL_STATUSES:
                return execution
            if time.monotonic() > deadline:
                raise CommandError(
                    f"execution {execution_id} is still {execution.status} after {timeout:.0f}s"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
