"""Timestamps: parse what users give for ``run_at``, format what the wire carries.

A timestamp must say where it is on the planet: a string without a UTC offset, or a naive
datetime, is refused instead of being read in the machine's local time. Nothing here looks at
the machine's time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from .errors import ValidationError

__all__ = ["format_timestamp", "parse_timestamp", "to_utc", "utcnow"]

_EXAMPLE = "'2024-06-01T09:00:00Z' or '2024-06-01T09:00:00+02:00'"

_TIMESTAMP = re.compile(
    r"""
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    [Tt\ ]
    (?P<hour>\d{2}):(?P<minute>\d{2})
    (?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?
    (?P<offset>
        [Zz]
        | (?P<sign>[+-])(?P<off_h>\d{2})(?::?(?P<off_m>\d{2}))?
    )?
    """,
    re.VERBOSE | re.ASCII,
)
# The UTC form format_timestamp writes (which _TIMESTAMP accepts): always in range.
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?Z", re.ASCII)
# parse_timestamp's memo: the last text in that form it parsed, and the datetime (immutable).
_last_parsed: tuple[str, datetime] = ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC))


def parse_timestamp(value: str | datetime, *, field: str = "run_at") -> datetime:
    """Parse an ISO-8601 timestamp with a UTC offset into an aware datetime.

    Accepts ``YYYY-MM-DDTHH:MM[:SS[.fff...]]`` followed by ``Z``, ``+hh:mm``, ``+hhmm`` or
    ``+hh``; the fraction may use ``.`` or ``,`` and have any length (it is truncated to
    microseconds). Aware datetimes are returned unchanged. The result keeps the offset it
    was written with; use :func:`to_utc` for UTC.

    :raises ValidationError: naming ``field`` for a naive datetime, a string without an
        offset, or anything that is not such a timestamp.
    """
    global _last_parsed
    if type(value) is str:
        last = _last_parsed  # the last canonical text parsed: jobs share instants
        if value == last[0]:
            return last[1]
        if _CANONICAL.fullmatch(value):
            # What format_timestamp writes for UTC, so what the wire mostly carries: parsed
            # in C. An impossible date falls through, so its message is the general one.
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                _last_parsed = (value, parsed)
                return parsed
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValidationError(
                field,
                "the datetime is naive (it has no time zone); make it aware, e.g. "
                "datetime(..., tzinfo=timezone.utc) or ZoneInfo('Europe/Paris')",
            )
        return _checked_range(value, field)
    if not isinstance(value, str):
        raise ValidationError(
            field, f"expected an ISO-8601 timestamp string or an aware datetime, such as {_EXAMPLE}"
        )
    text = value.strip()
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValidationError(
            field, f"{value!r} is not an ISO-8601 timestamp; expected something like {_EXAMPLE}"
        )
    if match["offset"] is None:
        raise ValidationError(
            field,
            f"{value!r} has no UTC offset; add an offset such as 'Z' or '+02:00' "
            "(local time is never guessed)",
        )
    try:
        parsed = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            _microseconds(match["fraction"]),
            tzinfo=_offset(match),
        )
    except ValueError as exc:
        raise ValidationError(field, f"{value!r} is not a valid timestamp: {exc}") from None
    return _checked_range(parsed, field)


# format_timestamp's memo: the last UTC instant it formatted, and the text.
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_last_utc: tuple[datetime, str] = (_EPOCH, "1970-01-01T00:00:00Z")


def format_timestamp(dt: datetime) -> str:
    """ISO-8601 text of an aware datetime, in the datetime's own offset.

    UTC is written ``Z``; microseconds appear only when non-zero:
    ``2024-06-01T09:00:00Z``, ``2024-06-01T11:00:00.250000+02:00``.
    Pass ``to_utc(dt)`` to get the UTC form.

    :raises ValueError: for a naive datetime.
    """
    global _last_utc
    if dt.tzinfo is UTC and type(dt) is datetime:
        # Runs of jobs share instants (a job's created, updated and next run times, jobs
        # enqueued together): the text of the last UTC instant formatted is kept. One tuple,
        # replaced whole, so threads always see a matching pair.
        last = _last_utc
        if last[0] == dt:
            return last[1]
        text = dt.isoformat()[:-6] + "Z"
        _last_utc = (dt, text)
        return text
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError("format_timestamp needs an aware datetime")
    # isoformat() writes the microseconds only when non-zero, then the offset as "+HH:MM".
    if not offset:
        return dt.isoformat()[:-6] + "Z"
    return dt.replace(tzinfo=None).isoformat() + _format_offset(offset)


def to_utc(dt: datetime) -> datetime:
    """The same instant as an aware datetime in UTC.

    :raises ValueError: for a naive datetime (its instant is unknown).
    """
    if dt.tzinfo is UTC:
        return dt  # what astimezone(UTC) returns then
    if dt.utcoffset() is None:
        raise ValueError("to_utc needs an aware datetime")
    return dt.astimezone(UTC)


def utcnow() -> datetime:
    """The current time as an aware datetime in UTC."""
    return datetime.now(UTC)


def _microseconds(fraction: str | None) -> int:
    if not fraction:
        return 0
    return int(fraction[:6].ljust(6, "0"))


def _offset(match: re.Match[str]) -> timezone:
    if match["sign"] is None:
        return UTC
    minutes = int(match["off_h"]) * 60 + int(match["off_m"] or 0)
    if int(match["off_m"] or 0) >= 60:
        raise ValueError("offset minutes must be below 60")
    if minutes >= 24 * 60:
        raise ValueError("the UTC offset must be between -23:59 and +23:59")
    if minutes == 0:
        return UTC
    sign = -1 if match["sign"] == "-" else 1
    return timezone(timedelta(minutes=sign * minutes))


def _checked_range(dt: datetime, field: str) -> datetime:
    # Timestamps are stored in UTC, so the UTC form must exist too (year 1 and 9999 edges).
    try:
        dt.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            field, "the timestamp is out of range once converted to UTC (years 1 to 9999)"
        ) from None
    return dt


def _format_offset(offset: timedelta) -> str:
    if not offset:
        return "Z"
    sign = "-" if offset < timedelta(0) else "+"
    seconds = int(abs(offset).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    return text + (f":{seconds:02d}" if seconds else "")
