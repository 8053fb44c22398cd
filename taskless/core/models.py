"""The data of the contract: job options, jobs, runs and the meta a handler receives.

Field names are snake_case in Python and camelCase on the wire; both spellings are accepted
on input (``run_at`` and ``runAt``).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic import (
    ValidationError as PydanticValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import SchemaValidator

from .durations import parse_duration
from .errors import ValidationError
from .timeutil import format_timestamp, parse_timestamp

P = TypeVar("P")

_WIRE = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

#: Job options and their defaults, as the user's spec pins them.
OPTION_NAMES = ("enabled", "headers", "retries", "run_at", "run_every", "timezone")

# Each spelling an option may be given in -> its snake_case name.
_SPELLINGS: Final = {name: name for name in OPTION_NAMES} | {
    to_camel(name): name for name in OPTION_NAMES
}
# Keys that are all snake_case or all camelCase name each option at most once.
_ONE_SPELLING: Final = (
    frozenset(OPTION_NAMES), frozenset(to_camel(name) for name in OPTION_NAMES)
)
_OPTION_LIST: Final = ", ".join(
    name if to_camel(name) == name else f"{name} (or {to_camel(name)})" for name in OPTION_NAMES
)


class JobOptions(BaseModel):
    """Options of one job. Defaults: enabled, no extra headers, 5 retries, run now, run once.

    * ``enabled``: ``False`` takes the job off the pending queue (a delivery in flight completes).
    * ``headers``: merged into the delivery request.
    * ``retries``: retries after the first failed attempt (``retries=5``: at most 6 attempts).
    * ``run_at``: first run; ISO-8601 with an offset, or an aware datetime. Past means "now".
    * ``run_every``: ISO-8601 duration; occurrences are ``run_at + k*P + N`` (see the docs).
    * ``timezone``: IANA name; do ``run_every``'s calendar arithmetic in local wall time.

    Types are strict: ``enabled`` takes ``True``/``False`` only (not ``"yes"`` or ``1``),
    ``retries`` an ``int`` only (not ``"3"``, ``3.0`` or ``True``); ``run_at`` and
    ``run_every`` strings may not have spaces around them. Each option may be given once,
    snake_case or camelCase (``run_at`` or ``runAt``). Invalid options raise
    :class:`taskless.ValidationError` naming the option, from the constructor
    (``JobOptions(retries=-1)``), :func:`parse_options` and every queue method alike.
    (``JobOptions.model_validate``, pydantic's own entry point, raises pydantic's
    ``ValidationError``; both are ``ValueError``.)
    """

    model_config = _WIRE

    enabled: bool = Field(default=True, strict=True)
    headers: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=5, ge=0, le=1000, strict=True)
    run_at: datetime | None = None
    run_every: str | None = None
    timezone: str | None = None

    if not TYPE_CHECKING:
        # At run time only, so that type checkers keep the signature pydantic derives from
        # the fields: the constructor raises our ValidationError, naming the option.
        def __init__(self, /, **data: Any) -> None:
            __tracebackhide__ = True
            try:
                super().__init__(**data)
            except PydanticValidationError as exc:
                raise validation_error_from(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _check_names(cls, data: Any) -> Any:
        """Unknown options, and one option given in both spellings, named in the error."""
        if not isinstance(data, dict):
            return data
        keys = data.keys()
        if keys <= _ONE_SPELLING[0] or keys <= _ONE_SPELLING[1]:
            return data  # the usual case, checked at C speed
        seen: dict[str, str] = {}
        for key in data:
            name = _SPELLINGS.get(key) if isinstance(key, str) else None
            if name is None:
                raise ValidationError(
                    str(key), f"{key!r} is not a job option; the options are {_OPTION_LIST}"
                )
            if name in seen:
                raise ValidationError(
                    name,
                    f"the option {name} is given twice, as {seen[name]!r} and as {key!r}; "
                    "give only one of them",
                )
            seen[name] = key
        return data

    @field_validator("run_at", mode="before")
    @classmethod
    def _parse_run_at(cls, value: Any) -> Any:
        if value is None:
            return None
        _refuse_spaces(value, "run_at")
        return parse_timestamp(value, field="run_at")

    @field_validator("run_every", mode="before")
    @classmethod
    def _parse_run_every(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValidationError("run_every", "must be an ISO-8601 duration string such as 'P1D'")
        _refuse_spaces(value, "run_every")
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


def _refuse_spaces(value: Any, field: str) -> None:
    # Stored as given (run_every) and shown back: " P1D" would be kept with its spaces.
    if isinstance(value, str) and value != value.strip():
        raise ValidationError(field, f"{value!r} has spaces around it; remove them")


# -- options built from values already validated (the engine's and the API's hot paths) -------

_new_object: Final = object.__new__
# The setters of the four slots every pydantic model has: what model_construct and model_copy
# write, without looking the attributes up through the class each time.
_set_dict: Final = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Final = BaseModel.__dict__["__pydantic_private__"].__set__
# What JobOptions() holds; default_options() copies it (with a new headers dict each time).
_DEFAULT_VALUES: Final = {
    name: field.get_default(call_default_factory=True)
    for name, field in JobOptions.model_fields.items()
}
# The shortcuts below write what pydantic's own model_copy and model_construct write; they
# hold while JobOptions has no private attributes, no extras and no post-init hook, and
# headers is its only option with a mutable (factory-made) default.
if (
    JobOptions.__private_attributes__
    or JobOptions.model_config.get("extra") == "allow"
    or JobOptions.__pydantic_post_init__
    or [n for n, f in JobOptions.model_fields.items() if f.default_factory] != ["headers"]
):  # pragma: no cover - a guard for future edits
    raise TypeError("default_options/options_with no longer match JobOptions")


def _built(values: dict[str, Any], fields_set: set[str]) -> JobOptions:
    options: JobOptions = _new_object(JobOptions)
    _set_dict(options, values)
    _set_fields_set(options, fields_set)
    _set_extra(options, None)
    _set_private(options, None)
    return options


def default_options() -> JobOptions:
    """``JobOptions()`` (every option at its default, none of them set), built without
    running validation on an empty dict."""
    values = dict(_DEFAULT_VALUES)
    values["headers"] = {}
    return _built(values, set())


def options_with(options: JobOptions, **changes: Any) -> JobOptions:
    """``options.model_copy(update=changes)``: a copy with ``changes`` applied and counted as
    set, not validated (the values must be valid already), at a third of the cost."""
    if type(options) is not JobOptions:  # a subclass may keep more: let pydantic copy it
        return options.model_copy(update=changes)
    values = options.__dict__.copy()
    values.update(changes)
    return _built(values, options.__pydantic_fields_set__ | changes.keys())


def parse_options(value: JobOptions | dict[str, Any] | None) -> JobOptions:
    """Validate user options; errors become :class:`ValidationError` naming the field."""
    if value is None:
        return default_options()
    if isinstance(value, JobOptions):
        return value
    if not isinstance(value, dict):
        raise ValidationError("options", "must be a dict or JobOptions")
    try:
        return validate_options(value)
    except PydanticValidationError as exc:
        raise validation_error_from(exc, prefix="") from None


def merge_options(defaults: JobOptions, given: JobOptions) -> JobOptions:
    """Per-job options over queue defaults; headers merge (the job's win)."""
    data = defaults.model_dump(exclude_unset=True)
    data.update(given.model_dump(exclude_unset=True))
    if "headers" in defaults.model_fields_set and "headers" in given.model_fields_set:
        data["headers"] = {**defaults.headers, **given.headers}
    return validate_options(data)


def validation_error_from(exc: PydanticValidationError, *, prefix: str = "") -> ValidationError:
    """The first error of a pydantic ``ValidationError`` as ours, with a snake_case field."""
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
    # The option's name in snake_case; what follows it (a header's name) as it was given.
    field = ".".join([_SPELLINGS.get(loc[0], loc[0]), *loc[1:]]) if loc else None
    ctx_error = (first.get("ctx") or {}).get("error")
    if field is None and isinstance(ctx_error, ValidationError):
        field = ctx_error.field  # raised by a model validator, which has no location
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    if isinstance(ctx_error, ValidationError):
        return ValidationError(field, ctx_error.reason)
    message = _PLAIN_MESSAGES.get(first.get("type", ""), first.get("msg", "invalid value"))
    return ValidationError(field, message)


# Pydantic's messages for a wrong type, in the words of JSON (what most options come in).
_PLAIN_MESSAGES: Final = {
    "bool_type": "must be true or false (a boolean, not a string or a number)",
    "int_type": "must be an integer, such as 3 (not a string, a boolean or a fraction)",
    "string_type": "must be a string",
    "dict_type": "must be an object (a dict)",
}


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


# -- validation without the detour through JobOptions.__init__ --------------------------------
#
# pydantic calls a model's own __init__ for every instance it validates, nested ones too.
# JobOptions' only turns pydantic's errors into ours, and costs a second pass through Python:
# a third of the time of reading a job. These validators read the same values without it;
# on an error, pydantic's own entry point runs again, so errors stay exactly as they were.


def _schema_without_init(schema: Any, model: type[BaseModel]) -> Any:
    """A copy of the core ``schema`` in which ``model`` is validated by its schema directly,
    not through its ``__init__``."""
    if isinstance(schema, dict):
        copy = {key: _schema_without_init(value, model) for key, value in schema.items()}
        if copy.get("type") == "model" and copy.get("cls") is model:
            copy["custom_init"] = False
        return copy
    if isinstance(schema, list):
        return [_schema_without_init(item, model) for item in schema]
    return schema


def _validator_without_init(root: type[BaseModel]) -> SchemaValidator:
    """``root``'s validator, JobOptions in it validated without its ``__init__``. Built from
    the schema alone: a prebuilt nested validator (JobOptions' own) would bring it back."""
    schema = _schema_without_init(root.__pydantic_core_schema__, JobOptions)
    try:
        return SchemaValidator(schema, schema.get("config"), _use_prebuilt=False)
    except TypeError:  # pragma: no cover - a pydantic-core without the option
        return root.__pydantic_validator__  # type: ignore[return-value]


_OPTIONS_VALIDATOR: Final = _validator_without_init(JobOptions)
_JOB_VALIDATOR: Final = _validator_without_init(Job)


def validate_options(data: Any) -> JobOptions:
    """``JobOptions.model_validate(data)``: the same options, or the same error, faster."""
    try:
        options: JobOptions = _OPTIONS_VALIDATOR.validate_python(data)
    except PydanticValidationError:
        return JobOptions.model_validate(data)  # raises, as it always did
    return options


def validate_job(data: Any) -> Job[Any]:
    """``Job.model_validate(data)``: the same job, or the same error, faster."""
    try:
        job: Job[Any] = _JOB_VALIDATOR.validate_python(data)
    except PydanticValidationError:
        return Job.model_validate(data)  # raises, as it always did
    return job
