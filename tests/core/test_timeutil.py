from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from taskless.core.errors import ValidationError
from taskless.core.timeutil import format_timestamp, parse_timestamp, to_utc, utcnow

EXPECTED = datetime(2022, 3, 16, 21, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2022-03-16T14:45:00-07:00",
        "2022-03-16T14:45:00-0700",
        "2022-03-16T14:45:00-07",
        "2022-03-16T21:45:00Z",
        "2022-03-16T21:45:00+00:00",
        "2022-03-16T21:45:00z",
        "2022-03-16t21:45:00Z",
        "2022-03-16 21:45:00Z",
        "2022-03-16T21:45Z",
        "2022-03-17T03:15:00+05:30",
        "  2022-03-16T21:45:00Z  ",
    ],
)
def test_offsets_all_mean_the_same_instant(text: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed == EXPECTED
    assert to_utc(parsed) == EXPECTED
    assert to_utc(parsed).tzinfo is UTC


def test_the_original_offset_is_kept() -> None:
    parsed = parse_timestamp("2022-03-16T14:45:00-07:00")
    assert parsed.utcoffset() == timedelta(hours=-7)
    assert parsed.hour == 14
    assert parse_timestamp("2022-03-16T21:45:00Z").tzinfo is UTC
    assert parse_timestamp("2022-03-16T21:45:00-00:00").utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("2024-06-01T09:00:00.5Z", 500_000),
        ("2024-06-01T09:00:00,5Z", 500_000),
        ("2024-06-01T09:00:00.123Z", 123_000),
        ("2024-06-01T09:00:00.123456Z", 123_456),
        ("2024-06-01T09:00:00.1234567891234Z", 123_456),
        ("2024-06-01T09:00:00.9999999+02:00", 999_999),
    ],
)
def test_fractions_of_any_length_are_truncated_to_microseconds(text: str, micro: int) -> None:
    parsed = parse_timestamp(text)
    assert parsed.microsecond == micro
    assert parsed.second == 0


def test_aware_datetimes_pass_through_unchanged() -> None:
    paris = datetime(2024, 6, 1, 9, tzinfo=ZoneInfo("Europe/Paris"))
    assert parse_timestamp(paris) is paris
    fixed = datetime(2024, 6, 1, 9, tzinfo=timezone(timedelta(hours=3)))
    assert parse_timestamp(fixed) is fixed


@pytest.fixture
def restore_tz() -> Iterator[None]:
    saved = os.environ.get("TZ")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.parametrize(
    "tz", ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati", "Europe/Paris"]
)
def test_no_offset_is_refused_whatever_the_machine_zone(tz: str, restore_tz: None) -> None:
    os.environ["TZ"] = tz
    time.tzset()
    with pytest.raises(ValidationError) as info:
        parse_timestamp("2024-06-01T09:00:00")
    assert info.value.field == "run_at"
    assert "add an offset such as 'Z' or '+02:00'" in str(info.value)
    with pytest.raises(ValidationError) as naive:
        parse_timestamp(datetime(2024, 6, 1, 9))
    assert naive.value.field == "run_at"
    assert "naive" in naive.value.reason
    # An aware one still parses to the same instant, whatever TZ says.
    assert parse_timestamp("2022-03-16T14:45:00-07:00") == EXPECTED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2024-06-01",
        "2024-06-01Z",
        "2024-13-01T09:00:00Z",
        "2024-02-30T09:00:00Z",
        "2024-06-01T25:00:00Z",
        "2024-06-01T09:60:00Z",
        "2024-06-01T09:00:00+24:00",
        "2024-06-01T09:00:00+02:75",
        "2024-06-01T09:00:00.Z",
        "2024-06-01T09:00.5Z",
        "2024-06-01T09:00:00 Z",
        "20240601T090000Z",
        "\uff12\uff10\uff12\uff14-06-01T09:00:00Z",
        "2024-06-01T09:00:00+2",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
    ],
)
def test_garbage_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_timestamp(text, field="runAt")
    assert info.value.field == "runAt"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [None, 1717232400, 1.5, b"2024-06-01T09:00:00Z"])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_timestamp(value)  # type: ignore[arg-type]
    assert info.value.field == "run_at"


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2024, 6, 1, 9, tzinfo=UTC), "2024-06-01T09:00:00Z"),
        (datetime(2024, 6, 1, 9, 0, 0, 250_000, tzinfo=UTC), "2024-06-01T09:00:00.250000Z"),
        (
            datetime(2024, 6, 1, 11, tzinfo=timezone(timedelta(hours=2))),
            "2024-06-01T11:00:00+02:00",
        ),
        (
            datetime(2022, 3, 16, 14, 45, tzinfo=timezone(timedelta(hours=-7))),
            "2022-03-16T14:45:00-07:00",
        ),
        (
            datetime(2024, 6, 1, 9, tzinfo=timezone(timedelta(hours=5, minutes=45))),
            "2024-06-01T09:00:00+05:45",
        ),
        (datetime(2024, 6, 1, 9, tzinfo=ZoneInfo("Europe/Paris")), "2024-06-01T09:00:00+02:00"),
        (datetime(2024, 1, 1, 9, tzinfo=ZoneInfo("Europe/London")), "2024-01-01T09:00:00Z"),
    ],
)
def test_format_keeps_the_offset_and_writes_z_for_utc(dt: datetime, text: str) -> None:
    assert format_timestamp(dt) == text
    assert parse_timestamp(text) == dt


def test_format_of_the_utc_form() -> None:
    dt = parse_timestamp("2022-03-16T14:45:00-07:00")
    assert format_timestamp(to_utc(dt)) == "2022-03-16T21:45:00Z"


def test_naive_datetimes_are_refused_by_format_and_to_utc() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime(2024, 6, 1))
    with pytest.raises(ValueError):
        to_utc(datetime(2024, 6, 1))


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("offset", ["+25:00", "-24:00", "+2400", "+99"])
def test_an_offset_of_a_day_or_more_says_the_range(offset: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_timestamp(f"2024-06-01T09:00{offset}")
    assert info.value.field == "run_at"
    assert info.value.reason.endswith("the UTC offset must be between -23:59 and +23:59")
    assert "timedelta" not in info.value.reason


def test_an_offset_just_under_a_day_is_fine() -> None:
    assert parse_timestamp("2024-06-01T09:00+23:59").utcoffset() == timedelta(hours=23, minutes=59)


@pytest.mark.parametrize(
    "text",
    ["2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
     "2024-01-01T23:59:60Z", "0000-01-01T00:00:00.000000Z"],
)
def test_an_impossible_canonical_timestamp_gets_the_general_message(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_timestamp(text, field="at")
    assert caught.value.field == "at"
    assert caught.value.reason.startswith(f"{text!r} is not a valid timestamp: ")


@pytest.mark.parametrize("microsecond", [0, 1, 250000, 999999])
def test_the_utc_form_round_trips_in_utc(microsecond: int) -> None:
    moment = datetime(2024, 6, 1, 9, 30, 5, microsecond, tzinfo=UTC)
    text = format_timestamp(moment)
    assert text.endswith("Z") and "+" not in text
    parsed = parse_timestamp(text)
    assert parsed == moment and parsed.tzinfo is UTC


def test_format_timestamp_of_a_zero_offset_zone_is_z() -> None:
    moment = datetime(2024, 1, 15, 12, 0, 0, 5, tzinfo=ZoneInfo("Europe/London"))
    assert format_timestamp(moment) == "2024-01-15T12:00:00.000005Z"
    assert format_timestamp(datetime(2024, 7, 15, 12, tzinfo=ZoneInfo("Europe/London"))) == (
        "2024-07-15T12:00:00+01:00"
    )
