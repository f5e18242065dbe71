"""Ledger events other apps listen to, so that `executions` never imports them.

Sent inside the transaction of the transition, so a receiver's writes commit or roll back with it.
"""

from django.dispatch import Signal

# kwargs: execution (Execution, already dead_lettered), reason (str), error_summary (str)
execution_dead_lettered = Signal()
