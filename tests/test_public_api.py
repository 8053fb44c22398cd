"""The public surface: names, and what importing taskless drags in."""

from __future__ import annotations

import subprocess
import sys
import types

import taskless

PINNED = {
    "Queue", "AsyncQueue", "JobOptions", "Job", "JobMeta", "JobNotFound", "RetryLater",
    "TasklessError", "occurrences",
}


def test_pinned_names_are_exported() -> None:
    assert PINNED <= set(taskless.__all__)
    for name in taskless.__all__:
        assert hasattr(taskless, name), name


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name for name, value in vars(taskless).items()
        if name.isidentifier() and not name.startswith("_") and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }
    assert public == set(taskless.__all__) - {"__version__"}


def test_import_does_not_pull_frameworks_servers_drivers_or_pytest() -> None:
    code = (
        "import sys, taskless, taskless.core.receiver, taskless.core.signing;"
        "bad = [m for m in ('fastapi', 'flask', 'pytest', 'psycopg', 'aiohttp', 'uvicorn',"
        " 'boto3', 'botocore', 'sqlite3', 'cryptography') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_errors_are_one_tree() -> None:
    for name in ("JobNotFound", "RetryLater", "ValidationError", "ConfigurationError",
                 "TransportError", "ServerError", "SignatureError", "MissingExtra",
                 "DecryptionError"):
        assert issubclass(getattr(taskless, name), taskless.TasklessError)
    assert issubclass(taskless.ValidationError, ValueError)
