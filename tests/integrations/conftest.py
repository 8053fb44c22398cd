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
from typing import Any, Protocol

import httpx
import pytest

from taskless.core.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"contract-current-secret").decode()
PREVIOUS_SECRET = "whsec_" + base64.b64encode(b"contract-previous-secret").decode()
NOW = 1_700_000_000
APP_URL = "https://app.example.com"
SETTINGS = Settings(
    signing_secret=SECRET,
    previous_signing_secrets=(PREVIOUS_SECRET,),
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


@pytest.fixture(params=sorted(FRAMEWORKS))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    built = FRAMEWORKS[request.param](SETTINGS, lambda: NOW)
    yield built
    built.close()
