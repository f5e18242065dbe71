from django.apps import AppConfig


class SpineProjectConfig(AppConfig):
    """The project itself: cross-cutting commands such as `spine_demo`, tracing set-up."""

    name = "spine_project"
    verbose_name = "Market Spine"

    def ready(self) -> None:
        from django.conf import settings

        if settings.SPINE_TRACING:
            from spine_project.tracing import configure_tracing

            configure_tracing(exporter=settings.SPINE_TRACING_EXPORTER)
