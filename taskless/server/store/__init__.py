"""Job server stores: the :class:`Store` interface and its implementations.

:func:`store_for_url` picks the implementation by the URL of ``TASKLESS_DATABASE``:
``sqlite:///path/to/file.db`` (the default, ``.taskless/taskless.db``) or
``postgresql://...``.
"""

from __future__ import annotations

from typing import Any

from taskless.core.errors import ConfigurationError

from .base import DEFAULT_HISTORY_LIMIT, Change, FinishedAttempt, Listener, Store, StoreUnavailable

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "Change",
    "FinishedAttempt",
    "Listener",
    "Store",
    "StoreUnavailable",
    "store_for_url",
]


def store_for_url(url: str, **kwargs: Any) -> Store:
    """A (not yet opened) store for a ``TASKLESS_DATABASE`` URL."""
    if "://" not in url:
        # A bare word or path is a mistake, not a file to create: say what to write instead.
        raise ConfigurationError(
            f"TASKLESS_DATABASE{_shown(url)} is not a URL (it has no scheme such as sqlite:// "
            "or postgresql://); use sqlite:///path/to/file.db or postgresql://user@host/db"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url, **kwargs)
    if scheme in ("postgres", "postgresql"):
        try:
            from .postgres import PostgresStore  # type: ignore[import-not-found, unused-ignore]
        except ImportError as exc:
            raise ConfigurationError(
                f"TASKLESS_DATABASE {url.split('@')[-1]!r}: the PostgreSQL store is not "
                f"available ({exc}); pip install 'taskless[postgres]'"
            ) from None
        store: Store = PostgresStore.from_url(url, **kwargs)
        return store
    raise ConfigurationError(
        f"TASKLESS_DATABASE has the scheme {scheme!r}; use sqlite:///path/to/file.db "
        "or postgresql://user@host/db"
    )


def _shown(url: str) -> str:
    """`` 'url'`` for a message, or nothing when it may hold a password (``user:pass@``)."""
    return "" if "@" in url else f" {url!r}"
