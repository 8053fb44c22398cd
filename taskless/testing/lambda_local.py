"""Run an AWS Lambda handler locally, behind a small HTTP server that plays the AWS front.

Each HTTP request becomes the event an AWS service would send (API Gateway REST or HTTP API,
a Lambda Function URL, an Application Load Balancer), the handler is called with it, and its
response is turned back into HTTP the way that service would. Point ``taskless dev`` at it to
receive jobs in your Lambda code on your machine::

    python -m taskless.testing.lambda_local app:handler --source function-url --port 9000

    # in another shell: deliveries go to http://127.0.0.1:9000/api/queues/<queue>
    TASKLESS_BASE_URL=http://127.0.0.1:9000 python enqueue_something.py

With an API Gateway ``--stage`` (not ``$default``), the front serves the stage's URLs, as the
``execute-api`` domain does: ``http://127.0.0.1:9000/prod/api/queues/<queue>`` (so
``TASKLESS_BASE_URL=http://127.0.0.1:9000/prod``); a URL without the stage is answered 403
``{"message": "Forbidden"}`` (REST API) or 404 ``{"message": "Not Found"}`` (HTTP API).

Or in tests::

    with LambdaFront(handler, source="apigw-rest") as front:
        httpx.post(front.url + "/api/queues/emails", ...)

:func:`build_event` and :func:`read_response` are the two halves of the translation, for tests
that call a handler directly. Standard library only; nothing to install.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "SOURCES",
    "LambdaFront",
    "LocalContext",
    "LocalResponse",
    "build_event",
    "main",
    "read_response",
]

logger = logging.getLogger("taskless.lambda_local")

#: The fronts this module can play: API Gateway REST API (payload 1.0), API Gateway HTTP API
#: (payload 2.0), a Lambda Function URL, and an Application Load Balancer without and with
#: multi-value headers.
SOURCES: tuple[str, ...] = ("apigw-rest", "apigw-http", "function-url", "alb", "alb-multi")

Handler = Callable[[dict[str, Any], Any], Any]
HeaderItems = Iterable[tuple[str, str]]

_ACCOUNT = "123456789012"
_REGION = "us-east-1"
_API_ID = "local00000"
_URL_ID = "local0000000000000000000000000000"
_TARGET_GROUP = (
    f"arn:aws:elasticloadbalancing:{_REGION}:{_ACCOUNT}:targetgroup/local/0000000000000000"
)
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded")
_BAD_GATEWAY = json.dumps({"message": "Internal Server Error"}).encode()
#: The sources that have stages (API Gateway), and what each answers outside its stage.
_STAGED = {
    "apigw-rest": (403, {"message": "Forbidden"}),
    "apigw-http": (404, {"message": "Not Found"}),
}


@dataclass
class LocalContext:
    """A stand-in for the Lambda context object."""

    function_name: str = "taskless-local"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    timeout: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/taskless-local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{_REGION}:{_ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        left = self.timeout - (time.monotonic() - self._started)
        return max(0, int(left * 1000))


@dataclass(frozen=True)
class LocalResponse:
    """An HTTP response read from a handler's result: status, headers (in order, names as
    given, repeated names kept) and body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of the header ``name`` (any case), several joined with ``", "``."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


# --- request -> event --------------------------------------------------------------------------


def _is_text(headers: Sequence[tuple[str, str]], body: bytes) -> bool:
    content_type = next((v for k, v in reversed(headers) if k.lower() == "content-type"), "")
    if content_type and not any(marker in content_type.lower() for marker in _TEXT_TYPES):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _body_fields(
    headers: Sequence[tuple[str, str]], body: bytes, base64_body: bool | None
) -> dict[str, Any]:
    encode = not _is_text(headers, body) if base64_body is None else base64_body
    if encode:
        return {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}
    return {"body": body.decode("utf-8") if body else None, "isBase64Encoded": False}


def _title(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _grouped(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in items:
        grouped.setdefault(name, []).append(value)
    return grouped


def _query(raw: str) -> dict[str, list[str]]:
    return _grouped(parse_qsl(raw, keep_blank_values=True))


def build_event(
    source: str,
    method: str,
    target: str,
    headers: Mapping[str, str] | HeaderItems = (),
    body: bytes = b"",
    *,
    stage: str | None = None,
    base64_body: bool | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """The event ``source`` sends for the request ``method target`` (target: path and query).

    Header names are passed as AWS passes them: as sent for ``apigw-rest`` (title case here,
    as most HTTP/1.1 clients send them), in lower case for the others. ``stage`` is the API
    Gateway stage (default ``prod`` for REST APIs, ``$default`` for HTTP APIs; part of an HTTP
    API's ``rawPath`` when it is not ``$default``). ``base64_body``: ``None`` base64-encodes
    bodies that are not text, as AWS does; ``True``/``False`` force it.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown event source {source!r}; use one of {', '.join(SOURCES)}")
    items = list(headers.items() if isinstance(headers, Mapping) else headers)
    split = urlsplit(target)
    path, raw_query = split.path or "/", split.query
    now = datetime.now(UTC)
    epoch_ms = int(now.timestamp() * 1000)
    request_id = str(uuid.uuid4())
    user_agent = next((v for k, v in items if k.lower() == "user-agent"), "")
    body_fields = _body_fields(items, body, base64_body)

    if source == "apigw-rest":
        stage = stage or "prod"
        titled = [(_title(k), v) for k, v in items]
        multi = _grouped(titled)
        query = _query(raw_query)
        return {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": method,
            "headers": {k: v[-1] for k, v in multi.items()} or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
            "stageVariables": None,
            "requestContext": {
                "accountId": _ACCOUNT,
                "apiId": _API_ID,
                "domainName": f"{_API_ID}.execute-api.{_REGION}.amazonaws.com",
                "domainPrefix": _API_ID,
                "extendedRequestId": request_id[:16],
                "httpMethod": method,
                "identity": {"sourceIp": source_ip, "userAgent": user_agent},
                "path": f"/{stage}{path}",
                "protocol": "HTTP/1.1",
                "requestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": epoch_ms,
                "resourceId": "local0",
                "resourcePath": "/{proxy+}",
                "stage": stage,
            },
            **body_fields,
        }

    lowered = [(k.lower(), v) for k, v in items]
    if source in ("alb", "alb-multi"):
        event: dict[str, Any] = {
            "requestContext": {"elb": {"targetGroupArn": _TARGET_GROUP}},
            "httpMethod": method,
            "path": path,
        }
        # The load balancer passes the query as sent: not decoded.
        pairs = [tuple(p.split("=", 1)) if "=" in p else (p, "") for p in raw_query.split("&") if p]
        if source == "alb-multi":
            event["multiValueQueryStringParameters"] = _grouped(
                (str(k), str(v)) for k, v in pairs
            )
            event["multiValueHeaders"] = _grouped(lowered)
        else:
            event["queryStringParameters"] = {str(k): str(v) for k, v in pairs}
            event["headers"] = {k: v[-1] for k, v in _grouped(lowered).items()}
        return {**event, **body_fields}

    # API Gateway HTTP API and Function URLs: payload format 2.0.
    on_function_url = source == "function-url"
    stage = "$default" if on_function_url else (stage or "$default")
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    cookies = [
        part.strip() for k, v in lowered if k == "cookie" for part in v.split(";") if part.strip()
    ]
    joined = {k: ",".join(v) for k, v in _grouped(lowered).items() if k != "cookie"}
    query = _query(raw_query)
    domain = (
        f"{_URL_ID}.lambda-url.{_REGION}.on.aws"
        if on_function_url
        else f"{_API_ID}.execute-api.{_REGION}.amazonaws.com"
    )
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous" if on_function_url else _ACCOUNT,
            "apiId": _URL_ID if on_function_url else _API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": epoch_ms,
        },
        **body_fields,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in query.items()}
    if event["body"] is None:
        del event["body"]
    return event


# --- result -> response ------------------------------------------------------------------------


class _BadResult(Exception):
    """The handler's result is not a response this front accepts."""


def read_response(source: str, result: Any) -> LocalResponse:
    """The HTTP response ``source`` makes of a handler's ``result``.

    Raises :class:`ValueError` when ``result`` is not a valid response for that source
    (the AWS front would answer 502).
    """
    try:
        return _read(source, result)
    except _BadResult as exc:
        raise ValueError(str(exc)) from None


def _read(source: str, result: Any) -> LocalResponse:
    v2 = source in ("apigw-http", "function-url")
    if v2 and not (isinstance(result, dict) and "statusCode" in result):
        # Payload 2.0 infers a response: any JSON value becomes a 200 JSON body.
        body = result if isinstance(result, str) else json.dumps(result)
        return LocalResponse(200, [("content-type", "application/json")], body.encode())
    if not isinstance(result, dict):
        raise _BadResult(f"the handler returned {type(result).__name__}, not a response object")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _BadResult(f"the response has no valid statusCode: {status!r}")
    headers: list[tuple[str, str]] = []
    single = result.get("headers")
    multi = result.get("multiValueHeaders")
    single = {} if single is None else single
    multi = {} if multi is None else multi
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise _BadResult("the response's headers must be objects")
    if source == "alb-multi":
        single = {}  # with multi-value headers on, the load balancer reads only those
    elif source in ("alb", "apigw-http", "function-url"):
        multi = {}
    for name, values in multi.items():
        if not isinstance(values, list):
            raise _BadResult(f"multiValueHeaders[{name!r}] must be a list")
        headers.extend((str(name), str(value)) for value in values)
    taken = {name.lower() for name, _ in headers}
    headers.extend((str(k), str(v)) for k, v in single.items() if str(k).lower() not in taken)
    if v2:
        cookies = result.get("cookies") or []
        headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    text = result.get("body")
    if text is None:
        raw = b""
    elif not isinstance(text, str):
        raise _BadResult("the response's body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raise _BadResult("the body is marked isBase64Encoded but is not base64") from None
    else:
        raw = text.encode("utf-8")
    return LocalResponse(status, headers, raw)


# --- the server --------------------------------------------------------------------------------


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._invoke()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _invoke(self) -> None:
        front = self.server.front
        body = self._read_body()
        target = front._target(self.path)
        if target is None:  # not under the stage: API Gateway answers without calling Lambda
            status, message = _STAGED[front.source]
            content = json.dumps(message).encode()
            self._send(LocalResponse(status, [("content-type", "application/json")], content))
            return
        items = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        # The event's path is without the stage (build_event puts it where AWS does).
        event = build_event(
            front.source, self.command, target, items, body,
            stage=front.stage, base64_body=front.base64_body, source_ip=self.client_address[0],
        )
        # As the Lambda runtime does: the event arrives as JSON.
        event = json.loads(json.dumps(event))
        try:
            result = front.handler(event, LocalContext(function_name=front.function_name))
            response = read_response(front.source, json.loads(json.dumps(result)))
        except Exception:  # noqa: BLE001 - the AWS front answers 502 to any handler failure
            traceback.print_exc(file=sys.stderr)
            response = LocalResponse(502, [("content-type", "application/json")], _BAD_GATEWAY)
        self._send(response)

    def _send(self, response: LocalResponse) -> None:
        self.send_response(response.status)
        hop_by_hop = {"content-length", "transfer-encoding", "connection"}
        for name, value in response.headers:
            if name.lower() not in hop_by_hop:
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    front: LambdaFront


class LambdaFront:
    """An HTTP server on ``host:port`` (0: a free port) that calls ``handler(event, context)``
    with the events of ``source`` (one of :data:`SOURCES`).

    ``stage`` is the API Gateway stage (``apigw-rest`` and ``apigw-http`` only). A named
    stage (not ``$default``) is in the URLs, as on the ``execute-api`` domain: :attr:`url` is
    ``http://host:port/<stage>``, the event's path is what follows it (REST: ``path`` without
    the stage, ``requestContext.path`` with it; HTTP API: ``rawPath`` with it), and a URL
    outside the stage is answered 403 ``Forbidden`` (REST) or 404 ``Not Found`` (HTTP API).

    The URL is known as soon as it is built; :meth:`start` serves in a background thread,
    :meth:`serve_forever` in this one. A handler that raises gets a 502 as from AWS, and its
    traceback goes to stderr; so does one that returns something that is not a response,
    except behind ``apigw-http`` and ``function-url``, where (as with payload format 2.0) any
    JSON value is answered 200 with that value as the body.
    """

    def __init__(
        self,
        handler: Handler,
        source: str = "apigw-http",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str | None = None,
        base64_body: bool | None = None,
        function_name: str = "taskless-local",
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown event source {source!r}; use one of {', '.join(SOURCES)}")
        if stage is not None and source not in _STAGED:
            raise ValueError(
                f"{source} has no stages: --stage / stage= is for {' and '.join(_STAGED)}"
            )
        if stage is not None and (not stage or "/" in stage or stage != stage.strip()):
            raise ValueError(f"a stage is a name without '/' or spaces, like 'prod'; not {stage!r}")
        self.handler = handler
        self.source = source
        self.stage = stage
        #: The path every URL starts with: ``/<stage>`` for a named stage, else nothing.
        self.stage_prefix = f"/{stage}" if stage not in (None, "$default") else ""
        self.base64_body = base64_body
        self.function_name = function_name
        self._server = _Server((host, port), _RequestHandler)
        self._server.front = self
        bound_host, bound_port = self._server.server_address[:2]
        self.port: int = int(bound_port)
        #: The server's root, and the API's URL (with the stage, if it has a named one): the
        #: function's public URL, for ``TASKLESS_BASE_URL``.
        self.root_url = f"http://{bound_host!s}:{self.port}"
        self.url = self.root_url + self.stage_prefix
        self._thread: threading.Thread | None = None

    def _target(self, target: str) -> str | None:
        """The request target (path and query) without the stage; ``None`` outside it."""
        prefix = self.stage_prefix
        if not prefix:
            return target
        path, mark, query = target.partition("?")
        if path != prefix and not path.startswith(prefix + "/"):
            return None
        return (path[len(prefix) :] or "/") + mark + query

    def start(self) -> Self:
        """Serve in a background thread; returns at once (the socket already listens)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="taskless-lambda-front", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


_PROG = "python -m taskless.testing.lambda_local"


class _UsageError(Exception):
    """Printed as one line, ``<prog>: <message>``; exit status 2."""


def _load(spec: str) -> Handler:
    """The handler named ``MODULE:NAME`` (``NAME`` may be dotted), imported from the current
    directory too. Raises :class:`_UsageError` when it cannot be found; an error raised by the
    module's own code keeps its traceback, unless it is a Taskless error (a setting)."""
    from taskless.core.errors import TasklessError

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise _UsageError(f"expected MODULE:NAME (like app:handler), got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise _UsageError(
                f"no module named {exc.name!r} (from {spec!r}): run this from the directory "
                "that holds it, or fix MODULE in MODULE:NAME"
            ) from None
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from None
    except TasklessError as exc:  # a setting read at import, say an invalid signing secret
        raise _UsageError(f"cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _UsageError(
                f"{module_name!r} has no attribute {part!r} (from {spec!r}): NAME in "
                "MODULE:NAME is the handler, such as handler for 'handler = taskless.handler'"
            ) from None
    if not callable(target) or isinstance(target, type):
        raise _UsageError(f"{spec} is not a function (it is {type(target).__name__})")
    handler: Handler = target
    return handler


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m taskless.testing.lambda_local MODULE:HANDLER [--source ...] [--port ...]``"""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Serve a Lambda handler over HTTP, as an AWS front would call it.",
    )
    parser.add_argument("handler", help="the handler, as MODULE:NAME (like app:handler)")
    parser.add_argument("--source", choices=SOURCES, default="apigw-http",
                        help="the AWS front to play (default: apigw-http)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=9000, help="0 to 65535 (0: a free port)")
    parser.add_argument(
        "--stage", default=None,
        help="the API Gateway stage (apigw-rest, apigw-http): its name starts every URL, "
        "as on the execute-api domain; the URL printed includes it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        front = _front(args)
    except _UsageError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # Ctrl+C and SIGTERM stop the front, whatever this process inherited: a shell starts a
    # background job with SIGINT ignored, and the default SIGTERM ends without cleaning up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    print(f"{args.handler} as a {args.source} Lambda on {front.url} (Ctrl+C to stop)", flush=True)
    try:
        front.serve_forever()
    except KeyboardInterrupt:
        pass


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _front(args: argparse.Namespace) -> LambdaFront:
    if args.stage is not None and args.source not in _STAGED:
        raise _UsageError(
            f"--stage is for {' and '.join(_STAGED)}; {args.source} has no stages"
        )
    handler = _load(args.handler)
    try:
        return LambdaFront(handler, args.source, host=args.host, port=args.port, stage=args.stage)
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    except socket.gaierror as exc:
        raise _UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} (is --host a "
            "name or address of this machine, such as 127.0.0.1?)"
        ) from None
    except OSError as exc:
        raise _UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            " (another process uses the port? pick another with --port)"
        ) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535")
    return port


if __name__ == "__main__":
    main()
