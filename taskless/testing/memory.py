"""The ``memory://`` transport: queues talk to an in-memory fake job server.

``TASKLESS_URL=memory://`` (or ``memory://NAME`` for a second, separate fake) makes every queue
created with that URL send its requests to the :class:`~taskless.testing.fake.TasklessFake`
that is *active* for the URL when each request is made, so a queue created once (at import
time, say) reaches the fresh fake of each test. With no fake active, a request raises
:class:`~taskless.core.errors.ConfigurationError`: ``memory://`` is for tests, and a running app
with it would otherwise lose its jobs silently. Creating a queue with the URL never raises.

This module is registered as a Taskless plugin (entry point group ``taskless``) and offers the
``memory`` scheme through the ``taskless_transports`` hook. It imports no test framework.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from taskless.core.errors import ConfigurationError
from taskless.core.hooks import hookimpl
from taskless.core.settings import Settings
from taskless.core.transport import (
    ApiRequest,
    ApiResponse,
    AsyncTransport,
    Transport,
    TransportFactory,
)

if TYPE_CHECKING:
    from .fake import TasklessFake

__all__ = ["MemoryTransport", "active_fake", "fake_key", "taskless_transports"]

SCHEME = "memory"

_active: dict[str, TasklessFake] = {}
_lock = threading.Lock()


def fake_key(url: str) -> str:
    """The registry key of a ``memory://`` URL: its host part, ``"default"`` when empty."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"{url!r} is not a memory:// URL")
    return (parts.netloc or parts.path.strip("/") or "default").lower()


def activate(fake: TasklessFake, url: str) -> TasklessFake | None:
    """Make ``fake`` serve ``url``; returns the fake it replaces (to restore later)."""
    key = fake_key(url)
    with _lock:
        previous = _active.get(key)
        _active[key] = fake
    return previous


def deactivate(fake: TasklessFake, url: str, previous: TasklessFake | None = None) -> None:
    """Stop ``fake`` serving ``url`` (if it still does), restoring ``previous``."""
    key = fake_key(url)
    with _lock:
        if _active.get(key) is fake:
            if previous is None:
                del _active[key]
            else:
                _active[key] = previous


def active_fake(url: str = "memory://") -> TasklessFake:
    """The fake serving ``url`` now.

    :raises ConfigurationError: no fake is active for ``url``.
    """
    key = fake_key(url)
    with _lock:
        fake = _active.get(key)
    if fake is None:
        raise ConfigurationError(
            f"TASKLESS_URL={url!r}: no TasklessFake is active for it. memory:// is the in-memory "
            "fake job server, for tests only: nothing is ever delivered to a running app. In "
            "tests, use the taskless_fake pytest fixture, `with TasklessFake(...):`, or "
            "TasklessFake(...).install() (with url=" + repr(url) + " for a named one); to run "
            "the app, set TASKLESS_URL to your job server's http(s):// URL."
        )
    return fake


class MemoryTransport(Transport, AsyncTransport):
    """Serves a queue's requests from a fake job server, sync and async.

    :param url: a ``memory://`` URL; the fake active for it answers each request.
    :param fake: answer from this fake instead, whatever is active.
    """

    def __init__(self, url: str = "memory://", *, fake: TasklessFake | None = None) -> None:
        fake_key(url)  # refuses a URL of another scheme
        self.url = url
        self._fake = fake

    @property
    def fake(self) -> TasklessFake:
        """The fake that answers the next request."""
        return self._fake if self._fake is not None else active_fake(self.url)

    def handle(self, request: ApiRequest) -> ApiResponse:
        return self.fake.handle_api(request)

    async def handle_async(self, request: ApiRequest) -> ApiResponse:
        return self.fake.handle_api(request)

    def __repr__(self) -> str:
        return f"MemoryTransport({self.url!r})"


def _memory_factory(url: str, settings: Settings, *, asynchronous: bool) -> MemoryTransport:
    return MemoryTransport(url)


@hookimpl
def taskless_transports() -> dict[str, TransportFactory]:
    """``memory://`` URLs go to the in-memory fake job server."""
    return {SCHEME: _memory_factory}
