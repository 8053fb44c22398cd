from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from taskless.core.durations import Duration, parse_duration
from taskless.core.errors import ValidationError
from taskless.core.schedule import Schedule, occurrences
from taskless.core.timeutil import parse_timestamp


def utc(text: str) -> datetime:
    return parse_timestamp(text).astimezone(UTC)


def first(run_at: str, every: str | None, n: int, timezone: str | None = None) -> list[datetime]:
    return list(islice(occurrences(run_at, every, timezone=timezone), n))


def texts(values: list[datetime]) -> list[str]:
    return [v.strftime("%Y-%m-%dT%H:%M:%SZ") for v in values]


# -- the rule --------------------------------------------------------------------------------


def test_month_end_is_clamped_and_never_carried() -> None:
    assert texts(first("2024-01-31T10:00Z", "P1M", 5)) == [
        "2024-01-31T10:00:00Z",
        "2024-02-29T10:00:00Z",
        "2024-03-31T10:00:00Z",
        "2024-04-30T10:00:00Z",
        "2024-05-31T10:00:00Z",
    ]


def test_month_end_from_august() -> None:
    assert texts(first("2023-08-31T09:00Z", "P1M", 4)) == [
        "2023-08-31T09:00:00Z",
        "2023-09-30T09:00:00Z",
        "2023-10-31T09:00:00Z",
        "2023-11-30T09:00:00Z",
    ]


def test_five_days_before_the_end_of_every_month() -> None:
    assert texts(first("2024-03-01T00:00Z", "P1M-5D", 5)) == [
        "2024-03-01T00:00:00Z",
        "2024-03-27T00:00:00Z",
        "2024-04-26T00:00:00Z",
        "2024-05-27T00:00:00Z",
        "2024-06-26T00:00:00Z",
    ]


def test_leap_day_yearly() -> None:
    assert texts(first("2024-02-29T12:00Z", "P1Y", 6)) == [
        "2024-02-29T12:00:00Z",
        "2025-02-28T12:00:00Z",
        "2026-02-28T12:00:00Z",
        "2027-02-28T12:00:00Z",
        "2028-02-29T12:00:00Z",
        "2029-02-28T12:00:00Z",
    ]


def test_arithmetic_order_months_then_days_then_time() -> None:
    # Jan 31 + 1 month = Feb 29 (clamped), + 1 day = Mar 1, + 1 hour.
    assert texts(first("2024-01-31T10:00Z", "P1M1DT1H", 2)) == [
        "2024-01-31T10:00:00Z",
        "2024-03-01T11:00:00Z",
    ]
    # Years and months are added together before clamping: 2024-02-29 + 13 months.
    assert texts(first("2024-02-29T00:00Z", "P1Y1M", 2))[1] == "2025-03-29T00:00:00Z"


def test_fixed_offset_of_run_at_without_timezone() -> None:
    # 23:30 at -05:00 is 04:30 UTC the next day; the month is added on the -05:00 calendar.
    assert texts(first("2024-01-31T23:30:00-05:00", "P1M", 3)) == [
        "2024-02-01T04:30:00Z",
        "2024-03-01T04:30:00Z",  # Feb 29 23:30 -05:00
        "2024-04-01T04:30:00Z",  # Mar 31 23:30 -05:00
    ]


def test_sub_daily_and_fractional_steps() -> None:
    assert texts(first("2024-06-01T09:00Z", "PT0.5H", 3)) == [
        "2024-06-01T09:00:00Z",
        "2024-06-01T09:30:00Z",
        "2024-06-01T10:00:00Z",
    ]
    times = first("2024-06-01T09:00Z", "PT0.25S", 3)
    assert times[2] - times[0] == timedelta(milliseconds=500)


def test_a_one_off_yields_just_run_at() -> None:
    assert first("2024-06-01T09:00:00+02:00", None, 5) == [utc("2024-06-01T07:00Z")]
    schedule = Schedule(utc("2024-06-01T07:00Z"), None)
    assert not schedule.is_recurring
    with pytest.raises(ValueError):
        schedule.at(1)


def test_everything_is_aware_utc() -> None:
    for value in first("2024-06-01T09:00:00+02:00", "P1D", 3, timezone="Europe/Paris"):
        assert value.tzinfo is UTC
    assert Schedule("2024-06-01T09:00:00+02:00", "P1D").at(0) == utc("2024-06-01T07:00Z")


def test_occurrences_accepts_datetimes_and_durations() -> None:
    run_at = datetime(2024, 6, 1, 9, tzinfo=ZoneInfo("Europe/Paris"))
    values = list(islice(occurrences(run_at, parse_duration("P1W")), 2))
    assert texts(values) == ["2024-06-01T07:00:00Z", "2024-06-08T07:00:00Z"]


def test_bad_input_is_refused_at_the_call() -> None:
    with pytest.raises(ValidationError) as info:
        occurrences("2024-06-01T09:00:00", "P1D")
    assert info.value.field == "run_at"
    with pytest.raises(ValidationError) as info:
        occurrences("2024-06-01T09:00Z", "P1M-30D")
    assert info.value.field == "run_every"
    with pytest.raises(ValidationError) as info:
        occurrences("2024-06-01T09:00Z", Duration(days=-1))
    assert info.value.field == "run_every"
    for zone in ("Mars/Olympus", "", "Europe", "../etc/passwd"):
        with pytest.raises(ValidationError) as info:
            occurrences("2024-06-01T09:00Z", "P1D", timezone=zone)
        assert info.value.field == "timezone"


def test_run_at_out_of_range_in_the_zone() -> None:
    with pytest.raises(ValidationError) as info:
        Schedule("9999-12-31T23:00Z", "P1D", "Pacific/Kiritimati")
    assert info.value.field == "run_at"


def test_at_refuses_negative_k() -> None:
    with pytest.raises(ValueError):
        Schedule("2024-06-01T09:00Z", "P1D").at(-1)


# -- time zones and DST ------------------------------------------------------------------------


def test_p1d_keeps_local_time_across_spring_dst_paris() -> None:
    # Europe/Paris springs forward on 2024-03-31 (02:00 CET -> 03:00 CEST).
    values = first("2024-03-29T09:00:00+01:00", "P1D", 4, timezone="Europe/Paris")
    assert texts(values) == [
        "2024-03-29T08:00:00Z",
        "2024-03-30T08:00:00Z",
        "2024-03-31T07:00:00Z",
        "2024-04-01T07:00:00Z",
    ]
    paris = ZoneInfo("Europe/Paris")
    assert {v.astimezone(paris).hour for v in values} == {9}


def test_pt24h_is_elapsed_time_and_drifts_on_the_wall_clock() -> None:
    values = first("2024-03-29T09:00:00+01:00", "PT24H", 4, timezone="Europe/Paris")
    assert texts(values) == [
        "2024-03-29T08:00:00Z",
        "2024-03-30T08:00:00Z",
        "2024-03-31T08:00:00Z",
        "2024-04-01T08:00:00Z",
    ]
    paris = ZoneInfo("Europe/Paris")
    assert [v.astimezone(paris).hour for v in values] == [9, 9, 10, 10]


def test_p1d_keeps_local_time_across_fall_dst_new_york() -> None:
    # America/New_York falls back on 2024-11-03 (02:00 EDT -> 01:00 EST).
    values = first("2024-11-02T09:00:00-04:00", "P1D", 3, timezone="America/New_York")
    assert texts(values) == [
        "2024-11-02T13:00:00Z",
        "2024-11-03T14:00:00Z",
        "2024-11-04T14:00:00Z",
    ]


def test_without_timezone_p1d_stays_on_the_fixed_offset() -> None:
    values = first("2024-03-29T09:00:00+01:00", "P1D", 4)
    assert texts(values)[2:] == ["2024-03-31T08:00:00Z", "2024-04-01T08:00:00Z"]


def test_pt36h_and_p1dt12h_differ_across_dst() -> None:
    run_at = "2024-03-30T09:00:00+01:00"
    elapsed = first(run_at, "PT36H", 2, timezone="Europe/Paris")[1]
    calendar = first(run_at, "P1DT12H", 2, timezone="Europe/Paris")[1]
    assert texts([elapsed, calendar]) == ["2024-03-31T20:00:00Z", "2024-03-31T19:00:00Z"]


def test_a_skipped_wall_time_moves_forward_for_that_run_only() -> None:
    # 02:30 does not exist in New York on 2024-03-10: that run is at 03:30 EDT.
    values = first("2024-03-09T02:30:00-05:00", "P1D", 4, timezone="America/New_York")
    assert texts(values) == [
        "2024-03-09T07:30:00Z",  # 02:30 EST
        "2024-03-10T07:30:00Z",  # 03:30 EDT
        "2024-03-11T06:30:00Z",  # 02:30 EDT again
        "2024-03-12T06:30:00Z",
    ]


def test_an_ambiguous_wall_time_takes_its_first_instant() -> None:
    # 01:30 happens twice in New York on 2024-11-03: 05:30Z (EDT) then 06:30Z (EST).
    values = first("2024-11-02T01:30:00-04:00", "P1D", 3, timezone="America/New_York")
    assert texts(values) == [
        "2024-11-02T05:30:00Z",
        "2024-11-03T05:30:00Z",
        "2024-11-04T06:30:00Z",
    ]


def test_run_at_in_the_second_instance_of_an_ambiguous_hour() -> None:
    # run_at is 01:30 EST (the second 01:30); pure elapsed steps start from that instant.
    values = first("2024-11-03T01:30:00-05:00", "PT1H", 2, timezone="America/New_York")
    assert texts(values) == ["2024-11-03T06:30:00Z", "2024-11-03T07:30:00Z"]


def test_monthly_in_a_zone_is_local_month_end() -> None:
    values = first("2024-01-31T09:00:00+01:00", "P1M", 4, timezone="Europe/Paris")
    assert texts(values) == [
        "2024-01-31T08:00:00Z",
        "2024-02-29T08:00:00Z",
        "2024-03-31T07:00:00Z",  # CEST from March 31
        "2024-04-30T07:00:00Z",
    ]


def test_a_negative_part_that_a_short_day_cancels_is_refused() -> None:
    # P1DT-23H-30M is fine on a fixed offset, but the DST day in Paris lasts 23 hours.
    Schedule("2024-03-30T09:00:00+01:00", "P1DT-23H-30M")
    with pytest.raises(ValidationError) as info:
        Schedule("2024-03-30T09:00:00+01:00", "P1DT-23H-30M", "Europe/Paris")
    assert info.value.field == "run_every"


# -- searching ---------------------------------------------------------------------------------


def test_first_after_and_last_at_or_before_monthly() -> None:
    schedule = Schedule("2024-03-01T00:00Z", "P1M-5D")
    assert schedule.first_after(utc("2024-02-01T00:00Z")) == (0, utc("2024-03-01T00:00Z"))
    assert schedule.first_after(utc("2024-03-01T00:00Z")) == (1, utc("2024-03-27T00:00Z"))
    assert schedule.first_after(utc("2024-04-26T00:00Z")) == (3, utc("2024-05-27T00:00Z"))
    assert schedule.first_after(utc("2024-04-25T23:59:59Z")) == (2, utc("2024-04-26T00:00Z"))
    assert schedule.last_at_or_before(utc("2024-02-29T23:59Z")) is None
    assert schedule.last_at_or_before(utc("2024-03-01T00:00Z")) == (0, utc("2024-03-01T00:00Z"))
    assert schedule.last_at_or_before(utc("2024-04-26T00:00Z")) == (2, utc("2024-04-26T00:00Z"))
    assert schedule.last_at_or_before(utc("2024-05-26T00:00Z")) == (2, utc("2024-04-26T00:00Z"))
    # 2124-03-01 is occurrence 1200 + 1; its -5 days lands on 2124-02-25.
    assert schedule.first_after(utc("2124-02-01T00:00Z")) == (1200, utc("2124-02-25T00:00Z"))


def test_a_pt1s_schedule_ten_years_later() -> None:
    schedule = Schedule("2024-01-01T00:00Z", "PT1S")
    ten_years = 3653 * 86400  # 2024, 2028 and 2032 are leap years
    t = utc("2034-01-01T12:00:00.5Z")
    assert schedule.first_after(t) == (ten_years + 43201, utc("2034-01-01T12:00:01Z"))
    assert schedule.last_at_or_before(t) == (ten_years + 43200, utc("2034-01-01T12:00:00Z"))
    exact = utc("2034-01-01T00:00:00Z")
    assert schedule.first_after(exact) == (ten_years + 1, utc("2034-01-01T00:00:01Z"))
    assert schedule.last_at_or_before(exact) == (ten_years, exact)


def test_search_counts_evaluations_not_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    schedule = Schedule("2024-01-01T00:00Z", "PT1S")
    calls = 0
    original = Schedule._occurrence

    def counting(self: Schedule, k: int) -> datetime:
        nonlocal calls
        calls += 1
        return original(self, k)

    monkeypatch.setattr(Schedule, "_occurrence", counting)
    schedule.first_after(utc("2999-06-01T12:00:00.5Z"))
    assert calls < 10


def test_one_off_search() -> None:
    schedule = Schedule("2024-06-01T09:00Z", None)
    assert schedule.first_after(utc("2024-06-01T08:59:59Z")) == (0, utc("2024-06-01T09:00Z"))
    assert schedule.first_after(utc("2024-06-01T09:00Z")) is None
    assert schedule.last_at_or_before(utc("2024-06-01T08:59:59Z")) is None
    assert schedule.last_at_or_before(utc("2030-01-01T00:00Z")) == (0, utc("2024-06-01T09:00Z"))


def test_search_in_a_time_zone() -> None:
    schedule = Schedule("2024-03-29T09:00:00+01:00", "P1D", "Europe/Paris")
    assert schedule.first_after(utc("2024-03-31T07:30Z")) == (3, utc("2024-04-01T07:00Z"))
    assert schedule.last_at_or_before(utc("2024-03-31T07:30Z")) == (2, utc("2024-03-31T07:00Z"))
    # Ten years on, still 09:00 in Paris (CEST in June).
    assert schedule.first_after(utc("2034-06-01T06:00Z")) == (3716, utc("2034-06-01T07:00Z"))


def test_search_accepts_any_offset_and_refuses_naive() -> None:
    schedule = Schedule("2024-06-01T09:00Z", "P1D")
    # 10:00 at +02:00 is 08:00 UTC, before that day's 09:00 UTC run.
    assert schedule.first_after(parse_timestamp("2024-06-02T10:00+02:00")) == (
        1,
        utc("2024-06-02T09:00Z"),
    )
    with pytest.raises(ValueError):
        schedule.first_after(datetime(2024, 6, 2))


def test_near_the_end_of_time() -> None:
    schedule = Schedule("9999-12-01T00:00Z", "P1W")
    assert schedule.first_after(utc("9999-12-20T00:00Z")) == (3, utc("9999-12-22T00:00Z"))
    assert schedule.first_after(utc("9999-12-30T00:00Z")) is None
    assert schedule.last_at_or_before(utc("9999-12-31T23:59Z")) == (4, utc("9999-12-29T00:00Z"))
    assert len(list(schedule)) == 5
    with pytest.raises(OverflowError):
        schedule.at(5)


SEARCH_CASES = [
    ("2024-01-31T10:00Z", "P1M", None),
    ("2024-03-01T00:00Z", "P1M-5D", None),
    ("2024-02-29T06:00Z", "P1Y-1M", None),
    ("2024-01-01T00:00:00+05:30", "PT7M13.5S", None),
    ("2024-03-29T09:00:00+01:00", "P1D", "Europe/Paris"),
    ("2024-03-09T02:30:00-05:00", "P1W-1DT1H", "America/New_York"),
    ("2024-10-01T01:30:00+13:00", "P1MT-1H", "Pacific/Auckland"),
    ("2024-01-01T00:00Z", "P3DT7H", "Australia/Lord_Howe"),
]


@pytest.mark.parametrize(("run_at", "every", "zone"), SEARCH_CASES)
def test_search_agrees_with_the_sequence(run_at: str, every: str, zone: str | None) -> None:
    schedule = Schedule(run_at, every, zone)
    values = list(islice(schedule, 400))
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    for k, value in enumerate(values[:-1]):
        assert schedule.at(k) == value
        assert schedule.first_after(value) == (k + 1, values[k + 1])
        assert schedule.last_at_or_before(value) == (k, value)
        just_before = value - timedelta(microseconds=1)
        assert schedule.first_after(just_before) == (k, value)


@pytest.mark.parametrize(("run_at", "every", "zone"), SEARCH_CASES)
def test_search_property_at_random_instants(run_at: str, every: str, zone: str | None) -> None:
    schedule = Schedule(run_at, every, zone)
    start = schedule.at(0)
    rng = random.Random(every)
    for _ in range(300):
        t = start + timedelta(seconds=rng.uniform(-86400, 80 * 365 * 86400))
        after = schedule.first_after(t)
        assert after is not None
        k, value = after
        assert value > t
        assert value == schedule.at(k)
        before = schedule.last_at_or_before(t)
        if k == 0:
            assert before is None
        else:
            assert before == (k - 1, schedule.at(k - 1))
            assert schedule.at(k - 1) <= t
