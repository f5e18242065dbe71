from django.apps import AppConfig


class OtcConfig(AppConfig):
    """FINRA OTC Transparency market data; registers its retention with `spine_cleanup`."""

    name = "otc"
    verbose_name = "OTC market data"

    def ready(self) -> None:
        from executions.cleanup import RetentionTarget, register_target
        from otc.models import RawTrade

        register_target(
            RetentionTarget(
                kind="otc_raw",
                default_days=180,
                candidates=lambda cutoff: RawTrade.objects.filter(captured_at__lt=cutoff),
                description="raw FINRA lines as received (otc_trades_raw)",
            )
        )
