from django.apps import AppConfig


class SpineProjectConfig(AppConfig):
    """The project itself: cross-cutting commands such as `spine_demo`."""

    name = "spine_project"
    verbose_name = "Market Spine"
