"""OTC market data (FINRA OTC Transparency): raw lines, normalized venue-weeks, metrics, rejects.

The tables keep the seed design's names. Only the ingest writes them (`otc.services`, with
set-based SQL in `otc.loader` and `otc.metrics`); the admin and the API only read them.
"""

from django.db import models
from django.utils import timezone


class Tier(models.TextChoices):
    """FINRA's tier identifiers (the Query API's `tierIdentifier`) and the file's description."""

    T1 = "T1", "NMS Tier 1"
    T2 = "T2", "NMS Tier 2"
    OTCE = "OTCE", "OTC"


class VenueType(models.TextChoices):
    """FINRA publishes ATS and non-ATS (OTC firm) volume in separate files."""

    ATS = "ats", "ATS"
    NON_ATS = "non_ats", "Non-ATS"


class RawCapture(models.Model):
    """One source as received for a tier-week (a file, or one FINRA API dataset), with provenance.

    Its bytes are `RawBlock` rows. A source whose bytes hash the same as a capture already landed
    for the same tier, week, venue type and source name is not landed again, so re-ingesting an
    unchanged file appends nothing; a changed file lands whole, as a new capture. Append-only.
    `execution_id` is a plain UUID, not a foreign key: raw data outlives ledger retention.
    """

    tier = models.CharField(max_length=4, choices=Tier.choices)
    week = models.DateField(help_text="Monday of the trading week")
    venue_type = models.CharField(max_length=8, choices=VenueType.choices)
    source = models.CharField(max_length=20, help_text="file or finra_api")
    source_name = models.CharField(max_length=300, help_text="file name, or the API dataset")
    content_hash = models.CharField(
        max_length=64,
        help_text="SHA-256 of the source as received (of a file: what sha256sum prints)",
    )
    line_count = models.PositiveIntegerField(help_text="lines as received, header included")
    complete = models.BooleanField(
        default=True,
        help_text="its blocks held lines 1 to line_count, each once, when it was landed (captures "
        "converted from the line-per-row table by migration otc 0003 may skip numbers)",
    )
    execution_id = models.UUIDField(null=True, blank=True)
    captured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "otc_raw_captures"
        ordering = ["-captured_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "week", "venue_type", "source_name", "content_hash"],
                name="otc_capture_once",
            ),
        ]
        indexes = [
            models.Index(fields=["captured_at"], name="otc_capture_captured"),
            models.Index(fields=["execution_id"], name="otc_capture_execution"),
        ]

    def __str__(self) -> str:
        return f"{self.tier} {self.week} {self.venue_type} {self.source_name} ({self.captured_at})"


class RawBlock(models.Model):
    """Consecutive lines of one capture, stored as the exact bytes received. Append-only.

    A capture's blocks, in `first_line` order, put together are the source as received: for a
    file, the file itself, header and blank lines included (its SHA-256 is the capture's
    `content_hash`); for the FINRA API, one JSON record per line. Blocks are about
    `otc.parser.BLOCK_BYTES` long. Issue 8: a row per line cost 2.5 to 4 s of `COPY` per million
    lines (an identity, two B-trees and a tuple header per line), which held raw landing to a
    fifth of a bare `COPY` of the file; a row per 256 KiB block costs a few hundred rows per
    million lines, compressed with lz4 where the server has it. `otc.parser.block_lines` splits a
    block into its numbered lines; `otc.selectors.raw_lines` reads a capture's lines back.
    """

    capture = models.ForeignKey(
        RawCapture, on_delete=models.DO_NOTHING, related_name="blocks", db_index=False
    )
    first_line = models.PositiveIntegerField(help_text="number of the block's first line")
    line_count = models.PositiveIntegerField()
    data = models.BinaryField(help_text="the lines as received, each ending in a newline")

    class Meta:
        db_table = "otc_trades_raw"
        ordering = ["capture_id", "first_line"]
        constraints = [  # its index serves a capture's lookups as well
            models.UniqueConstraint(fields=["capture", "first_line"], name="otc_raw_block_once"),
        ]

    def __str__(self) -> str:
        last = self.first_line + self.line_count - 1
        return f"capture {self.capture_id} lines {self.first_line}-{last}"


class CodeField(models.CharField):
    """A code of ASCII letters and digits (a symbol, an MPID, a tier): compared byte by byte.

    On PostgreSQL the column has the "C" collation: its index entries compare with `memcmp`
    instead of the locale's `strcoll`. Issue 8: `otc_trades`' three indexes on such columns
    took 0.45 s less to keep up in a 1M-row `COPY` (4.75 -> 4.3 s, on a C.UTF-8 database;
    a locale such as en_US costs more). Codes of upper-case ASCII letters and digits (FINRA's)
    sort the same either way; on a database whose locale is en_US, a code with punctuation or
    lower case now sorts by its bytes, and so do the top venue's ties (`otc.metrics`). Elsewhere
    (SQLite, which has no "C" collation) the column is as a CharField's.

    Compared with a text column of the database's default collation (the staged way's table),
    PostgreSQL takes the column's "C": a default collation gives way to any other.
    """

    def db_parameters(self, connection):
        parameters = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            parameters["collation"] = "C"
        return parameters


class Trade(models.Model):
    """Normalized weekly volume of one symbol at one venue: unique per week, tier, symbol, venue."""

    week = models.DateField(help_text="Monday of the trading week")
    tier = CodeField(max_length=4, choices=Tier.choices)
    symbol = CodeField(max_length=20)
    issue_name = models.CharField(max_length=300, blank=True, default="")
    venue_mpid = CodeField(max_length=10)
    venue_name = models.CharField(max_length=300, blank=True, default="")
    venue_type = CodeField(max_length=8, choices=VenueType.choices)
    shares = models.BigIntegerField()
    trades = models.BigIntegerField()
    publication_date = models.DateField(null=True, blank=True, help_text="lastUpdateDate")

    class Meta:
        db_table = "otc_trades"
        ordering = ["-week", "tier", "symbol", "venue_mpid"]
        constraints = [
            models.UniqueConstraint(
                fields=["week", "tier", "symbol", "venue_mpid", "venue_type"],
                name="otc_trade_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["symbol", "week"], name="otc_trade_symbol_week"),
            models.Index(fields=["venue_mpid", "week"], name="otc_trade_venue_week"),
        ]

    def __str__(self) -> str:
        return f"{self.week} {self.tier} {self.symbol} @ {self.venue_mpid}"


class MetricsDaily(models.Model):
    """Per symbol, tier and week: totals and averages per NYSE trading day, venue concentration.

    `ats_share` is set only when both the ATS and the non-ATS file of the week were loaded;
    `wow_change` is the change of total shares against the previous week (a fraction).
    """

    week = models.DateField(help_text="Monday of the trading week")
    tier = models.CharField(max_length=4, choices=Tier.choices)
    symbol = models.CharField(max_length=20)
    total_shares = models.BigIntegerField()
    total_trades = models.BigIntegerField()
    trading_days = models.PositiveSmallIntegerField()
    avg_daily_shares = models.FloatField(null=True, blank=True)
    avg_daily_trades = models.FloatField(null=True, blank=True)
    avg_trade_size = models.FloatField(null=True, blank=True)
    venue_count = models.PositiveIntegerField()
    top_venue_mpid = models.CharField(max_length=10)
    top_venue_name = models.CharField(max_length=300, blank=True, default="")
    top_venue_share = models.FloatField(null=True, blank=True)
    hhi = models.FloatField(null=True, blank=True, help_text="0-10,000 over venue share")
    ats_shares = models.BigIntegerField()
    ats_share = models.FloatField(null=True, blank=True)
    wow_change = models.FloatField(null=True, blank=True)

    class Meta:
        db_table = "otc_metrics_daily"
        ordering = ["-week", "tier", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["week", "tier", "symbol"], name="otc_metrics_unique"),
        ]
        indexes = [
            models.Index(fields=["symbol", "week"], name="otc_metrics_symbol_week"),
        ]
        verbose_name = "daily metrics"
        verbose_name_plural = "daily metrics"

    def __str__(self) -> str:
        return f"{self.week} {self.tier} {self.symbol}"


class RejectReason(models.TextChoices):
    FIELD_COUNT = "field_count"
    BAD_ENCODING = "bad_encoding"
    EMPTY_SYMBOL = "empty_symbol"
    EMPTY_VENUE = "empty_venue"
    NON_NUMERIC_VOLUME = "non_numeric_volume"
    NEGATIVE_VOLUME = "negative_volume"
    BAD_DATE = "bad_date"
    TIER_MISMATCH = "tier_mismatch"
    PUBLISHED_TOO_EARLY = "published_too_early"
    VALUE_TOO_LONG = "value_too_long"
    WRONG_SUMMARY_TYPE = "wrong_summary_type"
    DUPLICATE = "duplicate"


class RejectedRow(models.Model):
    """A source line of the latest ingest of a tier-week that could not be loaded, and why."""

    tier = models.CharField(max_length=4, choices=Tier.choices)
    week = models.DateField()
    venue_type = models.CharField(max_length=8, choices=VenueType.choices)
    source = models.CharField(max_length=20)
    source_name = models.CharField(max_length=300)
    line_number = models.PositiveIntegerField()
    reason = models.CharField(max_length=30, choices=RejectReason.choices)
    detail = models.TextField(blank=True, default="")
    raw_line = models.TextField()
    execution_id = models.UUIDField(null=True, blank=True)

    class Meta:
        db_table = "otc_rejected_rows"
        ordering = ["-week", "tier", "venue_type", "source_name", "line_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "week", "venue_type", "source_name", "line_number"],
                name="otc_reject_line_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_name}:{self.line_number} {self.reason}"
