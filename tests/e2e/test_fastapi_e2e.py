"""End to end: a real job server delivers to a real FastAPI app on uvicorn, over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from taskless import JobMeta, JobNotFound
from taskless.core.envelope import build_envelope
from taskless.core.settings import Settings
from taskless.core.signing import signed_headers
from taskless.integrations.fastapi import Taskless
from taskless.server.runner import ServerThread

from .conftest import JobServer, Recorder

pytestmark = pytest.mark.e2e


class Email(BaseModel):
    to: str


class App:
    """A FastAPI app with three queues, served on its own port, wired to the job server."""

    def __init__(
        self,
        job_server: JobServer,
        thread_for: Callable[[Any], ServerThread],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.fastapi = FastAPI()
        self.thread = thread_for(self.fastapi)
        self.settings = Settings.from_env(
            environ or {}, url=job_server.url, base_url=self.thread.url
        )
        self.taskless = Taskless(self.fastapi, settings=self.settings)
        self.emails = Recorder()
        self.failures = Recorder()

        @self.taskless.queue("emails")
        async def send_email(payload: Email, meta: JobMeta) -> dict[str, str]:
            self.emails.add(payload, meta)
            return {"sent": payload.to}

        @self.taskless.queue("broken")
        def always_fails(payload: dict[str, Any], meta: JobMeta) -> None:
            self.failures.add(payload, meta)
            raise RuntimeError("this handler always fails")

        self.send_email = send_email
        self.always_fails = always_fails
        self.thread.start()


@contextlib.asynccontextmanager
async def running_app(
    job_server: JobServer,
    thread_for: Callable[[Any], ServerThread],
    environ: Mapping[str, str] | None = None,
) -> AsyncIterator[App]:
    """:class:`App` with the ``TASKLESS_*`` variables of ``environ``, closed afterwards."""
    app = App(job_server, thread_for, environ)
    try:
        yield app
    finally:
        await app.taskless.aclose()


@pytest.fixture
async def app(
    job_server: JobServer, app_server: Callable[[Any], ServerThread]
) -> AsyncIterator[App]:
    async with running_app(job_server, app_server) as app:
        yield app


@pytest.mark.anyio
async def test_job_due_in_two_seconds_is_delivered_once_and_not_early(app: App) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = await app.send_email.enqueue("later", Email(to="ada@example.com"), {"runAt": due})
    assert job.state.value == "scheduled"
    assert job.next_run_at == due

    app.emails.wait_for(1, timeout=6)
    app.emails.settle(quiet=0.5)
    assert len(app.emails.calls) == 1
    _, arrived_at, payload, meta = app.emails.calls[0]
    assert payload == Email(to="ada@example.com")
    assert arrived_at >= due.timestamp()
    assert meta.attempt == 1
    assert meta.scheduled_at == due
    assert meta.name == "later" and meta.queue == "emails"
    done = await app.send_email.get("later")
    assert done is not None and done.state.value == "completed" and done.next_run_at is None


@pytest.mark.anyio
async def test_recurring_job_is_delivered_on_its_grid(app: App) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await app.send_email.enqueue(
        "tick", Email(to="grid@example.com"), {"runAt": start, "runEvery": "PT1S"}
    )
    app.emails.wait_for(3, timeout=8)
    await app.send_email.delete("tick")
    calls = app.emails.calls[:3]
    assert [c[3].scheduled_at for c in calls] == [start + timedelta(seconds=k) for k in range(3)]
    assert len({c[3].run_id for c in calls}) == 3
    for _, arrived_at, _, meta in calls:
        assert arrived_at >= meta.scheduled_at.timestamp()
        assert meta.attempt == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("retries", "attempts"), [(0, 1), (1, 2), (5, 6)])
async def test_failing_handler_is_attempted_retries_plus_one_times(
    app: App, retries: int, attempts: int
) -> None:
    await app.always_fails.enqueue("doomed", {"n": 1}, {"retries": retries})
    app.failures.wait_for(attempts, timeout=10)
    app.failures.settle(quiet=0.6)
    assert [c[3].attempt for c in app.failures.calls] == list(range(1, attempts + 1))
    assert len({c[3].run_id for c in app.failures.calls}) == 1
    deadline = time.monotonic() + 5
    while (job := await app.always_fails.get("doomed")) is not None and job.state.value != "failed":
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.02)
    assert job is not None and job.state.value == "failed"


@pytest.mark.anyio
async def test_tampered_delivery_is_refused_and_never_reaches_the_handler(app: App) -> None:
    body = build_envelope("emails", "forged", 1, datetime.now(UTC), {"to": "a@b.c"})
    headers = signed_headers(body, app.settings.signing_secret, msg_id="run_forged")
    tampered = body.replace(b"a@b.c", b"x@b.c")
    endpoint = f"{app.thread.url}/api/queues/emails"
    async with httpx.AsyncClient() as client:
        refused = await client.post(endpoint, content=tampered, headers=headers)
        accepted = await client.post(endpoint, content=body, headers=headers)
    assert refused.status_code == 401
    assert accepted.status_code == 200
    assert [c[2] for c in app.emails.calls] == [Email(to="a@b.c")]


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_body_is_413_and_a_trailing_slash_is_the_route(
    app: App, chunked: bool
) -> None:
    size = 20 * 1024 * 1024  # the limit is 2 MiB
    body = b"x" * size

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, size, 65536):
            yield body[i : i + 65536]

    delivery = build_envelope("emails", "slash", 1, datetime.now(UTC), {"to": "s@x.y"})
    headers = signed_headers(delivery, app.settings.signing_secret)
    async with httpx.AsyncClient(base_url=app.thread.url, timeout=30) as client:
        refused = await client.post(
            "/api/queues/emails", content=chunks() if chunked else body
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (413, "too_large")
        # Answered as the route, not redirected (the job server follows no redirects).
        accepted = await client.post("/api/queues/emails/", content=delivery, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert [c[2] for c in app.emails.calls] == [Email(to="s@x.y")]


@pytest.mark.anyio
async def test_update_get_and_delete_against_the_real_server(app: App) -> None:
    with pytest.raises(JobNotFound):
        await app.send_email.update("nobody", options={"retries": 2})
    assert await app.send_email.get("nobody") is None
    far = datetime(2099, 1, 1, tzinfo=UTC)
    await app.send_email.enqueue("kept", Email(to="k@example.com"), {"runAt": far, "retries": 4})
    updated = await app.send_email.update("kept", options={"retries": 2})
    assert updated.options.retries == 2
    assert updated.options.run_at == far
    assert updated.payload == {"to": "k@example.com"} or updated.payload == Email(to="k@example.com")
    assert updated.state.value == "scheduled" and updated.next_run_at == far
    deleted = await app.send_email.delete("kept")
    assert deleted is not None and deleted.name == "kept"
    assert await app.send_email.get("kept") is None
    assert await app.send_email.delete("kept") is None


@pytest.mark.anyio
async def test_enqueue_many_stores_and_delivers_each_valid_job_once(app: App) -> None:
    results = await app.send_email.enqueue_many([
        ("batch-1", Email(to="one@example.com")),
        ("batch-2", {"to": 2}),  # not an Email: refused here, not sent
        ("batch-3", Email(to="three@example.com"), {"headers": {"x-batch": "yes"}}),
        (None, Email(to="generated@example.com")),
    ])
    assert [type(r).__name__ for r in results] == ["Job", "ValidationError", "Job", "Job"]
    assert getattr(results[1], "field", None) == "jobs[1].payload.to"

    app.emails.wait_for(3, timeout=10)
    app.emails.settle(quiet=0.5)
    delivered = sorted(payload.to for _, _, payload, _ in app.emails.calls)
    assert delivered == ["generated@example.com", "one@example.com", "three@example.com"]
    headers = {payload.to: meta.headers.get("x-batch") for _, _, payload, meta in app.emails.calls}
    assert headers["three@example.com"] == "yes"
    assert await app.send_email.get("batch-2") is None
