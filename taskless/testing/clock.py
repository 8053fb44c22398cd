"""The virtual clock of the fake: time moves only when a test moves it."""

from __future__ import annotations

import functools
import math
import re
import threading
from datetime import UTC, datetime, timedelta

from taskless.core.durations import parse_duration
from taskless.core.errors import ValidationError
from taskless.core.timeutil import format_timestamp, parse_timestamp, to_utc

__all__ = ["VirtualClock", "as_timedelta"]


def as_timedelta(value: timedelta | float | str, *, field: str = "by") -> timedelta:
    """A step of time: a :class:`timedelta`, seconds, or an ISO-8601 duration of weeks, days,
    hours, minutes and seconds (``"PT15M"``, ``"P1D"``; months and years have no fixed
    length and are refused: advance to a time instead). A zero duration (``"PT0S"``) is no
    step, as ``0`` is."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{field}: {value!r} seconds is not a finite number")
        try:
            return timedelta(seconds=value)
        except OverflowError:
            raise ValueError(f"{field}: {value!r} seconds is too large a step") from None
    if isinstance(value, str):
        return _duration_step(value, field)
    raise TypeError(f"{field} must be a timedelta, seconds or an ISO-8601 duration")


@functools.lru_cache(maxsize=256)
def _duration_step(value: str, field: str) -> timedelta:
    """A duration string as a timedelta, parsed once: tests advance by the same few steps
    thousands of times (errors are raised each time, never cached)."""
    try:
        duration = parse_duration(value, field=field)
    except ValidationError:
        # The duration parser is the one of run_every, which refuses zero; a step of zero
        # moves nothing, as advance(0) does.
        if _is_zero_duration(value):
            return timedelta(0)
        raise
    if duration.years or duration.months:
        raise ValueError(
            f"{field}: {value!r} has years or months, which have no fixed length; "
            "advance to a time instead (advance_to)"
        )
    return timedelta(weeks=duration.weeks, days=duration.days, seconds=float(duration.seconds))


def _is_zero_duration(value: str) -> bool:
    """``value`` is a duration whose every amount is zero (``"PT0S"``, ``"P0DT0H"``): its
    digits are all 0, and with a 1 for each 0 (and no sign on an amount, as ``-0`` is 0) it
    is a duration the parser accepts."""
    digits = [c for c in value if c.isdigit()]
    if not digits or any(c != "0" for c in digits):
        return False
    text = value.strip()
    unsigned = text[:1] + re.sub(r"[+-](?=\d)", "", text[1:])
    try:
        parse_duration(unsigned.replace("0", "1"))
    except ValidationError:
        return False
    return True


class VirtualClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` move it forward.

    :param start: the initial time (aware datetime or ISO-8601 timestamp with an offset);
        default: the real current time, to the second.
    """

    def __init__(self, start: datetime | str | None = None) -> None:
        if start is None:
            self._now = datetime.now(UTC).replace(microsecond=0)
        else:
            self._now = to_utc(parse_timestamp(start, field="start"))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current virtual time, aware, in UTC."""
        return self._now

    __call__ = now

    def time(self) -> float:
        """The current virtual time as unix seconds (a clock for signature checks)."""
        return self._now.timestamp()

    def set(self, when: datetime | str) -> datetime:
        """Move the clock to ``when``; it never goes back (:class:`ValueError`)."""
        target = to_utc(parse_timestamp(when, field="when"))
        with self._lock:
            if target < self._now:
                raise ValueError(
                    f"the virtual clock never goes back: it is {format_timestamp(self._now)}, "
                    f"not moving to {format_timestamp(target)}"
                )
            self._now = target
        return target

    def _move(self, target: datetime) -> None:
        """Move to ``target`` (aware, UTC, not earlier than now): the fake's fast path."""
        self._now = target

    def advance(self, by: timedelta | float | str) -> datetime:
        """Move the clock forward by ``by`` (see :func:`as_timedelta`); returns the new time."""
        step = as_timedelta(by)
        if step < timedelta(0):
            raise ValueError("the virtual clock never goes back: give a positive step")
        return self.set(self._now + step)

    def __repr__(self) -> str:
        return f"VirtualClock({format_timestamp(self._now)!r})"
