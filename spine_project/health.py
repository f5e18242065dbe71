"""Health views: liveness (the process answers) and readiness (it can do its work)."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from executions.backends import get_backend


@require_GET
def live(request):
    """200 while the process can answer at all."""
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request):
    """200 `ok`, 200 `degraded` (broker or cache down), or 503 (database down)."""
    checks = {"database": _check_database(), "backend": _check_backend(), "cache": _check_cache()}
    if checks["database"]["status"] != "ok":
        return JsonResponse({"status": "unavailable", "checks": checks}, status=503)
    degraded = any(c["status"] != "ok" for c in checks.values())
    return JsonResponse({"status": "degraded" if degraded else "ok", "checks": checks})


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "error": str(exc)[:300]}
    return {"status": "ok", "vendor": connection.vendor}


def _check_backend() -> dict:
    try:
        return get_backend().health()
    except Exception as exc:
        return {"status": "down", "error": str(exc)[:300]}


def _check_cache() -> dict:
    from django.core.cache import cache

    try:
        cache.set("spine:health", "1", 5)
        ok = cache.get("spine:health") == "1"
    except Exception as exc:
        return {"status": "down", "error": str(exc)[:300]}
    return {"status": "ok" if ok else "down"}
