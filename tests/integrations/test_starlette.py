"""What the Starlette integration adds to the receiver contract: mounting, queue handlers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from taskless.core.crypto import PayloadCipher
from taskless.core.errors import JobNotFound, ValidationError
from taskless.core.models import JobMeta
from taskless.core.queue import AsyncQueue
from taskless.core.settings import Settings
from taskless.integrations.starlette import QueueHandler, Taskless

from .conftest import ENCRYPTION_KEY, NOW, SETTINGS, AsgiHarness
from .recording import WELCOME_THEN_MISSING, RecordingTransport, recording_transport
from .test_receiver_contract import post


class Email(BaseModel):
    to: str


def build(app: Starlette | None = None, **kwargs: Any) -> tuple[Starlette, Taskless]:
    app = app or Starlette()
    kwargs.setdefault("settings", SETTINGS)
    return app, Taskless(app, clock=lambda: NOW, **kwargs)


# --- the decorated handler -------------------------------------------------------------------


def test_decorated_handlers_stay_callable() -> None:
    _, taskless = build()

    @taskless.queue("emails")
    def send_email(payload: Email, meta: JobMeta) -> str:
        """Send one email."""
        return payload.to

    @taskless.queue("digests")
    async def send_digest(payload: Email) -> str:
        return payload.to * 2

    assert isinstance(send_email, QueueHandler)
    assert send_email.__name__ == "send_email"
    assert send_email.__doc__ == "Send one email."
    meta = JobMeta(queue="emails", name="j", run_id="r", attempt=1, scheduled_at=datetime.now(UTC))
    assert send_email(Email(to="a"), meta) == "a"
    assert asyncio.run(send_digest(Email(to="b"))) == "bb"
    assert (send_email.name, send_email.route) == ("emails", "/api/queues/emails")
    assert set(taskless.handlers) == {"emails", "digests"}


@pytest.mark.anyio
async def test_queue_is_built_lazily_with_the_route_and_defaults() -> None:
    _, taskless = build()

    @taskless.queue("emails", options={"retries": 2, "headers": {"x-team": "growth"}})
    def send_email(payload: Email) -> None: ...

    assert send_email._queue is None  # nothing happens at declaration (import) time
    queue = send_email.queue
    assert isinstance(queue, AsyncQueue)
    assert queue.endpoint == "https://app.example.com/api/queues/emails"
    assert queue.defaults.retries == 2
    assert queue.defaults.headers == {"x-team": "growth"}
    assert queue.payload_type is Email
    assert send_email.queue is queue
    await taskless.aclose()
    assert send_email._queue is None


def test_bad_options_fail_at_declaration() -> None:
    _, taskless = build()
    with pytest.raises(ValidationError) as info:
        taskless.queue("emails", options={"retries": -1})
    assert info.value.field == "retries"


@pytest.fixture
def recording() -> Iterator[RecordingTransport]:
    with recording_transport() as transport:
        yield transport


@pytest.mark.anyio
async def test_queue_methods_delegate_to_the_async_queue(recording: RecordingTransport) -> None:
    _, taskless = build(settings=SETTINGS.replace(url="recording://jobs"))

    @taskless.queue("emails", route="/hooks/email")
    def send_email(payload: Email) -> None: ...

    job = await send_email.enqueue("welcome", Email(to="ada@example.com"), {"retries": 1})
    assert job.payload == Email(to="ada@example.com")
    assert (await send_email.get("welcome")) is not None
    assert (await send_email.get("missing")) is None
    await send_email.update("welcome", options={"enabled": False})
    with pytest.raises(JobNotFound):
        await send_email.update("missing", Email(to="x"))
    assert (await send_email.delete("missing")) is None
    methods = [(r.method, r.path) for r in recording.requests]
    assert methods == WELCOME_THEN_MISSING
    put = recording.requests[0].json
    assert put["endpoint"] == "https://app.example.com/hooks/email"
    assert "payload" not in put  # encrypted: the settings have an encryption key
    assert PayloadCipher(ENCRYPTION_KEY).decrypt(put["encrypted"], "emails") == {
        "to": "ada@example.com"
    }
    assert recording.requests[3].json == {"options": {"enabled": False}}


# --- mounting --------------------------------------------------------------------------------


def test_init_app_later_and_only_once() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    seen: list[Any] = []
    taskless.queue("emails")(lambda payload: seen.append(payload))
    app = Starlette()
    taskless.init_app(app)
    taskless.init_app(app)
    assert [route.path for route in app.router.routes] == [  # type: ignore[attr-defined]
        "/api/queues/{queue}", "/api/queues/{queue}/"
    ]
    assert post(AsgiHarness(app, taskless), "emails", {"x": 1}).status == 200
    assert seen == [{"x": 1}]


@pytest.mark.parametrize("declared_after_init", [False, True])
def test_custom_routes_are_mounted(declared_after_init: bool) -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    app = Starlette()
    if declared_after_init:
        taskless.init_app(app)
    taskless.queue("emails", route="/hooks/email")(lambda payload: "custom")
    if not declared_after_init:
        taskless.init_app(app)
    harness = AsgiHarness(app, taskless)
    reply = post(harness, "emails", path="/hooks/email")
    assert (reply.status, reply.json()["result"]) == (200, "custom")
    reply = post(harness, "emails", path="/hooks/email/")  # answered, not redirected
    assert (reply.status, reply.json()["result"]) == (200, "custom")
    assert post(harness, "emails").status == 404  # not at the default route any more


def test_custom_prefix() -> None:
    app, taskless = build(prefix="/_jobs")
    taskless.queue("emails")(lambda payload: 1)
    harness = AsgiHarness(app, taskless)
    assert post(harness, "emails", path="/_jobs/emails").status == 200
    assert post(harness, "emails").status == 404


def test_app_routes_are_untouched() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello " + (await request.body()).decode())

    app = Starlette(routes=[Route("/hello", hello, methods=["POST"])])
    app, taskless = build(app)
    taskless.queue("emails")(lambda payload: 1)
    harness = AsgiHarness(app, taskless)
    reply = harness.request("POST", "/hello", headers={}, body=b"world")
    assert (reply.status, reply.body) == (200, b"hello world")
    assert post(harness, "emails").status == 200


def test_works_inside_a_mounted_sub_app() -> None:
    inner = Starlette()
    _, taskless = build(inner)
    taskless.queue("emails")(lambda payload: "inner")
    outer = Starlette(routes=[Mount("/sub", app=inner)])
    reply = post(AsgiHarness(outer, taskless), "emails", path="/sub/api/queues/emails")
    assert (reply.status, reply.json()["result"]) == (200, "inner")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec_" + base64.b64encode(b"from-the-environment").decode()
    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", secret)
    monkeypatch.setenv("TASKLESS_BASE_URL", "https://env.example.com")
    app = Starlette()
    taskless = Taskless(app, clock=lambda: NOW)
    assert taskless.settings == Settings.from_env()

    @taskless.queue("emails")
    def handler(payload: Any) -> None: ...

    assert post(AsgiHarness(app, taskless), "emails", secret=secret).status == 200
    assert handler.queue.endpoint == "https://env.example.com/api/queues/emails"
    asyncio.run(taskless.aclose())


def test_settings_with_an_invalid_secret_are_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskless.core.errors import ConfigurationError

    monkeypatch.setenv("TASKLESS_SIGNING_SECRET", "whsec_!!!")
    with pytest.raises(ConfigurationError, match="^TASKLESS_SIGNING_SECRET is not a valid"):
        Taskless(Starlette())
    monkeypatch.delenv("TASKLESS_SIGNING_SECRET")
    monkeypatch.setenv("TASKLESS_PREVIOUS_SIGNING_SECRETS", "12345")
    with pytest.raises(ConfigurationError, match="^TASKLESS_PREVIOUS_SIGNING_SECRETS: entry 1 of 1"):
        Taskless(Starlette())


# --- body size -------------------------------------------------------------------------------


def test_a_streamed_body_over_max_body_bytes_is_413_without_reading_it_all() -> None:
    app, taskless = build(max_body_bytes=1000)
    seen: list[Any] = []
    taskless.queue("emails")(seen.append)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(100):
            sent.append(1)
            yield b"x" * 300

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/api/queues/emails", content=chunks())

    response = asyncio.run(main())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert len(sent) < 10  # stopped reading once over the limit
    assert seen == []


def test_a_declared_body_over_max_body_bytes_is_413_before_reading() -> None:
    app, taskless = build(max_body_bytes=1000)
    taskless.queue("emails")(lambda payload: None)
    received: list[str] = []

    async def main() -> Any:
        messages: list[Any] = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/api/queues/emails",
            "raw_path": b"/api/queues/emails", "root_path": "", "query_string": b"",
            "headers": [(b"content-length", b"5000")], "server": ("app", 80),
        }

        async def receive() -> Any:
            received.append("body")
            return {"type": "http.request", "body": b"x" * 5000, "more_body": False}

        async def send(message: Any) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return messages

    start, body = asyncio.run(main())
    assert start["status"] == 413
    assert b'"too_large"' in body["body"]
    assert received == []  # the body was never read


def test_max_body_bytes_is_checked_when_built() -> None:
    with pytest.raises(TypeError, match="max_body_bytes"):
        Taskless(Starlette(), settings=SETTINGS, max_body_bytes="2MB")  # type: ignore[arg-type]
