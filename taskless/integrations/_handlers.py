"""What every integration shares: the decorated queue handler and the declaring of queues.

An integration's ``Taskless`` is a :class:`Declarations` (``@taskless.queue(...)``, the
``handlers`` it declared); its ``QueueHandler`` combines the parts below:

* :class:`QueueHandlerBase`: the wrapper (calling it calls the handler), its queue's name, route;
* :class:`SyncQueueHandler` / :class:`AsyncQueueHandler`: the queue methods, on a
  :class:`~taskless.core.queue.Queue` or an :class:`~taskless.core.queue.AsyncQueue`;
* :class:`LazyQueueHandler`: a queue of its own, built on first use (Flask instead takes the
  queue of the current app).

Nothing here imports a web framework: the AWS Lambda integration is built on it too.
"""

from __future__ import annotations

import abc
import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, cast

from taskless.core.crypto import PayloadCipher
from taskless.core.errors import TasklessError
from taskless.core.models import Job, JobOptions, parse_options
from taskless.core.queue import UNSET, AsyncQueue, BaseQueue, BatchItem, Queue, UnsetType
from taskless.core.receiver import DEFAULT_MAX_BODY_BYTES, Receiver, Registration
from taskless.core.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
Q = TypeVar("Q", bound=BaseQueue[Any, Any])
H = TypeVar("H", bound="QueueHandlerBase[Any, ..., Any]")

Options = JobOptions | dict[str, Any] | None


def new_receiver(
    settings: Settings,
    prefix: str,
    clock: Callable[[], float] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Receiver:
    """A receiver that checks signatures against the secrets of ``settings``; ``clock`` (unix
    seconds, default the system clock) is for tests of signature timestamps.

    Raises :class:`~taskless.core.errors.ConfigurationError` naming the setting when a signing
    secret or an encryption key is not valid.
    """
    settings.check_signing_secrets()
    return Receiver(
        settings.signing_secrets, prefix=prefix, clock=clock or time.time,
        max_body_bytes=max_body_bytes, cipher=PayloadCipher.from_settings(settings),
    )


def check_queue_name(name: object) -> None:
    """Raise :class:`TypeError` for what cannot be a queue's name, with the right usage:
    ``@taskless.queue`` without parentheses passes the function itself as the name."""
    if isinstance(name, str):
        return
    usage = '@taskless.queue("emails"), with the queue\'s name in parentheses'
    if callable(name):
        what = getattr(name, "__qualname__", None) or type(name).__name__
        raise TypeError(
            f"taskless.queue() takes the queue's name, not the handler ({what}): "
            f"decorate it with {usage}, not with a bare @taskless.queue"
        )
    raise TypeError(
        f"a queue's name is a string, not {type(name).__name__} {name!r}: use {usage}"
    )


def new_queue(
    queue_class: type[Q], registration: Registration, settings: Settings, defaults: JobOptions
) -> Q:
    """The queue of ``registration``: its endpoint is ``settings.base_url`` + its route."""
    return queue_class(
        registration.queue,
        route=registration.route,
        settings=settings,
        defaults=defaults,
        payload_type=registration.payload_type,
    )


class QueueHandlerBase(abc.ABC, Generic[Q, P, R]):
    """A handler registered with ``Taskless.queue``.

    Calling it calls the original function, so it stays testable as it is. Subclasses say
    where :attr:`queue` comes from and add the queue methods.
    """

    def __init__(self, func: Callable[P, R], registration: Registration) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.registration = registration

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
    @abc.abstractmethod
    def queue(self) -> Q:
        """The queue jobs are enqueued on; its endpoint is ``TASKLESS_BASE_URL`` + :attr:`route`."""


class LazyQueueHandler(QueueHandlerBase[Q, P, R]):
    """A handler with a queue of its own, built by ``queue_factory`` on first use (not at
    import time) and kept until the integration closes it."""

    def __init__(
        self, func: Callable[P, R], registration: Registration, queue_factory: Callable[[], Q]
    ) -> None:
        super().__init__(func, registration)
        self._queue_factory = queue_factory
        self._queue: Q | None = None
        self._lock = threading.Lock()

    @property
    def queue(self) -> Q:
        """The queue jobs are enqueued on (built now if it was not yet)."""
        with self._lock:
            if self._queue is None:
                self._queue = self._queue_factory()
            return self._queue

    def _take_queue(self) -> Q | None:
        """The queue if it was built, to be closed; the next use builds a new one."""
        with self._lock:
            queue, self._queue = self._queue, None
        return queue


class SyncQueueHandler(QueueHandlerBase[Queue[Any], P, R]):
    """A handler whose queue methods are synchronous, on a :class:`~taskless.core.queue.Queue`."""

    def enqueue(self, name: str | None, payload: Any, options: Options = None) -> Job[Any]:
        """Create or replace the job ``name`` (``None``: the job server generates a name).
        See :meth:`Queue.enqueue <taskless.core.queue.Queue.enqueue>`."""
        return self.queue.enqueue(name, payload, options)

    def enqueue_many(self, jobs: Iterable[BatchItem[Any]]) -> list[Job[Any] | TasklessError]:
        """Enqueue ``(name, payload[, options])`` tuples in few requests; one result per job.
        See :meth:`Queue.enqueue_many <taskless.core.queue.Queue.enqueue_many>`."""
        return self.queue.enqueue_many(jobs)

    def update(
        self, name: str, payload: Any | UnsetType = UNSET, options: Options = None
    ) -> Job[Any]:
        """Change only what is given of the existing job ``name``.
        See :meth:`Queue.update <taskless.core.queue.Queue.update>`."""
        return self.queue.update(name, payload, options)

    def delete(self, name: str) -> Job[Any] | None:
        """Remove the job ``name`` and its run history; ``None`` if there was none."""
        return self.queue.delete(name)

    def get(self, name: str) -> Job[Any] | None:
        """The job ``name``, or ``None`` if there is none."""
        return self.queue.get(name)


class AsyncQueueHandler(QueueHandlerBase[AsyncQueue[Any], P, R]):
    """A handler whose queue methods are coroutines, on an
    :class:`~taskless.core.queue.AsyncQueue`."""

    async def enqueue(self, name: str | None, payload: Any, options: Options = None) -> Job[Any]:
        """Create or replace the job ``name`` (``None``: the job server generates a name).
        See :meth:`AsyncQueue.enqueue <taskless.core.queue.AsyncQueue.enqueue>`."""
        return await self.queue.enqueue(name, payload, options)

    async def enqueue_many(
        self, jobs: Iterable[BatchItem[Any]]
    ) -> list[Job[Any] | TasklessError]:
        """Enqueue ``(name, payload[, options])`` tuples in few requests; one result per job.
        See :meth:`AsyncQueue.enqueue_many <taskless.core.queue.AsyncQueue.enqueue_many>`."""
        return await self.queue.enqueue_many(jobs)

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


class Declarations(abc.ABC, Generic[H]):
    """What every integration's ``Taskless`` shares: declaring queues, and their handlers.

    ``registry`` validates each declaration and keeps its :class:`Registration` (route,
    payload type...). An integration builds its own handlers (:meth:`_new_handler`), may act
    on each new one (:meth:`_declared`: mount its route on the apps it already serves), and
    re-declares :meth:`queue` for the type checker only, to return its own handler type.
    """

    def __init__(self, registry: Receiver) -> None:
        self._registry = registry
        self._handlers: dict[str, H] = {}

    def queue(
        self, name: str, *, options: Options = None, route: str | None = None,
        payload_type: Any = None,
    ) -> Callable[[Callable[P, R]], QueueHandlerBase[Any, P, R]]:
        """Decorator: ``func`` handles the deliveries of queue ``name`` and gains its methods.

        ``options`` are the queue's default job options; ``route`` replaces the default
        ``<prefix>/<name>``; ``payload_type`` replaces the type read from the annotation of
        the handler's first parameter. The handler is ``func(payload)`` or
        ``func(payload, meta)``, sync or async (under a sync framework or in AWS Lambda, an
        async handler runs to completion inside the request).

        Misuse is a :class:`TypeError` at once: a name that is not a string (``@taskless.queue``
        without parentheses passes the function), a handler that is not a function.
        """
        check_queue_name(name)
        defaults = parse_options(options)  # fail at declaration, not at the first enqueue

        def decorate(func: Callable[P, R]) -> QueueHandlerBase[Any, P, R]:
            registration = self._registry.register(
                name, func, payload_type=payload_type, route=route
            )
            handler = self._new_handler(func, registration, defaults)
            self._handlers[name] = cast(H, handler)  # _new_handler makes this integration's H
            self._declared(self._handlers[name])
            return handler

        return decorate

    @property
    def handlers(self) -> dict[str, H]:
        """The declared queues' handlers, by queue name."""
        return dict(self._handlers)

    @abc.abstractmethod
    def _new_handler(
        self, func: Callable[P, R], registration: Registration, defaults: JobOptions
    ) -> QueueHandlerBase[Any, P, R]:
        """The integration's handler for ``func``; ``defaults`` are the queue's job options."""

    def _declared(self, handler: H) -> None:
        """Called with each newly declared handler."""

    def _has_custom_route(self, handler: H) -> bool:
        """Whether ``handler`` was declared with a route other than ``<prefix>/<name>``."""
        return handler.route != self._registry.route_for(handler.name)
