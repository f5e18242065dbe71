"""`/metrics`: this process's (or this pod's, in multiprocess mode) metrics plus scrape-time gauges.

Without PROMETHEUS_MULTIPROC_DIR the process-wide registry is exported as it is (one process).
With it, counters and histograms of every process sharing the directory are summed
(prometheus_client multiprocess mode), as under gunicorn with several workers.
"""

import os

from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from executions.metrics import scrape_collectors


def build_registry() -> CollectorRegistry:
    """A registry for one scrape: process or multiprocess metrics, then the ledger gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    for collector in scrape_collectors():
        registry.register(collector)
    return registry


@require_GET
def metrics(request):
    """Prometheus text exposition."""
    return HttpResponse(generate_latest(build_registry()), content_type=CONTENT_TYPE_LATEST)
