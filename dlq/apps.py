from django.apps import AppConfig


class DlqConfig(AppConfig):
    """Dead letters: listens for the ledger's dead-letter signal."""

    name = "dlq"
    verbose_name = "Dead letters"

    def ready(self) -> None:
        from dlq.services import record_dead_letter
        from executions.signals import execution_dead_lettered

        execution_dead_lettered.connect(record_dead_letter, dispatch_uid="dlq.record_dead_letter")

        # Observability and retention (issue 6): export the unresolved count at scrape time, and
        # never let spine_cleanup delete an execution whose dead letter is unresolved.
        from dlq.metrics import DeadLetterCollector
        from dlq.services import unresolved_dead_letter_exists
        from executions.cleanup import keep_executions
        from executions.metrics import register_scrape_collector

        register_scrape_collector(DeadLetterCollector())
        keep_executions(unresolved_dead_letter_exists)
