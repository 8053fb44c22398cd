"""Numbers that JSON cannot carry, found where they are.

JSON numbers are finite: ``NaN``, ``Infinity`` and a literal too large for a float
(``1e999``) are not JSON, and an integer longer than Python converts to text
(:func:`sys.get_int_max_str_digits`, 4300 digits by default) cannot be stored or sent. The
Queue refuses such payloads before sending them and the job server before storing them, with
an error that names the field and the place inside it (``payload.items[2]``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = ["FINITE_HINT", "Path", "bad_number", "find", "format_path", "where"]

Path = tuple[str | int, ...]

#: What to say after naming a number JSON cannot carry.
FINITE_HINT: Final = "JSON numbers must be finite (NaN and Infinity are not JSON)"


def where(path: Path, reason: str) -> str:
    """``reason``, preceded by where it applies when that is deeper than the field itself."""
    return reason if len(path) <= 1 else f"at {format_path(path)}: {reason}"


def format_path(path: Path) -> str:
    """``("payload", "items", 2)`` -> ``payload.items[2]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def find(value: Any, is_bad: Callable[[Any], bool], path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """The values inside ``value`` (itself included) for which ``is_bad``, with their paths,
    in document order."""
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if is_bad(item):
            yield where, item
        elif isinstance(item, dict):
            stack.extend((where + (str(k),), v) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((where + (i,), v) for i, v in reversed(list(enumerate(item))))


def bad_number(value: Any) -> str | None:
    """Why the Python number ``value`` cannot be a JSON number, or ``None`` if it can."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number; {FINITE_HINT}"
    if isinstance(value, int) and not isinstance(value, bool):
        limit = sys.get_int_max_str_digits()
        # bit_length first: cheap, and exact enough to skip str() for every ordinary int.
        if limit and value.bit_length() > limit * 3:
            try:
                str(value)
            except ValueError:
                return (
                    f"a number is too long (more than {limit} digits); send it as a string"
                )
    return None
