from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from taskless.core.retry import backoff_delay, jittered, parse_retry_after


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
        (10, 512.0),
        (12, 2048.0),
        (13, 3600.0),
        (64, 3600.0),
        (1100, 3600.0),
        (10**30, 3600.0),
    ],
)
def test_backoff_defaults(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt) == delay
    assert backoff_delay(attempt, base=1, cap=3600) == delay


def test_backoff_with_other_base_and_cap() -> None:
    assert [backoff_delay(n, base=0.5, cap=10) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 10]
    assert backoff_delay(1, base=30, cap=10) == 10
    assert backoff_delay(5, base=0, cap=10) == 0
    assert backoff_delay(5, base=1, cap=0) == 0


def test_backoff_never_overflows_at_the_edges_of_floats() -> None:
    tiny, huge = 5e-324, 1.7e308
    assert backoff_delay(3, base=tiny, cap=huge) == tiny * 4
    assert backoff_delay(2000, base=tiny, cap=huge) == math.ldexp(tiny, 1999)
    assert backoff_delay(10**6, base=tiny, cap=huge) == huge
    assert backoff_delay(1100, base=1e300, cap=huge) == huge


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempt": 0},
        {"attempt": -1},
        {"attempt": 1, "base": -1},
        {"attempt": 1, "cap": -1},
        {"attempt": 1, "base": math.nan},
        {"attempt": 1, "cap": math.inf},
    ],
)
def test_backoff_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff_delay(**kwargs)  # type: ignore[arg-type]


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_equal_jitter_bounds() -> None:
    assert jittered(10, Fixed(0.0)) == 5
    assert jittered(10, Fixed(0.5)) == 7.5
    assert jittered(10, Fixed(0.999999)) == pytest.approx(10)
    assert jittered(0) == 0
    rng = random.Random(7)
    values = [jittered(100, rng) for _ in range(2000)]
    assert all(50 <= v <= 100 for v in values)
    assert min(values) < 52 and max(values) > 98


def test_jitter_default_source_and_module_source() -> None:
    assert 1 <= jittered(2) <= 2
    assert 1 <= jittered(2, random) <= 2


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf])
def test_jitter_refuses_nonsense(delay: float) -> None:
    with pytest.raises(ValueError):
        jittered(delay)


NOW = datetime(2015, 10, 21, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1680.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 1680.0),
        ("Wed Oct 21 07:28:00 2015", 1680.0),
        ("Wed, 21 Oct 2015 06:00:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 09:28:00 +0200", 1680.0),
    ],
)
def test_retry_after(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_now_in_another_offset() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-7)))
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 1680.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "12 seconds", "1e3", "0x10", "Wed, 99 Foo 2015", "9" * 400, "nan"],
)
def test_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        parse_retry_after("5", datetime(2015, 10, 21))
