"""How long to wait before retrying a failed delivery.

Attempt ``n`` (1-based) that fails waits ``min(cap, base * 2**(n-1))`` seconds, spread by
:func:`jittered`, unless the response carried ``Retry-After`` (:func:`parse_retry_after`),
which wins.
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

__all__ = ["RandomSource", "backoff_delay", "jittered", "parse_retry_after"]

_DELTA_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")


class RandomSource(Protocol):
    """Anything with ``random() -> float`` in ``[0, 1)``: the ``random`` module, a
    ``random.Random(seed)`` for reproducible tests."""

    def random(self) -> float: ...


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 3600.0) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``.

    Exact for every ``attempt``, however large (no ``OverflowError``): once doubling ``base``
    reaches ``cap`` the answer is ``cap``, and that point is found by comparing exponents.
    No jitter here; see :func:`jittered`.

    :raises ValueError: for ``attempt < 1``, or a ``base`` or ``cap`` that is negative or not
        finite.
    """
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
    for name, value in (("base", base), ("cap", cap)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if base == 0 or cap == 0:
        return 0.0
    doublings = attempt - 1
    if base >= cap or doublings >= math.log2(cap) - math.log2(base):
        return float(cap)
    # Below that exponent base * 2**doublings < cap, so ldexp cannot overflow.
    return min(float(cap), math.ldexp(base, doublings))


def jittered(delay: float, rng: RandomSource | None = None) -> float:
    """``delay`` with "equal jitter": a uniform random value in ``[delay / 2, delay]``.

    Half the delay is kept so a retry never comes much sooner than planned; the other half is
    random so that jobs which failed together do not all retry at the same instant.
    ``rng`` defaults to the ``random`` module; pass ``random.Random(seed)`` in tests.

    :raises ValueError: for a negative or non-finite ``delay``.
    """
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
    source: RandomSource = random if rng is None else rng
    half = delay / 2
    return half + half * source.random()


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` if there is none to honour.

    Accepts delta-seconds (``"120"``; a decimal such as ``"1.5"`` is tolerated) and an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which is measured from ``now``. A time
    in the past or a negative number gives ``0``. Missing, empty, malformed or infinite
    values give ``None``.

    :raises ValueError: if ``now`` is naive.
    """
    if now.utcoffset() is None:
        raise ValueError("parse_retry_after needs an aware 'now'")
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when = _http_date(text)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # HTTP-dates are always GMT; asctime() form carries no zone and parses naive.
    return when.replace(tzinfo=UTC) if when.utcoffset() is None else when
