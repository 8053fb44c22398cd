"""End to end with payload encryption: the app encrypts, the real job server stores and
forwards ciphertext only, the FastAPI app on uvicorn decrypts."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from taskless import JobMeta
from taskless.core.crypto import key_id
from taskless.core.errors import DecryptionError
from taskless.core.queue import AsyncQueue
from taskless.core.settings import Settings
from taskless.integrations.fastapi import Taskless
from taskless.server.runner import ServerThread

from .conftest import JobServer, Recorder

pytestmark = pytest.mark.e2e

RAW_KEY = b"e2e-encryption-key-of-32-bytes!!"
KEY = base64.b64encode(RAW_KEY).decode()
SECRET_PAYLOAD = {"card": "4242 4242 4242 4242", "city": "Zürich", "n": 12345678901234567890}


class App:
    def __init__(self, job_server: JobServer, thread_for: Callable[[Any], ServerThread]) -> None:
        self.fastapi = FastAPI()
        self.thread = thread_for(self.fastapi)
        self.settings = Settings.from_env(
            {"TASKLESS_ENCRYPTION_KEY": KEY}, url=job_server.url, base_url=self.thread.url
        )
        self.taskless = Taskless(self.fastapi, settings=self.settings)
        self.calls = Recorder()

        @self.taskless.queue("billing")
        async def charge(payload: dict[str, Any], meta: JobMeta) -> None:
            self.calls.add(payload, meta)

        self.charge = charge
        self.thread.start()


@pytest.fixture
async def app(
    job_server: JobServer, app_server: Callable[[Any], ServerThread]
) -> AsyncIterator[App]:
    app = App(job_server, app_server)
    yield app
    await app.taskless.aclose()


@pytest.mark.anyio
async def test_the_job_server_never_sees_the_payload(
    app: App, job_server: JobServer, tmp_path: Path
) -> None:
    job = await app.charge.enqueue("order-1", SECRET_PAYLOAD)
    assert job.payload == SECRET_PAYLOAD  # read back and decrypted by the queue

    app.calls.wait_for(1, timeout=10)
    app.calls.settle(quiet=0.3)
    assert [payload for _, _, payload, _ in app.calls.calls] == [SECRET_PAYLOAD]

    with job_server.api() as api:
        stored = api.get("/v1/queues/billing/jobs/order-1").json()
    assert "payload" not in stored
    assert stored["encrypted"]["alg"] == "A256GCM"
    assert stored["encrypted"]["kid"] == key_id(RAW_KEY)
    with sqlite3.connect(tmp_path / "taskless.db") as db:
        dump = "\n".join(db.iterdump())
    assert "4242" not in dump and "Zürich" not in dump and "12345678901234567890" not in dump

    fetched = await app.charge.get("order-1")
    assert fetched is not None and fetched.payload == SECRET_PAYLOAD


@pytest.mark.anyio
async def test_an_app_without_the_key_cannot_read_the_job(app: App, job_server: JobServer) -> None:
    await app.charge.enqueue("order-2", SECRET_PAYLOAD, {"enabled": False})
    settings = Settings.from_env({}, url=job_server.url)
    async with AsyncQueue[Any]("billing", settings=settings) as keyless:
        with pytest.raises(DecryptionError) as caught:
            await keyless.get("order-2")
    assert "no TASKLESS_ENCRYPTION_KEY is set here" in str(caught.value)


@pytest.mark.anyio
async def test_a_receiver_without_the_key_answers_422_and_the_job_is_retried(
    job_server: JobServer, app_server: Callable[[Any], ServerThread]
) -> None:
    fastapi = FastAPI()
    thread = app_server(fastapi)
    keyless = Taskless(fastapi, settings=Settings.from_env({}, url=job_server.url,
                                                            base_url=thread.url))
    calls: list[Any] = []
    keyless.queue("billing")(lambda payload: calls.append(payload))
    thread.start()
    sender = Settings.from_env({"TASKLESS_ENCRYPTION_KEY": KEY}, url=job_server.url,
                               base_url=thread.url)
    async with AsyncQueue[Any]("billing", settings=sender) as queue:
        await queue.enqueue("order-3", SECRET_PAYLOAD, {"retries": 1})
        with job_server.api() as api:
            for _ in range(200):
                job = api.get("/v1/queues/billing/jobs/order-3").json()
                if job["state"] == "failed":
                    break
                await anyio.sleep(0.05)
            runs = api.get("/v1/queues/billing/jobs/order-3/runs").json()["runs"]
    assert job["state"] == "failed"
    assert sorted((r["attempt"], r["statusCode"]) for r in runs) == [(1, 422), (2, 422)]
    assert calls == []
    await keyless.aclose()
