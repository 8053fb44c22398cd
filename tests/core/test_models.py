"""JobOptions: strict types, the option names, and taskless errors from every entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest

from taskless.core.errors import ValidationError
from taskless.core.models import JobOptions, parse_options


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"retries": "3"}, "retries", "must be an integer, such as 3"),
        ({"retries": True}, "retries", "must be an integer, such as 3"),
        ({"retries": 3.0}, "retries", "must be an integer, such as 3"),
        ({"retries": -1}, "retries", "greater than or equal to 0"),
        ({"enabled": "yes"}, "enabled", "must be true or false"),
        ({"enabled": 1}, "enabled", "must be true or false"),
        ({"run_every": "P1D "}, "run_every", "'P1D ' has spaces around it; remove them"),
        ({"runEvery": "\tP1D"}, "run_every", "has spaces around it"),
        ({"run_at": "2024-06-01T09:00Z "}, "run_at", "has spaces around it"),
        ({"run_every": "P"}, "run_every", "'P' has no components"),
        ({"headers": {"X-Trace": 1}}, "headers.X-Trace", "must be a string"),
        ({"colour": "red"}, "colour", (
            "'colour' is not a job option; the options are enabled, headers, retries, "
            "run_at (or runAt), run_every (or runEvery), timezone")),
        ({"runAt": "2024-06-01T09:00Z", "run_at": "2024-06-01T09:00Z"}, "run_at",
         "the option run_at is given twice, as 'runAt' and as 'run_at'; give only one of them"),
        ({"run_at": "2024-06-01T09:00+25:00"}, "run_at",
         "the UTC offset must be between -23:59 and +23:59"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as parsed:
        parse_options(options)
    assert parsed.value.field == field
    assert message in parsed.value.reason
    # The constructor raises the same taskless error (still a ValueError), not pydantic's.
    with pytest.raises(ValidationError) as built:
        JobOptions(**options)
    assert not isinstance(built.value, pydantic.ValidationError)
    assert isinstance(built.value, ValueError)
    assert (built.value.field, built.value.reason) == (field, parsed.value.reason)


def test_constructor_error_of_run_every() -> None:
    with pytest.raises(ValidationError) as info:
        JobOptions(run_every="P")
    assert info.value.field == "run_every"


def test_model_validate_stays_pydantic() -> None:
    with pytest.raises(pydantic.ValidationError):
        JobOptions.model_validate({"retries": "3"})


@pytest.mark.parametrize(
    "run_at",
    [datetime(2024, 6, 1, 9, tzinfo=UTC),
     datetime(2024, 6, 1, 9, tzinfo=timezone(timedelta(hours=2))),
     "2024-06-01T09:00:00+02:00"],
)
def test_run_at_takes_aware_datetimes_and_strings(run_at: datetime | str) -> None:
    options = JobOptions(run_at=run_at, retries=3, enabled=False)
    assert options.run_at is not None and options.run_at.utcoffset() is not None
    assert options.model_fields_set == {"run_at", "retries", "enabled"}


def test_both_spellings_construct() -> None:
    assert JobOptions(runEvery="P1D") == JobOptions(run_every="P1D")
