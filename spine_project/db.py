"""PostgreSQL connection set-up: `timestamptz` values parsed by psycopg's C loader.

Django 5.2 registers its own `timestamptz` loader on every psycopg connection (a subclass of
psycopg's pure-Python loader that then sets the time zone). psycopg swaps in its C version of a
loader only for its own classes, so every timestamp Django reads is parsed in Python: about
2 µs more a value than the C loader, and a page of the execution list reads 150 of them (issue
8: an A/B of the list in-process measured about a fifth less CPU per request with this loader).

`UtcTimestamptzLoader` parses with psycopg's fastest loader and returns the value in UTC
(`datetime.timezone.utc`), as Django's does. It is registered only where Django would register
a UTC loader (`USE_TZ` on and the database's `TIME_ZONE` unset, this project's settings);
elsewhere Django's own stays.
"""

from datetime import UTC

from django.conf import settings
from django.db import connections


def use_fast_timestamptz_loader() -> None:
    """Register `UtcTimestamptzLoader` in the adapters Django copies into each new connection."""
    try:
        import psycopg
        from django.db.backends.postgresql.psycopg_any import get_adapters_template
        from psycopg.adapt import Loader
    except ImportError:  # psycopg 2 or no PostgreSQL driver: nothing to speed up
        return

    oid = psycopg.adapters.types["timestamptz"].oid
    found = psycopg.adapters.get_loader(oid, psycopg.pq.Format.TEXT)  # C where available
    assert found is not None  # psycopg always ships a text loader for timestamptz
    fastest: type[psycopg.abc.Loader] = found

    class UtcTimestamptzLoader(Loader):
        """A `timestamptz` in UTC; `timezone` is what Django compares with its connection's."""

        timezone = UTC

        def __init__(self, oid, context=None):
            super().__init__(oid, context)
            self._parse = fastest(oid, context).load

        def load(self, data):
            # The session's TimeZone is UTC (Django sets it); astimezone keeps the instant right
            # even on a session someone switched to another zone.
            return self._parse(data).astimezone(UTC)

    for alias in connections:
        db = connections[alias]
        if db.vendor != "postgresql" or not settings.USE_TZ or db.timezone is not UTC:
            continue
        template = get_adapters_template(settings.USE_TZ, db.timezone)
        template.register_loader("timestamptz", UtcTimestamptzLoader)
