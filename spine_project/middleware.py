"""Cross-cutting web middleware: request ids and the shared rate limit."""

import hashlib
import math
import re
import time
import uuid
from importlib import import_module

import structlog
from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from rest_framework.authtoken.models import Token

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.get_logger(__name__)
_clock = time.time  # the rate limit's clock (tests pin it to stay inside one window)


class RequestIdMiddleware:
    """Accept a safe `X-Request-ID` or generate one; bind it to logs and return it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response[REQUEST_ID_HEADER] = request_id
        return response


class RateLimitMiddleware:
    """A fixed-window request budget per client, shared by every process through the cache.

    Hand-written rather than DRF throttling or django-ratelimit: neither emits the
    `X-RateLimit-*` headers, and DRF throttles see only DRF views, not the admin. The counter is a
    cache `add` plus `incr`, atomic on Redis, so all processes and pods draw on one budget.
    `SPINE_RATE_LIMIT` is `requests/seconds`; health, metrics and static files are exempt.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rate = settings.SPINE_RATE_LIMIT
        if rate is None or request.path.startswith(settings.SPINE_RATE_LIMIT_EXEMPT):
            return self.get_response(request)
        limit, window = rate
        now = _clock()
        window_index = int(now // window)
        reset_at = (window_index + 1) * window
        try:
            count = _count(f"ratelimit:{_client_key(request)}:{window}:{window_index}", window)
        except Exception as exc:  # a cache outage must not take the API down with it: fail open
            log.warning("ratelimit.cache_unavailable", error=str(exc)[:300])
            return self.get_response(request)
        if count > limit:
            retry_after = max(1, math.ceil(reset_at - now))
            log.info("ratelimit.refused", limit=limit, window_seconds=window, path=request.path)
            response = JsonResponse(
                {
                    "code": "rate_limited",
                    "message": f"Too many requests: the limit is {limit} per {window} s.",
                    "details": {"limit": limit, "window_seconds": window},
                },
                status=429,
            )
            response["Retry-After"] = str(retry_after)
        else:
            response = self.get_response(request)
        response["X-RateLimit-Limit"] = str(limit)
        response["X-RateLimit-Remaining"] = str(max(0, limit - count))
        response["X-RateLimit-Reset"] = str(reset_at)
        return response


def _count(key: str, window: int) -> int:
    """Add one request to the window's counter and return the new count."""
    cache.add(key, 0, timeout=window + 5)
    try:
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr: this request opens a new window
        cache.add(key, 1, timeout=window + 5)
        return 1


def _client_key(request) -> str:
    """Who is asking: a known API token or session (one budget each, whatever proxy is in front),
    else the client address. An unknown credential counts against its address, so a flood with
    made-up tokens cannot mint itself fresh budgets."""
    keyword, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    token = token.strip()
    if keyword.lower() == "token" and token and Token.objects.filter(key=token).exists():
        return "t:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key and import_module(settings.SESSION_ENGINE).SessionStore().exists(session_key):
        return "s:" + hashlib.sha256(session_key.encode()).hexdigest()[:32]
    return "ip:" + request.META.get("REMOTE_ADDR", "unknown")
