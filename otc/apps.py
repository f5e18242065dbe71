from django.apps import AppConfig


class OtcConfig(AppConfig):
    """FINRA OTC Transparency market data."""

    name = "otc"
    verbose_name = "OTC market data"
