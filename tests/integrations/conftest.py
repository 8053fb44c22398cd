"""Receiver harnesses: one per framework, so that the receiver contract
(``test_receiver_contract.py``) runs the very same cases against every integration.

A harness wraps one framework's integration behind two calls:

* ``harness.queue(name, **kwargs)``: the integration's ``Taskless.queue`` decorator;
* ``harness.request(method, path, headers=..., body=...)``: send one request through the
  framework in-process and return a :class:`Reply`.

To add a framework (Flask, each AWS Lambda event shape, ...), write a factory
``(settings, clock) -> Harness`` and decorate it with ``@framework("name")``; every contract
case then runs against it. A factory whose extra is missing calls ``pytest.importorskip``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from taskless.core.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"contract-current-secret").decode()
PREVIOUS_SECRET = "whsec_" + base64.b64encode(b"contract-previous-secret").decode()
NOW = 1_700_000_000
APP_URL = "https://app.example.com"
ENCRYPTION_KEY = base64.b64encode(b"contract-current-encryption-key!").decode()
PREVIOUS_ENCRYPTION_KEY = base64.b64encode(b"contract-previous-encryption-key").decode()
SETTINGS = Settings(
    signing_secret=SECRET,
    previous_signing_secrets=(PREVIOUS_SECRET,),
    encryption_key=ENCRYPTION_KEY,
    previous_encryption_keys=(PREVIOUS_ENCRYPTION_KEY,),
    base_url=APP_URL,
    url="http://127.0.0.1:3001",
)


@dataclass(frozen=True)
class Reply:
    """A framework's response: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Harness(Protocol):
    def queue(self, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]: ...

    def request(
        self, method: str, path: str, *, headers: Mapping[str, str], body: bytes
    ) -> Reply: ...

    def close(self) -> None: ...


HarnessFactory = Callable[[Settings, Callable[[], float]], Harness]

FRAMEWORKS: dict[str, HarnessFactory] = {}


def framework(name: str) -> Callable[[HarnessFactory], HarnessFactory]:
    """Register a harness factory under ``name`` (a parameter of the ``harness`` fixture)."""

    def register(factory: HarnessFactory) -> HarnessFactory:
        FRAMEWORKS[name] = factory
        return factory

    return register


class AsgiHarness:
    """Any ASGI app, driven in-process through ``httpx.ASGITransport`` (a fresh event loop per
    request, so the harness stays synchronous like the WSGI and Lambda ones)."""

    def __init__(self, app: Any, taskless: Any) -> None:
        self.app = app
        self.taskless = taskless

    def queue(self, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        decorator: Callable[[Callable[..., Any]], Any] = self.taskless.queue(name, **kwargs)
        return decorator

    def request(self, method: str, path: str, *, headers: Mapping[str, str], body: bytes) -> Reply:
        return asyncio.run(self.request_async(method, path, headers=headers, body=body))

    async def request_async(
        self, method: str, path: str, *, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=APP_URL) as client:
            response = await client.request(method, path, headers=dict(headers), content=body)
        return Reply(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items()},
            response.content,
        )

    def close(self) -> None:
        pass


@framework("starlette")
def starlette_harness(settings: Settings, clock: Callable[[], float]) -> Harness:
    from starlette.applications import Starlette

    from taskless.integrations.starlette import Taskless

    app = Starlette()
    return AsgiHarness(app, Taskless(app, settings=settings, clock=clock))


@framework("fastapi")
def fastapi_harness(settings: Settings, clock: Callable[[], float]) -> Harness:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    from taskless.integrations.fastapi import Taskless

    app = FastAPI()
    return AsgiHarness(app, Taskless(app, settings=settings, clock=clock))


class FlaskHarness:
    """A Flask app, driven in-process through its WSGI test client."""

    def __init__(self, app: Any, taskless: Any) -> None:
        self.app = app
        self.taskless = taskless
        self.client = app.test_client()

    def queue(self, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        decorator: Callable[[Callable[..., Any]], Any] = self.taskless.queue(name, **kwargs)
        return decorator

    def request(self, method: str, path: str, *, headers: Mapping[str, str], body: bytes) -> Reply:
        response = self.client.open(path, method=method, headers=list(headers.items()), data=body)
        return Reply(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items()},
            response.get_data(),
        )

    def close(self) -> None:
        self.taskless.close()


@framework("flask")
def flask_harness(settings: Settings, clock: Callable[[], float]) -> Harness:
    pytest.importorskip("flask")
    from flask import Flask

    from taskless.integrations.flask import Taskless

    app = Flask("contract")
    return FlaskHarness(app, Taskless(app, settings=settings, clock=clock))


EVENTS = Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event of ``tests/integrations/events/<name>.json`` (a fresh copy)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text("utf-8"))
    return event


def _event_body(body: bytes, *, base64_always: bool) -> tuple[str, bool]:
    """The body as an event carries it: text when it is UTF-8 (unless ``base64_always``),
    else base64, as API Gateway and the load balancer do for binary bodies."""
    if not base64_always:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _lower_joined(headers: Mapping[str, str]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def make_event(
    source: str, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    """An event of ``source`` (one of :data:`LAMBDA_SOURCES`) carrying one request, built
    from the sample events the way each AWS service fills them in."""
    template = LAMBDA_SOURCES[source]
    event = load_event(template)
    if source == "apigw-rest":
        # Title-case names as sent, multiValueHeaders beside headers, raw text body.
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["path"] = path
        event["requestContext"]["path"] = "/prod" + path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        event["headers"] = dict(headers)
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
        event["body"], event["isBase64Encoded"] = _event_body(body, base64_always=False)
    elif source in ("apigw-http", "function-url"):
        # Lower-case names, repeated headers comma-joined; Function URLs here base64 the body.
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["headers"] = _lower_joined(headers)
        event["body"], event["isBase64Encoded"] = _event_body(
            body, base64_always=source == "function-url"
        )
    elif source == "alb":
        event["httpMethod"], event["path"] = method, path
        event["headers"] = _lower_joined(headers)
        event["body"], event["isBase64Encoded"] = _event_body(body, base64_always=False)
    elif source == "alb-multi":
        event["httpMethod"], event["path"] = method, path
        event["multiValueHeaders"] = {name.lower(): [value] for name, value in headers.items()}
        event["body"], event["isBase64Encoded"] = _event_body(body, base64_always=True)
    else:
        raise ValueError(source)
    # Through JSON and back, as the Lambda runtime hands the event to the function.
    decoded: dict[str, Any] = json.loads(json.dumps(event))
    return decoded


#: Harnessed event sources and the sample event each is built from.
LAMBDA_SOURCES = {
    "apigw-rest": "apigw_rest",
    "apigw-http": "apigw_http",
    "function-url": "function_url",
    "alb": "alb",
    "alb-multi": "alb_multi_value",
}


def reply_from_lambda(source: str, response: Any) -> Reply:
    """Read a Lambda response the way ``source`` does, checking its shape on the way."""
    assert isinstance(response, dict), response
    assert isinstance(response["statusCode"], int)
    assert isinstance(response["body"], str)
    assert isinstance(response["isBase64Encoded"], bool)
    if source.startswith("alb"):
        assert response["statusDescription"].startswith(f"{response['statusCode']} ")
    if source == "alb-multi":
        assert "headers" not in response  # the load balancer would ignore them
        headers = {k.lower(): ", ".join(v) for k, v in response["multiValueHeaders"].items()}
    else:
        assert "multiValueHeaders" not in response or source == "apigw-rest"
        headers = {k.lower(): v for k, v in response["headers"].items()}
        if source == "apigw-rest":
            multi = {k.lower(): ", ".join(v) for k, v in response["multiValueHeaders"].items()}
            assert multi == headers
    body = response["body"]
    raw = base64.b64decode(body) if response["isBase64Encoded"] else body.encode("utf-8")
    return Reply(response["statusCode"], headers, raw)


class LambdaHarness:
    """The Lambda entry point, called with events of one source built by :func:`make_event`."""

    def __init__(self, source: str, taskless: Any) -> None:
        self.source = source
        self.taskless = taskless

    def queue(self, name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
        decorator: Callable[[Callable[..., Any]], Any] = self.taskless.queue(name, **kwargs)
        return decorator

    def request(self, method: str, path: str, *, headers: Mapping[str, str], body: bytes) -> Reply:
        event = make_event(self.source, method, path, headers, body)
        handler = self.taskless.handler  # as the function's configuration names it
        return reply_from_lambda(self.source, handler(event, None))

    def close(self) -> None:
        self.taskless.close()


def _lambda_factory(source: str) -> HarnessFactory:
    def factory(settings: Settings, clock: Callable[[], float]) -> Harness:
        from taskless.integrations.aws_lambda import Taskless

        return LambdaHarness(source, Taskless(settings=settings, clock=clock))

    return factory


for _source in LAMBDA_SOURCES:
    framework(f"lambda-{_source}")(_lambda_factory(_source))


# Last, so that its parameters include every factory registered above.
@pytest.fixture(params=sorted(FRAMEWORKS))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    built = FRAMEWORKS[request.param](SETTINGS, lambda: NOW)
    yield built
    built.close()
