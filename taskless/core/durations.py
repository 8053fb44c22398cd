"""ISO-8601 durations for ``run_every``: ``PnYnMnWnDTnHnMnS`` with a sign on each component.

The parser is our own because the rules it enforces are ours: a separate sign on each
component (``P1M-5D``, five days before the end of every month), exact decimal seconds, and
the refusals of section "Durations" of the design (fractions only on the last of H, M or S,
no repeated designators, nothing zero, negative or absurdly long). ``datetime.timedelta`` and
pydantic's duration parsing know neither months nor years; ``isodate`` takes one sign in
front of the whole duration only, reads hours and days as floats and does not check where a
fraction appears.

Hours, minutes and seconds are one elapsed time and are kept as exact ``seconds``. Because
the positive and negative parts of a duration are split per field, they must share one sign
(``PT1H-30M`` is refused rather than silently read as ``PT30M``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import NamedTuple

from .errors import ValidationError

__all__ = ["MAX_YEARS", "Duration", "parse_duration"]

#: The longest ``run_every`` accepted: 1000 years of 365.2425 days (so ``P1000Y`` and
#: ``P12000M`` pass and ``P1001Y`` does not). Longer "schedules" are typing mistakes.
MAX_YEARS = 1000

#: Longer input is refused before any number in it is read.
MAX_LENGTH = 100

_DAY = 86_400
_AVERAGE_YEAR_DAYS = Fraction(3_652_425, 10_000)
_MAX_SECONDS = MAX_YEARS * _AVERAGE_YEAR_DAYS * _DAY
_EXAMPLES = "such as 'P1D', 'PT15M' or 'P1M-5D'"

_DATE_UNITS = {"Y": "years", "M": "months", "W": "weeks", "D": "days"}
_TIME_UNITS = {"H": 3600, "M": 60, "S": 1}

_COMPONENT = re.compile(r"([+-]?)(\d+)(?:[.,](\d+))?([A-Za-z])", re.ASCII)


@dataclass(frozen=True)
class Duration:
    """A parsed ``run_every``. Every field carries its own sign.

    ``years``, ``months``, ``weeks`` and ``days`` are calendar amounts; ``seconds`` is the
    exact elapsed time of the hours, minutes and seconds. ``str()`` gives the canonical text,
    which :func:`parse_duration` reads back to an equal value.
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    seconds: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, Decimal):
            object.__setattr__(self, "seconds", Decimal(self.seconds))

    @property
    def positive(self) -> Duration:
        """The positive fields, the others zero: the part ``P`` that occurrence k repeats k times."""
        return Duration(
            max(self.years, 0),
            max(self.months, 0),
            max(self.weeks, 0),
            max(self.days, 0),
            max(self.seconds, Decimal(0)),
        )

    @property
    def negative(self) -> Duration:
        """The negative fields, still negative, the others zero: the part ``N`` added once."""
        return Duration(
            min(self.years, 0),
            min(self.months, 0),
            min(self.weeks, 0),
            min(self.days, 0),
            min(self.seconds, Decimal(0)),
        )

    @property
    def is_zero(self) -> bool:
        """True when every field is zero."""
        return not any(self._values())

    def __neg__(self) -> Duration:
        return Duration(-self.years, -self.months, -self.weeks, -self.days, -self.seconds)

    def shortest_seconds(self) -> Fraction:
        """Length of the magnitude of each field added up, counting a year as 365 days and a
        month as 28: the least this much calendar time can last (on a fixed UTC offset)."""
        return self._span(365, 28)

    def longest_seconds(self) -> Fraction:
        """Like :meth:`shortest_seconds` with a year of 366 days and a month of 31."""
        return self._span(366, 31)

    def average_seconds(self) -> Fraction:
        """Like :meth:`shortest_seconds` with Gregorian averages (365.2425 days a year)."""
        return self._span(_AVERAGE_YEAR_DAYS, _AVERAGE_YEAR_DAYS / 12)

    def __str__(self) -> str:
        date = "".join(
            f"{value}{designator}"
            for value, designator in zip(self._values()[:4], "YMWD", strict=True)
            if value
        )
        time = _format_time(self.seconds)
        if not date and not time:
            return "PT0S"
        return f"P{date}" + (f"T{time}" if time else "")

    def _values(self) -> tuple[int, int, int, int, Decimal]:
        return (self.years, self.months, self.weeks, self.days, self.seconds)

    def _span(self, year_days: Fraction | int, month_days: Fraction | int) -> Fraction:
        days = (
            abs(self.years) * year_days
            + abs(self.months) * month_days
            + abs(self.weeks) * 7
            + abs(self.days)
        )
        return days * _DAY + abs(Fraction(self.seconds))


def parse_duration(text: str, *, field: str = "run_every") -> Duration:
    """Parse ``PnYnMnWnDTnHnMnS`` into a :class:`Duration`, enforcing the schedule rules.

    Designators are case-insensitive and must come in that order, each at most once. Each
    component may carry its own sign (``P1M-5D``). Only the last component may have a
    fraction (``.`` or ``,``), and only if it is H, M or S (``PT0.5H`` is 30 minutes).

    Refused, with a :class:`ValidationError` naming ``field``: empty text, a bare ``P`` or
    ``PT``, unknown, repeated or misplaced designators, misplaced fractions, hours, minutes
    and seconds of different signs, a total that is zero or negative, a duration longer than
    :data:`MAX_YEARS` years (or text longer than :data:`MAX_LENGTH` characters), time finer
    than a microsecond, and a negative part ``N`` that is not shorter than the shortest the
    positive part ``P`` can be (``P1M-30D``): ``P`` counts a month as 28 days and a year as
    365, ``N`` at its longest counts a month as 31 days and a year as 366.
    """
    if not isinstance(text, str):
        raise ValidationError(field, f"must be an ISO-8601 duration string {_EXAMPLES}")
    source = text.strip()
    if not source:
        raise ValidationError(field, f"is empty; give an ISO-8601 duration {_EXAMPLES}")
    if len(source) > MAX_LENGTH:
        raise ValidationError(field, f"is too long ({len(source)} characters)")
    try:
        return _checked(_duration(_components(source)))
    except ValueError as exc:
        raise ValidationError(field, f"{text!r} {exc}") from None


class _Component(NamedTuple):
    designator: str
    value: Fraction
    fractional: bool
    in_time: bool


def _components(source: str) -> list[_Component]:
    """The grammar: a leading P, components in order, at most one T."""
    if source[0] in "+-":
        raise ValueError(
            "has a sign before 'P'; put signs on components, as in 'P1M-5D', "
            "and keep the total positive"
        )
    if source[0] not in "Pp":
        raise ValueError(f"does not start with 'P'; give an ISO-8601 duration {_EXAMPLES}")
    date_part, has_time, time_part = source[1:].upper().partition("T")
    if not date_part and not time_part:
        raise ValueError(f"has no components; add at least one, {_EXAMPLES}")
    if has_time and not time_part:
        raise ValueError("has a 'T' with nothing after it; add hours, minutes or seconds")
    if "T" in time_part:
        raise ValueError("has more than one 'T'")
    components = _part(date_part, "YMWD", in_time=False) + _part(time_part, "HMS", in_time=True)
    for component in components[:-1]:
        if component.fractional:
            raise ValueError("has a fraction before its last component; only the last may")
    return components


def _part(text: str, order: str, *, in_time: bool) -> list[_Component]:
    found: list[_Component] = []
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        if match is None:
            raise ValueError(_unreadable(text[position:], in_time=in_time))
        sign, whole, fraction, designator = match.groups()
        if designator not in order:
            raise ValueError(_misplaced(designator, in_time=in_time))
        if found and order.index(designator) <= order.index(found[-1].designator):
            raise ValueError(_out_of_order(designator, found[-1].designator, order))
        value = Fraction(int(whole))
        if fraction is not None:
            value += Fraction(int(fraction), 10 ** len(fraction))
        found.append(
            _Component(designator, -value if sign == "-" else value, fraction is not None, in_time)
        )
        position = match.end()
    return found


def _duration(components: list[_Component]) -> Duration:
    calendar = {"years": 0, "months": 0, "weeks": 0, "days": 0}
    time: list[Fraction] = []
    for component in components:
        if component.in_time:
            time.append(component.value * _TIME_UNITS[component.designator])
            continue
        name = _DATE_UNITS[component.designator]
        if component.fractional:
            raise ValueError(
                f"has a fraction on {name}; only hours, minutes or seconds may have one "
                "(e.g. 'P1DT12H' rather than 'P1.5D')"
            )
        calendar[name] = int(component.value)
    if len({value > 0 for value in time if value}) > 1:
        raise ValueError(
            "mixes signs in hours, minutes and seconds; they add up to one elapsed time and "
            "must share a sign (to shift the times of the runs, change run_at)"
        )
    micros = sum(time, Fraction(0)) * 1_000_000
    if micros.denominator != 1:
        raise ValueError("is finer than a microsecond")
    return Duration(**calendar, seconds=_decimal_seconds(int(micros)))


def _checked(duration: Duration) -> Duration:
    """The rules on the whole value: positive, of sane size, and N shorter than P."""
    if duration.is_zero:
        raise ValueError("is zero; give a duration longer than zero")
    positive, negative = duration.positive, duration.negative
    if positive.is_zero:
        raise ValueError("is negative; give a duration that moves forward in time")
    if positive.average_seconds() > _MAX_SECONDS:
        raise ValueError(f"is too long; the longest accepted is {MAX_YEARS} years")
    if not negative.is_zero and negative.longest_seconds() >= positive.shortest_seconds():
        raise ValueError(
            f"goes back ({-negative}) as far as or further than its positive part "
            f"({positive}) can go forward; the negative part must be shorter than the "
            "positive part at its shortest (a month counts 28 days, a year 365)"
        )
    return duration


def _decimal_seconds(micros: int) -> Decimal:
    """Exact seconds from microseconds, without a needless exponent (1800, not 1.8E+3)."""
    if micros % 1_000_000 == 0:
        return Decimal(micros // 1_000_000)
    whole, rest = divmod(abs(micros), 1_000_000)
    sign = "-" if micros < 0 else ""
    return Decimal(f"{sign}{whole}.{rest:06d}".rstrip("0"))


def _format_time(seconds: Decimal) -> str:
    if not seconds:
        return ""
    sign = "-" if seconds < 0 else ""
    with localcontext() as context:
        context.prec = max(28, len(seconds.as_tuple().digits) + 10)
        hours, rest = divmod(abs(seconds), 3600)
        minutes, rest = divmod(rest, 60)
    parts = ((hours, "H"), (minutes, "M"), (rest, "S"))
    return "".join(f"{sign}{_plain(value)}{unit}" for value, unit in parts if value)


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _unreadable(rest: str, *, in_time: bool) -> str:
    if rest[0].isalpha():
        return f"has {rest[0]!r} without a number before it"
    if rest[0] in ".,":
        return "has a fraction without digits before it; write 'PT0.5H', not 'PT.5H'"
    letters = "H, M or S" if in_time else "Y, M, W or D"
    return f"cannot be read at {rest!r}; expected a number followed by {letters}"


def _misplaced(designator: str, *, in_time: bool) -> str:
    if not in_time and designator in "HS":
        return f"has {designator!r} before 'T'; write it after: 'PT1{designator}'"
    if in_time and designator in "YWD":
        return f"has {designator!r} after 'T'; write it before: 'P1{designator}T1H'"
    return f"has the unknown designator {designator!r}; use Y, M, W, D, then T and H, M, S"


def _out_of_order(designator: str, previous: str, order: str) -> str:
    if designator == previous:
        return f"repeats the designator {designator!r}"
    return f"has {designator!r} after {previous!r}; the order is {', '.join(order)}"
