"""End to end with payload encryption: the app encrypts, the real job server stores and
forwards ciphertext only, the FastAPI app on uvicorn decrypts."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from taskless.core.crypto import key_id
from taskless.core.errors import DecryptionError
from taskless.core.queue import AsyncQueue
from taskless.core.settings import Settings
from taskless.integrations.fastapi import Taskless
from taskless.server.runner import ServerThread

from .conftest import JobServer
from .test_fastapi_e2e import Email, running_app

pytestmark = pytest.mark.e2e

RAW_KEY = b"e2e-encryption-key-of-32-bytes!!"
KEY = base64.b64encode(RAW_KEY).decode()
SECRET = "card 4242 4242 4242 4242, Zürich"


@pytest.mark.anyio
async def test_the_job_server_never_sees_the_payload(
    job_server: JobServer, app_server: Callable[[Any], ServerThread], tmp_path: Path
) -> None:
    async with running_app(job_server, app_server, {"TASKLESS_ENCRYPTION_KEY": KEY}) as app:
        job = await app.send_email.enqueue("order-1", Email(to=SECRET))
        assert job.payload == Email(to=SECRET)  # read back and decrypted by the queue

        app.emails.wait_for(1, timeout=10)
        app.emails.settle(quiet=0.3)
        assert [payload for _, _, payload, _ in app.emails.calls] == [Email(to=SECRET)]

        with job_server.api() as api:
            stored = api.get("/v1/queues/emails/jobs/order-1").json()
        assert "payload" not in stored
        assert stored["encrypted"]["alg"] == "A256GCM"
        assert stored["encrypted"]["kid"] == key_id(RAW_KEY)
        with sqlite3.connect(tmp_path / "taskless.db") as db:
            dump = "\n".join(db.iterdump())
        assert "4242" not in dump and "Zürich" not in dump

        fetched = await app.send_email.get("order-1")
        assert fetched is not None and fetched.payload == Email(to=SECRET)

        keyless = AsyncQueue[Any]("emails", settings=Settings.from_env({}, url=job_server.url))
        async with keyless:
            with pytest.raises(DecryptionError) as caught:
                await keyless.get("order-1")
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
        await queue.enqueue("order-3", {"card": SECRET}, {"retries": 1})
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
