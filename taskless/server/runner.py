"""Serve an ASGI app (the job server, or any app) with uvicorn on a loopback port.

The socket is bound before uvicorn starts, so ``port=0`` picks a free port with no race and
the URL is known up front. Three ways:

* :func:`serve` - an async context manager running the server in the current event loop
  (async tests)::

      async with serve(app) as url:
          ...

* :class:`ServerThread` - a server in a background thread with its own event loop (sync tests,
  or when the test's loop must stay free)::

      with ServerThread(create_app(settings)) as server:
          httpx.get(server.url + "/healthz")

* :func:`run` - the blocking entry point of the CLI; prints ``ready_message`` with the URL once
  the server accepts requests (a parent process can wait for that line).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from taskless.core.errors import require

__all__ = ["ServerThread", "bind", "run", "serve"]


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket bound to ``host:port`` (``port=0``: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # IPPROTO_TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _server(app: Any, *, log_level: str = "warning", **config: Any) -> Any:
    require("uvicorn", "server")
    import uvicorn

    options: dict[str, Any] = {"lifespan": "on", "log_level": log_level, "access_log": False}
    options.update(config)
    return uvicorn.Server(uvicorn.Config(app, **options))


async def _start(server: Any, sock: socket.socket) -> asyncio.Task[None]:
    task: asyncio.Task[None] = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what failed
            raise RuntimeError("the server stopped during startup (see its log)")
        await asyncio.sleep(0.005)
    return task


@contextlib.asynccontextmanager
async def serve(
    app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any
) -> AsyncIterator[str]:
    """Run ``app`` in the current event loop for the ``async with`` block; yields its URL."""
    sock = bind(host, port)
    server = _server(app, **config)
    try:
        task = await _start(server, sock)
        try:
            yield _url(sock)
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()


class ServerThread:
    """Run ``app`` with uvicorn in a background thread, on ``host:port`` (0: a free port)."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, **config: Any
    ) -> None:
        self.app = app
        self._sock = bind(host, port)
        self.url = _url(self._sock)
        self.port: int = self._sock.getsockname()[1]
        self._server = _server(app, **config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving; returns once requests are accepted.

        :raises RuntimeError: the server did not start (its error is chained).
        """
        self._thread = threading.Thread(target=self._main, name="taskless-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"the server at {self.url} did not start within {timeout} s")
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"the server at {self.url} failed to start") from self._error
        return self

    def _main(self) -> None:
        async def main() -> None:
            try:
                task = await _start(self._server, self._sock)
            except BaseException as exc:
                self._error = exc
                raise
            finally:
                self._ready.set()
            await task

        with contextlib.suppress(BaseException):
            asyncio.run(main())
        self._ready.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down (its lifespan ends: the dispatcher stops)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run(
    app: Any,
    host: str,
    port: int,
    *,
    ready: Callable[[str], None] | None = None,
    **config: Any,
) -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM); call ``ready(url)`` once it
    accepts requests. Uses uvloop when it is installed."""
    sock = bind(host, port)
    server = _server(app, **config)

    async def main() -> None:
        task = await _start(server, sock)
        if ready is not None:
            ready(_url(sock))
        await task

    try:
        with contextlib.suppress(KeyboardInterrupt):
            _event_loop_runner()(main())
    finally:
        sock.close()


def _event_loop_runner() -> Callable[[Any], None]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return lambda coro: uvloop.run(coro)
