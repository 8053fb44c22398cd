"""The virtual clock's steps of time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskless.core.errors import ValidationError
from taskless.testing import TasklessFake, clock


def test_a_duration_string_is_parsed_once_however_often_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[str] = []
    real = clock.parse_duration

    def counting(text: str, **kwargs: Any) -> Any:
        parsed.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(clock, "parse_duration", counting)
    clock._duration_step.cache_clear()
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    for _ in range(96):
        fake.advance("PT15M")
    assert fake.now == datetime(2024, 1, 2, tzinfo=UTC)
    assert clock.as_timedelta("PT15M") == timedelta(minutes=15)
    assert clock.as_timedelta("P1W") == timedelta(weeks=1)
    assert parsed == ["PT15M", "P1W"]


def test_refused_duration_strings_raise_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="years or months"):
            clock.as_timedelta("P1M")
        with pytest.raises(ValidationError):
            clock.as_timedelta("15 minutes")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (float("nan"), "by: nan seconds is not a finite number"),
        (float("inf"), "by: inf seconds is not a finite number"),
        (1e300, "by: 1e+300 seconds is too large a step"),
    ],
)
def test_a_step_of_seconds_that_is_no_time_says_so(step: float, message: str) -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    with pytest.raises(ValueError) as caught:
        fake.advance(step)
    assert str(caught.value) == message
    assert fake.now == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("step", ["PT0S", "P0D", "pt0h0m0s", "PT0.000S", "PT-0S", " P0W "])
def test_a_zero_duration_string_is_no_step_as_0_is(step: str) -> None:
    assert clock.as_timedelta(step) == timedelta(0)
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    assert fake.advance(step) == []
    fake.handle("emails", lambda payload, meta: None)
    fake.queue("emails").enqueue("due-now", 1)
    assert [d.name for d in fake.advance(step)] == ["due-now"]  # what is due now, as run_due
    assert fake.now == datetime(2024, 1, 1, tzinfo=UTC)
    assert fake.clock.advance(step) == datetime(2024, 1, 1, tzinfo=UTC)


def test_a_zero_step_changes_nothing_else_the_parser_refuses() -> None:
    fake = TasklessFake(start="2024-01-01T00:00:00Z")
    assert asyncio.run(fake.advance_async("PT0S")) == []
    assert fake.now == datetime(2024, 1, 1, tzinfo=UTC)
    for step, message in [
        (
            "-PT0S",
            (
                "by: '-PT0S' has a sign before 'P'; put signs on components, as in 'P1M-5D', "
                "and keep the total positive"
            ),
        ),
        ("P0D0D", "by: 'P0D0D' repeats the designator 'D'"),
        ("PT-1S", "by: 'PT-1S' is negative; give a duration that moves forward in time"),
    ]:
        with pytest.raises(ValidationError) as refused:
            fake.advance(step)
        assert str(refused.value) == message
    # A job's run_every is still never zero.
    with pytest.raises(ValidationError) as caught:
        fake.queue("emails").enqueue("a", 1, {"run_every": "PT0S"})
    assert str(caught.value) == "run_every: 'PT0S' is zero; give a duration longer than zero"
