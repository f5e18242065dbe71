"""Where a week's lines come from: a local file or directory, or the FINRA Query API.

A source has a `kind` (stored as the raw captures' `source`) and `lines()`, a generator of
`otc.parser.SourceLine`; both keep memory flat however large the week. A source that has bytes
of its own (a file) also has `blocks()`, what raw landing stores; the others land their lines.
"""

from collections.abc import Iterator
from datetime import date
from typing import Protocol

from otc.connectors.file import FileSource
from otc.connectors.finra_api import FinraApiSource
from otc.parser import SourceLine


class Source(Protocol):
    """A week's lines: `kind` is stored as the raw captures' `source`."""

    kind: str

    def lines(self) -> Iterator[SourceLine]: ...


def open_source(*, tier: str, week: date, venue_type: str, source: str, path: str | None) -> Source:
    """The source an ingest's params name."""
    if source == "finra_api":
        return FinraApiSource(tier=tier, week=week, venue_type=venue_type)
    return FileSource(path or "")
