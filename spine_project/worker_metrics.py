"""Worker-side metrics: every Dramatiq worker process of a pod writes its counters and histograms to
PROMETHEUS_MULTIPROC_DIR (prometheus_client multiprocess mode), and one forked exporter process
serves their sum on SPINE_WORKER_METRICS_HOST:SPINE_WORKER_METRICS_PORT (default 0.0.0.0:9191).

Hand-written rather than Dramatiq's own Prometheus middleware: that one switches multiprocess
mode on only after Django (and so prometheus_client) is already imported, which loses the
ledger's counters, and its millisecond histogram fails `promtool check metrics`.
"""

import os
import threading

import dramatiq

DEFAULT_PORT = 9191


class WorkerMetrics(dramatiq.Middleware):
    """Forks the exporter and marks a stopped worker process dead in the metrics directory."""

    @property
    def forks(self):
        return [serve_worker_metrics]

    def after_worker_shutdown(self, broker, worker):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def serve_worker_metrics() -> int:
    """Serve the multiprocess metrics of this pod's workers until the worker stops."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    host = os.environ.get("SPINE_WORKER_METRICS_HOST", "0.0.0.0")  # noqa: S104 (scraped by pods)
    port = int(os.environ.get("SPINE_WORKER_METRICS_PORT", DEFAULT_PORT))
    start_http_server(port, addr=host, registry=registry)
    threading.Event().wait()  # the exporter thread serves; the worker kills this process on exit
    return 0
