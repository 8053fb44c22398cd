"""The framework-free receiver: a signed delivery in, the handler's outcome out.

Adapters (Starlette, FastAPI, Flask, AWS Lambda) translate their framework's request into a
:class:`ReceivedRequest`, call :meth:`Receiver.handle` or :meth:`Receiver.handle_async`, and
translate the :class:`ReceiverResponse` back. Everything else happens here, once.

Order of checks, and the answer of each (bodies are JSON, see below)::

    body larger than max_body_bytes (default 2 MiB) 413 too_large
    path not under the prefix and no custom route   404 not_found
    method other than POST                          405 method_not_allowed (Allow: POST)
    signature headers missing, garbled, stale, bad  401 bad_signature
    no queue registered at that path                404 not_found
    body not UTF-8 / not JSON / not an envelope     400 bad_request
    body's "queue" is not the route's queue         401 bad_signature (misrouted delivery)
    encrypted payload that does not decrypt         422 encrypted_payload (no key, another
                                                    key, or altered)
    payload fails the handler's type                422 invalid (each error names its field)
    handler raised RetryLater(seconds)              503 retry_later, Retry-After: ceil(seconds)
    handler raised anything else                    500 handler_error (traceback logged only)
    handler returned                                200 {"ok": true, "result": <its result>}

The signature is checked before the queue is looked up, so an unsigned request learns
nothing about which queues exist. Error bodies have the job server's shape:
``{"error": {"code": ..., "message": ..., "field"?: ...}}`` (422 adds ``"errors"``, a list of
``{"field", "message"}``; 503 adds ``"retryAfter"``). A result that cannot be encoded as JSON is
logged and answered as ``{"ok": true, "result": null}``: the job did run, and a non-2xx answer
would have the job server run it again.

Handlers are ``handler(payload)`` or ``handler(payload, meta)`` (``meta`` may also be a
keyword-only parameter), sync or ``async``. The payload is validated with pydantic against
``payload_type``, by default the annotation of the handler's first parameter (a model, a
``TypedDict``, ``list[int]``... anything a ``TypeAdapter`` accepts); no annotation, ``Any`` or
``object`` means no validation.

Adapters should refuse a body over :attr:`Receiver.max_body_bytes` before reading it when the
request declares its length, and stop reading once it goes over otherwise, answering
:meth:`Receiver.too_large`; the receiver checks the size of the body it is given again.
A path is matched without its trailing slash: ``/api/queues/emails/`` is the route of
``emails``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python

from .crypto import PayloadCipher, decrypt_payload
from .envelope import Envelope, parse_envelope
from .errors import (
    ConfigurationError,
    DecryptionError,
    RetryLater,
    SignatureError,
    ValidationError,
)
from .hooks import notify
from .models import JobMeta
from .names import validate_name
from .signing import DEFAULT_TOLERANCE, HEADER_ID, Secret, Verifier

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PREFIX",
    "ReceivedRequest",
    "Receiver",
    "ReceiverResponse",
    "Registration",
]

logger = logging.getLogger("taskless.receiver")

DEFAULT_PREFIX = "/api/queues"
#: The largest request body a receiver accepts by default. The job server refuses job bodies
#: over 1 MiB, so a delivery (the payload in its envelope) stays well under this.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the framework received it. ``body`` is the raw bytes, never re-encoded;
    ``path`` is relative to the app (without the ASGI ``root_path`` / Lambda stage)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ReceiverResponse:
    """What the adapter sends back: status, headers (``content-type`` included) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_json(
        cls, status: int, data: Any, headers: Mapping[str, str] | None = None
    ) -> ReceiverResponse:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, {"content-type": "application/json", **(headers or {})}, body)

    def json(self) -> Any:
        """The body, decoded."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Registration:
    """A handler registered for a queue, with what the receiver learned about it."""

    queue: str
    func: Callable[..., Any]
    route: str
    #: The type payloads are validated against, or ``None`` for no validation.
    payload_type: Any
    is_async: bool
    passes_meta: bool = field(repr=False)
    meta_keyword: bool = field(repr=False)
    adapter: TypeAdapter[Any] | None = field(repr=False)

    def arguments(self, payload: Any, meta: JobMeta) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not self.passes_meta:
            return (payload,), {}
        if self.meta_keyword:
            return (payload,), {"meta": meta}
        return (payload, meta), {}


class _Rejected(Exception):
    """Internal: the request was refused before any handler could run."""

    def __init__(self, response: ReceiverResponse) -> None:
        super().__init__(response.status)
        self.response = response


class _InvalidPayload(Exception):
    """Internal: the payload did not validate against the handler's type."""

    def __init__(self, error: PydanticValidationError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Delivery:
    registration: Registration
    meta: JobMeta
    payload: Any

    def bind(self) -> Callable[[], Any]:
        """The handler call, with the validated payload (raises :class:`_InvalidPayload`)."""
        args, kwargs = self.registration.arguments(self._validated_payload(), self.meta)
        return functools.partial(self.registration.func, *args, **kwargs)

    def _validated_payload(self) -> Any:
        adapter = self.registration.adapter
        if adapter is None:
            return self.payload
        try:
            return adapter.validate_python(self.payload)
        except PydanticValidationError as exc:
            raise _InvalidPayload(exc) from exc


class Receiver:
    """Verifies, decodes and dispatches deliveries to the handlers registered per queue.

    ``secrets`` are the signing secrets accepted (current first, then previous ones);
    ``prefix`` is where queues' default routes live (``/api/queues/<queue>``); ``tolerance``
    and ``clock`` bound the signature timestamp (see :class:`~taskless.core.signing.Verifier`);
    a request body over ``max_body_bytes`` is answered 413 (:meth:`too_large`); ``cipher``
    decrypts encrypted payloads (see :mod:`taskless.core.crypto`).
    """

    def __init__(
        self,
        secrets: Sequence[Secret],
        *,
        prefix: str = DEFAULT_PREFIX,
        tolerance: int = DEFAULT_TOLERANCE,
        clock: Callable[[], float] = time.time,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        cipher: PayloadCipher | None = None,
    ) -> None:
        self.verifier = Verifier(secrets, tolerance=tolerance, clock=clock)
        self.cipher = cipher
        self.prefix = _normalize_path(prefix) if prefix.strip("/") else ""
        self.max_body_bytes = check_max_body_bytes(max_body_bytes)
        self._registrations: dict[str, Registration] = {}
        self._routes: dict[str, str] = {}  # path -> queue

    # --- registration --------------------------------------------------------------------------

    def route_for(self, queue: str) -> str:
        """The default route of ``queue``: ``<prefix>/<queue>``.

        Raises :class:`ValidationError` for a name that is not a valid queue name.
        """
        validate_name(queue, field="queue")
        return f"{self.prefix}/{queue}"

    def register(
        self,
        queue: str,
        func: Callable[..., Any],
        *,
        payload_type: Any = None,
        route: str | None = None,
    ) -> Registration:
        """Have ``func`` handle the deliveries of ``queue``, at ``route`` (default
        :meth:`route_for`). ``payload_type`` overrides the type inferred from the annotation
        of the handler's first parameter.

        Raises :class:`ValidationError` for an invalid queue name, :class:`TypeError` when
        ``func`` is not a function (a class, ``None``, a number...), and
        :class:`ConfigurationError` when the queue or route is taken, or the handler's
        parameters or payload type are unusable.
        """
        validate_name(queue, field="queue")
        _check_handler(queue, func)
        path = _normalize_path(route) if route is not None else self.route_for(queue)
        if queue in self._registrations:
            raise ConfigurationError(f"queue {queue!r} already has a handler")
        if path in self._routes:
            taken_by = self._routes[path]
            raise ConfigurationError(f"route {path!r} is already used by queue {taken_by!r}")
        passes_meta, meta_keyword = _meta_convention(func)
        if payload_type is None:
            payload_type = _annotated_payload_type(func)
        registration = Registration(
            queue=queue,
            func=func,
            route=path,
            payload_type=payload_type,
            is_async=_is_async(func),
            passes_meta=passes_meta,
            meta_keyword=meta_keyword,
            adapter=_adapter_for(queue, payload_type),
        )
        self._registrations[queue] = registration
        self._routes[path] = queue
        return registration

    @property
    def registrations(self) -> Mapping[str, Registration]:
        """The registered queues, by name."""
        return dict(self._registrations)

    def owns(self, path: str) -> bool:
        """Whether ``path`` is under the prefix or a custom route (adapters may use this)."""
        try:
            self._match(path)
        except _Rejected:
            return False
        return True

    # --- handling ------------------------------------------------------------------------------

    def too_large(self) -> ReceiverResponse:
        """The answer to a request whose body is over :attr:`max_body_bytes`: 413
        ``too_large``. Adapters send it without reading (the rest of) the body."""
        logger.warning(
            "refused a request whose body is larger than %d bytes (max_body_bytes)",
            self.max_body_bytes,
        )
        return _error(
            413, "too_large",
            f"the request body is larger than {self.max_body_bytes} bytes, this receiver's "
            "limit (max_body_bytes); a delivery's body is at most about 1 MiB",
        )

    def declares_too_large(self, content_length: str | None) -> bool:
        """Whether a ``Content-Length`` header value is over :attr:`max_body_bytes` (a missing
        or unreadable value is not: the body is then counted as it is read)."""
        if content_length is None:
            return False
        value = content_length.strip()
        return value.isdigit() and int(value) > self.max_body_bytes

    def handle(self, request: ReceivedRequest) -> ReceiverResponse:
        """Handle one request synchronously. Async handlers run on an event loop of their own
        (in a helper thread when this thread already runs one)."""
        try:
            delivery = self._accept(request)
        except _Rejected as rejected:
            return rejected.response
        started = self._started(delivery)
        try:
            result = delivery.bind()()
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except Exception as exc:  # noqa: BLE001 - any handler error becomes a 4xx/5xx answer
            return self._failed(delivery, exc, started)
        return self._succeeded(delivery, result, started)

    async def handle_async(self, request: ReceivedRequest) -> ReceiverResponse:
        """Handle one request on the running event loop. Sync handlers run in a worker
        thread, so they may block."""
        try:
            delivery = self._accept(request)
        except _Rejected as rejected:
            return rejected.response
        started = self._started(delivery)
        try:
            call = delivery.bind()
            if delivery.registration.is_async:
                result = await call()
            else:
                result = await anyio.to_thread.run_sync(call)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - any handler error becomes a 4xx/5xx answer
            return self._failed(delivery, exc, started)
        return self._succeeded(delivery, result, started)

    # --- the shared, pure part -----------------------------------------------------------------

    def _accept(self, request: ReceivedRequest) -> _Delivery:
        """Everything before the handler; raises :class:`_Rejected` with the answer."""
        if len(request.body) > self.max_body_bytes:
            raise _Rejected(self.too_large())
        queue = self._match(request.path)
        if request.method.upper() != "POST":
            raise _Rejected(
                _error(405, "method_not_allowed", "deliveries are POST requests", {"allow": "POST"})
            )
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            self.verifier.verify(headers, request.body)
        except SignatureError as exc:
            logger.warning("rejected a delivery to %s: %s", request.path, exc.message)
            raise _Rejected(_error(401, SignatureError.code, exc.message))
        registration = self._registrations.get(queue) if queue is not None else None
        if registration is None:
            raise _Rejected(_error(404, "not_found", f"no queue is registered at {request.path}"))
        envelope = self._parse(request.body)
        if envelope.queue != registration.queue:
            logger.warning(
                "rejected a delivery for queue %r sent to the route of queue %r",
                envelope.queue, registration.queue,
            )
            raise _Rejected(_error(
                401,
                SignatureError.code,
                f"this delivery is for queue {envelope.queue!r}, "
                f"not {registration.queue!r} whose route it was sent to",
            ))
        payload = envelope.payload
        if envelope.encrypted is not None:
            try:
                payload = decrypt_payload(
                    self.cipher, envelope.encrypted.to_json(), registration.queue
                )
            except DecryptionError as exc:
                logger.warning("rejected a delivery to %s: %s", request.path, exc.message)
                raise _Rejected(
                    _error(422, DecryptionError.code, exc.message, field_name="encrypted")
                ) from None
        meta = JobMeta(
            queue=registration.queue,
            name=envelope.job,
            run_id=headers[HEADER_ID].strip(),
            attempt=envelope.attempt,
            scheduled_at=envelope.scheduled_at,
            headers=headers,
        )
        return _Delivery(registration, meta, payload)

    def _match(self, path: str) -> str | None:
        """The queue whose route ``path`` is; ``None`` for an unclaimed name under the
        prefix; :class:`_Rejected` (404) for a path that is not ours at all."""
        path = _normalize_path(path)
        if path in self._routes:
            return self._routes[path]
        name = path[len(self.prefix) + 1 :] if path.startswith(self.prefix + "/") else ""
        if name and "/" not in name:
            return None
        raise _Rejected(_error(404, "not_found", f"no queue route at {path}"))

    @staticmethod
    def _parse(body: bytes) -> Envelope:
        try:
            return parse_envelope(body)
        except ValidationError as exc:
            logger.warning("rejected a signed delivery with a malformed body: %s", exc.message)
            message = f"malformed delivery body: {exc.message}"
            raise _Rejected(_error(400, "bad_request", message, field_name=exc.field))

    @staticmethod
    def _started(delivery: _Delivery) -> float:
        notify("taskless_delivery_received", queue=delivery.registration.queue, meta=delivery.meta)
        return time.perf_counter()

    def _succeeded(self, delivery: _Delivery, result: Any, started: float) -> ReceiverResponse:
        response = _ok_response(delivery, result)
        self._handled(delivery, response, None, started)
        return response

    def _failed(self, delivery: _Delivery, error: Exception, started: float) -> ReceiverResponse:
        response = _error_response(delivery, error)
        self._handled(delivery, response, error, started)
        return response

    @staticmethod
    def _handled(
        delivery: _Delivery, response: ReceiverResponse, error: Exception | None, started: float
    ) -> None:
        reported = error.error if isinstance(error, _InvalidPayload) else error
        notify(
            "taskless_delivery_handled",
            queue=delivery.registration.queue,
            meta=delivery.meta,
            status=response.status,
            error=reported,
            duration=time.perf_counter() - started,
        )


# --- responses ---------------------------------------------------------------------------------


def _error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    *,
    field_name: str | None = None,
    **extra: Any,
) -> ReceiverResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if field_name is not None:
        error["field"] = field_name
    error.update(extra)
    return ReceiverResponse.from_json(status, {"error": error}, headers)


def _ok_response(delivery: _Delivery, result: Any) -> ReceiverResponse:
    try:
        body = json.dumps(
            {"ok": True, "result": to_jsonable_python(result)},
            ensure_ascii=False, separators=(",", ":"), allow_nan=False,
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:  # ValueError covers NaN and lone surrogates
        logger.warning(
            "the handler of queue %r returned a result that is not JSON (%s); answering null",
            delivery.registration.queue, exc,
        )
        return ReceiverResponse.from_json(200, {"ok": True, "result": None})
    return ReceiverResponse(200, {"content-type": "application/json"}, body)


def _error_response(delivery: _Delivery, error: Exception) -> ReceiverResponse:
    queue, run_id = delivery.registration.queue, delivery.meta.run_id
    if isinstance(error, _InvalidPayload):
        return _invalid_payload_response(error.error)
    if isinstance(error, RetryLater):
        seconds = _retry_after(error.seconds)
        logger.info("handler of queue %r asked to retry run %s in %s s", queue, run_id, seconds)
        return _error(
            503, RetryLater.code, error.message, {"retry-after": str(seconds)},
            retryAfter=seconds,
        )
    logger.error("handler of queue %r failed on run %s", queue, run_id, exc_info=error)
    return _error(500, "handler_error", f"the handler raised {type(error).__name__}")


def _retry_after(seconds: float) -> int:
    """Whole seconds for ``Retry-After`` (an integer header), whatever float was raised."""
    if math.isnan(seconds):
        return 0
    return min(math.ceil(min(seconds, 2**31)), 2**31 - 1)


def _invalid_payload_response(error: PydanticValidationError) -> ReceiverResponse:
    errors = [
        {"field": ".".join(["payload", *map(str, item["loc"])]), "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    first = errors[0] if errors else {"field": "payload", "message": "invalid payload"}
    return _error(
        422, ValidationError.code, f"{first['field']}: {first['message']}",
        field_name=first["field"], errors=errors,
    )


# --- handler introspection ---------------------------------------------------------------------


def check_max_body_bytes(value: object) -> int:
    """``value`` if it is a usable ``max_body_bytes`` (an int of at least 1); else raises."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"max_body_bytes must be an int (bytes), not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_body_bytes must be at least 1, not {value}")
    return value


def _check_handler(queue: str, func: object) -> None:
    """Raise :class:`TypeError` unless ``func`` can be a handler: a function or another
    callable object, not a class (calling it would build an instance) nor a plain value."""
    if isinstance(func, type):
        what = f"the class {func.__qualname__}"
    elif callable(func):
        return
    elif func is None:
        what = "None"
    else:
        shown = repr(func)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        what = f"{type(func).__name__} {shown}"
    raise TypeError(
        f"the handler of queue {queue!r} must be a function taking (payload) or "
        f"(payload, meta), not {what}"
    )


def _normalize_path(path: str) -> str:
    return "/" + path.strip("/")


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - instances with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _signature(func: Callable[..., Any], *, eval_str: bool) -> inspect.Signature | None:
    try:
        return inspect.signature(func, eval_str=eval_str)
    except (ValueError, TypeError):  # builtins without a signature: assume handler(payload)
        return None


def _meta_convention(func: Callable[..., Any]) -> tuple[bool, bool]:
    """(passes_meta, as_keyword) for ``func``; raises if it cannot take ``(payload, meta)``."""
    sig = _signature(func, eval_str=False)
    if sig is None:
        return False, False
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    keyword_meta = any(p.kind is p.KEYWORD_ONLY and p.name == "meta" for p in params)
    required = [p for p in positional[2:] if p.default is p.empty] + [
        p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name != "meta"
    ]
    if (not positional and not var_positional) or required:
        raise ConfigurationError(
            f"handler {_name(func)} must be handler(payload) or handler(payload, meta)"
        )
    if keyword_meta:
        return True, True
    return len(positional) >= 2 or var_positional, False


def _annotated_payload_type(func: Callable[..., Any]) -> Any:
    """The annotation of the handler's first parameter, or ``None`` for "do not validate"."""
    try:
        sig: inspect.Signature | None = inspect.signature(func, eval_str=True)
    except Exception:  # noqa: BLE001 - NameError & co. from evaluating string annotations
        sig = _signature(func, eval_str=False)
    if sig is None or not sig.parameters:
        return None
    annotation = next(iter(sig.parameters.values())).annotation
    if annotation in (inspect.Parameter.empty, Any, object):
        return None
    if isinstance(annotation, str):
        raise ConfigurationError(
            f"cannot resolve the payload annotation {annotation!r} of handler {_name(func)}: "
            "define the type at module level, or pass payload_type= explicitly"
        )
    return annotation


def _adapter_for(queue: str, payload_type: Any) -> TypeAdapter[Any] | None:
    if payload_type is None:
        return None
    try:
        return TypeAdapter(payload_type)
    except Exception as exc:  # pydantic raises several kinds for types it cannot handle
        raise ConfigurationError(
            f"queue {queue!r}: cannot validate payloads as {payload_type!r} ({exc}); "
            "use a pydantic model or a type pydantic understands, or annotate with Any"
        ) from exc


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """Run an awaitable to completion from sync code, whether or not a loop is running here."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:  # (outside the except: a handler's error must not chain onto this one)
        return asyncio.run(wait())
    # This thread already runs a loop that we must not block on re-entrantly: use another.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskless-handler") as pool:
        return pool.submit(asyncio.run, wait()).result()
