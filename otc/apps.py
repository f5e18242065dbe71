from django.apps import AppConfig


class OtcConfig(AppConfig):
    """FINRA OTC Transparency market data; registers its retention with `spine_cleanup`."""

    name = "otc"
    verbose_name = "OTC market data"

    def ready(self) -> None:
        from django.db.models import Exists, OuterRef

        from executions.cleanup import RetentionTarget, register_target
        from otc.models import RawCapture, RawTrade

        # Lines first, then the captures they belonged to (no database cascade: see RawTrade).
        register_target(
            RetentionTarget(
                kind="otc_raw",
                default_days=180,
                candidates=lambda cutoff: RawTrade.objects.filter(capture__captured_at__lt=cutoff),
                description="raw FINRA lines as received (otc_trades_raw)",
            )
        )
        register_target(
            RetentionTarget(
                kind="otc_raw_captures",
                default_days=180,
                candidates=lambda cutoff: RawCapture.objects.filter(
                    ~Exists(RawTrade.objects.filter(capture=OuterRef("pk"))),
                    captured_at__lt=cutoff,
                ),
                description="captures of raw FINRA sources whose lines are gone (otc_raw_captures)",
            )
        )
