"""The shortcuts the hot paths take give what the plain forms give: options built without
validation, jobs and options validated without the detour through JobOptions.__init__,
frozen dataclasses built by fast_init, memoised timestamps, the strict JSON check."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from taskless.core import api, engine, envelope, queue, timeutil, transport
from taskless.core._frozen import fast_init
from taskless.core.models import (
    Job,
    JobOptions,
    default_options,
    options_with,
    validate_job,
    validate_options,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def same_options(a: JobOptions, b: JobOptions) -> None:
    assert type(a) is type(b)
    assert a == b
    assert a.__dict__ == b.__dict__ and list(a.__dict__) == list(b.__dict__)
    assert a.model_fields_set == b.model_fields_set
    assert a.__pydantic_extra__ == b.__pydantic_extra__
    assert a.__pydantic_private__ == b.__pydantic_private__
    assert repr(a) == repr(b)
    assert a.to_wire(only_set=True) == b.to_wire(only_set=True)


def test_default_options_are_job_options_of_nothing() -> None:
    built, plain = default_options(), JobOptions()
    same_options(built, plain)
    assert built.headers is not default_options().headers  # each its own dict
    built.retries = 2  # a model like any other: an assignment counts as set
    assert built.model_fields_set == {"retries"} and built == JobOptions(retries=2)


@pytest.mark.parametrize(
    "given",
    [{}, {"retries": 2}, {"headers": {"X-A": "1"}, "run_every": "P1D", "timezone": "UTC"}],
)
@pytest.mark.parametrize("changes", [{"run_at": T0}, {"run_at": T0, "enabled": False}, {}])
def test_options_with_is_model_copy(given: dict[str, Any], changes: dict[str, Any]) -> None:
    options = JobOptions(**given)
    same_options(options_with(options, **changes), options.model_copy(update=changes))
    copy = options_with(options, **changes)
    assert copy is not options and copy.__dict__ is not options.__dict__
    assert copy.__pydantic_fields_set__ is not options.__pydantic_fields_set__
    assert options.model_fields_set == set(given)  # the original is untouched


def test_options_with_leaves_a_subclass_to_pydantic() -> None:
    class Mine(JobOptions):
        pass

    copy = options_with(Mine(retries=1), run_at=T0)
    assert type(copy) is Mine and copy.run_at == T0 and copy.model_fields_set == {"retries", "run_at"}


VALID_OPTIONS = [
    {},
    {"retries": 0},
    {"enabled": False, "headers": {"X-Trace": "1"}},
    {"runAt": "2024-06-01T09:00:00Z", "runEvery": "PT1H"},
    {"run_at": "2024-06-01T09:00+02:00", "run_every": "P1M", "timezone": "Europe/Paris"},
    {"run_at": T0},
    {"runAt": None, "timezone": None},
]
BAD_OPTIONS = [
    {"retries": "3"},
    {"retries": -1},
    {"retries": True},
    {"enabled": 1},
    {"colour": "red"},
    {"runAt": "2024-06-01T09:00Z", "run_at": "2024-06-01T09:00Z"},
    {"run_at": "2024-06-01T09:00:00"},
    {"run_at": " 2024-06-01T09:00:00Z"},
    {"run_every": 5},
    {"run_every": "P"},
    {"timezone": "Mars/Olympus"},
    {"headers": {"X-Trace": 1}},
    {"headers": "x"},
    {1: 2},
    "not a dict",
    None,
]


def validation_error(call: Any) -> tuple[Any, ...]:
    """What a call raises: a pydantic error as what it says (the exceptions in its context
    compared by type and text); anything else (a TypeError) by type and text."""
    with pytest.raises(Exception) as raised:  # (compared below)
        call()
    error = raised.value
    if not isinstance(error, pydantic.ValidationError):
        return (type(error), str(error))
    errors = error.errors(include_url=False)
    for item in errors:
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, Exception):
            item["ctx"] = {**item["ctx"], "error": (type(cause), str(cause))}
    return (error.title, errors, str(error))


@pytest.mark.parametrize("data", VALID_OPTIONS, ids=repr)
def test_validate_options_reads_what_model_validate_reads(data: dict[str, Any]) -> None:
    same_options(validate_options(data), JobOptions.model_validate(data))


@pytest.mark.parametrize("data", BAD_OPTIONS, ids=repr)
def test_validate_options_refuses_as_model_validate_does(data: Any) -> None:
    expected = validation_error(lambda: JobOptions.model_validate(data))
    assert validation_error(lambda: validate_options(data)) == expected


def job_json(options: Any = None, /, **given: Any) -> dict[str, Any]:
    options = given if options is None else options
    return {
        "id": "0" * 32, "queue": "q", "name": "n", "endpoint": "http://localhost/q",
        "payload": {"to": "a@example.com", "items": [1, 2]}, "options": options,
        "state": "scheduled", "nextRunAt": "2024-01-01T00:00:00Z",
        "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00.5+01:00",
    }


@pytest.mark.parametrize("options", VALID_OPTIONS, ids=repr)
def test_validate_job_reads_what_model_validate_reads(options: dict[str, Any]) -> None:
    data = job_json(options)
    fast, plain = validate_job(data), Job.model_validate(data)
    assert type(fast) is Job and fast == plain and fast.model_fields_set == plain.model_fields_set
    same_options(fast.options, plain.options)


@pytest.mark.parametrize(
    "data",
    [*(job_json(o) for o in BAD_OPTIONS if o is not None),
     {**job_json(), "options": "x"}, {**job_json(), "state": "gone"}, {"error": {}}, [], None],
    ids=lambda v: repr(v)[:40],
)
def test_validate_job_refuses_as_model_validate_does(data: Any) -> None:
    expected = validation_error(lambda: Job.model_validate(data))
    assert validation_error(lambda: validate_job(data)) == expected


def test_valid_options_do_not_go_through_the_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    init = JobOptions.__init__

    def counting(self: JobOptions, /, **data: Any) -> None:
        calls.append(data)
        init(self, **data)

    monkeypatch.setattr(JobOptions, "__init__", counting)
    validate_job(job_json(retries=1))
    validate_options({"retries": 1})
    assert calls == []
    JobOptions.model_validate({"retries": 1})  # pydantic's own entry point still does
    assert calls == [{"retries": 1}]


# -- fast_init ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (engine.Outcome, (T0, T0, 200, None, 1.5)),
        (engine.Outcome, (T0, T0)),
        (api.JobInput, ("http://localhost/q", JobOptions(), {"a": 1}, None, "n")),
        (api.JobPatch, ()),
        (transport.ApiRequest, ("PUT", "/v1/queues/q/jobs/n", {"payload": 1})),
        (transport.ApiResponse, (200, {"ok": True})),
        (envelope.Envelope, ("q", "n", 1, T0, {"a": 1})),
    ],
)
def test_fast_init_builds_what_the_dataclass_init_builds(cls: type[Any], args: tuple[Any, ...]) -> None:
    plain = object.__new__(cls)
    _dataclass_init(cls)(plain, *args)
    fast = cls(*args)
    assert fast == plain and repr(fast) == repr(plain)
    assert outcome(lambda: hash(fast)) == outcome(lambda: hash(plain))
    names = [f.name for f in dataclasses.fields(cls)]
    assert cls(**dict(zip(names, args, strict=False))) == fast
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, names[0], None)


def outcome(call: Any) -> Any:
    try:
        return "ok", call()
    except Exception as exc:  # noqa: BLE001 - the kind of failure is compared
        return "error", type(exc), str(exc)


def _dataclass_init(cls: type[Any]) -> Any:
    """The __init__ dataclasses writes for ``cls``, from a twin class."""
    params = cls.__dataclass_params__
    twin = type(cls.__name__, (), {
        "__annotations__": {f.name: f.type for f in dataclasses.fields(cls)},
        **{f.name: _field_copy(f) for f in dataclasses.fields(cls)},
    })
    twin = dataclasses.dataclass(frozen=params.frozen)(twin)
    return twin.__init__


def _field_copy(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return dataclasses.field(default=f.default)
    if f.default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=f.default_factory)
    return dataclasses.field()


def test_fast_init_keeps_defaults_factories_and_errors() -> None:
    from taskless.testing.targets import DeliveryResponse

    first, second = DeliveryResponse(200), DeliveryResponse(200)
    assert first.headers == {} and first.headers is not second.headers  # a factory per call
    assert first.body == b"" and first.error is None
    with pytest.raises(TypeError):
        DeliveryResponse()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        DeliveryResponse(200, colour="red")  # type: ignore[call-arg]
    assert dataclasses.replace(first, status=500).status == 500


def test_fast_init_refuses_what_it_does_not_handle() -> None:
    @dataclasses.dataclass
    class Mutable:
        a: int

    @dataclasses.dataclass(frozen=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class KeywordOnly:
        a: int

    @dataclasses.dataclass(frozen=True)
    class WithInitVar:
        a: int
        b: dataclasses.InitVar[int]

    for cls in (Mutable, WithPostInit, KeywordOnly, WithInitVar):
        with pytest.raises(TypeError):
            fast_init(cls)


# -- timestamps ---------------------------------------------------------------------------------


def test_format_and_parse_memos_answer_as_without_them() -> None:
    instants = [T0, T0, T0 + timedelta(microseconds=5), T0, datetime(1999, 12, 31, 23, 59, tzinfo=UTC)]
    for dt in instants:
        text = timeutil.format_timestamp(dt)
        assert text == dt.isoformat().replace("+00:00", "Z")
        assert timeutil.parse_timestamp(text) == dt and timeutil.parse_timestamp(text).tzinfo is UTC
    paris = datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # == T0, another offset
    timeutil.format_timestamp(T0)
    assert timeutil.format_timestamp(paris) == "2024-01-01T01:00:00+01:00"
    assert timeutil.to_utc(paris) == T0 and timeutil.to_utc(T0) is T0
    with pytest.raises(ValueError):
        timeutil.format_timestamp(datetime(2024, 1, 1))  # naive: refused, memo or not
    timeutil.parse_timestamp("2024-01-01T00:00:00Z")
    with pytest.raises(Exception, match="no UTC offset"):
        timeutil.parse_timestamp("2024-01-01T00:00:00")
    with pytest.raises(Exception, match="is not a valid timestamp"):
        timeutil.parse_timestamp("2024-02-30T00:00:00Z")  # canonical form, impossible date


# -- the strict JSON check of payloads ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, [1.5, "é", None, True], {"n": math.nan}, [math.inf], {"x": [-math.inf]},
     {"big": 10**5000}, {"ok": 10**100}, {"s": "\ud800"}],
    ids=["plain", "list", "nan", "inf", "-inf", "int too long", "big int", "surrogate"],
)
def test_the_strict_json_check_fails_as_json_dumps_does(value: Any) -> None:
    def failure(check: Any) -> Any:
        try:
            check(value)
        except Exception as exc:  # noqa: BLE001 - the kind of failure is compared
            return type(exc)
        return None

    assert failure(queue._check_json) == failure(lambda v: json.dumps(v, allow_nan=False))
