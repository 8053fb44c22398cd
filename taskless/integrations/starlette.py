"""Receive Taskless jobs in a Starlette app, and enqueue them from it.

::

    from starlette.applications import Starlette
    from taskless.integrations.starlette import Taskless

    app = Starlette()
    taskless = Taskless(app)

    @taskless.queue("emails")
    async def send_email(payload: Email, meta: JobMeta) -> None:
        ...

    # elsewhere, in an endpoint:
    await send_email.enqueue("welcome:42", Email(to="ada@example.com"))

One route, ``<prefix>/{queue}`` (default ``/api/queues/{queue}``), is mounted on the app
and hands every request, whatever its method, to the core
:class:`~taskless.core.receiver.Receiver`; queues declared with a custom ``route=`` get a route
of their own. Each route is also mounted with a trailing slash, so that ``/api/queues/emails/``
is answered as ``/api/queues/emails`` (rather than with Starlette's redirect, which the job
server does not follow). A body over ``max_body_bytes`` is refused with a 413 before it is read
when its ``Content-Length`` says so, and as soon as it goes over otherwise. This module only
translates requests and responses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from taskless.core.models import JobOptions
from taskless.core.queue import AsyncQueue
from taskless.core.receiver import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PREFIX,
    ReceivedRequest,
    Receiver,
    ReceiverResponse,
    Registration,
)
from taskless.core.settings import Settings
from taskless.integrations._handlers import (
    AsyncQueueHandler,
    Declarations,
    LazyQueueHandler,
    Options,
    new_queue,
    new_receiver,
)

__all__ = ["QueueHandler", "ReceiverEndpoint", "Taskless"]

P = ParamSpec("P")
R = TypeVar("R")


class QueueHandler(LazyQueueHandler[AsyncQueue[Any], P, R], AsyncQueueHandler[P, R]):
    """A handler registered with :meth:`Taskless.queue`.

    Calling it calls the original function, so it stays testable as it is. The queue methods
    :meth:`enqueue`, :meth:`update`, :meth:`delete` and :meth:`get` act on :attr:`queue`, an
    :class:`~taskless.core.queue.AsyncQueue` built on first use (not at import time).
    """

    async def aclose(self) -> None:
        """Close the queue's transport if it was built; it is rebuilt on next use."""
        queue = self._take_queue()
        if queue is not None:
            await queue.aclose()


class ReceiverEndpoint:
    """The ASGI app behind the mounted routes: Starlette request in, receiver, response out.

    It is a plain ASGI callable, not a function endpoint, so Starlette routes every method
    to it (the receiver answers 405 itself) and nothing reads or parses the body before it.
    """

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        answer = await self._answer(request)
        response = Response(answer.body, status_code=answer.status, headers=answer.headers)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> ReceiverResponse:
        receiver = self.receiver
        if receiver.declares_too_large(request.headers.get("content-length")):
            return receiver.too_large()
        body = await _read_body(request, receiver.max_body_bytes)
        if body is None:
            return receiver.too_large()
        received = ReceivedRequest(
            method=request.method,
            path=_app_path(request.scope),
            headers=request.headers,
            body=body,
        )
        return await receiver.handle_async(received)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it is longer than ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _app_path(scope: Scope) -> str:
    """The request path relative to the app (behind a proxy prefix or inside a Mount)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


class Taskless(Declarations[QueueHandler[..., Any]]):
    """Taskless for a Starlette app: mounts the signed receiver route and declares queues.

    ``settings`` default to :meth:`Settings.from_env() <taskless.core.settings.Settings.from_env>`
    (secrets, job server URL, the app's public base URL), read now; an invalid signing secret
    is a :class:`~taskless.core.errors.ConfigurationError` naming the variable. ``prefix`` is
    where queue routes live; ``clock`` (unix seconds) is for tests of signature timestamps;
    a request body over ``max_body_bytes`` (default 2 MiB) is answered 413. Pass ``app`` now
    or call :meth:`init_app` later; queues may be declared before or after.
    """

    def __init__(
        self,
        app: Starlette | None = None,
        *,
        settings: Settings | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.receiver = new_receiver(self.settings, prefix, clock, max_body_bytes)
        super().__init__(self.receiver)
        self.endpoint = ReceiverEndpoint(self.receiver)
        self._apps: list[Starlette] = []
        if app is not None:
            self.init_app(app)

    if TYPE_CHECKING:  # Declarations.queue, typed to return this module's QueueHandler

        def queue(
            self, name: str, *, options: Options = None, route: str | None = None,
            payload_type: Any = None,
        ) -> Callable[[Callable[P, R]], QueueHandler[P, R]]: ...

    def routes(self) -> list[BaseRoute]:
        """The routes :meth:`init_app` mounts: the queue route pattern, then custom routes,
        each with and without a trailing slash."""
        paths = [f"{self.receiver.prefix}/{{queue}}"] + [
            handler.route for handler in self._handlers.values() if self._has_custom_route(handler)
        ]
        return [route for path in paths for route in self._routes_at(path)]

    def _routes_at(self, path: str) -> list[BaseRoute]:
        return [Route(path, self.endpoint), Route(path.rstrip("/") + "/", self.endpoint)]

    def init_app(self, app: Starlette) -> None:
        """Mount the receiver routes on ``app`` (once per app)."""
        if any(known is app for known in self._apps):
            return
        app.router.routes.extend(self.routes())
        self._apps.append(app)

    async def aclose(self) -> None:
        """Close the queues' transports (call it on application shutdown)."""
        for handler in self._handlers.values():
            await handler.aclose()

    def _new_handler(
        self, func: Callable[P, R], registration: Registration, defaults: JobOptions
    ) -> QueueHandler[P, R]:
        return QueueHandler(
            func, registration, lambda: new_queue(AsyncQueue, registration, self.settings, defaults)
        )

    def _declared(self, handler: QueueHandler[..., Any]) -> None:
        if not self._has_custom_route(handler):
            return
        for app in self._apps:
            app.router.routes.extend(self._routes_at(handler.route))
