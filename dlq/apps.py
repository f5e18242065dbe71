from django.apps import AppConfig


class DlqConfig(AppConfig):
    """Dead letters: listens for the ledger's dead-letter signal."""

    name = "dlq"
    verbose_name = "Dead letters"

    def ready(self) -> None:
        from dlq.services import record_dead_letter
        from executions.signals import execution_dead_lettered

        execution_dead_lettered.connect(record_dead_letter, dispatch_uid="dlq.record_dead_letter")
