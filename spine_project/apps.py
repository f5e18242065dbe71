from django.apps import AppConfig


class SpineProjectConfig(AppConfig):
    """The project itself: cross-cutting commands such as `spine_demo`, tracing, connections."""

    name = "spine_project"
    verbose_name = "Market Spine"

    def ready(self) -> None:
        from django.conf import settings

        from spine_project.db import use_fast_timestamptz_loader

        use_fast_timestamptz_loader()

        if settings.SPINE_TRACING:
            from spine_project.tracing import configure_tracing

            configure_tracing(exporter=settings.SPINE_TRACING_EXPORTER)
