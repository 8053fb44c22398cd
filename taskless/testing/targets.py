"""Where the fake delivers: the user's app in-process, or its handlers called directly.

A delivery is the very request the job server sends (:class:`DeliveryRequest`: URL, signed
headers, envelope body); a target answers it like the app would (:class:`DeliveryResponse`).

=====================  ============================================================
:class:`AsgiTarget`    an ASGI app (FastAPI, Starlette): the request goes through the
                       framework, its middleware and the signed receiver route
:class:`WsgiTarget`    a WSGI app (Flask, any WSGI callable), likewise
:class:`LambdaTarget`  a Lambda entry point ``handler(event, context)``, fed an API
                       Gateway HTTP API (payload 2.0) event
:class:`DirectTarget`  the queue's handler function itself: no HTTP, no signature;
                       the payload is still validated against the handler's type and
                       errors map to the receiver's statuses (faster, less faithful)
=====================  ============================================================

:func:`target_for` picks one for an object (see there). Every target answers both sync
(:meth:`Target.deliver`) and async (:meth:`Target.deliver_async`) drivers.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from taskless.core._frozen import fast_init
from taskless.core.crypto import PayloadCipher, decrypt_payload
from taskless.core.envelope import Envelope, parse_envelope
from taskless.core.errors import DecryptionError, RetryLater
from taskless.core.models import JobMeta
from taskless.core.receiver import Receiver, Registration
from taskless.core.settings import Settings

__all__ = [
    "AsgiTarget",
    "DeliveryRequest",
    "DeliveryResponse",
    "DirectTarget",
    "LambdaTarget",
    "Target",
    "WsgiTarget",
    "target_for",
]


@fast_init
@dataclass(frozen=True)
class DeliveryRequest:
    """One delivery attempt as the job server sends it: ``POST url`` with these headers and
    body (the signed envelope).

    For a :class:`DirectTarget` the fake skips the HTTP form: ``body`` is empty, the headers
    carry no signature, and ``envelope`` holds what the body would (its payload a copy the
    handler may keep)."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    envelope: Envelope | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"


@fast_init
@dataclass(frozen=True)
class DeliveryResponse:
    """The app's answer. ``status`` is ``None`` when no answer came (the request failed: no
    app at that URL, or the app raised instead of answering); ``error`` then says why.
    ``exception`` is what a handler raised, when the target can tell (direct mode)."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    exception: BaseException | None = None


@runtime_checkable
class Target(Protocol):
    """Answers deliveries."""

    def deliver(self, request: DeliveryRequest) -> DeliveryResponse: ...

    async def deliver_async(self, request: DeliveryRequest) -> DeliveryResponse: ...


def _lower(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _failed(exc: BaseException) -> DeliveryResponse:
    return DeliveryResponse(None, error=f"{type(exc).__name__}: {exc}", exception=exc)


def _run_sync(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from sync code: on a new event loop, in a helper thread
    when this thread already runs one."""

    async def main() -> Any:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskless-fake") as pool:
        return pool.submit(asyncio.run, main()).result()


class AsgiTarget:
    """An ASGI app called in-process (``httpx.ASGITransport``). ``root_path`` is the ASGI
    root path the app is served under, if any. The sync driver runs the app on an event loop
    of its own; from async tests use the fake's ``*_async`` methods so the app runs on the
    test's loop."""

    def __init__(self, app: Any, *, root_path: str = "") -> None:
        self.app = app
        self.root_path = root_path

    def deliver(self, request: DeliveryRequest) -> DeliveryResponse:
        result: DeliveryResponse = _run_sync(lambda: self.deliver_async(request))
        return result

    async def deliver_async(self, request: DeliveryRequest) -> DeliveryResponse:
        transport = httpx.ASGITransport(app=self.app, root_path=self.root_path)
        try:
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.post(
                    request.url, headers=dict(request.headers), content=request.body
                )
        except Exception as exc:  # noqa: BLE001 - the app blew up instead of answering
            return _failed(exc)
        return DeliveryResponse(response.status_code, _lower(response.headers), response.content)

    def __repr__(self) -> str:
        return f"AsgiTarget({self.app!r})"


class WsgiTarget:
    """A WSGI app (Flask, or any WSGI callable) called in-process (``httpx.WSGITransport``).
    The async driver calls it on the event loop's thread, as the sync driver does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def deliver(self, request: DeliveryRequest) -> DeliveryResponse:
        transport = httpx.WSGITransport(app=self.app, raise_app_exceptions=True)
        try:
            with httpx.Client(transport=transport) as client:
                response = client.post(
                    request.url, headers=dict(request.headers), content=request.body
                )
        except Exception as exc:  # noqa: BLE001 - the app blew up instead of answering
            return _failed(exc)
        return DeliveryResponse(response.status_code, _lower(response.headers), response.content)

    async def deliver_async(self, request: DeliveryRequest) -> DeliveryResponse:
        return self.deliver(request)

    def __repr__(self) -> str:
        return f"WsgiTarget({self.app!r})"


class LambdaTarget:
    """A Lambda entry point ``handler(event, context)`` (sync), fed the event an AWS front
    sends (:func:`taskless.testing.lambda_local.build_event`; ``source`` is one of
    ``apigw-http`` (default), ``function-url``, ``apigw-rest``, ``alb``, ``alb-multi``); its
    result is read back as that front would (a result the front refuses is a 502)."""

    def __init__(
        self, handler: Callable[[dict[str, Any], Any], Any], *, source: str = "apigw-http"
    ) -> None:
        from .lambda_local import SOURCES

        if source not in SOURCES:
            raise ValueError(f"unknown event source {source!r}; use one of {', '.join(SOURCES)}")
        self.handler = handler
        self.source = source

    def deliver(self, request: DeliveryRequest) -> DeliveryResponse:
        from .lambda_local import LocalContext, build_event, read_response

        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {**request.headers, "host": parts.netloc}
        event = build_event(self.source, "POST", target, headers, request.body)
        try:
            result = self.handler(event, LocalContext())
        except Exception as exc:  # noqa: BLE001 - an invocation error: no HTTP answer
            return _failed(exc)
        try:
            answer = read_response(self.source, result)
        except ValueError as exc:
            return DeliveryResponse(502, {"content-type": "application/json"},
                                    b'{"message":"Internal Server Error"}', error=str(exc))
        return DeliveryResponse(answer.status, _lower(dict(answer.headers)), answer.body)

    async def deliver_async(self, request: DeliveryRequest) -> DeliveryResponse:
        return self.deliver(request)

    def __repr__(self) -> str:
        return f"LambdaTarget({self.handler!r}, source={self.source!r})"


class DirectTarget:
    """Calls the handler of the delivery's queue directly: no HTTP, no signature check.

    The envelope is read, the payload validated against the handler's type and the handler
    called as the receiver would (``handler(payload)`` or ``handler(payload, meta)``, sync or
    async). The answer has the receiver's status: 200 (the body is the handler's result),
    422 (invalid payload), 503 with ``Retry-After`` (:class:`RetryLater`), 500 (anything
    else; the exception is kept on the response). A queue without a handler is a 404.

    :param handlers: a :class:`Receiver`, an object with a ``receiver`` attribute (the
        framework integrations' ``Taskless``), or a mapping of queue name to function.
    :param settings: whose encryption keys decrypt encrypted payloads when ``handlers`` has
        no receiver with keys of its own (an encrypted payload without a key is a 422).
    """

    def __init__(self, handlers: Any, *, settings: Settings | None = None) -> None:
        self._registrations = _registrations(handlers)
        self._lock = threading.Lock()
        receiver = _receiver_of(handlers)
        if receiver is not None and receiver.cipher is not None:
            self._cipher: PayloadCipher | None = receiver.cipher
        else:
            self._cipher = None if settings is None else PayloadCipher.from_settings(settings)

    @property
    def queues(self) -> list[str]:
        return sorted(self._registrations)

    def serves(self, queue: str) -> bool:
        """Whether a handler is registered for ``queue``."""
        return queue in self._registrations

    def add(self, queue: str, func: Callable[..., Any]) -> None:
        """Have ``func`` handle the deliveries of ``queue``."""
        with self._lock:
            self._registrations[queue] = _registration(queue, func)

    def _prepare(self, request: DeliveryRequest) -> tuple[Registration, Any, JobMeta] | DeliveryResponse:
        envelope = request.envelope or parse_envelope(request.body)
        registration = self._registrations.get(envelope.queue)
        if registration is None:
            return _answer(404, {"error": {"code": "not_found",
                                           "message": f"no handler for queue {envelope.queue!r}"}})
        headers = _lower(request.headers)
        meta: JobMeta = _JOB_META.validate_python(  # JobMeta(...), without its Python layer
            {
                "queue": envelope.queue,
                "name": envelope.job,
                "run_id": headers.get("webhook-id", ""),
                "attempt": envelope.attempt,
                "scheduled_at": envelope.scheduled_at,
                "headers": headers,
            }
        )
        payload = envelope.payload
        if envelope.encrypted is not None:
            try:
                payload = decrypt_payload(self._cipher, envelope.encrypted.to_json(),
                                          envelope.queue)
            except DecryptionError as exc:
                return _answer(422, {"error": {"code": exc.code, "message": exc.message,
                                               "field": "encrypted"}}, exception=exc)
        if registration.adapter is not None:
            try:
                # adapter.validate_python(payload), without its Python layer
                payload = registration.adapter.validator.validate_python(payload)
            except PydanticValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(["payload", *map(str, first["loc"])])
                return _answer(
                    422,
                    {"error": {"code": "invalid", "message": f"{where}: {first['msg']}",
                               "field": where}},
                    exception=exc,
                )
        return registration, payload, meta

    def deliver(self, request: DeliveryRequest) -> DeliveryResponse:
        prepared = self._prepare(request)
        if isinstance(prepared, DeliveryResponse):
            return prepared
        registration, payload, meta = prepared
        args, kwargs = registration.arguments(payload, meta)
        try:
            result = registration.func(*args, **kwargs)
            if result is None:  # the usual answer: _answer(200, {"ok": True, "result": None})
                return DeliveryResponse(200, {"content-type": "application/json"}, _OK_NULL)
            if inspect.isawaitable(result):
                awaitable = result
                result = _run_sync(lambda: awaitable)
        except Exception as exc:  # noqa: BLE001 - a handler error is the delivery's status
            return _handler_error(exc)
        return _answer(200, {"ok": True, "result": result})

    async def deliver_async(self, request: DeliveryRequest) -> DeliveryResponse:
        prepared = self._prepare(request)
        if isinstance(prepared, DeliveryResponse):
            return prepared
        registration, payload, meta = prepared
        args, kwargs = registration.arguments(payload, meta)
        try:
            result = registration.func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - a handler error is the delivery's status
            return _handler_error(exc)
        return _answer(200, {"ok": True, "result": result})

    def __repr__(self) -> str:
        return f"DirectTarget(queues={self.queues!r})"


_OK_NULL = b'{"ok":true,"result":null}'
_JOB_META = JobMeta.__pydantic_validator__


def _answer(
    status: int,
    data: Any,
    headers: Mapping[str, str] | None = None,
    *,
    exception: BaseException | None = None,
) -> DeliveryResponse:
    if status == 200 and data == {"ok": True, "result": None}:
        return DeliveryResponse(200, {"content-type": "application/json"}, _OK_NULL)
    try:
        body = json.dumps(to_jsonable_python(data), separators=(",", ":")).encode()
    except (TypeError, ValueError):
        body = _OK_NULL
    return DeliveryResponse(
        status, {"content-type": "application/json", **(headers or {})}, body,
        exception=exception,
    )


def _handler_error(exc: Exception) -> DeliveryResponse:
    if isinstance(exc, RetryLater):
        seconds = 0 if math.isnan(exc.seconds) else min(math.ceil(exc.seconds), 2**31 - 1)
        return _answer(
            503,
            {"error": {"code": RetryLater.code, "message": exc.message, "retryAfter": seconds}},
            {"retry-after": str(seconds)},
            exception=exc,
        )
    return _answer(
        500,
        {"error": {"code": "handler_error", "message": f"the handler raised {type(exc).__name__}"}},
        exception=exc,
    )


_ANY_SECRET = "whsec_dGFza2xlc3MtZmFrZQ=="


def _registration(queue: str, func: Callable[..., Any]) -> Registration:
    # The receiver's own introspection: same conventions, same payload types.
    return Receiver([_ANY_SECRET]).register(queue, func)


def _receiver_of(handlers: Any) -> Receiver | None:
    receiver = handlers if isinstance(handlers, Receiver) else getattr(handlers, "receiver", None)
    return receiver if isinstance(receiver, Receiver) else None


def _registrations(handlers: Any) -> dict[str, Registration]:
    receiver = _receiver_of(handlers)
    if receiver is not None:
        return dict(receiver.registrations)
    if isinstance(handlers, Mapping):
        return {queue: _registration(queue, func) for queue, func in handlers.items()}
    declared = getattr(handlers, "handlers", None)  # an integration's QueueHandlers
    if isinstance(declared, Mapping) and declared:
        registrations = {
            queue: getattr(handler, "registration", None) for queue, handler in declared.items()
        }
        if all(isinstance(r, Registration) for r in registrations.values()):
            return {q: r for q, r in registrations.items() if isinstance(r, Registration)}
    found = _receiver_in_routes(handlers) or _receiver_in_extensions(handlers)
    if found is not None:
        return dict(found.registrations)
    raise TypeError(
        f"cannot find Taskless handlers in {handlers!r}: pass the Taskless object of your "
        "integration, a Receiver, or a dict of queue name to handler function"
    )


def _receiver_in_routes(app: Any) -> Receiver | None:
    """The receiver mounted on a Starlette/FastAPI app, if any."""
    for route in getattr(app, "routes", None) or ():
        for attribute in ("endpoint", "app"):
            receiver = getattr(getattr(route, attribute, None), "receiver", None)
            if isinstance(receiver, Receiver):
                return receiver
    return None


def _receiver_in_extensions(app: Any) -> Receiver | None:
    """The receiver of a Flask app initialised by the Flask integration, if any."""
    extensions = getattr(app, "extensions", None)
    state = extensions.get("taskless") if isinstance(extensions, Mapping) else None
    receiver = getattr(state, "receiver", None)
    return receiver if isinstance(receiver, Receiver) else None


def _is_async_callable(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004
    return call is not None and inspect.iscoroutinefunction(call)


def target_for(app: Any, mode: str = "app", *, settings: Settings | None = None) -> Target:
    """The target for ``app``.

    ``mode="app"``: an object that already is a :class:`Target` is used as it is; an ASGI
    app (an async callable: FastAPI, Starlette) gets an :class:`AsgiTarget`; a Flask app
    (it has ``wsgi_app``) a :class:`WsgiTarget`; an integration object with a ``handler``
    (the Lambda integration) a :class:`LambdaTarget`. Plain sync callables are ambiguous
    (WSGI or Lambda): wrap them in :class:`WsgiTarget` or :class:`LambdaTarget` yourself.

    ``mode="direct"``: a :class:`DirectTarget` over the handlers found in ``app`` (a
    ``Taskless`` integration object, a :class:`Receiver`, a Starlette/FastAPI app with the
    Taskless routes mounted, or a dict of queue name to function).
    """
    if mode == "direct":
        if isinstance(app, DirectTarget):
            return app
        return DirectTarget(app, settings=settings)
    if mode != "app":
        raise ValueError(f"mode must be 'app' or 'direct', not {mode!r}")
    if isinstance(app, AsgiTarget | WsgiTarget | LambdaTarget | DirectTarget):
        return app
    if hasattr(app, "wsgi_app"):
        return WsgiTarget(app)
    if _is_async_callable(app) and not hasattr(app, "receiver"):
        return AsgiTarget(app)
    handler = getattr(app, "handler", None)
    if hasattr(app, "receiver") and callable(handler):
        return LambdaTarget(handler)
    if isinstance(getattr(getattr(app, "__self__", None), "receiver", None), Receiver):
        return LambdaTarget(app)  # the Lambda integration's bound ``taskless.handler``
    if isinstance(app, Target) and not callable(app):
        return app
    raise TypeError(
        f"cannot tell how to deliver to {app!r}: pass an ASGI app (FastAPI, Starlette), a "
        "Flask app, or wrap it: WsgiTarget(app), LambdaTarget(handler); or use mode='direct' "
        "with your Taskless object to call the handlers directly"
    )
