from django.apps import AppConfig


class OtcConfig(AppConfig):
    """FINRA OTC Transparency market data; registers its retention with `spine_cleanup`."""

    name = "otc"
    verbose_name = "OTC market data"

    def ready(self) -> None:
        from django.db.models import Exists, OuterRef

        from executions.cleanup import RetentionTarget, register_target
        from otc.models import RawBlock, RawCapture

        # Blocks first, then the captures they belonged to (the foreign key has no cascade).
        register_target(
            RetentionTarget(
                kind="otc_raw",
                default_days=180,
                candidates=lambda cutoff: RawBlock.objects.filter(capture__captured_at__lt=cutoff),
                description="raw FINRA sources as received, in blocks of lines (otc_trades_raw)",
                max_batch=100,  # blocks are about 256 KiB each
            )
        )
        register_target(
            RetentionTarget(
                kind="otc_raw_captures",
                default_days=180,
                candidates=lambda cutoff: RawCapture.objects.filter(
                    ~Exists(RawBlock.objects.filter(capture=OuterRef("pk"))),
                    captured_at__lt=cutoff,
                ),
                description="captures whose blocks are gone (otc_raw_captures)",
            )
        )
