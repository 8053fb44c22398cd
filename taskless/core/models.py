"""The data of the contract: job options, jobs, runs and the meta a handler receives.

Field names are snake_case in Python and camelCase on the wire; both spellings are accepted
on input (``run_at`` and ``runAt``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
)
from pydantic import (
    ValidationError as PydanticValidationError,
)
from pydantic.alias_generators import to_camel

from .durations import parse_duration
from .errors import ValidationError
from .timeutil import format_timestamp, parse_timestamp

P = TypeVar("P")

_WIRE = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

#: Job options and their defaults, as the user's spec pins them.
OPTION_NAMES = ("enabled", "headers", "retries", "run_at", "run_every", "timezone")


class JobOptions(BaseModel):
    """Options of one job. Defaults: enabled, no extra headers, 5 retries, run now, run once.

    * ``enabled``: ``False`` takes the job off the pending queue (a delivery in flight completes).
    * ``headers``: merged into the delivery request.
    * ``retries``: retries after the first failed attempt (``retries=5``: at most 6 attempts).
    * ``run_at``: first run; ISO-8601 with an offset, or an aware datetime. Past means "now".
    * ``run_every``: ISO-8601 duration; occurrences are ``run_at + k*P + N`` (see the docs).
    * ``timezone``: IANA name; do ``run_every``'s calendar arithmetic in local wall time.
    """

    model_config = _WIRE

    enabled: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=5, ge=0, le=1000)
    run_at: datetime | None = None
    run_every: str | None = None
    timezone: str | None = None

    @field_validator("run_at", mode="before")
    @classmethod
    def _parse_run_at(cls, value: Any) -> Any:
        if value is None:
            return None
        return parse_timestamp(value, field="run_at")

    @field_validator("run_every", mode="before")
    @classmethod
    def _parse_run_every(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValidationError("run_every", "must be an ISO-8601 duration string such as 'P1D'")
        parse_duration(value, field="run_every")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                "timezone", f"unknown time zone {value!r}; use an IANA name such as 'Europe/Paris'"
            ) from None
        return value

    @field_serializer("run_at")
    def _serialize_run_at(self, value: datetime | None) -> str | None:
        return None if value is None else format_timestamp(value)

    def to_wire(self, *, only_set: bool = False) -> dict[str, Any]:
        """camelCase JSON-ready dict; ``only_set`` keeps just the fields that were given."""
        return self.model_dump(by_alias=True, exclude_unset=only_set, mode="json")


def parse_options(value: JobOptions | dict[str, Any] | None) -> JobOptions:
    """Validate user options; errors become :class:`ValidationError` naming the field."""
    if value is None:
        return JobOptions()
    if isinstance(value, JobOptions):
        return value
    if not isinstance(value, dict):
        raise ValidationError("options", "must be a dict or JobOptions")
    try:
        return JobOptions.model_validate(value)
    except PydanticValidationError as exc:
        raise validation_error_from(exc, prefix="") from None


def merge_options(defaults: JobOptions, given: JobOptions) -> JobOptions:
    """Per-job options over queue defaults; headers merge (the job's win)."""
    data = defaults.model_dump(exclude_unset=True)
    data.update(given.model_dump(exclude_unset=True))
    if "headers" in defaults.model_fields_set and "headers" in given.model_fields_set:
        data["headers"] = {**defaults.headers, **given.headers}
    return JobOptions.model_validate(data)


def validation_error_from(exc: PydanticValidationError, *, prefix: str = "") -> ValidationError:
    """The first error of a pydantic ``ValidationError`` as ours, with a snake_case field."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
    field = ".".join(_snake(p) for p in loc) or None
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ValidationError):
        return ValidationError(field or ctx_error.field, ctx_error.reason)
    return ValidationError(field, first.get("msg", "invalid value"))


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


class JobState(str, enum.Enum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DISABLED = "disabled"


class Job(BaseModel, Generic[P]):
    """A job as the job server (or the fake) knows it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    queue: str
    name: str
    endpoint: str
    payload: P
    options: JobOptions
    state: JobState
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Run(BaseModel):
    """One delivery attempt of one occurrence of a job."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    run_id: str
    attempt: int
    scheduled_at: datetime
    started_at: datetime
    finished_at: datetime | None = None
    status: str  # "succeeded" | "failed" | "running"
    status_code: int | None = None
    error: str | None = None
    next_retry_at: datetime | None = None


class JobMeta(BaseModel):
    """What a handler learns about the delivery besides the payload."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    queue: str
    name: str
    run_id: str
    attempt: int
    scheduled_at: datetime
    headers: dict[str, str] = Field(default_factory=dict)
