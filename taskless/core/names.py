"""The one rule for queue and job names, shared by the Queue, the receiver and the job server.

A name has 1 to 200 characters: ASCII letters, digits and ``_ - . : @ +``, starting with a
letter, a digit or ``_``. So names go into URL paths as they are (no escaping, no ``..``), and
``user:42:welcome`` or ``welcome:ada+news@example.com`` work as deduplication keys. The job server
refuses what the client refuses, with the same message.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import ValidationError

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "validate_name"]

#: The longest job or queue name.
MAX_NAME_LENGTH: Final = 200

#: The characters of a name, as a regular expression (matched whole).
NAME_PATTERN: Final = r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]*"

_NAME: Final = re.compile(NAME_PATTERN)


def validate_name(value: object, *, field: str = "name") -> str:
    """Check a job or queue name and return it.

    :raises ValidationError: naming ``field`` (``name`` or ``queue``).
    """
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {type(value).__name__}")
    if not value:
        raise ValidationError(field, "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(
            field, f"must be at most {MAX_NAME_LENGTH} characters (it has {len(value)})"
        )
    if not _NAME.fullmatch(value):
        raise ValidationError(
            field,
            f"{value!r} is not allowed: use ASCII letters, digits and _ - . : @ +, "
            "starting with a letter, a digit or _",
        )
    return value
