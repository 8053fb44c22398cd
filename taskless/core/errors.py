"""Every error Taskless raises, one shallow tree with a stable ``code`` on each class.

::

    TasklessError                      code
    ├── ValidationError (ValueError)   "invalid"          bad input; ``field`` names it
    ├── JobNotFound (LookupError)      "not_found"        update() of a name that has no job
    ├── SignatureError                 "bad_signature"    a delivery failed verification
    ├── DecryptionError                "encrypted_payload" an encrypted payload cannot be read
    ├── ConfigurationError             "configuration"    a setting is missing or wrong
    │   └── MissingExtra (ImportError) "missing_extra"    an optional dependency is absent
    ├── TransportError                 "transport"        the job server could not be reached
    │   └── ServerError                "server"           the job server answered with an error
    └── RetryLater                     "retry_later"      raised by a handler: "try again in N s"

Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import ClassVar


class TasklessError(Exception):
    """Base of every Taskless error."""

    code: ClassVar[str] = "taskless_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(TasklessError, ValueError):
    """Input that Taskless refuses. ``field`` names the offending field (``run_at``, ...)."""

    code = "invalid"

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class JobNotFound(TasklessError, LookupError):
    """No job has that name in that queue."""

    code = "not_found"

    def __init__(self, queue: str, name: str) -> None:
        super().__init__(f"no job named {name!r} in queue {queue!r}")
        self.queue = queue
        self.name = name


class SignatureError(TasklessError):
    """A delivery's Standard Webhooks signature did not verify."""

    code = "bad_signature"


class DecryptionError(TasklessError):
    """An encrypted payload could not be decrypted: no key, another key, or altered data.
    The message says which, and which setting fixes it."""

    code = "encrypted_payload"


class ConfigurationError(TasklessError):
    """A setting is missing or wrong; the message names the setting."""

    code = "configuration"


class MissingExtra(ConfigurationError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""

    code = "missing_extra"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"this feature needs {module!r}, which is not installed: "
            f"pip install 'taskless[{extra}]'"
        )
        self.extra = extra


class TransportError(TasklessError):
    """The job server (or another backend) could not be reached."""

    code = "transport"


class ServerError(TransportError):
    """The job server answered with an error. ``status`` is its HTTP status."""

    code = "server"

    def __init__(
        self, status: int, message: str, *, error_code: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(f"job server answered {status}: {message}")
        self.status = status
        self.error_code = error_code
        self.field = field


class RetryLater(TasklessError):
    """Raise from a handler to have the delivery retried after ``seconds``.

    The receiver answers 503 with ``Retry-After: <seconds>``; the job server honours it.
    """

    code = "retry_later"

    def __init__(self, seconds: float = 60, message: str | None = None) -> None:
        if seconds < 0:
            raise ValueError("RetryLater: seconds must be >= 0")
        super().__init__(message or f"retry in {seconds:g} s")
        self.seconds = seconds


def require(module: str, extra: str) -> None:
    """Raise :class:`MissingExtra` unless ``module`` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtra(extra, module)
