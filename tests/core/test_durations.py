from __future__ import annotations

import random
from decimal import Decimal

import pytest

from taskless.core.durations import MAX_YEARS, Duration, parse_duration
from taskless.core.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1D", Duration(days=1)),
        ("P1W", Duration(weeks=1)),
        ("P1M", Duration(months=1)),
        ("P1Y", Duration(years=1)),
        ("PT15M", Duration(seconds=Decimal(900))),
        ("PT1S", Duration(seconds=Decimal(1))),
        ("PT0.5H", Duration(seconds=Decimal(1800))),
        ("PT0,5H", Duration(seconds=Decimal(1800))),
        ("PT1.5M", Duration(seconds=Decimal(90))),
        ("PT0.25S", Duration(seconds=Decimal("0.25"))),
        ("PT0.000001S", Duration(seconds=Decimal("0.000001"))),
        ("P1DT12H", Duration(days=1, seconds=Decimal(43200))),
        ("P1DT1.5H", Duration(days=1, seconds=Decimal(5400))),
        ("P1M-5D", Duration(months=1, days=-5)),
        ("P+1M-5D", Duration(months=1, days=-5)),
        ("P1Y-1M", Duration(years=1, months=-1)),
        ("P1W-6D", Duration(weeks=1, days=-6)),
        ("P1DT-1H", Duration(days=1, seconds=Decimal(-3600))),
        ("P1M-27D", Duration(months=1, days=-27)),
        ("p1y2m3w4dt5h6m7s", Duration(1, 2, 3, 4, Decimal(18367))),
        ("P1y2M3w4Dt5H6m7.25S", Duration(1, 2, 3, 4, Decimal("18367.25"))),
        ("P0Y1D", Duration(days=1)),
        ("P1MT1M", Duration(months=1, seconds=Decimal(60))),
        (" P1D ", Duration(days=1)),
        (f"P{MAX_YEARS}Y", Duration(years=MAX_YEARS)),
        (f"P{MAX_YEARS * 12}M", Duration(months=MAX_YEARS * 12)),
    ],
)
def test_accepted(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


REJECTED = [
    "",
    "   ",
    "P",
    "PT",
    "p",
    "pt",
    "PD",
    "PTH",
    "P1DT",
    "1D",
    "D1",
    "T1H",
    "P12M4M",
    "PT1H2H",
    "P1D1D",
    "P1D1Y",
    "PT1S1M",
    "P1.5M",
    "P0.5D",
    "P0.5Y",
    "P0,5W",
    "PT1.5H30M",
    "PT0.5H0.5M",
    "P1.5DT1H",
    "PT.5H",
    "PT1.H",
    "P1X",
    "PT1X",
    "P1H",
    "PT1D",
    "PT1W",
    "P1Y2",
    "P 1D",
    "P1D T1H",
    "P1DT1HT1M",
    "P\u0661D",
    "P0D",
    "PT0S",
    "PT-0S",
    "P0Y0M0W0DT0H0M0S",
    "P-1D",
    "PT-1S",
    "-P1D",
    "+P1D",
    "PT999999999999999999999999S",
    "P999999999999999999999999Y",
    f"P{MAX_YEARS + 1}Y",
    f"P{MAX_YEARS * 12 + 1}M",
    "P" + "1" * 200 + "D",
    "P1M-30D",
    "P1M-28D",
    "P1Y-365D",
    "P1W-7D",
    "P1DT-24H",
    "PT1H-30M",
    "PT-1H30M",
    "PT0.0000001S",
]


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_naming_run_every(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.field == "run_every"
    assert str(error).startswith("run_every: ")


def test_the_field_name_is_the_callers() -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration("P", field="runEvery")
    assert info.value.field == "runEvery"


@pytest.mark.parametrize("value", [None, 1, 86400.0, b"P1D"])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert info.value.field == "run_every"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("P", "no components"),
        ("P1DT", "'T' with nothing after it"),
        ("P12M4M", "repeats the designator 'M'"),
        ("P1.5M", "fraction on months"),
        ("PT1.5H30M", "fraction before its last component"),
        ("P1X", "unknown designator 'X'"),
        ("P1H", "write it after: 'PT1H'"),
        ("P-1D", "negative"),
        ("P0D", "zero"),
        ("PT999999999999999999999999S", f"{MAX_YEARS} years"),
        ("P1M-30D", "a month counts 28 days"),
        ("PT1H-30M", "must share a sign"),
    ],
)
def test_messages_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_duration(text)
    assert words in info.value.reason


def test_positive_and_negative_parts() -> None:
    duration = parse_duration("P1Y-1M2W-3DT-4H")
    assert duration.positive == Duration(years=1, weeks=2)
    assert duration.negative == Duration(months=-1, days=-3, seconds=Decimal(-14400))
    assert parse_duration("P1D").negative.is_zero


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("P1D", "P1D"),
        ("p1d", "P1D"),
        ("PT0.5H", "PT30M"),
        ("PT90M", "PT1H30M"),
        ("PT3600S", "PT1H"),
        ("PT1.50S", "PT1.5S"),
        ("PT0,25S", "PT0.25S"),
        ("P1M-5D", "P1M-5D"),
        ("P0Y1M-5D", "P1M-5D"),
        ("P1DT-1H-30M", "P1DT-1H-30M"),
        ("P1DT-5400S", "P1DT-1H-30M"),
        ("P1Y2M3W4DT5H6M7.000001S", "P1Y2M3W4DT5H6M7.000001S"),
        ("PT86400S", "PT24H"),
        ("PT100000S", "PT27H46M40S"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    duration = parse_duration(text)
    assert str(duration) == canonical
    assert parse_duration(canonical) == duration


def test_zero_duration_text() -> None:
    assert str(Duration()) == "PT0S"


_DATE_LIMITS = (("Y", 3), ("M", 30), ("W", 10), ("D", 400))
_TIME_LIMITS = (("H", 100), ("M", 1000), ("S", 100_000))


def _random_duration_text(rng: random.Random) -> str:
    def component(designator: str, limit: int) -> str:
        sign = "-" if rng.random() < 0.2 else ""
        return f"{sign}{rng.randint(0, limit)}{designator}"

    date = [component(d, limit) for d, limit in _DATE_LIMITS if rng.random() < 0.5]
    time = [component(d, limit) for d, limit in _TIME_LIMITS if rng.random() < 0.5]
    if time and rng.random() < 0.3:
        time[-1] = f"{time[-1][:-1]}.{rng.randint(0, 999_999):06d}{time[-1][-1]}"
    return "P" + "".join(date) + ("T" + "".join(time) if time else "")


def test_str_round_trips_on_many_random_durations() -> None:
    rng = random.Random(20240601)
    accepted = 0
    for _ in range(3000):
        text = _random_duration_text(rng)
        try:
            duration = parse_duration(text)
        except ValidationError:
            continue
        accepted += 1
        assert parse_duration(str(duration)) == duration, text
        assert parse_duration(str(duration).lower()) == duration, text
    assert accepted > 1000
