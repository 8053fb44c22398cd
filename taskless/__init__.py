"""Taskless: background and scheduled jobs for Python web apps, delivered as signed HTTP requests.

Importing this package imports no web framework, server, database driver or test tool.
"""

from __future__ import annotations

from .core.errors import (
    ConfigurationError,
    DecryptionError,
    JobNotFound,
    MissingExtra,
    RetryLater,
    ServerError,
    SignatureError,
    TasklessError,
    TransportError,
    ValidationError,
)
from .core.models import Job, JobMeta, JobOptions, JobState, Run
from .core.queue import UNSET, AsyncQueue, Queue
from .core.schedule import occurrences
from .core.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "UNSET",
    "AsyncQueue",
    "ConfigurationError",
    "DecryptionError",
    "Job",
    "JobMeta",
    "JobNotFound",
    "JobOptions",
    "JobState",
    "MissingExtra",
    "Queue",
    "RetryLater",
    "Run",
    "ServerError",
    "Settings",
    "SignatureError",
    "TasklessError",
    "TransportError",
    "ValidationError",
    "__version__",
    "occurrences",
]
