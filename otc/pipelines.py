"""OTC pipelines (SPEC §5), registered with the ledger and discovered at start-up."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from executions.models import LaneName
from executions.registry import KeyPolicy, RetryPolicy, pipeline
from otc import services
from otc.calendar import expected_publication, weeks_between
from otc.connectors.file import resolve_data_path

TierId = Literal["T1", "T2", "OTCE"]
VenueTypeName = Literal["ats", "non_ats"]

MAX_BACKFILL_WEEKS = 260  # five years per backfill execution


def _monday(value: date) -> date:
    if value.weekday() != 0:
        raise ValueError(f"{value} is a {value:%A}; a week is named by its Monday")
    return value


Monday = Annotated[date, AfterValidator(_monday)]


def _inside_data_dir(value: str | None) -> str | None:
    if value is not None:
        resolve_data_path(value)
    return value


class IngestWeekParams(BaseModel):
    """Params of `otc.ingest_week`: give `path` (a file or directory) or `source: finra_api`."""

    model_config = ConfigDict(extra="forbid")

    tier: TierId = Field(description="FINRA tier identifier: T1, T2 or OTCE.")
    week: Monday = Field(description="The trading week, named by its Monday (ISO date).")
    venue_type: VenueTypeName = Field(default="ats", description="ats or non_ats.")
    source: Literal["file", "finra_api"] = Field(
        default="file", description="file (needs `path`) or finra_api."
    )
    path: str | None = Field(
        default=None, description="File or directory, relative to SPINE_OTC_DATA_DIR."
    )

    @field_validator("path")
    @classmethod
    def _path_inside(cls, value: str | None) -> str | None:
        return _inside_data_dir(value)

    @model_validator(mode="after")
    def _one_source(self):
        if self.source == "file" and not self.path:
            raise ValueError("give `path` (a local file or directory) or `source: finra_api`")
        if self.source == "finra_api" and self.path:
            raise ValueError("`path` is only for `source: file`")
        return self


def _ingest_deadline(params: IngestWeekParams, created_at: datetime) -> datetime:
    """Until when "not published yet" is retried: a week past the usual publication date."""
    published = datetime.combine(expected_publication(params.tier, params.week), time(), UTC)
    return max(published + timedelta(days=7), created_at + timedelta(days=1))


@pipeline(
    "otc.ingest_week",
    params=IngestWeekParams,
    timeout_seconds=3600,
    retry=RetryPolicy(max_attempts=5, backoff_base_seconds=30, backoff_max_seconds=3600),
    logical_key="{tier}:{week}:{venue_type}",
    on_key_collision=KeyPolicy.RETURN_ACTIVE,
    deadline=_ingest_deadline,
)
def ingest_week(params: IngestWeekParams, ctx):
    """Land a FINRA week (file or API), normalize it and compute its metrics."""
    return services.ingest_week(
        tier=params.tier,
        week=params.week,
        venue_type=params.venue_type,
        source=params.source,
        path=params.path,
        execution_id=ctx.execution_id,
        check_cancelled=ctx.check_cancelled,
    )


class BackfillParams(BaseModel):
    """Params of `otc.backfill`: one ingest per week from `first_week` to `last_week`."""

    model_config = ConfigDict(extra="forbid")

    tier: TierId
    first_week: Monday = Field(description="Monday of the first week.")
    last_week: Monday = Field(description="Monday of the last week (included).")
    venue_type: VenueTypeName = "ats"
    source: Literal["finra_api", "file"] = "finra_api"
    path_template: str | None = Field(
        default=None, description="For source file: a path with `{week}`, e.g. `finra/{week}.csv`."
    )

    @model_validator(mode="after")
    def _range(self):
        if self.last_week < self.first_week:
            raise ValueError("last_week is before first_week")
        if len(weeks_between(self.first_week, self.last_week)) > MAX_BACKFILL_WEEKS:
            raise ValueError(f"at most {MAX_BACKFILL_WEEKS} weeks per backfill")
        if self.source == "file":
            if not self.path_template or "{week}" not in self.path_template:
                raise ValueError("source file needs a `path_template` containing {week}")
            _inside_data_dir(self.path_template.format(week=self.first_week.isoformat()))
        elif self.path_template:
            raise ValueError("`path_template` is only for `source: file`")
        return self


@pipeline(
    "otc.backfill",
    params=BackfillParams,
    lane=LaneName.BACKFILL,
    timeout_seconds=600,
    logical_key="{tier}:{first_week}:{last_week}:{venue_type}",
    on_key_collision=KeyPolicy.RETURN_ACTIVE,
)
def backfill(params: BackfillParams, ctx):
    """Dispatch one otc.ingest_week per week into the backfill lane."""
    return services.backfill(
        tier=params.tier,
        first_week=params.first_week,
        last_week=params.last_week,
        venue_type=params.venue_type,
        source=params.source,
        path_template=params.path_template,
        parent_id=ctx.execution_id,
    )


class RecomputeParams(BaseModel):
    """Params of `otc.recompute_metrics`."""

    model_config = ConfigDict(extra="forbid")

    tier: TierId
    week: Monday = Field(description="Monday of the week.")


@pipeline(
    "otc.recompute_metrics",
    params=RecomputeParams,
    timeout_seconds=1800,
    logical_key="{tier}:{week}",
    on_key_collision=KeyPolicy.RETURN_ACTIVE,
)
def recompute_metrics(params: RecomputeParams, ctx):
    """Recompute a tier-week's daily metrics from the normalized rows."""
    return services.recompute_metrics(tier=params.tier, week=params.week)
