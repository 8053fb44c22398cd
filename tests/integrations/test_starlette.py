"""What the Starlette integration adds to the receiver contract: mounting, queue handlers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from taskless.core.errors import JobNotFound, ValidationError
from taskless.core.models import JobMeta
from taskless.core.queue import AsyncQueue
from taskless.core.settings import Settings
from taskless.integrations.starlette import QueueHandler, Taskless

from .conftest import NOW, SETTINGS, AsgiHarness
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
    assert put["payload"] == {"to": "ada@example.com"}
    assert recording.requests[3].json == {"options": {"enabled": False}}


# --- mounting --------------------------------------------------------------------------------


def test_init_app_later_and_only_once() -> None:
    taskless = Taskless(settings=SETTINGS, clock=lambda: NOW)
    seen: list[Any] = []
    taskless.queue("emails")(lambda payload: seen.append(payload))
    app = Starlette()
    taskless.init_app(app)
    taskless.init_app(app)
    assert len(app.router.routes) == 1
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
