"""Payload encryption under the fake: stored encrypted as on the job server, delivered
decrypted through the app's receiver (app mode) or to the handler (direct mode), and shown
decrypted by the inspection API."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from taskless.core.errors import DecryptionError
from taskless.core.settings import Settings
from taskless.integrations.fastapi import Taskless
from taskless.testing import TasklessFake

KEY = base64.b64encode(b"fake-tests-encryption-key-32-byt").decode()
SETTINGS = Settings(encryption_key=KEY, base_url="https://app.example.com", url="memory://")
PAYLOAD = {"to": "ada@example.com", "n": 12345678901234567890}


class Email(BaseModel):
    to: str
    n: int


def app_with_queue(settings: Settings) -> tuple[FastAPI, Any, list[Email]]:
    app = FastAPI()
    taskless = Taskless(app, settings=settings)
    seen: list[Email] = []

    @taskless.queue("emails")
    def send_email(payload: Email) -> None:
        seen.append(payload)

    return app, send_email, seen


@pytest.mark.parametrize("mode", ["app", "direct"])
def test_encrypted_jobs_are_stored_encrypted_and_delivered_decrypted(mode: str) -> None:
    app, send_email, seen = app_with_queue(SETTINGS)
    with TasklessFake(app, settings=SETTINGS, mode=mode, start="2024-01-01T00:00:00Z") as fake:
        job = asyncio.run(send_email.enqueue("welcome", PAYLOAD))
        assert job.payload == Email(**PAYLOAD)
        stored = fake.calls[-1].response
        assert "payload" not in stored and stored["encrypted"]["alg"] == "A256GCM"
        assert [e.payload for e in fake.enqueued()] == [PAYLOAD]
        assert [s.payload for s in fake.scheduled()] == [PAYLOAD]
        assert [j.payload for j in fake.jobs()] == [PAYLOAD]
        found = fake.job("welcome")
        assert found is not None and found.payload == PAYLOAD
        fake.run_due()
    assert seen == [Email(**PAYLOAD)]
    assert [(d.status, d.payload) for d in fake.deliveries()] == [(200, PAYLOAD)]
    fake.assert_enqueued("welcome", payload=PAYLOAD)


def test_a_receiver_without_the_key_answers_422_naming_the_setting() -> None:
    app, _, seen = app_with_queue(Settings(base_url="https://app.example.com"))
    with TasklessFake(app, settings=SETTINGS, start="2024-01-01T00:00:00Z") as fake:
        fake.queue("emails", endpoint="https://app.example.com/api/queues/emails").enqueue(
            "welcome", PAYLOAD
        )
        (delivery,) = fake.run_due()
    assert delivery.status == 422
    assert "no TASKLESS_ENCRYPTION_KEY is set here" in delivery.response_json()["error"]["message"]
    assert seen == []


def test_a_queue_without_the_key_cannot_read_an_encrypted_job() -> None:
    with TasklessFake(settings=SETTINGS) as fake:
        fake.queue("emails").enqueue("welcome", PAYLOAD)
        keyless = fake.queue("emails", settings=Settings())
        with pytest.raises(DecryptionError, match="no TASKLESS_ENCRYPTION_KEY is set here"):
            keyless.get("welcome")


def test_update_re_encrypts_a_new_payload_and_keeps_an_old_one_encrypted() -> None:
    with TasklessFake(settings=SETTINGS) as fake:
        queue = fake.queue("emails")
        queue.enqueue("welcome", PAYLOAD)
        first = fake.calls[-1].response["encrypted"]
        kept = queue.update("welcome", options={"retries": 1})
        assert kept.payload == PAYLOAD and kept.options.retries == 1
        assert fake.calls[-1].response["encrypted"] == first  # untouched
        changed = queue.update("welcome", {"to": "bob@example.com", "n": 1})
        assert changed.payload == {"to": "bob@example.com", "n": 1}
        sent = fake.calls[-1].json
        assert "payload" not in sent and sent["encrypted"]["iv"] != first["iv"]
        deleted = queue.delete("welcome")
        assert deleted is not None and deleted.payload == {"to": "bob@example.com", "n": 1}
