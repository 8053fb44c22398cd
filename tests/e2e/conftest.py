"""Real parts for end-to-end tests: a job server and apps, each served by uvicorn (or a WSGI
server) on its own loopback port, with real SQLite.

The job server runs with short retry delays (base 20 ms, cap 200 ms) so that retry scenarios
take well under a second; everything else is as in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskless.core.engine import Backoff
from taskless.core.settings import Settings
from taskless.server.app import create_app
from taskless.server.dispatcher import DispatcherConfig
from taskless.server.runner import ServerThread

FAST_BACKOFF = Backoff(base=0.02, cap=0.2)


@dataclass
class JobServer:
    url: str
    settings: Settings

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"authorization": f"Bearer {self.settings.api_key}"},
            timeout=10,
        )


@pytest.fixture
def job_server(tmp_path: Path) -> Iterator[JobServer]:
    """A development job server on a free loopback port, SQLite in the test's temp folder."""
    settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'taskless.db'}")
    app = create_app(settings, dispatcher=DispatcherConfig(backoff=FAST_BACKOFF, timeout=5))
    with ServerThread(app) as server:
        yield JobServer(server.url, settings)


@dataclass
class Recorder:
    """What a test app's handlers saw: (monotonic arrival, wall arrival, payload, meta)."""

    calls: list[tuple[float, float, Any, Any]] = field(default_factory=list)

    def add(self, payload: Any, meta: Any) -> None:
        self.calls.append((time.monotonic(), time.time(), payload, meta))

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def settle(self, quiet: float = 0.4, timeout: float = 10.0) -> None:
        """Wait until no call has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if len(self.calls) != last:
                last, quiet_since = len(self.calls), time.monotonic()
            elif time.monotonic() - quiet_since >= quiet:
                return
            time.sleep(0.02)


@pytest.fixture
def app_server() -> Iterator[Callable[[Any], ServerThread]]:
    """An ASGI app's uvicorn server on a free loopback port, not started yet: its ``url`` is
    known at once (the app's Taskless settings need it), ``start()`` serves it."""
    threads: list[ServerThread] = []

    def make(app: Any) -> ServerThread:
        thread = ServerThread(app)
        threads.append(thread)
        return thread

    yield make
    for thread in threads:
        thread.stop()
