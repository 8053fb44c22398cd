"""Backends of the scheduling contract: the fake and the real job server, behind one interface.

A scenario enqueues jobs, lets time pass to checkpoints and checks what the app's handlers
received. Times are written in units ``U`` from an origin ``t0``: the fake moves its virtual
clock there; the real job server (uvicorn on a loopback port, real SQLite, its dispatcher)
delivers to a real app (uvicorn on another loopback port) while the test sleeps until the
wall clock gets there. Both use the same backoff and the same jitter source, so delays are
equal to the microsecond.

To add a backend (another store, another framework), write a class with the methods of
:class:`Backend` and add it to ``BACKENDS``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from starlette.applications import Starlette

from taskless.core.engine import Backoff
from taskless.core.errors import RetryLater
from taskless.core.models import JobMeta
from taskless.core.queue import Queue
from taskless.core.settings import Settings
from taskless.core.transport import ApiRequest, ApiResponse
from taskless.integrations.starlette import Taskless
from taskless.testing import TasklessFake

#: One unit of scenario time on the real job server, in seconds.
UNIT = 0.5
BACKOFF = Backoff(base=0.2, cap=10.0)


class FixedRandom:
    """A jitter source that always draws the same value."""

    def random(self) -> float:
        return 0.75


@dataclass(frozen=True)
class Seen:
    queue: str
    name: str
    attempt: int
    scheduled_at: datetime
    payload: Any
    run_id: str
    headers: dict[str, str]


class Handlers:
    """The app's handlers. ``jobs`` succeeds; ``flaky`` fails its first two attempts of each
    occurrence; ``later`` asks for a retry in 1 s on its first attempt."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    def _add(self, payload: Any, meta: JobMeta) -> None:
        with self._lock:
            self.seen.append(
                Seen(meta.queue, meta.name, meta.attempt, meta.scheduled_at, payload,
                     meta.run_id, dict(meta.headers))
            )

    def app(self, settings: Settings) -> Starlette:
        app = Starlette()
        taskless = Taskless(app, settings=settings)

        @taskless.queue("jobs")
        def jobs(payload: Any, meta: JobMeta) -> str:
            self._add(payload, meta)
            return "ok"

        @taskless.queue("flaky")
        async def flaky(payload: Any, meta: JobMeta) -> str:
            self._add(payload, meta)
            if meta.attempt <= 2:
                raise RuntimeError(f"attempt {meta.attempt} fails")
            return "ok"

        @taskless.queue("later")
        def later(payload: Any, meta: JobMeta) -> str:
            self._add(payload, meta)
            if meta.attempt == 1:
                raise RetryLater(1)
            return "ok"

        return app


class Backend(Protocol):
    name: str
    t0: datetime
    handlers: Handlers

    def queue(self, name: str) -> Queue[Any]: ...

    def at(self, units: float) -> None:
        """Let time pass until ``t0 + units * UNIT``, delivering what falls due."""

    def api(self, request: ApiRequest) -> ApiResponse: ...


def _origin() -> datetime:
    # Half a unit from now, on a whole millisecond: scenarios enqueue "before t0".
    now = datetime.now(UTC) + timedelta(seconds=UNIT / 2)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.handlers = Handlers()
        self.t0 = _origin()
        settings = Settings.from_env({}, base_url="http://127.0.0.1:8000", url="memory://")
        self.fake = TasklessFake(
            self.handlers.app(settings),
            settings=settings,
            start=self.t0 - timedelta(seconds=UNIT / 2),
            backoff=BACKOFF,
            rng=FixedRandom(),
        )

    def queue(self, name: str) -> Queue[Any]:
        return self.fake.queue(name)

    def at(self, units: float) -> None:
        self.fake.advance_to(self.t0 + timedelta(seconds=units * UNIT))

    def api(self, request: ApiRequest) -> ApiResponse:
        return self.fake.handle_api(request)

    def close(self) -> None:
        pass


class ServerBackend:
    name = "server"

    def __init__(self, tmp_path: Path) -> None:
        from taskless.core.http import HttpTransport
        from taskless.server.app import create_app
        from taskless.server.dispatcher import DispatcherConfig
        from taskless.server.runner import ServerThread

        self.handlers = Handlers()
        server_settings = Settings.from_env({}, database=f"sqlite:///{tmp_path / 'jobs.db'}")
        self.job_server = ServerThread(create_app(
            server_settings,
            dispatcher=DispatcherConfig(backoff=BACKOFF, timeout=5),
            rng=FixedRandom(),
        ))
        self.app_server: Any = None
        try:
            self.job_server.start()
            self.settings = Settings.from_env({}, url=self.job_server.url)
            # The app's URL must be known before its settings: bind first, then build.
            holder: dict[str, Any] = {}

            async def late_app(scope: Any, receive: Any, send: Any) -> None:
                await holder["app"](scope, receive, send)

            self.app_server = ServerThread(late_app, lifespan="off")
            self.settings = self.settings.replace(base_url=self.app_server.url)
            holder["app"] = self.handlers.app(self.settings)
            self.app_server.start()
        except BaseException:
            self.close()
            raise
        self.transport = HttpTransport.from_settings(self.settings)
        self.t0 = _origin()

    def queue(self, name: str) -> Queue[Any]:
        return Queue(name, settings=self.settings, transport=self.transport)

    def at(self, units: float) -> None:
        target = self.t0 + timedelta(seconds=units * UNIT)
        delay = (target - datetime.now(UTC)).total_seconds()
        if delay > 0:
            time.sleep(delay)

    def api(self, request: ApiRequest) -> ApiResponse:
        return self.transport.handle(request)

    def close(self) -> None:
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()
        for server in (self.app_server, self.job_server):
            if server is not None:
                server.stop()


BACKENDS: dict[str, Callable[[Path], Any]] = {
    "fake": lambda tmp_path: FakeBackend(),
    "server": ServerBackend,
}


@pytest.fixture(params=[
    "fake",
    pytest.param("server", marks=pytest.mark.e2e),
])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "server":
        pytest.importorskip("uvicorn")
        pytest.importorskip("aiohttp")
    built = BACKENDS[request.param](tmp_path)
    try:
        yield built
    finally:
        built.close()
