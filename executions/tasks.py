"""Dramatiq actors: one per lane, each on its own queue, each two lines calling the runner.

The ledger owns retries and time limits, so the actors run with `max_retries=0`.
"""

import dramatiq

from executions import runner


@dramatiq.actor(queue_name="spine.normal", max_retries=0)
def run_normal(execution_id: str) -> None:
    """Run one execution submitted to the `normal` lane."""
    runner.run_execution(execution_id)


@dramatiq.actor(queue_name="spine.backfill", max_retries=0)
def run_backfill(execution_id: str) -> None:
    """Run one execution submitted to the `backfill` lane."""
    runner.run_execution(execution_id)


ACTORS_BY_LANE = {"normal": run_normal, "backfill": run_backfill}
