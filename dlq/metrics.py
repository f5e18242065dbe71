"""Dead-letter metrics, read from the database at scrape time (registered in `DlqConfig.ready`)."""

import structlog
from prometheus_client.core import GaugeMetricFamily

log = structlog.get_logger(__name__)


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily("spine_dlq_unresolved", "Dead letters not yet resolved.")


class DeadLetterCollector:
    """`spine_dlq_unresolved`: dead letters waiting for an operator."""

    def describe(self):
        return [_family()]

    def collect(self):
        from dlq.models import DeadLetter

        family = _family()
        try:
            family.add_metric([], DeadLetter.objects.filter(resolved_at__isnull=True).count())
        except Exception as exc:
            log.warning("metrics.dlq_scrape_failed", error=str(exc))
            return
        yield family
