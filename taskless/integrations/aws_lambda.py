"""Receive Taskless jobs in an AWS Lambda function, and enqueue them from it.

::

    from taskless import JobMeta
    from taskless.integrations.aws_lambda import Taskless

    taskless = Taskless()

    @taskless.queue("emails")
    def send_email(payload: Email, meta: JobMeta) -> None:
        ...

    handler = taskless.handler   # the function's entry point: "app.handler"

The entry point routes each request by its path (``/api/queues/<queue>`` by default) to the
queue's handler, through the core :class:`~taskless.core.receiver.Receiver`. It understands the
HTTP events of four sources, each recognised from the event itself, and answers each in the
shape that source expects:

=========================  ====================================  ==============================
source (:attr:`name`)      recognised by                          answer
=========================  ====================================  ==============================
``apigw-rest``             ``httpMethod`` + ``requestContext``    ``statusCode``, ``headers``,
(API Gateway REST API, or  (payload format 1.0); or               ``multiValueHeaders`` when the
HTTP API format 1.0)       ``httpMethod`` + ``path`` + headers    request had them
``apigw-http``             ``version: "2.0"`` +                   ``statusCode``, ``headers``
(API Gateway HTTP API)     ``requestContext.http``; or
                           ``rawPath`` + ``headers``
``function-url``           as ``apigw-http``, on a                ``statusCode``, ``headers``
(Lambda Function URL)      ``*.lambda-url.*`` domain
``alb``                    ``requestContext.elb``                 ``statusCode``,
(Application Load                                                 ``statusDescription``, and
Balancer)                                                         ``multiValueHeaders`` if the
                                                                  request used them, else
                                                                  ``headers``
=========================  ====================================  ==============================

Bodies are read as sent (``isBase64Encoded`` honoured) and passed on as raw bytes, so the
signature is checked over exactly what the job server signed. Header names are matched without
regard to case. A body over ``max_body_bytes`` (default 2 MiB) is answered 413 ``too_large``
before it is decoded. An event of a known source that is malformed (no method, a ``body``
marked base64 that is not...) is answered 400 ``bad_request`` in that source's shape, naming
what is wrong. Any other event (a direct invocation, a queue or schedule event...) is answered
``{"statusCode": 400, ...}`` with an ``unsupported_event`` error that says what was expected,
and logged: never a traceback.

Nothing here imports a web framework or an AWS SDK, which keeps cold starts short.
"""

from __future__ import annotations

import abc
import base64
import binascii
import http
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar
from urllib.parse import unquote

from taskless.core.models import JobOptions
from taskless.core.queue import Queue
from taskless.core.receiver import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PREFIX,
    ReceivedRequest,
    ReceiverResponse,
    Registration,
)
from taskless.core.settings import Settings
from taskless.integrations._handlers import (
    Declarations,
    LazyQueueHandler,
    Options,
    SyncQueueHandler,
    new_queue,
    new_receiver,
)

__all__ = [
    "EVENT_SOURCES",
    "SOURCES",
    "ApiGatewayRest",
    "EventSource",
    "HttpApi",
    "LambdaContext",
    "LoadBalancer",
    "QueueHandler",
    "Taskless",
    "infer_source",
]

logger = logging.getLogger("taskless.aws_lambda")

P = ParamSpec("P")
R = TypeVar("R")

LambdaEvent = Mapping[str, Any]
LambdaResponse = dict[str, Any]


class LambdaContext(Protocol):
    """The Lambda context object, as far as Taskless knows it (no AWS package needed)."""

    function_name: str
    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


class _MalformedEvent(Exception):
    """Internal: the event is not an HTTP event of a known source, or is malformed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- event sources ---------------------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _TooLarge(Exception):
    """Internal: the event's body is over the receiver's ``max_body_bytes``."""


def _text(event: LambdaEvent, key: str, source: str, *, label: str | None = None) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise _MalformedEvent(f"the {source} event has no {label or repr(key)} string")
    return value


def _body(event: LambdaEvent, max_bytes: int | None = None) -> bytes:
    """The body's bytes; :class:`_TooLarge` when they are more than ``max_bytes``, found out
    before decoding when the text alone says so."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise _MalformedEvent("the event's 'body' is not a string")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise _MalformedEvent("the event's 'isBase64Encoded' is not true or false")
    if encoded:
        # Every 4 characters of base64 are 3 bytes, less at most 2 of padding.
        if max_bytes is not None and len(body) // 4 * 3 - 2 > max_bytes:
            raise _TooLarge
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise _MalformedEvent(
                "the event's 'body' is marked isBase64Encoded but is not base64"
            ) from None
    else:
        if max_bytes is not None and len(body) > max_bytes:  # each character is >= 1 byte
            raise _TooLarge
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: no byte string was ever sent like this
            raise _MalformedEvent("the event's 'body' is not valid text") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise _TooLarge
    return raw


def _headers(single: Any, multi: Any = None) -> dict[str, str]:
    """Header names in lower case; several values of one name joined with ``", "``.

    ``multi`` (``multiValueHeaders``) holds every value and wins over ``single``
    (``headers``, the last value only) for the names it has.
    """
    headers: dict[str, str] = {}
    for name, value in _mapping(single).items():
        if value is None:
            continue
        if not isinstance(name, str) or not isinstance(value, str):
            raise _MalformedEvent(f"the event's header {name!r} does not have a string value")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    combined: dict[str, list[str]] = {}
    for name, values in _mapping(multi).items():
        if values is None:
            continue
        if not isinstance(name, str) or not isinstance(values, list) or not all(
            isinstance(v, str) for v in values
        ):
            raise _MalformedEvent(
                f"the event's multiValueHeaders {name!r} is not a list of strings"
            )
        combined.setdefault(name.lower(), []).extend(values)
    headers.update({name: ", ".join(values) for name, values in combined.items() if values})
    return headers


def _encode_body(body: bytes) -> tuple[str, bool]:
    """A response body for an event response: text if it is UTF-8, else base64."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _strip(path: str, base_path: str) -> str:
    if base_path and (path == base_path or path.startswith(base_path + "/")):
        return path[len(base_path) :] or "/"
    return path or "/"


class EventSource(abc.ABC):
    """One kind of HTTP event: how to recognise it, read it, and answer it.

    :attr:`name` is one of :data:`EVENT_SOURCES`. ``base_path`` (a custom domain's API
    mapping, say ``/jobs``) is removed from the front of the request path before routing;
    a body over ``max_body_bytes`` is not decoded.
    """

    name: str

    @abc.abstractmethod
    def matches(self, event: LambdaEvent) -> bool:
        """Whether ``event`` is of this source."""

    @abc.abstractmethod
    def request(
        self, event: LambdaEvent, *, base_path: str = "", max_body_bytes: int | None = None
    ) -> ReceivedRequest:
        """The request ``event`` carries; raises :class:`_MalformedEvent` if it is malformed,
        :class:`_TooLarge` if its body is over ``max_body_bytes``."""

    @abc.abstractmethod
    def response(self, event: LambdaEvent, answer: ReceiverResponse) -> LambdaResponse:
        """``answer`` in the shape this source expects for ``event``."""

    def __repr__(self) -> str:
        return f"<EventSource {self.name}>"


def _received(
    method: str, path: str, headers: dict[str, str], event: LambdaEvent, base_path: str,
    max_body_bytes: int | None,
) -> ReceivedRequest:
    return ReceivedRequest(
        method=method.upper(), path=_strip(path, base_path), headers=headers,
        body=_body(event, max_body_bytes),
    )


def _answer(answer: ReceiverResponse, **fields: Any) -> LambdaResponse:
    """A response: ``statusCode``, the source's own ``fields`` (headers...), then the body."""
    body, is_base64 = _encode_body(answer.body)
    return {"statusCode": answer.status, **fields, "body": body, "isBase64Encoded": is_base64}


def _multi(answer: ReceiverResponse) -> dict[str, list[str]]:
    return {name: [value] for name, value in answer.headers.items()}


class ApiGatewayRest(EventSource):
    """API Gateway REST APIs, and HTTP APIs configured for payload format 1.0."""

    name = "apigw-rest"

    def matches(self, event: LambdaEvent) -> bool:
        # Its requestContext, or else (an empty or missing one, as in hand-written events)
        # its own fields: httpMethod, path and headers.
        context = _mapping(event.get("requestContext"))
        shaped = bool(context) or (
            "path" in event and ("headers" in event or "multiValueHeaders" in event)
        )
        return (
            "httpMethod" in event
            and shaped
            and "elb" not in context
            and event.get("version", "1.0") == "1.0"
        )

    def request(
        self, event: LambdaEvent, *, base_path: str = "", max_body_bytes: int | None = None
    ) -> ReceivedRequest:
        # "path" comes decoded and without the stage; "headers" keeps only the last value of
        # each name, "multiValueHeaders" all of them.
        method = _text(event, "httpMethod", self.name)
        path = _text(event, "path", self.name)
        headers = _headers(event.get("headers"), event.get("multiValueHeaders"))
        return _received(method, path, headers, event, base_path, max_body_bytes)

    def response(self, event: LambdaEvent, answer: ReceiverResponse) -> LambdaResponse:
        if event.get("multiValueHeaders") is None:
            return _answer(answer, headers=dict(answer.headers))
        return _answer(answer, headers=dict(answer.headers), multiValueHeaders=_multi(answer))


class HttpApi(EventSource):
    """Payload format 2.0: API Gateway HTTP APIs (``apigw-http``) and Lambda Function URLs
    (``function-url``, told apart by their ``*.lambda-url.*`` domain)."""

    def __init__(self, *, function_url: bool) -> None:
        self.function_url = function_url
        self.name = "function-url" if function_url else "apigw-http"

    def matches(self, event: LambdaEvent) -> bool:
        # Its requestContext.http, or else (as for REST events) its own rawPath and headers.
        context = _mapping(event.get("requestContext"))
        shaped = "http" in context or ("rawPath" in event and "headers" in event)
        if event.get("version") != "2.0" or not shaped:
            return False
        return (".lambda-url." in str(context.get("domainName", ""))) == self.function_url

    def request(
        self, event: LambdaEvent, *, base_path: str = "", max_body_bytes: int | None = None
    ) -> ReceivedRequest:
        context = _mapping(event.get("requestContext"))
        http_context = _mapping(context.get("http"))
        method = _text(http_context, "method", self.name, label="'requestContext.http.method'")
        raw_path = event.get("rawPath") or http_context.get("path")
        if not isinstance(raw_path, str) or not raw_path:
            raise _MalformedEvent(f"the {self.name} event has no 'rawPath' string")
        path = unquote(raw_path)  # rawPath is as sent, percent-encoding included
        stage = context.get("stage")
        domain = str(context.get("domainName", ""))
        # On the execute-api domain a named stage is the first segment of rawPath.
        if isinstance(stage, str) and stage not in ("", "$default") and (
            domain.endswith(".amazonaws.com") or not domain
        ):
            path = _strip(path, f"/{stage}")
        headers = _headers(event.get("headers"))  # lower case, repeated values comma-joined
        cookies = event.get("cookies")  # format 2.0 moves cookies out of the headers
        if isinstance(cookies, list) and cookies and "cookie" not in headers:
            headers["cookie"] = "; ".join(c for c in cookies if isinstance(c, str))
        return _received(method, path, headers, event, base_path, max_body_bytes)

    def response(self, event: LambdaEvent, answer: ReceiverResponse) -> LambdaResponse:
        return _answer(answer, headers=dict(answer.headers))


class LoadBalancer(EventSource):
    """Application Load Balancer targets, with or without multi-value headers."""

    name = "alb"

    def matches(self, event: LambdaEvent) -> bool:
        return "elb" in _mapping(event.get("requestContext"))

    def request(
        self, event: LambdaEvent, *, base_path: str = "", max_body_bytes: int | None = None
    ) -> ReceivedRequest:
        method = _text(event, "httpMethod", self.name)
        path = unquote(_text(event, "path", self.name))  # passed on as sent
        headers = _headers(event.get("headers"), event.get("multiValueHeaders"))
        return _received(method, path, headers, event, base_path, max_body_bytes)

    def response(self, event: LambdaEvent, answer: ReceiverResponse) -> LambdaResponse:
        description = _status_line(answer.status)
        # With multi-value headers on, the load balancer reads only multiValueHeaders.
        if "multiValueHeaders" in event:
            return _answer(answer, statusDescription=description, multiValueHeaders=_multi(answer))
        return _answer(answer, statusDescription=description, headers=dict(answer.headers))


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


#: Every event source, in the order they are tried.
SOURCES: tuple[EventSource, ...] = (
    LoadBalancer(),
    HttpApi(function_url=True),
    HttpApi(function_url=False),
    ApiGatewayRest(),
)
#: The names of the event sources the entry point understands.
EVENT_SOURCES: tuple[str, ...] = tuple(source.name for source in SOURCES)


def infer_source(event: object) -> EventSource | None:
    """The source of ``event``, or ``None`` when it is not an HTTP event Taskless knows."""
    if not isinstance(event, Mapping):
        return None
    return next((source for source in SOURCES if source.matches(event)), None)


def _unsupported_response(message: str) -> LambdaResponse:
    answer = ReceiverResponse.from_json(
        400, {"error": {"code": "unsupported_event", "message": message}}
    )
    return {
        "statusCode": answer.status,
        "headers": dict(answer.headers),
        "body": answer.body.decode("utf-8"),
        "isBase64Encoded": False,
    }


def _describe(event: object) -> str:
    if isinstance(event, Mapping):
        keys = ", ".join(sorted(str(key) for key in event)[:12]) or "none"
        return f"an object with the keys {keys}"
    return f"a {type(event).__name__}"


# --- queues ------------------------------------------------------------------------------------


class QueueHandler(LazyQueueHandler[Queue[Any], P, R], SyncQueueHandler[P, R]):
    """A handler registered with :meth:`Taskless.queue`.

    Calling it calls the original function, so it stays testable as it is. The queue methods
    :meth:`enqueue`, :meth:`update`, :meth:`delete` and :meth:`get` are synchronous and act on
    :attr:`queue`, a :class:`~taskless.core.queue.Queue` built on first use. Its endpoint is
    ``TASKLESS_BASE_URL`` (the function's public URL, with the stage if the API has one in its
    URLs) + :attr:`route`.
    """

    def close(self) -> None:
        """Close the queue's transport if it was built; it is rebuilt on next use."""
        queue = self._take_queue()
        if queue is not None:
            queue.close()


# --- the entry point ---------------------------------------------------------------------------


class Taskless(Declarations[QueueHandler[..., Any]]):
    """Taskless for an AWS Lambda function: declares queues and provides the entry point.

    :param settings: default :meth:`Settings.from_env()
        <taskless.core.settings.Settings.from_env>` (the function's environment variables).
    :param prefix: where queue routes live (``<prefix>/<queue>``).
    :param base_path: removed from the front of request paths before routing: the base path
        of a custom domain's API mapping, say ``"/jobs"``. A named stage of an API Gateway
        HTTP API on its ``execute-api`` domain is removed without it.
    :param clock: unix seconds, for tests of signature timestamps.
    :param max_body_bytes: a request body over this (default 2 MiB) is answered 413.

    The settings are read now (at import, so during the function's init phase): an invalid
    signing secret is a :class:`~taskless.core.errors.ConfigurationError` naming the variable.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        prefix: str = DEFAULT_PREFIX,
        base_path: str = "",
        clock: Callable[[], float] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.receiver = new_receiver(self.settings, prefix, clock, max_body_bytes)
        super().__init__(self.receiver)
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""

    if TYPE_CHECKING:  # Declarations.queue, typed to return this module's QueueHandler

        def queue(
            self, name: str, *, options: Options = None, route: str | None = None,
            payload_type: Any = None,
        ) -> Callable[[Callable[P, R]], QueueHandler[P, R]]: ...

    def handler(self, event: Any, context: LambdaContext | None = None) -> LambdaResponse:
        """The Lambda entry point: ``handler = taskless.handler``.

        Takes the event of any source in :data:`EVENT_SOURCES` and returns the response in
        that source's shape. Never raises for a bad request: an event of another shape is
        answered 400 (``unsupported_event``), a malformed one 400 (``bad_request``), one whose
        body is over ``max_body_bytes`` 413 (``too_large``).
        """
        source = infer_source(event)
        if source is None:
            message = (
                f"this function handles HTTP events of API Gateway (REST or HTTP API), Lambda "
                f"Function URLs and Application Load Balancers; it got {_describe(event)}"
            )
            logger.error("unsupported Lambda event: %s", message)
            return _unsupported_response(message)
        try:
            request = source.request(
                event, base_path=self.base_path, max_body_bytes=self.receiver.max_body_bytes
            )
        except _TooLarge:
            return source.response(event, self.receiver.too_large())
        except _MalformedEvent as exc:
            logger.warning("malformed %s event: %s", source.name, exc.message)
            answer = ReceiverResponse.from_json(
                400, {"error": {"code": "bad_request", "message": exc.message}}
            )
            return source.response(event, answer)
        return source.response(event, self.receiver.handle(request))

    def close(self) -> None:
        """Close the queues' transports (they are rebuilt on next use)."""
        for handler in self._handlers.values():
            handler.close()

    def _new_handler(
        self, func: Callable[P, R], registration: Registration, defaults: JobOptions
    ) -> QueueHandler[P, R]:
        return QueueHandler(
            func, registration, lambda: new_queue(Queue, registration, self.settings, defaults)
        )
