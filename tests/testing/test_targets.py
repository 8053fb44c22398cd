"""Deliveries through the user's app in-process (ASGI, WSGI, Lambda) and the direct mode."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import BaseModel

from taskless.core.errors import RetryLater
from taskless.core.models import JobMeta
from taskless.core.settings import Settings
from taskless.testing import (
    AsgiTarget,
    DirectTarget,
    LambdaTarget,
    TasklessFake,
    WsgiTarget,
    target_for,
)

START = "2024-01-01T00:00:00Z"
SECRET = "whsec_" + base64.b64encode(b"targets-test-secret").decode()
SETTINGS = Settings(signing_secret=SECRET, base_url="https://app.example.com", url="memory://")


class Email(BaseModel):
    to: str


class Handlers:
    """The same three queues declared on any integration."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, int]] = []
        self.flaky_failures = 1

    def declare(self, taskless: Any) -> None:
        @taskless.queue("emails")
        def send(payload: Email, meta: JobMeta) -> dict[str, str]:
            self.seen.append(("emails", payload, meta.attempt))
            return {"sent": payload.to}

        @taskless.queue("flaky")
        def flaky(payload: Any, meta: JobMeta) -> None:
            self.seen.append(("flaky", payload, meta.attempt))
            if meta.attempt <= self.flaky_failures:
                raise RuntimeError("first attempt fails")

        @taskless.queue("later")
        def later(payload: Any, meta: JobMeta) -> None:
            self.seen.append(("later", payload, meta.attempt))
            if meta.attempt == 1:
                raise RetryLater(30)


def starlette_app(handlers: Handlers) -> tuple[Any, Any]:
    from starlette.applications import Starlette

    from taskless.integrations.starlette import Taskless

    app = Starlette()
    taskless = Taskless(app, settings=SETTINGS)
    handlers.declare(taskless)
    return app, taskless


def fastapi_app(handlers: Handlers) -> tuple[Any, Any]:
    fastapi = pytest.importorskip("fastapi")
    from taskless.integrations.fastapi import Taskless

    app = fastapi.FastAPI()
    taskless = Taskless(app, settings=SETTINGS)
    handlers.declare(taskless)
    return app, taskless


def flask_app(handlers: Handlers) -> tuple[Any, Any]:
    flask = pytest.importorskip("flask")
    from taskless.integrations.flask import Taskless

    app = flask.Flask(__name__)
    taskless = Taskless(app, settings=SETTINGS)
    handlers.declare(taskless)
    return app, taskless


def lambda_app(handlers: Handlers) -> tuple[Any, Any]:
    from taskless.integrations.aws_lambda import Taskless

    taskless = Taskless(settings=SETTINGS)
    handlers.declare(taskless)
    return taskless.handler, taskless


APPS = {"starlette": starlette_app, "fastapi": fastapi_app, "flask": flask_app,
        "lambda": lambda_app}


@pytest.fixture(params=sorted(APPS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def scenario(fake: TasklessFake, handlers: Handlers) -> None:
    queue = fake.queue("emails")
    queue.enqueue("welcome", {"to": "ada@example.com"})
    queue.enqueue("bad", {"to": 42})  # fails the handler's type: 422, retried
    fake.queue("flaky").enqueue("f", 1)
    fake.queue("later").enqueue("l", 1)


def check(fake: TasklessFake, handlers: Handlers) -> None:
    welcome = fake.assert_delivered("welcome", attempts=[1], status=200)[0]
    assert welcome.response_json() == {"ok": True, "result": {"sent": "ada@example.com"}}
    bad = fake.assert_delivered("bad", status=422)[-1]
    assert bad.response_json()["error"]["field"] == "payload.to"
    fake.assert_delivered("f", attempts=[1, 2], status=200)
    later = fake.assert_delivered("l", attempts=[1, 2], status=200)
    assert (later[1].delivered_at - later[0].delivered_at).total_seconds() == 30
    assert ("emails", Email(to="ada@example.com"), 1) in handlers.seen


@pytest.mark.parametrize("mode", ["app", "direct"])
def test_sync_driving(framework: str, mode: str) -> None:
    handlers = Handlers()
    app, taskless = APPS[framework](handlers)
    fake = TasklessFake(app if mode == "app" else taskless, mode=mode,  # type: ignore[arg-type]
                        settings=SETTINGS, start=START)
    scenario(fake, handlers)
    fake.advance("PT1M")
    check(fake, handlers)
    if mode == "app":
        headers = fake.deliveries("welcome")[0].request_headers
        assert headers["x-taskless-attempt"] == "1"
        assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["app", "direct"])
async def test_async_driving(framework: str, mode: str) -> None:
    handlers = Handlers()
    app, taskless = APPS[framework](handlers)
    fake = TasklessFake(app if mode == "app" else taskless, mode=mode,  # type: ignore[arg-type]
                        settings=SETTINGS, start=START)
    scenario(fake, handlers)
    await fake.advance_async("PT1M")
    check(fake, handlers)


def test_direct_mode_finds_the_handlers_of_a_mounted_app() -> None:
    handlers = Handlers()
    app, _ = starlette_app(handlers)
    fake = TasklessFake(app, mode="direct", settings=SETTINGS, start=START)
    fake.queue("emails").enqueue("x", {"to": "a"})
    assert fake.run_due()[0].status == 200
    pytest.importorskip("flask")
    assert isinstance(target_for(flask_app(Handlers())[0], "direct"), DirectTarget)


def test_a_wrong_signing_secret_is_refused_by_the_app() -> None:
    handlers = Handlers()
    app, _ = starlette_app(handlers)
    other = Settings(signing_secret="whsec_" + base64.b64encode(b"another").decode(),
                     base_url="https://app.example.com")
    fake = TasklessFake(app, settings=other, start=START)
    fake.queue("emails").enqueue("x", {"to": "a"}, {"retries": 1})
    fake.advance("PT1M")
    fake.assert_delivered("x", attempts=[1, 2], status=401)
    assert handlers.seen == []


def test_signatures_may_use_the_virtual_clock() -> None:
    from starlette.applications import Starlette

    from taskless.integrations.starlette import Taskless

    fake = TasklessFake(settings=SETTINGS, start="2020-01-01T00:00:00Z")
    fake.signing_clock = fake.clock.time
    app = Starlette()
    taskless = Taskless(app, settings=SETTINGS, clock=fake.clock.time)
    taskless.queue("emails")(lambda payload: None)
    fake.mount(app)
    fake.queue("emails").enqueue("x", 1, {"run_at": "2020-06-01T00:00:00Z"})
    fake.advance("P365D")
    fake.assert_delivered("x", status=200)


def test_mounts_by_base_url() -> None:
    seen: list[str] = []
    fake = TasklessFake(start=START)
    fake.mount({"q": lambda p: seen.append("one")}, base_url="https://one.example.com",
               mode="direct")
    fake.mount({"q": lambda p: seen.append("two")}, base_url="https://two.example.com/sub",
               mode="direct")
    fake.queue("q", endpoint="https://two.example.com/sub/api/queues/q").enqueue("a", 1)
    fake.queue("q", endpoint="https://one.example.com/api/queues/q").enqueue("b", 1)
    fake.run_due()
    assert seen == ["two", "one"]


def test_generic_wsgi_and_lambda_callables() -> None:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("202 Accepted", [("content-type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 500, "body": event["rawPath"]}

    fake = TasklessFake(start=START)
    fake.mount(WsgiTarget(wsgi), base_url="https://wsgi.example.com")
    fake.mount(LambdaTarget(handler), base_url="https://lambda.example.com")
    fake.queue("q", endpoint="https://wsgi.example.com/x").enqueue("w", 1)
    fake.queue("q", endpoint="https://lambda.example.com/y").enqueue("l", 1, {"retries": 0})
    made = {d.name: d for d in fake.run_due()}
    assert made["w"].status == 202 and made["w"].response_body == b"/x"
    assert made["l"].status == 500 and made["l"].error == "HTTP 500: /y"


def test_an_app_that_raises_is_no_answer() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("crash")

    fake = TasklessFake(AsgiTarget(broken), start=START)
    fake.queue("q").enqueue("x", 1, {"retries": 0})
    delivery = fake.run_due()[0]
    assert delivery.status is None and "crash" in (delivery.error or "")


def test_target_for_refuses_ambiguous_callables() -> None:
    with pytest.raises(TypeError, match="WsgiTarget"):
        target_for(lambda environ, start_response: [])
    with pytest.raises(ValueError, match="mode"):
        target_for(object(), "other")
    with pytest.raises(TypeError, match="cannot find Taskless handlers"):
        target_for(object(), "direct")
