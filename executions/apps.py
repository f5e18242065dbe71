from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules


class ExecutionsConfig(AppConfig):
    """The ledger app: discovers every app's `pipelines` module and checks the backend."""

    name = "executions"
    verbose_name = "Executions ledger"

    def ready(self) -> None:
        from executions.backends import get_backend
        from executions.errors import BackendUnavailable

        autodiscover_modules("pipelines")
        # Observability and operations jobs (issue 6): scrape-time gauges, retention kinds.
        from executions import cleanup  # noqa: F401  (registers the ledger's retention kinds)
        from executions.metrics import (
            LedgerCollector,
            initialise_series,
            register_scrape_collector,
        )
        from executions.registry import registry

        register_scrape_collector(LedgerCollector())
        initialise_series(registry.all())
        # Fail at start-up, not at the first submit, when the selected backend is unavailable.
        try:
            get_backend()
        except BackendUnavailable as exc:
            raise ImproperlyConfigured(exc.message) from None
