"""Receive Taskless jobs in a Flask app, and enqueue them from it.

::

    from flask import Flask
    from taskless import JobMeta
    from taskless.integrations.flask import Taskless

    app = Flask(__name__)
    taskless = Taskless(app)

    @taskless.queue("emails")
    def send_email(payload: Email, meta: JobMeta) -> None:
        ...

    @app.post("/signup")
    def signup():
        send_email.enqueue("welcome:42", Email(to="ada@example.com"))
        return {"ok": True}

The usual Flask extension pattern: ``Taskless(app)``, or ``taskless = Taskless()`` at module level
and ``taskless.init_app(app)`` in an app factory. Settings come from ``app.config["TASKLESS_..."]``
and fall back to the ``TASKLESS_*`` environment variables (an explicit ``settings=`` wins over
both). They are read on first use per app (the first request to a queue route, the first queue
method call, or :meth:`Taskless.settings_for`), not by ``init_app``, so the config may be filled
in after the extension is created; after that they are kept. ``init_app`` registers a Blueprint
whose rule ``<prefix>/<queue>`` (default ``/api/queues/<queue>``, with or without a trailing
slash) takes every method and hands the raw request to the core
:class:`~taskless.core.receiver.Receiver`; queues declared with ``route=`` get a rule of their
own. A body over ``max_body_bytes`` is refused with a 413 without being read (or as soon as it
goes over, when no ``Content-Length`` announced it). This module only translates requests and
responses.

Handlers may be sync or ``async def``: an async handler runs to completion on an event loop of
its own inside the request, so it needs no ``flask[async]``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from taskless.core.errors import ConfigurationError, MissingExtra

try:
    from flask import Blueprint, Flask, Response, current_app, has_app_context, request
    from werkzeug.exceptions import RequestEntityTooLarge
except ImportError:
    raise MissingExtra("flask", "flask") from None

from taskless.core.models import JobOptions
from taskless.core.queue import Queue
from taskless.core.receiver import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PREFIX,
    ReceivedRequest,
    Receiver,
    ReceiverResponse,
    Registration,
    check_max_body_bytes,
)
from taskless.core.settings import Settings
from taskless.integrations._handlers import (
    Declarations,
    Options,
    SyncQueueHandler,
    new_queue,
    new_receiver,
)

__all__ = ["QueueHandler", "Taskless", "settings_from_config"]

P = ParamSpec("P")
R = TypeVar("R")

#: Every method reaches the receiver, which answers 405 (``Allow: POST``) to all but POST.
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: How much of a request body is read at a time.
_CHUNK = 64 * 1024
#: The key of the extension's per-app state in ``app.extensions``.
EXTENSION_KEY = "taskless"
# The catalogue receiver below only validates declarations and never verifies a request, so
# its key is irrelevant; each app's receiver is built with that app's secrets.
_CATALOGUE_KEY = b"declarations-only"


def settings_from_config(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from a Flask ``app.config``: its ``TASKLESS_*`` keys, then the environment.

    Values may be strings, or lists/tuples for the comma lists
    (``TASKLESS_PREVIOUS_SIGNING_SECRETS``, ...); ``None`` and ``""`` mean "not set here".
    Raises :class:`~taskless.core.errors.ConfigurationError` like
    :meth:`Settings.from_env() <taskless.core.settings.Settings.from_env>`.
    """
    merged = dict(os.environ if environ is None else environ)
    for key, value in config.items():
        if not key.startswith("TASKLESS_") or value is None or value == "":
            continue
        if isinstance(value, list | tuple | set | frozenset):
            merged[key] = ",".join(str(item) for item in value)
        else:
            merged[key] = str(value)
    return Settings.from_env(merged)


def _register(receiver: Receiver, registration: Registration) -> None:
    """Register on an app's ``receiver`` a queue declared (and validated) on the catalogue."""
    receiver.register(
        registration.queue, registration.func,
        payload_type=registration.payload_type, route=registration.route,
    )


class _AppState:
    """What the extension keeps per app (in ``app.extensions["taskless"]``).

    The app's :attr:`settings` and :attr:`receiver` are resolved on first use, from ``config``
    (the app's ``app.config``, read then, so it may be filled in after ``init_app``) unless
    the extension was given ``settings``; then kept. A failure (a missing or invalid setting)
    is raised, and tried again on the next use.
    """

    def __init__(
        self,
        owner: Taskless,
        config: Mapping[str, Any] | None,
        settings: Settings | None = None,
        receiver: Receiver | None = None,
    ) -> None:
        self.owner = owner
        self.config = config
        self._settings = settings
        self._receiver = receiver
        self.queues: dict[str, Queue[Any]] = {}
        self.lock = threading.RLock()  # Flask serves requests on several threads

    @property
    def settings(self) -> Settings:
        """The app's settings (read now if this is their first use)."""
        return self.resolved()[0]

    @property
    def receiver(self) -> Receiver:
        """The receiver of the app's deliveries (built now if this is its first use)."""
        return self.resolved()[1]

    def resolved(self) -> tuple[Settings, Receiver]:
        """The app's settings and receiver, built now if they were not yet."""
        with self.lock:
            if self._settings is None or self._receiver is None:
                settings = self._settings or self.owner.settings
                if settings is None:
                    settings = settings_from_config(self.config or {})
                self._receiver = self.owner._new_receiver(settings)  # validates the secrets
                self._settings = settings
            return self._settings, self._receiver

    def declared(self, registration: Registration) -> None:
        """Register a queue declared after ``init_app`` (if the receiver exists already)."""
        with self.lock:
            receiver = self._receiver
            if receiver is not None and registration.queue not in receiver.registrations:
                _register(receiver, registration)

    def queue(self, registration: Registration, defaults: JobOptions) -> Queue[Any]:
        # Build each queue (and its client) once.
        with self.lock:
            queue = self.queues.get(registration.queue)
            if queue is None:
                queue = new_queue(Queue, registration, self.settings, defaults)
                self.queues[registration.queue] = queue
            return queue

    def close(self) -> None:
        with self.lock:
            queues, self.queues = list(self.queues.values()), {}
        for queue in queues:
            queue.close()


class QueueHandler(SyncQueueHandler[P, R]):
    """A handler registered with :meth:`Taskless.queue`.

    Calling it calls the original function, so it stays testable as it is. The queue methods
    :meth:`enqueue`, :meth:`update`, :meth:`delete` and :meth:`get` are synchronous and act on
    :attr:`queue`: the :class:`~taskless.core.queue.Queue` of the current Flask app (inside a
    request or an app context), built on first use with that app's settings.
    """

    def __init__(
        self, func: Callable[P, R], registration: Registration, owner: Taskless,
        defaults: JobOptions,
    ) -> None:
        super().__init__(func, registration)
        self.defaults = defaults
        self._owner = owner

    @property
    def queue(self) -> Queue[Any]:
        """The queue jobs are enqueued on; its endpoint is ``TASKLESS_BASE_URL`` + :attr:`route`.

        Which app's settings apply: the current app (in a request or ``app.app_context()``),
        else the only app initialised with this extension, else (no app at all) the
        environment. With several apps and no app context, this raises
        :class:`~taskless.core.errors.ConfigurationError`.
        """
        return self._owner._state_for_queue().queue(self.registration, self.defaults)


class Taskless(Declarations[QueueHandler[..., Any]]):
    """Taskless for a Flask app: mounts the signed receiver routes and declares queues.

    :param app: the app to initialise now; or call :meth:`init_app` later (app factories).
    :param settings: used for every app instead of ``app.config`` and the environment.
    :param prefix: where queue routes live (``<prefix>/<queue>``).
    :param clock: unix seconds, for tests of signature timestamps.
    :param name: the Blueprint's name (and endpoint prefix).
    :param max_body_bytes: a request body over this (default 2 MiB) is answered 413.

    Queues may be declared before or after :meth:`init_app`; one extension may serve several
    apps, each with its own settings, read from its ``app.config`` on first use.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        settings: Settings | None = None,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        name: str = "taskless",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.settings = settings
        self.clock: Callable[[], float] = clock or time.time
        self.name = name
        self.max_body_bytes = check_max_body_bytes(max_body_bytes)
        # Validates declarations and holds their registrations (route, payload type...).
        super().__init__(Receiver([_CATALOGUE_KEY], prefix=prefix))
        self.prefix = self._registry.prefix
        self._apps: list[Flask] = []
        self._appless: _AppState | None = None
        self._custom_routes = 0
        if app is not None:
            self.init_app(app)

    # --- declaring queues ----------------------------------------------------------------------

    if TYPE_CHECKING:  # Declarations.queue, typed to return this module's QueueHandler

        def queue(
            self, name: str, *, options: Options = None, route: str | None = None,
            payload_type: Any = None,
        ) -> Callable[[Callable[P, R]], QueueHandler[P, R]]: ...

    def _new_handler(
        self, func: Callable[P, R], registration: Registration, defaults: JobOptions
    ) -> QueueHandler[P, R]:
        return QueueHandler(func, registration, self, defaults)

    def _declared(self, handler: QueueHandler[..., Any]) -> None:
        for app in self._apps:
            self._state(app).declared(handler.registration)
            if self._has_custom_route(handler):
                self._add_custom_rule(app, handler.route)

    # --- apps ----------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        """Register the receiver Blueprint on ``app`` (once per app). ``app``'s settings are
        read from its config on first use, not now."""
        if any(known is app for known in self._apps):
            return
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            raise ConfigurationError(
                f"app {app.name!r} already has a Taskless extension; use that one"
            )
        state = _AppState(self, app.config)
        app.extensions[EXTENSION_KEY] = state
        app.register_blueprint(self._blueprint())
        self._apps.append(app)

    def _blueprint(self) -> Blueprint:
        """A Blueprint with the receiver rules for the queues declared so far. Its view needs
        the app's state, so it is only registered by :meth:`init_app`."""
        blueprint = Blueprint(self.name, __name__)
        # strict_slashes=False: "/api/queues/emails/" is answered as "/api/queues/emails"
        # (the receiver ignores a trailing slash), not with Flask's HTML 404.
        blueprint.add_url_rule(
            f"{self.prefix}/<queue>", "receive", self._view,
            methods=_METHODS, provide_automatic_options=False, strict_slashes=False,
        )
        for handler in self._handlers.values():
            if self._has_custom_route(handler):
                self._custom_routes += 1
                blueprint.add_url_rule(
                    handler.route, f"custom_{self._custom_routes}", self._view,
                    methods=_METHODS, provide_automatic_options=False, strict_slashes=False,
                )
        return blueprint

    def settings_for(self, app: Flask) -> Settings:
        """The settings in use for ``app`` (initialised with :meth:`init_app`); read from its
        config now if this is their first use."""
        settings, _ = self._state(app).resolved()
        return settings

    def receiver_for(self, app: Flask) -> Receiver:
        """The receiver answering ``app``'s deliveries (built now if this is its first use)."""
        _, receiver = self._state(app).resolved()
        return receiver

    def close(self) -> None:
        """Close the queues' transports, for every app (they are rebuilt on next use)."""
        for app in self._apps:
            self._state(app).close()
        if self._appless is not None:
            self._appless.close()

    # --- internals -----------------------------------------------------------------------------

    def _new_receiver(self, settings: Settings) -> Receiver:
        receiver = new_receiver(settings, self.prefix, self.clock, self.max_body_bytes)
        for handler in self._handlers.values():
            _register(receiver, handler.registration)
        return receiver

    def _add_custom_rule(self, app: Flask, route: str) -> None:
        self._custom_routes += 1
        try:
            app.add_url_rule(
                route, f"{self.name}.custom_{self._custom_routes}", self._view,
                methods=_METHODS, provide_automatic_options=False, strict_slashes=False,
            )
        except AssertionError as exc:  # Flask refuses new rules once it served a request
            raise ConfigurationError(
                f"cannot add the route {route!r} to app {app.name!r}, which already serves "
                "requests: declare queues with a custom route before the app starts"
            ) from exc

    def _state(self, app: Flask) -> _AppState:
        state = app.extensions.get(EXTENSION_KEY)
        if not isinstance(state, _AppState) or state.owner is not self:
            raise ConfigurationError(
                f"app {app.name!r} is not initialised with this Taskless: call "
                "taskless.init_app(app)"
            )
        return state

    def _state_for_queue(self) -> _AppState:
        if has_app_context():
            state = current_app.extensions.get(EXTENSION_KEY)
            if isinstance(state, _AppState) and state.owner is self:
                return state
        if len(self._apps) == 1:
            return self._state(self._apps[0])
        if self._apps:
            raise ConfigurationError(
                "this Taskless serves several Flask apps: enqueue inside a request or "
                "`with app.app_context():` so that the app's settings apply"
            )
        if self._appless is None:
            # No app: the environment's settings, read now (queues only: nothing is received).
            settings = self.settings or Settings.from_env()
            self._appless = _AppState(self, None, settings, self._registry)
        return self._appless

    def _view(self, **_: str) -> Response:
        receiver = self._state(current_app).resolved()[1]
        answer = _answer(receiver)
        return Response(answer.body, status=answer.status, headers=answer.headers)


def _answer(receiver: Receiver) -> ReceiverResponse:
    """The receiver's answer to the current request, whose body is read up to the limit."""
    if receiver.declares_too_large(request.headers.get("content-length")):
        return receiver.too_large()
    try:
        body = _read_body(receiver.max_body_bytes)
    except RequestEntityTooLarge:  # over the app's own MAX_CONTENT_LENGTH
        return receiver.too_large()
    if body is None:
        return receiver.too_large()
    received = ReceivedRequest(
        method=request.method,
        path=request.path,
        headers=dict(request.headers.items()),
        body=body,
    )
    return receiver.handle(received)


def _read_body(limit: int) -> bytes | None:
    """The request body, read from the stream (Flask never parses it), or ``None`` as soon as
    it is longer than ``limit`` bytes."""
    stream = request.stream
    body = bytearray()
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            return None
