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
of their own. This module only translates requests and responses.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from taskless.core.models import Job, JobOptions, parse_options
from taskless.core.queue import UNSET, AsyncQueue, UnsetType
from taskless.core.receiver import DEFAULT_PREFIX, ReceivedRequest, Receiver, Registration
from taskless.core.settings import Settings

__all__ = ["QueueHandler", "ReceiverEndpoint", "Taskless"]

P = ParamSpec("P")
R = TypeVar("R")

Options = JobOptions | dict[str, Any] | None


class QueueHandler(Generic[P, R]):
    """A handler registered with :meth:`Taskless.queue`.

    Calling it calls the original function, so it stays testable as it is. The queue methods
    :meth:`enqueue`, :meth:`update`, :meth:`delete` and :meth:`get` act on :attr:`queue`, an
    :class:`~taskless.core.queue.AsyncQueue` built on first use (not at import time).
    """

    def __init__(
        self,
        func: Callable[P, R],
        registration: Registration,
        queue_factory: Callable[[], AsyncQueue[Any]],
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.registration = registration
        self._queue_factory = queue_factory
        self._queue: AsyncQueue[Any] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<QueueHandler {self.registration.queue!r}: {self.func!r}>"

    @property
    def name(self) -> str:
        """The queue's name."""
        return self.registration.queue

    @property
    def route(self) -> str:
        """The path of the app where this queue's deliveries arrive."""
        return self.registration.route

    @property
    def queue(self) -> AsyncQueue[Any]:
        """The queue jobs are enqueued on; its endpoint is ``TASKLESS_BASE_URL`` + :attr:`route`."""
        if self._queue is None:
            self._queue = self._queue_factory()
        return self._queue

    async def enqueue(self, name: str | None, payload: Any, options: Options = None) -> Job[Any]:
        """Create or replace the job ``name`` (``None``: the job server generates a name).
        See :meth:`AsyncQueue.enqueue <taskless.core.queue.AsyncQueue.enqueue>`."""
        return await self.queue.enqueue(name, payload, options)

    async def update(
        self, name: str, payload: Any | UnsetType = UNSET, options: Options = None
    ) -> Job[Any]:
        """Change only what is given of the existing job ``name``.
        See :meth:`AsyncQueue.update <taskless.core.queue.AsyncQueue.update>`."""
        return await self.queue.update(name, payload, options)

    async def delete(self, name: str) -> Job[Any] | None:
        """Remove the job ``name`` and its run history; ``None`` if there was none."""
        return await self.queue.delete(name)

    async def get(self, name: str) -> Job[Any] | None:
        """The job ``name``, or ``None`` if there is none."""
        return await self.queue.get(name)

    async def aclose(self) -> None:
        """Close the queue's transport if it was built; it is rebuilt on next use."""
        queue, self._queue = self._queue, None
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
        received = ReceivedRequest(
            method=request.method,
            path=_app_path(scope),
            headers=request.headers,
            body=await request.body(),
        )
        answer = await self.receiver.handle_async(received)
        response = Response(answer.body, status_code=answer.status, headers=answer.headers)
        await response(scope, receive, send)


def _app_path(scope: Scope) -> str:
    """The request path relative to the app (behind a proxy prefix or inside a Mount)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


class Taskless:
    """Taskless for a Starlette app: mounts the signed receiver route and declares queues.

    ``settings`` default to :meth:`Settings.from_env() <taskless.core.settings.Settings.from_env>`
    (secrets, job server URL, the app's public base URL). ``prefix`` is where queue routes
    live; ``clock`` (unix seconds) is for tests of signature timestamps. Pass ``app`` now or
    call :meth:`init_app` later; queues may be declared before or after.
    """

    def __init__(
        self,
        app: Starlette | None = None,
        *,
        settings: Settings | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.receiver = Receiver(
            self.settings.signing_secrets, prefix=prefix, clock=clock or time.time
        )
        self.endpoint = ReceiverEndpoint(self.receiver)
        self._apps: list[Starlette] = []
        self._handlers: dict[str, QueueHandler[..., Any]] = {}
        if app is not None:
            self.init_app(app)

    def queue(
        self,
        name: str,
        *,
        options: Options = None,
        route: str | None = None,
        payload_type: Any = None,
    ) -> Callable[[Callable[P, R]], QueueHandler[P, R]]:
        """Decorator: ``func`` handles the deliveries of queue ``name`` and gains its methods.

        ``options`` are the queue's default job options; ``route`` replaces the default
        ``<prefix>/<name>``; ``payload_type`` replaces the type read from the annotation of
        the handler's first parameter. The handler is ``func(payload)`` or
        ``func(payload, meta)``, sync or async.
        """
        defaults = parse_options(options)  # fail at declaration, not at the first enqueue

        def decorate(func: Callable[P, R]) -> QueueHandler[P, R]:
            registration = self.receiver.register(
                name, func, payload_type=payload_type, route=route
            )
            factory = functools.partial(self._new_queue, registration, defaults)
            handler = QueueHandler(func, registration, factory)
            self._handlers[name] = handler
            if route is not None:
                for app in self._apps:
                    app.router.routes.append(Route(registration.route, self.endpoint))
            return handler

        return decorate

    @property
    def handlers(self) -> dict[str, QueueHandler[..., Any]]:
        """The declared queues' handlers, by queue name."""
        return dict(self._handlers)

    def routes(self) -> list[BaseRoute]:
        """The routes :meth:`init_app` mounts: the queue route pattern, then custom routes."""
        pattern = Route(f"{self.receiver.prefix}/{{queue}}", self.endpoint)
        custom = [
            Route(handler.route, self.endpoint)
            for handler in self._handlers.values()
            if handler.route != self.receiver.route_for(handler.name)
        ]
        return [pattern, *custom]

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

    def _new_queue(self, registration: Registration, defaults: JobOptions) -> AsyncQueue[Any]:
        return AsyncQueue(
            registration.queue,
            route=registration.route,
            settings=self.settings,
            defaults=defaults,
            payload_type=registration.payload_type,
        )
