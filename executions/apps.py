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
        # Fail at start-up, not at the first submit, when the selected backend is unavailable.
        try:
            get_backend()
        except BackendUnavailable as exc:
            raise ImproperlyConfigured(exc.message) from None
