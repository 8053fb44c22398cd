"""Fixtures of the job server tests: stores (the contract suite runs on each), a real
receiver app served by uvicorn on a loopback port, and settings."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from taskless.core.settings import Settings
from taskless.server.runner import serve
from taskless.server.store import Store
from taskless.server.store.sqlite import SQLiteStore

SECRET = "whsec_" + base64.b64encode(b"server-test-signing-secret").decode()
API_KEY = "test-api-key"
SETTINGS = Settings(api_key=API_KEY, signing_secret=SECRET)


def _sqlite(request: pytest.FixtureRequest) -> Store:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return SQLiteStore(tmp_path / "taskless.db")


def _postgres(request: pytest.FixtureRequest) -> Store:
    from taskless.server.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"))


#: Every store implementation; the contract suite runs against each. Add a factory here
#: and every case runs on it. (PostgreSQL: a fresh schema of the test cluster per test.)
STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Store]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    the_store = STORE_FACTORIES[request.param](request)
    async with the_store:
        yield the_store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "taskless.db") as the_store:
        yield the_store


@dataclass
class Call:
    headers: dict[str, str]
    body: bytes
    at: float


Behaviour = Callable[[Request, int], Awaitable[Response]]


async def _ok(request: Request, n: int) -> Response:
    return JSONResponse({"ok": True})


@dataclass
class Receiver:
    """A real app that records every delivery; ``behaviour(request, n)`` answers call n
    (1-based). ``url`` is set once it is served."""

    behaviour: Behaviour = _ok
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            self.calls.append(Call(dict(request.headers), body, time.monotonic()))
            self.changed.set()
            return await self.behaviour(request, len(self.calls))

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST"])])

    @property
    def endpoint(self) -> str:
        return self.url + "/jobs"

    async def wait_for_calls(self, n: int, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while len(self.calls) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    the_receiver = Receiver()
    async with serve(the_receiver.app()) as url:
        the_receiver.url = url
        yield the_receiver


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(0.01)
