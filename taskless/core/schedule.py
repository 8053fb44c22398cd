"""The occurrence rule: when each run of a job is due. The single source of it.

Occurrences are anchored on ``run_at``. Split ``run_every`` into its positive part ``P`` and
its negative part ``N``; occurrence 0 is ``run_at`` and occurrence ``k >= 1`` is
``run_at + k*P + N``, computed from ``run_at`` every time (no drift, no clamp carried from
one month to the next). The arithmetic goes years and months first (the day clamped to the
month's end), then weeks and days, then hours, minutes and seconds.

Without a time zone, everything happens on the fixed UTC offset of ``run_at``. With one,
years, months, weeks and days move the local wall time and hours, minutes and seconds are
elapsed time; a wall time that a DST change skips moves forward by the length of the gap
(02:30 becomes 03:30) for that run only, and a wall time that happens twice means its first
instant. This is how RFC 5545 and ``zoneinfo`` with ``fold=0`` read such times.

Every datetime returned is aware and in UTC.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from datetime import timezone as FixedOffset
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .durations import Duration, parse_duration
from .errors import ValidationError
from .timeutil import format_timestamp, parse_timestamp, to_utc

__all__ = ["Schedule", "occurrences"]

_MICROSECOND = timedelta(microseconds=1)


class Schedule:
    """The occurrences of one job: ``run_at``, then every ``every`` if given.

    :param run_at: the first run, an aware datetime or an ISO-8601 timestamp with an offset.
    :param every: ``run_every`` as a :class:`Duration` or its text; ``None`` for a one-off.
    :param timezone: an IANA name; do the calendar arithmetic in its local wall time.
    :raises ValidationError: naming ``run_at``, ``run_every`` or ``timezone``.
    """

    __slots__ = (
        "_back",
        "_back_us",
        "_start",
        "_step",
        "_step_us",
        "_wall",
        "_zone",
        "every",
        "run_at",
        "timezone",
    )

    def __init__(
        self,
        run_at: datetime | str,
        every: Duration | str | None,
        timezone: str | None = None,
    ) -> None:
        self.run_at = parse_timestamp(run_at, field="run_at")
        self.every = None if every is None else _duration(every)
        self.timezone = timezone
        self._start = to_utc(self.run_at)
        self._zone = _zone(timezone) if timezone is not None else _fixed_offset(self.run_at)
        self._wall = _wall_time(self._start, self._zone)
        self._step = Duration() if self.every is None else self.every.positive
        self._back = Duration() if self.every is None else self.every.negative
        self._step_us = _micros(self._step)
        self._back_us = _micros(self._back)
        if self.every is not None:
            self._check_first_repeat()

    @property
    def is_recurring(self) -> bool:
        """True when the job repeats (``every`` is set)."""
        return self.every is not None

    def at(self, k: int) -> datetime:
        """Occurrence ``k`` (0 is ``run_at``) in UTC.

        :raises ValueError: for ``k < 0``, or ``k >= 1`` of a one-off schedule.
        :raises OverflowError: when occurrence ``k`` falls outside the years 1 to 9999.
        """
        if k < 0:
            raise ValueError(f"occurrences are numbered from 0, got {k}")
        if k == 0:
            return self._start
        if self.every is None:
            raise ValueError("a one-off schedule has only occurrence 0")
        try:
            return self._occurrence(k)
        except OverflowError:
            raise OverflowError(f"occurrence {k} falls outside the years 1 to 9999") from None

    def first_after(self, t: datetime) -> tuple[int, datetime] | None:
        """The first occurrence strictly after ``t``, as ``(k, at(k))``.

        ``None`` for a one-off whose ``run_at <= t``, and when the next occurrence would fall
        after the year 9999. Takes a handful of steps whatever ``k`` is.
        """
        instant = _instant(t)
        if self._start > instant:
            return 0, self._start
        if self.every is None:
            return None
        k = self._first_index_after(instant)
        try:
            return k, self._occurrence(k)
        except OverflowError:
            return None

    def last_at_or_before(self, t: datetime) -> tuple[int, datetime] | None:
        """The last occurrence at or before ``t``, as ``(k, at(k))``; ``None`` if ``run_at > t``."""
        instant = _instant(t)
        if self._start > instant:
            return None
        if self.every is None:
            return 0, self._start
        k = self._first_index_after(instant) - 1
        return k, self.at(k)

    def __iter__(self) -> Iterator[datetime]:
        """Every occurrence in order, ``run_at`` first, until the year 9999."""
        yield self._start
        if self.every is None:
            return
        k = 1
        while True:
            try:
                yield self._occurrence(k)
            except OverflowError:
                return
            k += 1

    def __repr__(self) -> str:
        every = None if self.every is None else str(self.every)
        return (
            f"Schedule(run_at={format_timestamp(self.run_at)!r}, every={every!r}, "
            f"timezone={self.timezone!r})"
        )

    # -- the rule ----------------------------------------------------------------------------

    def _occurrence(self, k: int) -> datetime:
        """``run_at + k*P + N`` in UTC; raises OverflowError outside the years 1 to 9999."""
        step, back = self._step, self._back
        months = k * (12 * step.years + step.months) + 12 * back.years + back.months
        days = k * (7 * step.weeks + step.days) + 7 * back.weeks + back.days
        if months == 0 and days == 0:
            base = self._start  # pure elapsed time: no round trip through the wall clock
        else:
            base = self._localize(_add_calendar(self._wall, months, days))
        return base + timedelta(microseconds=k * self._step_us + self._back_us)

    def _localize(self, wall: datetime) -> datetime:
        # fold=0: an ambiguous wall time means its first instant, and a skipped one is read
        # with the offset from before the gap, which moves it forward by the gap's length.
        return wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)

    def _check_first_repeat(self) -> None:
        # The duration rules guarantee this on a fixed offset; in a time zone a short day can
        # bring occurrence 1 back to run_at (P1DT-23H-30M across a spring DST change).
        try:
            first = self._occurrence(1)
        except OverflowError:
            return
        if first <= self._start:
            raise ValidationError(
                "run_every",
                f"in {self.timezone} the first repeat ({format_timestamp(first)}) would not come "
                "after run_at; make the negative part of run_every shorter",
            )

    # -- searching ---------------------------------------------------------------------------

    def _is_after(self, k: int, instant: datetime) -> bool:
        try:
            return self._occurrence(k) > instant
        except OverflowError:
            return True

    def _first_index_after(self, instant: datetime) -> int:
        """The smallest ``k >= 1`` with ``at(k) > instant``, given ``at(0) <= instant``.

        Occurrences grow with ``k``, so: estimate ``k`` from the average length of ``P``,
        gallop away from the estimate until the answer is bracketed, then bisect. A good
        estimate (the usual case) costs two or three evaluations; a poor one, its logarithm.
        """
        guess = self._estimate(instant)
        if self._is_after(guess, instant):
            low, high = self._bracket_down(guess, instant)
        else:
            low, high = self._bracket_up(guess, instant)
        while high - low > 1:
            middle = (low + high) // 2
            if self._is_after(middle, instant):
                high = middle
            else:
                low = middle
        return high

    def _bracket_down(self, high: int, instant: datetime) -> tuple[int, int]:
        step = 1
        low = high - step
        while low > 0 and self._is_after(low, instant):
            high = low
            step *= 2
            low = max(0, high - step)
        return low, high

    def _bracket_up(self, low: int, instant: datetime) -> tuple[int, int]:
        step = 1
        high = low + step
        while not self._is_after(high, instant):
            low = high
            step *= 2
            high = low + step
        return low, high

    def _estimate(self, instant: datetime) -> int:
        elapsed_us = (instant - self._start) // _MICROSECOND
        back_us = self._back.average_seconds() * 1_000_000
        step_us = self._step.average_seconds() * 1_000_000
        return max(1, math.floor((elapsed_us + back_us) / step_us) + 1)


def occurrences(
    run_at: datetime | str,
    run_every: Duration | str | None,
    *,
    timezone: str | None = None,
) -> Iterator[datetime]:
    """The occurrences of a schedule as aware UTC datetimes, occurrence 0 (``run_at``) first.

    A one-off (``run_every=None``) yields just ``run_at``; a recurring schedule goes on until
    the year 9999, so take what you need (``itertools.islice``). Input is checked at the call,
    not at the first ``next()``.

    :raises ValidationError: naming ``run_at``, ``run_every`` or ``timezone``.
    """
    return iter(Schedule(run_at, run_every, timezone))


def _duration(every: Duration | str) -> Duration:
    # A Duration built by hand goes through the same checks as text (str() round-trips).
    text = str(every) if isinstance(every, Duration) else every
    return parse_duration(text, field="run_every")


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValidationError("timezone", "must be an IANA time zone name such as 'Europe/Paris'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(
            "timezone", f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None


def _fixed_offset(run_at: datetime) -> tzinfo:
    offset = run_at.utcoffset()
    return UTC if not offset else FixedOffset(offset)


def _wall_time(instant: datetime, zone: tzinfo) -> datetime:
    try:
        return instant.astimezone(zone).replace(tzinfo=None, fold=0)
    except OverflowError:
        raise ValidationError(
            "run_at", "is out of range in that time zone (local years 1 to 9999)"
        ) from None


def _instant(t: datetime) -> datetime:
    return to_utc(parse_timestamp(t, field="time"))


def _micros(duration: Duration) -> int:
    return int(duration.seconds * 1_000_000)


def _add_calendar(wall: datetime, months: int, days: int) -> datetime:
    """Naive ``wall`` plus ``months`` (day clamped to the month's end), then ``days``."""
    year, month_index = divmod(wall.year * 12 + wall.month - 1 + months, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("year out of range")
    month = month_index + 1
    day = min(wall.day, calendar.monthrange(year, month)[1])
    return wall.replace(year=year, month=month, day=day) + timedelta(days=days)
