"""Dramatiq actors: one per lane, each on its own queue, each two lines calling the runner.

The ledger owns retries and time limits, so the actors run with `max_retries=0`. Queue names are
`<SPINE_QUEUE_PREFIX>.<lane>` (`spine.normal`, `spine.backfill` by default).
"""

import dramatiq
from django.conf import settings

from executions import runner


def queue_name(lane: str, prefix: str | None = None) -> str:
    """The Dramatiq queue of a lane."""
    return f"{prefix or settings.SPINE_QUEUE_PREFIX}.{lane}"


@dramatiq.actor(queue_name=queue_name("normal"), max_retries=0)
def run_normal(execution_id: str) -> None:
    """Run one execution submitted to the `normal` lane."""
    runner.run_execution(execution_id)


@dramatiq.actor(queue_name=queue_name("backfill"), max_retries=0)
def run_backfill(execution_id: str) -> None:
    """Run one execution submitted to the `backfill` lane."""
    runner.run_execution(execution_id)


ACTORS_BY_LANE = {"normal": run_normal, "backfill": run_backfill}
